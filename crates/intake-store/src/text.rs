//! Text the store is given that may carry a client's bytes. PostgreSQL's `text` cannot
//! hold NUL (U+0000), so both backends keep the same rule, and a client sees the same
//! answer on either:
//!
//! - a value to be stored (an integration's name or owner email, a `clientRequestId`, a
//!   schema field's name, a company name, a credential id) with a NUL is refused with
//!   [`StoreError::InvalidText`] naming the field, which the server can answer with 400;
//! - a look-up by a key with a NUL finds nothing (no stored key has one), except object
//!   ids, which are refused like stored values;
//! - error descriptions are the store's own reports of a client's line: a NUL in one is
//!   written as the six characters `\u0000`, as JSON would escape it.

use std::borrow::Cow;

use crate::{Batch, Result, StoreError};

/// `Err(InvalidText(field))` when `value` cannot be stored as text.
pub(crate) fn storable(field: &'static str, value: &str) -> Result<()> {
    if value.contains('\0') {
        Err(StoreError::InvalidText(field))
    } else {
        Ok(())
    }
}

/// Whether `value` can be a stored key at all (a look-up by any other finds nothing).
pub(crate) fn can_be_stored(value: &str) -> bool {
    !value.contains('\0')
}

/// `description` with each NUL written as `\u0000`.
pub(crate) fn escape_nul(description: &str) -> Cow<'_, str> {
    if description.contains('\0') {
        Cow::Owned(description.replace('\0', "\\u0000"))
    } else {
        Cow::Borrowed(description)
    }
}

/// The batch with its error descriptions escaped (a copy only when one needs it).
pub(crate) fn escape_batch(batch: &Batch) -> Cow<'_, Batch> {
    if batch.errors.iter().all(|e| can_be_stored(&e.description)) {
        return Cow::Borrowed(batch);
    }
    let mut escaped = batch.clone();
    for error in &mut escaped.errors {
        error.description = escape_nul(&error.description).into_owned();
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_refused_or_escaped() {
        assert!(storable("name", "a\0b").is_err());
        assert!(storable("name", "ab").is_ok());
        assert_eq!(escape_nul("a\0b"), "a\\u0000b");
        assert!(matches!(escape_nul("ab"), Cow::Borrowed("ab")));
    }
}
