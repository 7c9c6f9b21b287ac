//! Webhook deliveries (INTAKE-API.md "Webhooks"): a task of its own, beside the worker and
//! never in its way, takes due deliveries from the store under a lease (so that of several
//! instances one sends each), signs each body with its webhook's secret and POSTs it with a
//! 10 s timeout. A 2xx answer delivers it; anything else (another status, a timeout, no
//! connection) is tried again after `retry_base`, doubling, until `max_attempts`, then it is
//! FAILED. A target in a loopback or private range is skipped as FAILED unless allowed.
//! Deliveries are rows, so they survive restarts: a lease left by a stopped instance
//! expires and another (or the next start) sends it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use intake_model::wire::intake::WebhookEvent;
use intake_store::{AttemptOutcome, DueDelivery, Store};
use sha2::Sha256;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// How deliveries are made.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Wait before the second attempt; doubled for each later one.
    pub retry_base: Duration,
    /// Attempts at most; then the delivery is FAILED.
    pub max_attempts: u32,
    /// Loopback, private, link-local and shared-address targets are allowed.
    pub allow_private: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            retry_base: Duration::from_millis(1000),
            max_attempts: 8,
            allow_private: false,
        }
    }
}

/// Time one attempt may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// A claimed delivery is this sender's for this long: far longer than an attempt.
const LEASE: Duration = Duration::from_secs(60);
/// How often the store is asked for due deliveries.
const POLL: Duration = Duration::from_millis(200);
/// Deliveries claimed at a time (sent concurrently).
const CLAIM: usize = 32;

/// Whether an address is one a webhook may not reach without the flag: loopback, private,
/// link-local, shared-address (CGNAT), unspecified or "this network", in IPv4 or IPv6
/// (IPv4-mapped IPv6 addresses are judged as their IPv4 address).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            a == 127
                || a == 10
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 168)
                || (a == 169 && b == 254)
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Why a target is refused, in the client's terms.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    NotHttp,
    Private(IpAddr),
    Unresolvable(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotHttp => f.write_str("Field [url] must be an absolute http(s) URL"),
            Refused::Private(ip) => write!(
                f,
                "Field [url] points at a loopback or private address ({ip}); the server \
                 does not send webhooks there unless it runs with \
                 --webhook-allow-private-networks"
            ),
            Refused::Unresolvable(why) => write!(f, "Field [url] cannot be resolved: {why}"),
        }
    }
}

/// Checks a target: http(s), and (unless `allow_private`) every address its host names is
/// public. Returns the address to connect to when the host is a name (so that the address
/// checked is the one used).
pub async fn check_target(
    url: &str,
    allow_private: bool,
) -> Result<(reqwest::Url, Option<SocketAddr>), Refused> {
    let parsed = reqwest::Url::parse(url).map_err(|_| Refused::NotHttp)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Refused::NotHttp);
    }
    let host = match parsed.host() {
        Some(host) => host,
        None => return Err(Refused::NotHttp),
    };
    let port = parsed.port_or_known_default().unwrap_or(80);
    let literal = match host {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    };
    if let Some(ip) = literal {
        if !allow_private && is_private(ip) {
            return Err(Refused::Private(ip));
        }
        return Ok((parsed, None));
    }
    let name = parsed.host_str().unwrap_or_default().to_owned();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
        .await
        .map_err(|e| Refused::Unresolvable(e.to_string()))?
        .collect();
    let Some(first) = addrs.first().copied() else {
        return Err(Refused::Unresolvable("no address".into()));
    };
    if !allow_private {
        if let Some(private) = addrs.iter().find(|a| is_private(a.ip())) {
            return Err(Refused::Private(private.ip()));
        }
    }
    Ok((parsed, Some(first)))
}

/// `Intake-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The delivery task: runs until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    config: WebhookConfig,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let sender = format!(
        "webhooks-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    while !*shutdown.borrow() {
        let due = match store.claim_deliveries(&sender, LEASE, CLAIM).await {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!("cannot take webhook deliveries: {err}");
                Vec::new()
            }
        };
        if due.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let sends = due.into_iter().map(|delivery| {
            let (store, config, metrics, sender) = (
                store.clone(),
                config.clone(),
                metrics.clone(),
                sender.clone(),
            );
            async move {
                let id = delivery.delivery_id;
                let outcome = attempt(store.as_ref(), &config, &delivery).await;
                metrics.webhook_delivery(match outcome {
                    AttemptOutcome::Delivered { .. } => "delivered",
                    AttemptOutcome::Failed {
                        retry_at_ms: Some(_),
                        ..
                    } => "retried",
                    AttemptOutcome::Failed { .. } => "failed",
                    AttemptOutcome::Skipped => "skipped",
                });
                if let Err(err) = store.record_attempt(id, &sender, outcome).await {
                    tracing::warn!(delivery = id, "cannot record a webhook attempt: {err}");
                }
            }
        });
        futures_util::future::join_all(sends).await;
    }
}

/// One attempt of one delivery.
async fn attempt(store: &dyn Store, config: &WebhookConfig, d: &DueDelivery) -> AttemptOutcome {
    let (url, pinned) = match check_target(&d.url, config.allow_private).await {
        Ok(target) => target,
        Err(Refused::Unresolvable(why)) => {
            tracing::info!(
                delivery = d.delivery_id,
                "webhook target unresolvable: {why}"
            );
            return retry_or_fail(config, d, None);
        }
        Err(refused) => {
            tracing::warn!(
                delivery = d.delivery_id,
                "webhook delivery skipped: {refused}"
            );
            return AttemptOutcome::Skipped;
        }
    };
    let body = match event_body(store, d).await {
        Ok(Some(body)) => body,
        // Its request is gone: nothing to tell.
        Ok(None) => return AttemptOutcome::Skipped,
        Err(()) => return retry_or_fail(config, d, None),
    };
    let mut client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if let (Some(addr), Some(host)) = (pinned, url.host_str()) {
        client = client.resolve(host, addr);
    }
    let Ok(client) = client.build() else {
        return retry_or_fail(config, d, None);
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("Intake-Delivery", d.delivery_id.to_string())
        .header("Intake-Signature", signature(&d.secret, now, &body))
        .body(body)
        .send()
        .await;
    match sent {
        Ok(answer) if answer.status().is_success() => AttemptOutcome::Delivered {
            status: answer.status().as_u16(),
        },
        Ok(answer) => retry_or_fail(config, d, Some(answer.status().as_u16())),
        Err(err) => {
            tracing::info!(delivery = d.delivery_id, "webhook attempt failed: {err}");
            retry_or_fail(config, d, None)
        }
    }
}

fn retry_or_fail(config: &WebhookConfig, d: &DueDelivery, status: Option<u16>) -> AttemptOutcome {
    let done = d.attempts.max(0) as u64 + 1;
    let retry_at_ms = (done < u64::from(config.max_attempts)).then(|| {
        let wait = config
            .retry_base
            .saturating_mul(1u32 << (done - 1).min(20) as u32);
        intake_store::now_unix_ms() + wait.as_millis() as i64
    });
    AttemptOutcome::Failed {
        status,
        retry_at_ms,
    }
}

async fn event_body(store: &dyn Store, d: &DueDelivery) -> Result<Option<Vec<u8>>, ()> {
    let info = match store.request_by_seq(d.seq).await {
        Ok(Some(info)) => info,
        Ok(None) => return Ok(None),
        Err(err) => {
            tracing::warn!(
                delivery = d.delivery_id,
                "cannot read a delivery's request: {err}"
            );
            return Err(());
        }
    };
    let event = WebhookEvent {
        event: d.event.clone(),
        delivery_id: d.delivery_id.to_string(),
        integration_id: info.integration_id,
        request: crate::services::requests::listed(info),
    };
    serde_json::to_vec(&event).map(Some).map_err(|_| ())
}
