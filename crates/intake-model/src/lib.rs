//! Intake's object model: the object types of Gong's generic CRM API, every field rule of
//! `docs/API.md` (at the repository root), custom-field schemas, and a streaming LDJSON validator with bounded memory.
//!
//! Pure Rust, no I/O besides the [`std::io::Read`] it is given, no async runtime.

pub mod associate;
mod board;
mod formats;
pub mod gen;
pub mod json;
mod reader;
mod record;
mod report;
mod schema;
mod types;
pub mod wire;

pub use board::{board_facts, fact_text, on_board, BoardFact, BoardFacts};
pub use formats::{
    escape_controls, format_timestamp, format_timestamp_ms, is_domain, is_email, is_http_url,
    is_object_id, parse_date, parse_datetime, parse_timestamp, MAX_OBJECT_ID_LEN,
};
pub use reader::{FileValidator, LineOutcome, MAX_LINE_BYTES};
pub use record::{validate_line, validate_record, ValidRecord};
pub use report::{field_of, LineError, Report};
pub use schema::{parse_schema_upload, plan_schema_replacement, FieldDef, Schema, SchemaPlan};
pub use types::{FieldType, ObjectType, UnknownObjectType};

/// The wire name of a `referenceTo` target (`USER` for BUSINESS_USER).
pub fn reference_wire_name(t: ObjectType) -> &'static str {
    types::reference_to::wire_name(t)
}
