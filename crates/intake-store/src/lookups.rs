//! The look-up keys of the associations (see [`intake_model::associate`]), shared by both
//! backends: which keys a batch writes, and what a reader of one snapshot asks.
//!
//! Decision: the keys are written inside each batch's transaction, beside the versions,
//! so an association asked after a request is DONE sees that request's records, and a
//! replayed batch (after a crash) writes the same keys again, which the primary key
//! absorbs. Keys are a superset index: a reader checks every record a key leads to
//! against the record's state at the time asked, so a later version that changes or
//! deletes a value needs no key removed, and out-of-order versions need no care.

use intake_model::associate::{lookup_keys, LookupKind};
use intake_model::{ObjectType, ValidRecord};

use crate::{RecordState, Result};

/// The rows of `lookup_keys` a batch of versions adds: (kind code, key, objectId).
pub(crate) fn batch_keys<'r>(
    object_type: ObjectType,
    records: impl IntoIterator<Item = &'r ValidRecord>,
) -> Vec<(i16, String, &'r str)> {
    if !intake_model::associate::has_lookup_keys(object_type) {
        return Vec::new();
    }
    let mut rows = Vec::new();
    for record in records {
        for (kind, key) in lookup_keys(object_type, &record.body) {
            rows.push((kind.code(), key, record.object_id.as_str()));
        }
    }
    rows
}

/// A record that a look-up key led to: one of its versions carried the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupHit {
    pub key: String,
    pub object_type: ObjectType,
    pub object_id: String,
}

/// A read-only view of one integration's records as they stood at one moment: every call
/// on it sees the same snapshot of the store (a read transaction), whatever is written
/// meanwhile. Dropping it ends the transaction.
#[async_trait::async_trait]
pub trait ReadSnapshot: Send {
    /// Every record one of whose versions carried one of `keys` of `kind`.
    async fn lookup(&mut self, kind: LookupKind, keys: &[String]) -> Result<Vec<LookupHit>>;
    /// For each (objectId, as_of) asked: the record's latest version whose modifiedDate is at
    /// most `as_of` (unix seconds), deleted or not; `None` when it has no such version.
    /// The answer is in the order asked.
    async fn states(
        &mut self,
        object_type: ObjectType,
        wanted: &[(String, i64)],
    ) -> Result<Vec<Option<RecordState>>>;
}

/// What `internalDomains` and `excludedDomains` hold for one integration (normalised).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DomainSettings {
    pub internal_domains: Vec<String>,
    pub excluded_domains: Vec<String>,
}

impl DomainSettings {
    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).expect("strings serialize")
    }

    pub(crate) fn decode(text: &str) -> Result<DomainSettings> {
        serde_json::from_str(text)
            .map_err(|err| crate::StoreError::Corrupt(format!("integration settings: {err}")))
    }
}

/// Every text an erasure must remove from stored error descriptions: the address asked for
/// and every email and phone number that the erased records' versions held.
pub fn quoted_values(asked: &str, bodies: &[(ObjectType, String)]) -> Vec<String> {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Person {
        #[serde(default)]
        email_address: Option<String>,
        #[serde(default)]
        phone_number: Option<String>,
    }
    let mut quoted = vec![asked.to_owned()];
    for (_, body) in bodies {
        let person: Person = serde_json::from_str(body).unwrap_or_default();
        quoted.extend(person.email_address);
        quoted.extend(person.phone_number);
    }
    quoted.retain(|q| q.trim().len() >= 3);
    quoted.sort();
    quoted.dedup();
    quoted
}

/// What replaces an error description that quoted an erased value.
pub const ERASED_DESCRIPTION: &str = "Error text erased by a data-privacy request";
