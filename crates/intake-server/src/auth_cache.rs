//! Remembers recently verified credentials for a few seconds, so that a client polling
//! request-status does not cost a credential lookup per call. Entries are keyed by a hash
//! of the Authorization header, never by the secret itself.
//!
//! An entry lives a fixed time after its credential was verified (`time_to_live`, never
//! renewed by a hit), so a revoked key or token stops working at most that long after its
//! revocation, however often it is used.

use std::time::Duration;

use intake_store::auth::{hash_secret, Principal};
use moka::sync::Cache;

/// At most this many credentials are remembered.
const MAX_ENTRIES: u64 = 10_000;

pub struct AuthCache {
    /// `None` when the trust time is zero: every call is looked up.
    entries: Option<Cache<Vec<u8>, Principal>>,
}

impl AuthCache {
    /// `trust_for`: how long a verified credential is trusted without asking the database
    /// again; zero turns the cache off.
    pub fn new(trust_for: Duration) -> AuthCache {
        AuthCache {
            entries: (!trust_for.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(MAX_ENTRIES)
                    .time_to_live(trust_for)
                    .build()
            }),
        }
    }

    pub fn key(authorization: &str) -> Vec<u8> {
        hash_secret(authorization)
    }

    pub fn get(&self, key: &[u8]) -> Option<Principal> {
        self.entries.as_ref()?.get(key)
    }

    /// Remembers a credential just verified.
    pub fn put(&self, key: Vec<u8>, principal: Principal) {
        if let Some(entries) = &self.entries {
            entries.insert(key, principal);
        }
    }
}
