//! The summary of a validated file, shared by the server's worker and `intake validate`.

use serde::{Deserialize, Serialize};

use crate::reader::LineOutcome;

/// One failed line, as listed by `/v2/crm/request-status` (`line` and `description`) and by
/// Intake's errors list (with `objectId` and `field` when known).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineError {
    pub line: u64,
    /// The line's objectId, when it had a readable one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// The one field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub description: String,
}

impl LineError {
    /// The error of `line`, with the field its description names (see [`field_of`]).
    pub fn new(line: u64, description: String) -> LineError {
        LineError {
            line,
            object_id: None,
            field: field_of(&description).map(str::to_owned),
            description,
        }
    }

    pub fn with_object_id(mut self, object_id: Option<String>) -> LineError {
        self.object_id = object_id;
        self
    }
}

/// The one field an error of the validator is about: every such text names it first, in
/// brackets (`Field [x] must be ...`, `Mandatory field [x] is missing or empty`,
/// `Field [x] appears more than once in the line`); a duplicate objectId is a fault of
/// `objectId`. Texts about the whole line (JSON syntax, length, UTF-8) name none.
pub fn field_of(description: &str) -> Option<&str> {
    if description.starts_with("Duplicate objectId [") {
        return Some("objectId");
    }
    let rest = description
        .strip_prefix("Field [")
        .or_else(|| description.strip_prefix("Mandatory field ["))?;
    // The key is quoted as it is and may hold `]`: it ends where the rule's text starts,
    // at the first `]` that one of the rules' texts follows.
    const TAILS: [&str; 3] = [
        "] must be ",
        "] appears more than once",
        "] is missing or empty",
    ];
    rest.match_indices(']')
        .map(|(at, _)| at)
        .find(|&at| TAILS.iter().any(|tail| rest[at..].starts_with(tail)))
        .map(|end| &rest[..end])
}

/// Counts and errors of a file. Feed it outcomes in line order.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub success_count: u64,
    pub error_count: u64,
    /// The first [`Report::LISTED_ERRORS`] errors, in line order.
    pub first_errors: Vec<LineError>,
    /// Every error, when created with `keep_all`.
    pub all_errors: Option<Vec<LineError>>,
}

impl Report {
    /// How many errors `/v2/crm/request-status` lists.
    pub const LISTED_ERRORS: usize = 20;

    pub fn new(keep_all: bool) -> Report {
        Report {
            all_errors: keep_all.then(Vec::new),
            ..Report::default()
        }
    }

    /// Counts one line's outcome.
    pub fn add(&mut self, outcome: &LineOutcome) {
        match outcome.error() {
            None => self.success_count += 1,
            Some(e) => self.push_error(e),
        }
    }

    /// Counts one error (e.g. line 0 when the file could not be read at all).
    pub fn add_error(&mut self, line: u64, description: String) {
        self.push_error(LineError::new(line, description));
    }

    fn push_error(&mut self, e: LineError) {
        self.error_count += 1;
        if let Some(all) = &mut self.all_errors {
            all.push(e.clone());
        }
        if self.first_errors.len() < Self::LISTED_ERRORS {
            self.first_errors.push(e);
        }
    }

    /// True when no line failed.
    pub fn is_success(&self) -> bool {
        self.error_count == 0
    }
}
