//! The new-work signal across instances: `NOTIFY intake_work` from whoever queues work,
//! and one LISTENing task per instance that wakes its worker.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;

use super::PgStore;

/// The channel `insert_upload`, `request_integration_delete` and `release_leases` notify.
pub(super) const WORK_CHANNEL: &str = "intake_work";

/// A task that LISTENs on [`WORK_CHANNEL`] and turns each notification into a permit of
/// `notify`, so a notification that arrives between an empty claim and the wait is kept.
pub(super) struct WorkSignal {
    notify: Arc<Notify>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl PgStore {
    /// The new-work signal, listening from now on; `None` when the listener cannot connect
    /// (waits then fall back to their timeout).
    pub(super) async fn work_signal(&self) -> Option<&Arc<Notify>> {
        let started = self
            .work_signal
            .get_or_try_init(|| async {
                let mut listener = PgListener::connect_with(&self.pool).await?;
                listener.listen(WORK_CHANNEL).await?;
                let notify = Arc::new(Notify::new());
                let task = tokio::spawn(forward_notifications(listener, notify.clone()));
                Ok::<_, sqlx::Error>(WorkSignal { notify, task })
            })
            .await;
        match started {
            Ok(signal) => Some(&signal.notify),
            Err(err) => {
                tracing::warn!("cannot listen for new work, polling instead: {err}");
                None
            }
        }
    }
}

async fn forward_notifications(mut listener: PgListener, notify: Arc<Notify>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => notify.notify_one(),
            // The connection was lost and re-established: notifications may have been missed.
            Ok(None) => notify.notify_one(),
            Err(err) => {
                tracing::warn!("listening for new work failed, retrying: {err}");
                notify.notify_one();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

pub(super) async fn wait_for_work(store: &PgStore, max: Duration) {
    match store.work_signal().await {
        Some(notify) => {
            let _ = tokio::time::timeout(max, notify.notified()).await;
        }
        None => tokio::time::sleep(max).await,
    }
}
