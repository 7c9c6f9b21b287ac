//! The look-up keys of the associations (see [`intake_model::associate`]), shared by both
//! backends: which keys stored versions give, and what a reader of one snapshot asks.
//!
//! Decision: the keys are derived after the batches that store their versions, not in
//! their transactions. A B-tree of text keys filled in the batches cost more than the
//! versions themselves (an upload of contacts ran at 0.4 × its rate without keys,
//! BENCHMARKS.md). So a batch writes versions only; the keyer reads the versions not keyed
//! yet back and writes their keys in larger sorted runs, in transactions of its own: the
//! worker runs it after each request (before it takes the next), and every reader of one
//! snapshot runs it for its integration before the snapshot starts, so an association
//! asked after a request is DONE (or while it runs) sees every line stored so far. Keying
//! is idempotent (the primary key absorbs a replay) and its progress is exact on both
//! backends (SQLite: the versions' ids; PostgreSQL: a line per upload). Keys are a
//! superset index: a reader checks every record a key leads to
//! against the record's state at the time asked, so a later version that changes or
//! deletes a value needs no key removed, and out-of-order versions need no care.

use intake_model::associate::{lookup_keys, LookupKind};
use intake_model::ObjectType;

use crate::{IntegrationId, RecordState, Result};

/// A row of `lookup_keys`: (integration, kind code, the key's hash, object type code,
/// objectId).
pub(crate) type KeyRow<'r> = (IntegrationId, i16, i64, i16, &'r str);

/// What `lookup_keys` holds of a key: its 64-bit XXH3 hash (a specified hash, the same
/// on every machine and version). An index of hashes is about a third of one of texts and
/// compares integers; a hash shared by two keys is harmless, since every record a key
/// leads to is checked against its state (the index is a superset already), and the
/// store keeps no text of the people it looks up.
pub(crate) fn key_hash(key: &str) -> i64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as i64
}

/// The keys of one kind asked together, by hash: what a reader of `lookup_keys` maps the
/// stored hashes back to.
pub(crate) struct AskedKeys<'k> {
    by_hash: std::collections::HashMap<i64, Vec<&'k str>>,
}

impl<'k> AskedKeys<'k> {
    pub(crate) fn new(keys: &'k [String]) -> AskedKeys<'k> {
        let mut by_hash = std::collections::HashMap::<i64, Vec<&str>>::with_capacity(keys.len());
        for key in keys {
            by_hash.entry(key_hash(key)).or_default().push(key);
        }
        AskedKeys { by_hash }
    }

    /// The hashes to look up, each once.
    pub(crate) fn hashes(&self) -> Vec<i64> {
        self.by_hash.keys().copied().collect()
    }

    /// Adds the hit of a stored row under each asked key of its hash (two keys sharing one
    /// both get it, and the caller checks the record against each).
    pub(crate) fn push_hits(
        &self,
        hash: i64,
        object_type: ObjectType,
        object_id: String,
        hits: &mut Vec<LookupHit>,
    ) -> Result<()> {
        let keys = self
            .by_hash
            .get(&hash)
            .ok_or_else(|| crate::StoreError::Corrupt(format!("look-up key hash {hash}")))?;
        for key in keys {
            hits.push(LookupHit {
                key: (*key).to_owned(),
                object_type,
                object_id: object_id.clone(),
            });
        }
        Ok(())
    }
}

/// One run of the keyer: the rows of `lookup_keys` some stored versions give, their
/// objectIds in one buffer (a run holds some 100,000 keys: two allocations each, freed together,
/// cost more than the sort, and left the process larger after the run).
#[derive(Default)]
pub(crate) struct KeyRun {
    text: String,
    entries: Vec<KeyEntry>,
}

/// A row of a [`KeyRun`]: its objectId as a span of the run's buffer.
#[derive(Clone, Copy)]
pub(crate) struct KeyEntry {
    integration: IntegrationId,
    kind: i16,
    object_type: i16,
    key: i64,
    object_id: (u32, u32),
}

impl KeyRun {
    fn put(&mut self, text: &str) -> (u32, u32) {
        let start = self.text.len();
        self.text.push_str(text);
        // A run stays far below 4 GiB (its versions are read in bounded steps).
        (start as u32, text.len() as u32)
    }

    fn span(&self, (start, len): (u32, u32)) -> &str {
        &self.text[start as usize..(start + len) as usize]
    }

    /// Adds the rows one stored version gives; none for a type without keys.
    pub(crate) fn push_version(
        &mut self,
        integration: IntegrationId,
        code: i16,
        object_id: &str,
        body: &str,
    ) {
        let Some(object_type) = ObjectType::from_code(code) else {
            return;
        };
        if !intake_model::associate::has_lookup_keys(object_type) {
            return;
        }
        let mut id = None;
        for (kind, key) in lookup_keys(object_type, body) {
            let object_id = *id.get_or_insert_with(|| self.put(object_id));
            self.entries.push(KeyEntry {
                integration,
                kind: kind.code(),
                object_type: code,
                key: key_hash(&key),
                object_id,
            });
        }
    }

    /// The row of an entry.
    pub(crate) fn row(&self, entry: &KeyEntry) -> KeyRow<'_> {
        (
            entry.integration,
            entry.kind,
            entry.key,
            entry.object_type,
            self.span(entry.object_id),
        )
    }

    /// Puts the rows in key order, each once: so that each insert of a run walks the index
    /// forward, and a page is written once per run.
    pub(crate) fn sort(&mut self) {
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_unstable_by(|a, b| self.row(a).cmp(&self.row(b)));
        entries.dedup_by(|a, b| self.row(a) == self.row(b));
        self.entries = entries;
    }

    pub(crate) fn entries(&self) -> &[KeyEntry] {
        &self.entries
    }

    /// Every row, in the run's order.
    pub(crate) fn rows(&self) -> Vec<KeyRow<'_>> {
        self.entries.iter().map(|e| self.row(e)).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The type codes that have look-up keys, as a SQL list (`1, 2, ...`).
pub(crate) fn keyed_type_codes() -> String {
    ObjectType::ALL
        .iter()
        .filter(|t| intake_model::associate::has_lookup_keys(**t))
        .map(|t| t.code().to_string())
        .collect::<Vec<_>>()
        .join(", ")
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
