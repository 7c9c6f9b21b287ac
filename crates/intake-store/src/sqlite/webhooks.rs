//! Sidecar files and webhooks (see `crate::webhooks`).

use super::SqliteStore;

crate::webhooks::webhook_statements!(SqliteStore, read: pool, write: writer);
