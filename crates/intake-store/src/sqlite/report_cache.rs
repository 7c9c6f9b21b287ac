//! What request-status answers, kept in memory: one process owns the SQLite file, so
//! every change of a request passes through this store, which drops the request's entry
//! once the change is committed. A read that raced with a change does not fill the cache
//! (the generation tells), so an entry is never older than the database.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::{CompanyId, RequestReport, RequestSeq};

#[derive(Default)]
pub(super) struct ReportCache {
    inner: Mutex<ReportCacheInner>,
}

#[derive(Default)]
struct ReportCacheInner {
    generation: u64,
    by_name: HashMap<(CompanyId, String), (RequestSeq, RequestReport)>,
    name_of: HashMap<RequestSeq, (CompanyId, String)>,
}

const CACHED_REPORTS: usize = 10_000;

impl ReportCache {
    pub(super) fn generation(&self) -> u64 {
        self.inner.lock().expect("report cache poisoned").generation
    }

    pub(super) fn get(&self, company: CompanyId, crid: &str) -> Option<RequestReport> {
        let inner = self.inner.lock().expect("report cache poisoned");
        inner
            .by_name
            .get(&(company, crid.to_string()))
            .map(|(_, report)| report.clone())
    }

    pub(super) fn put(
        &self,
        seen_at: u64,
        company: CompanyId,
        crid: &str,
        seq: RequestSeq,
        report: &RequestReport,
    ) {
        let mut inner = self.inner.lock().expect("report cache poisoned");
        if inner.generation != seen_at {
            return;
        }
        if inner.by_name.len() >= CACHED_REPORTS {
            inner.by_name.clear();
            inner.name_of.clear();
        }
        let name = (company, crid.to_string());
        inner.name_of.insert(seq, name.clone());
        inner.by_name.insert(name, (seq, report.clone()));
    }

    pub(super) fn forget(&self, seq: RequestSeq) {
        let mut inner = self.inner.lock().expect("report cache poisoned");
        inner.generation += 1;
        if let Some(name) = inner.name_of.remove(&seq) {
            inner.by_name.remove(&name);
        }
    }

    /// Drops every entry (a change that may touch any request's listed errors).
    pub(super) fn forget_all(&self) {
        let mut inner = self.inner.lock().expect("report cache poisoned");
        inner.generation += 1;
        inner.by_name.clear();
        inner.name_of.clear();
    }
}
