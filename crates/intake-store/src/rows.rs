//! What both backends read back, decoded once. The row types derive `sqlx::FromRow`
//! generically, so one definition serves SQLite and PostgreSQL rows; the conversions to the
//! public types are where a stored value this version does not know becomes
//! [`StoreError::Corrupt`] (never a "not found", never a guess).

use intake_model::{FieldDef, LineError, ObjectType};

use crate::{
    ClaimedWork, CompanyId, IntegrationId, RequestReport, RequestSeq, RequestStatus, Result,
    StoreError, StoredCredential, TokenInfo, WorkKind,
};

/// A token's scopes as stored: space-separated.
pub(crate) fn encode_scopes(scopes: &[String]) -> String {
    scopes.join(" ")
}

pub(crate) fn decode_scopes(stored: &str) -> Vec<String> {
    stored.split_whitespace().map(String::from).collect()
}

pub(crate) fn object_type_of(code: i16) -> Result<ObjectType> {
    ObjectType::from_code(code)
        .ok_or_else(|| StoreError::Corrupt(format!("object type code {code}")))
}

pub(crate) fn status_of(stored: &str) -> Result<RequestStatus> {
    RequestStatus::parse(stored)
        .ok_or_else(|| StoreError::Corrupt(format!("request status {stored:?}")))
}

/// A stored count or line number, which is never negative.
pub(crate) fn count_of(stored: i64) -> Result<u64> {
    u64::try_from(stored).map_err(|_| StoreError::Corrupt(format!("negative count {stored}")))
}

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    token_id: String,
    company: String,
    scopes: String,
    created_at: i64,
    revoked: bool,
}

impl From<TokenRow> for TokenInfo {
    fn from(row: TokenRow) -> TokenInfo {
        TokenInfo {
            token_id: row.token_id,
            company: row.company,
            scopes: decode_scopes(&row.scopes),
            created_at: row.created_at,
            revoked: row.revoked,
        }
    }
}

/// An access key's row (no `scopes` column: every operation) or a token's.
#[derive(sqlx::FromRow)]
pub(crate) struct CredentialRow {
    company_id: CompanyId,
    secret_hash: Vec<u8>,
    #[sqlx(default)]
    scopes: Option<String>,
    revoked: bool,
}

impl From<CredentialRow> for StoredCredential {
    fn from(row: CredentialRow) -> StoredCredential {
        StoredCredential {
            company_id: row.company_id,
            secret_hash: row.secret_hash,
            scopes: row.scopes.as_deref().map(decode_scopes),
            revoked: row.revoked,
        }
    }
}

/// The columns of `requests` that [`claimed`] reads, in the order it reads them.
pub(crate) const CLAIMED_COLUMNS: &str = "seq, company_id, integration_id, client_request_id, \
     kind, object_type, spool_file, accepted_at, checkpoint_line, success_count, error_count, listed_errors, \
     sidecar, errors_bytes, failed_bytes";

/// The last column [`claimed`] reads, of the row as it was before the claim: whether another
/// worker still held its (expired) lease.
pub(crate) const TAKEN_OVER: &str =
    "status = 'IN_PROGRESS' AND lease_owner IS NOT NULL AS taken_over";

#[derive(sqlx::FromRow)]
pub(crate) struct ClaimedRow {
    seq: RequestSeq,
    company_id: CompanyId,
    integration_id: IntegrationId,
    client_request_id: String,
    kind: String,
    object_type: Option<i16>,
    spool_file: Option<String>,
    accepted_at: i64,
    checkpoint_line: i64,
    success_count: i64,
    error_count: i64,
    listed_errors: i64,
    sidecar: Option<String>,
    errors_bytes: i64,
    failed_bytes: i64,
    taken_over: bool,
}

impl TryFrom<ClaimedRow> for ClaimedWork {
    type Error = StoreError;

    fn try_from(row: ClaimedRow) -> Result<ClaimedWork> {
        let kind = match (row.kind.as_str(), row.object_type, row.spool_file) {
            ("UPLOAD", Some(code), Some(spool_file)) => WorkKind::Upload {
                object_type: object_type_of(code)?,
                spool_file,
            },
            ("DELETE_INTEGRATION", _, _) => WorkKind::DeleteIntegration,
            (kind, _, _) => {
                return Err(StoreError::Corrupt(format!(
                    "request {} of kind {kind:?}",
                    row.seq
                )))
            }
        };
        Ok(ClaimedWork {
            seq: row.seq,
            company_id: row.company_id,
            integration_id: row.integration_id,
            client_request_id: row.client_request_id,
            kind,
            accepted_at: row.accepted_at,
            checkpoint_line: count_of(row.checkpoint_line)?,
            success_count: count_of(row.success_count)?,
            error_count: count_of(row.error_count)?,
            listed_errors: count_of(row.listed_errors)?,
            taken_over: row.taken_over,
            sidecar: crate::webhooks::mark(row.sidecar, row.errors_bytes, row.failed_bytes)?,
        })
    }
}

/// One claimed request, decoded; `None` stays `None`.
pub(crate) fn claimed(row: Option<ClaimedRow>) -> Result<Option<ClaimedWork>> {
    row.map(ClaimedWork::try_from).transpose()
}

#[derive(sqlx::FromRow)]
pub(crate) struct SchemaRow {
    object_type: i16,
    definition: String,
}

impl TryFrom<SchemaRow> for (ObjectType, FieldDef) {
    type Error = StoreError;

    fn try_from(row: SchemaRow) -> Result<(ObjectType, FieldDef)> {
        let field = serde_json::from_str(&row.definition)
            .map_err(|e| StoreError::Corrupt(format!("unreadable field definition: {e}")))?;
        Ok((object_type_of(row.object_type)?, field))
    }
}

pub(crate) fn schema(rows: Vec<SchemaRow>) -> Result<Vec<(ObjectType, FieldDef)>> {
    rows.into_iter().map(TryFrom::try_from).collect()
}

/// What request-status shows of a request, without its listed errors.
#[derive(sqlx::FromRow)]
pub(crate) struct ReportHead {
    integration_id: IntegrationId,
    status: String,
    success_count: i64,
    error_count: i64,
}

impl ReportHead {
    /// The report, with `errors` as (line, description) in line order.
    pub(crate) fn with_errors(
        self,
        errors: impl IntoIterator<Item = (i64, String)>,
    ) -> Result<RequestReport> {
        let errors = errors
            .into_iter()
            .map(|(line, description)| {
                Ok(LineError {
                    line: count_of(line)?,
                    description,
                    ..LineError::default()
                })
            })
            .collect::<Result<_>>()?;
        Ok(RequestReport {
            integration_id: self.integration_id,
            status: status_of(&self.status)?,
            errors,
            success_count: count_of(self.success_count)?,
            error_count: count_of(self.error_count)?,
        })
    }
}

/// Reduces (objectId, deleted, body) rows in key order (objectId, modified, seq) to each
/// record's last version, handing those not deleted to `each`.
pub(crate) struct LastVersions<'a, 'b> {
    last: Option<(String, bool, String)>,
    each: &'a mut crate::EachRecord<'b>,
}

impl<'a, 'b> LastVersions<'a, 'b> {
    pub(crate) fn new(each: &'a mut crate::EachRecord<'b>) -> Self {
        LastVersions { last: None, each }
    }

    pub(crate) fn push(&mut self, row: (String, bool, String)) {
        if let Some((id, deleted, body)) = self.last.take() {
            if id != row.0 && !deleted {
                (self.each)(&id, &body);
            }
        }
        self.last = Some(row);
    }

    pub(crate) fn finish(mut self) {
        if let Some((id, false, body)) = self.last.take() {
            (self.each)(&id, &body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip() {
        let scopes = vec!["api:crm:upload".to_string(), "api:crm:schema".to_string()];
        assert_eq!(decode_scopes(&encode_scopes(&scopes)), scopes);
        assert_eq!(decode_scopes(&encode_scopes(&[])), Vec::<String>::new());
    }

    #[test]
    fn unknown_stored_values_are_corrupt() {
        assert!(matches!(status_of("LOST"), Err(StoreError::Corrupt(_))));
        assert!(matches!(object_type_of(999), Err(StoreError::Corrupt(_))));
        assert!(matches!(count_of(-1), Err(StoreError::Corrupt(_))));
        let row = ClaimedRow {
            seq: 1,
            company_id: 1,
            integration_id: 1,
            client_request_id: "r1".into(),
            kind: "UPLOAD".into(),
            object_type: None,
            spool_file: None,
            accepted_at: 0,
            checkpoint_line: 0,
            success_count: 0,
            error_count: 0,
            listed_errors: 0,
            sidecar: None,
            errors_bytes: 0,
            failed_bytes: 0,
            taken_over: false,
        };
        assert!(matches!(
            ClaimedWork::try_from(row),
            Err(StoreError::Corrupt(_))
        ));
    }
}
