//! The scale-out backend: PostgreSQL shared by several instances. (Being written.)

use crate::*;

pub struct PgStore;

impl PgStore {
    pub async fn open(url: &str) -> Result<PgStore> {
        Err(StoreError::Url(format!("{url}: the PostgreSQL backend is not built yet")))
    }
}
