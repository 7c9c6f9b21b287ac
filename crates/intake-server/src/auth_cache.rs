//! Remembers recently verified credentials for a few seconds, so that a client polling
//! request-status does not cost a credential lookup per call. Entries are keyed by a hash
//! of the Authorization header, never by the secret itself. A revoked key or token stops
//! working once its entry expires.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use intake_store::auth::{hash_secret, Principal};

const MAX_ENTRIES: usize = 10_000;

pub struct AuthCache {
    /// How long a verified credential is trusted without asking the database again;
    /// zero turns the cache off.
    trust_for: Duration,
    entries: Mutex<HashMap<Vec<u8>, (Principal, Instant)>>,
}

impl AuthCache {
    pub fn new(trust_for: Duration) -> AuthCache {
        AuthCache {
            trust_for,
            entries: Mutex::default(),
        }
    }

    pub fn key(authorization: &str) -> Vec<u8> {
        hash_secret(authorization)
    }

    pub fn get(&self, key: &[u8]) -> Option<Principal> {
        let entries = self.entries.lock().expect("auth cache poisoned");
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.trust_for)
            .map(|(principal, _)| principal.clone())
    }

    pub fn put(&self, key: Vec<u8>, principal: Principal) {
        if self.trust_for.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().expect("auth cache poisoned");
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, at)| at.elapsed() < self.trust_for);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (principal, Instant::now()));
    }
}
