//! Sidecar files and webhooks (see `crate::webhooks`).

use super::PgStore;

crate::webhooks::webhook_statements!(PgStore, read: pool, write: pool);
