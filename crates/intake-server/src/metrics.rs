//! `GET /metrics`: the Prometheus series of this instance (`prometheus-client`, in the
//! OpenMetrics text format that Prometheus scrapes), and the tower layer that records the
//! HTTP series and writes the access log, one line per request.
//!
//! HTTP series come from [`layer`], the worker's from [`crate::worker`], the upload bytes
//! from the upload service; `intake_requests{status}` is counted in the database at each
//! scrape, so every instance of one database reports the same queue. Everything else is
//! this instance's own.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use intake_model::ObjectType;
use intake_store::RequestStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::request_id;

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LineLabels {
    object_type: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every series, and the registry that writes them.
pub struct Metrics {
    /// Whether `GET /metrics` answers (`--metrics false`: a 404).
    pub enabled: bool,
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    upload_bytes: Counter,
    lines: Family<LineLabels, Counter>,
    requests: Family<StatusLabels, Gauge>,
    processing: Histogram,
    lease_takeovers: Counter,
    webhook_deliveries: Family<OutcomeLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(true)
    }
}

impl Metrics {
    pub fn new(enabled: bool) -> Metrics {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "intake_http_requests",
            "HTTP requests answered, by route pattern, method and status",
            http_requests.clone(),
        );
        // 1 ms to 33 s.
        let http_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        registry.register(
            "intake_http_request_duration_seconds",
            "Seconds from a request's arrival to its response's head, by route pattern",
            http_duration.clone(),
        );
        let upload_bytes = Counter::default();
        registry.register(
            "intake_upload_bytes",
            "Bytes of dataFile parts accepted (uploads answered 201)",
            upload_bytes.clone(),
        );
        let lines = Family::<LineLabels, Counter>::default();
        registry.register(
            "intake_lines_processed",
            "Lines of uploads processed by this instance's worker, by object type and outcome",
            lines.clone(),
        );
        let requests = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "intake_requests",
            "Requests in each status now, counted in the database",
            requests.clone(),
        );
        // 10 ms to 87 min.
        let processing = Histogram::new(exponential_buckets(0.01, 2.0, 20));
        registry.register(
            "intake_request_processing_seconds",
            "Seconds this instance's worker spent on a request, from its claim to its end",
            processing.clone(),
        );
        let lease_takeovers = Counter::default();
        registry.register(
            "intake_lease_takeovers",
            "Requests this instance's worker took over from a worker whose lease expired",
            lease_takeovers.clone(),
        );
        let webhook_deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "intake_webhook_deliveries",
            "Webhook deliveries attempted, by outcome",
            webhook_deliveries.clone(),
        );
        // Series whose labels are known start at 0, so that they are there (and `rate()`
        // works) before they first move.
        for object_type in ObjectType::ALL {
            for outcome in ["success", "error"] {
                lines
                    .get_or_create(&LineLabels {
                        object_type: object_type.as_str(),
                        outcome,
                    })
                    .inc_by(0);
            }
        }
        for outcome in ["delivered", "failed"] {
            webhook_deliveries
                .get_or_create(&OutcomeLabels { outcome })
                .inc_by(0);
        }
        Metrics {
            enabled,
            registry,
            http_requests,
            http_duration,
            upload_bytes,
            lines,
            requests,
            processing,
            lease_takeovers,
            webhook_deliveries,
        }
    }

    /// One answered request.
    fn http_request(&self, route: &str, method: &Method, status: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method: method_label(method),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The `dataFile` of an accepted upload.
    pub fn upload_accepted(&self, bytes: u64) {
        self.upload_bytes.inc_by(bytes);
    }

    /// Lines of one stored batch.
    pub fn lines_processed(&self, object_type: ObjectType, successes: u64, errors: u64) {
        for (outcome, count) in [("success", successes), ("error", errors)] {
            self.lines
                .get_or_create(&LineLabels {
                    object_type: object_type.as_str(),
                    outcome,
                })
                .inc_by(count);
        }
    }

    /// A request the worker is done with (finished, handed back or lost).
    pub fn request_processed(&self, elapsed: Duration) {
        self.processing.observe(elapsed.as_secs_f64());
    }

    pub fn lease_taken_over(&self) {
        self.lease_takeovers.inc();
    }

    /// One webhook delivery attempt: `delivered` (a 2xx), `retried` (no 2xx in time, tried
    /// again later), `failed` (no 2xx, and it was the last attempt) or `skipped` (a refused
    /// target, never sent).
    pub fn webhook_delivery(&self, outcome: &'static str) {
        self.webhook_deliveries
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The exposition, with the requests of each status as counted now (`None` when the
    /// database could not say: the series is left out rather than wrong).
    pub fn encode(&self, request_counts: Option<&[(RequestStatus, u64)]>) -> String {
        self.requests.clear();
        for (status, count) in request_counts.unwrap_or_default() {
            self.requests
                .get_or_create(&StatusLabels {
                    status: status.as_str(),
                })
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The method as a label: one of HTTP's, else `OTHER` (a client cannot make new series).
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("OTHER")
}

/// The layer (`axum::middleware::from_fn_with_state`) around every route and the fallback:
/// counts the request under its route pattern (axum's [`MatchedPath`]; `unmatched` for
/// the fallback) and writes the access-log line: `requestId`, `method`, `route`, `path`,
/// `status` and `milliseconds` (a number).
pub async fn layer(
    State(metrics): State<std::sync::Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| UNMATCHED.to_owned());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let id = request_id::of_request(&request);
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    metrics.http_request(&route, &method, status, elapsed);
    tracing::info!(
        requestId = %id,
        method = %method,
        route = %route,
        path = %path,
        status,
        milliseconds = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_are_written_those_of_known_labels_from_0() {
        let metrics = Metrics::new(true);
        metrics.lines_processed(ObjectType::Contact, 2, 1);
        metrics.http_request("/health", &Method::GET, 200, Duration::from_millis(3));
        let text = metrics.encode(Some(&[(RequestStatus::Pending, 3)]));
        for line in [
            "intake_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 1",
            "intake_http_request_duration_seconds_bucket{le=\"0.004\",route=\"/health\"} 1",
            "intake_upload_bytes_total 0",
            "intake_lines_processed_total{object_type=\"CONTACT\",outcome=\"success\"} 2",
            "intake_lines_processed_total{object_type=\"CONTACT\",outcome=\"error\"} 1",
            "intake_requests{status=\"PENDING\"} 3",
            "intake_request_processing_seconds_count 0",
            "intake_lease_takeovers_total 0",
            "intake_webhook_deliveries_total{outcome=\"delivered\"} 0",
            "intake_lines_processed_total{object_type=\"STAGE\",outcome=\"error\"} 0",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
    }
}
