//! What both backends share of the requests list: the columns it reads and the text of a
//! cancelled request's error.

/// The error on line 0 of a cancelled request, as Gong's request-status shows it.
pub const CANCELLED_TEXT: &str = "Request cancelled";

/// The columns of [`crate::RequestInfo`].
pub(crate) const INFO_COLUMNS: &str = "seq, client_request_id, integration_id, kind, object_type, \
     status, success_count, error_count, file_bytes, accepted_at, started_at_ms, finished_at_ms";
