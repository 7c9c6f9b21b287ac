//! What the cases share: where a store lives, and records and uploads to give it.

use std::sync::Arc;

use intake_model::{FieldDef, ObjectType, ValidRecord};
use intake_store::testing::TestDatabase;
use intake_store::{Batch, ClaimedWork, CompanyId, IntegrationId, NewUpload, RequestStatus, Store};

/// Where one case's store lives: a SQLite file in a temporary directory, or a fresh
/// PostgreSQL database; both go when the site is dropped.
pub struct Site {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDatabase>,
}

impl Site {
    pub fn sqlite() -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        Site {
            url: format!("sqlite://{}", dir.path().join("intake.db").display()),
            _dir: Some(dir),
            _db: None,
        }
    }

    /// `None` when PostgreSQL is unreachable and not required (the helper says so).
    pub async fn postgres() -> Option<Site> {
        let db = TestDatabase::create().await?;
        Some(Site {
            url: db.url.clone(),
            _dir: None,
            _db: Some(db),
        })
    }

    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }

    /// Opens (again) the store of this site, as a server does.
    pub async fn open(&self) -> Arc<dyn Store> {
        intake_store::open(&self.url).await.expect("open the store")
    }
}

/// Company `acme` with its integration: (company id, integration id).
pub async fn acme(store: &dyn Store) -> (CompanyId, IntegrationId) {
    let company = store.create_company("acme").await.unwrap();
    let integration = store
        .register_integration(company.id, "crm", "a@b.c")
        .await
        .unwrap();
    (company.id, integration.id)
}

pub fn field(name: &str, ty: &str) -> FieldDef {
    serde_json::from_value(serde_json::json!({"uniqueName": name, "label": name, "type": ty}))
        .unwrap()
}

pub fn record(id: &str, modified: Option<i64>, deleted: bool, body: &str) -> ValidRecord {
    ValidRecord {
        object_id: id.into(),
        modified,
        deleted,
        body: body.into(),
    }
}

/// A CONTACT upload named `crid`.
pub fn upload(company: CompanyId, integration: IntegrationId, crid: &str) -> NewUpload {
    NewUpload {
        company_id: company,
        integration_id: integration,
        client_request_id: crid.into(),
        object_type: ObjectType::Contact,
        spool_file: format!("{crid}.ldjson"),
        file_bytes: 0,
    }
}

/// Stores `batch` as worker "w" and finishes the request DONE; both must keep the lease.
pub async fn apply_and_finish(store: &dyn Store, work: &ClaimedWork, batch: &Batch) {
    store
        .apply_batch(work, "w", batch)
        .await
        .unwrap()
        .expect("the lease is ours");
    store
        .finish_work(work.seq, "w", RequestStatus::Done, None)
        .await
        .unwrap()
        .expect("the lease is ours");
}
