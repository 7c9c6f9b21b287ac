//! The summary of a validated file, shared by the server's worker and `intake validate`.

use serde::{Deserialize, Serialize};

use crate::reader::LineOutcome;

/// One failed line, as listed by `/v2/crm/request-status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineError {
    pub line: u64,
    pub description: String,
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
        match &outcome.result {
            Ok(_) => self.success_count += 1,
            Err(description) => self.add_error(outcome.line, description.clone()),
        }
    }

    /// Counts one error (e.g. line 0 when the file could not be read at all).
    pub fn add_error(&mut self, line: u64, description: String) {
        self.error_count += 1;
        let e = LineError { line, description };
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
