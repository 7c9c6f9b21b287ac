//! The board projection as both backends read it back: rows of `board_facts` (one per
//! stored version of a DEAL, ACCOUNT or BUSINESS_USER, see [`intake_model::BoardFact`])
//! collected into one text, and reduced to each record's latest version.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use intake_model::{BoardFact, BoardFacts};

/// A piece of [`BoardRecords::text`]; `len == u32::MAX` for none.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    len: u32,
}

const NONE: Span = Span {
    start: 0,
    len: u32::MAX,
};

#[derive(Clone, Copy, Debug)]
struct Row {
    object_id: Span,
    facts: [Span; 7],
}

/// One record as the board reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardRecord<'a> {
    pub object_id: &'a str,
    pub facts: BoardFacts<'a>,
}

/// The records of one type that exist and are not deleted at some time, each with the
/// facts of its latest version by then, in no particular order. Their texts live in one
/// buffer: reading half a million of them makes no allocation per record.
#[derive(Debug, Default)]
pub struct BoardRecords {
    text: String,
    rows: Vec<Row>,
}

impl BoardRecords {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The `i`th record (`i < len()`).
    pub fn get(&self, i: usize) -> BoardRecord<'_> {
        let row = &self.rows[i];
        BoardRecord {
            object_id: self.span(row.object_id).unwrap_or_default(),
            facts: row.facts.map(|f| self.span(f)),
        }
    }

    /// The objectId of the `i`th record.
    pub fn object_id(&self, i: usize) -> &str {
        self.span(self.rows[i].object_id).unwrap_or_default()
    }

    /// One fact of the `i`th record.
    pub fn fact(&self, i: usize, fact: BoardFact) -> Option<&str> {
        self.span(self.rows[i].facts[fact as usize])
    }

    pub fn iter(&self) -> impl Iterator<Item = BoardRecord<'_>> + '_ {
        (0..self.rows.len()).map(|i| self.get(i))
    }

    fn span(&self, span: Span) -> Option<&str> {
        if span.len == u32::MAX {
            return None;
        }
        let start = span.start as usize;
        Some(&self.text[start..start + span.len as usize])
    }
}

/// Records given as they are (the later of two with the same objectId wins), as a store
/// would hand them back: for tests of what reads them.
impl<'a> FromIterator<BoardRecord<'a>> for BoardRecords {
    fn from_iter<I: IntoIterator<Item = BoardRecord<'a>>>(records: I) -> BoardRecords {
        let mut collector = Collector::default();
        for (seq, record) in records.into_iter().enumerate() {
            collector
                .push(record.object_id, 0, seq as i64, false, record.facts)
                .expect("test records fit in 4 GiB");
        }
        collector.finish()
    }
}

/// A row as read, before the latest version of each record is chosen.
struct Pending {
    row: Row,
    modified: i64,
    seq: i64,
    deleted: bool,
}

/// Collects the rows of `board_facts` a backend reads, in any order, and keeps each
/// record's latest version (greatest modifiedDate, then request sequence) unless it is a
/// delete.
#[derive(Default)]
pub(crate) struct Collector {
    text: String,
    rows: Vec<Pending>,
}

impl Collector {
    fn put(&mut self, value: Option<&str>) -> crate::Result<Span> {
        let Some(value) = value else {
            return Ok(NONE);
        };
        let corrupt = || crate::StoreError::Corrupt("the board projection passes 4 GiB".into());
        let start = u32::try_from(self.text.len()).map_err(|_| corrupt())?;
        let len = u32::try_from(value.len())
            .ok()
            .filter(|len| *len < u32::MAX && start.checked_add(*len).is_some())
            .ok_or_else(corrupt)?;
        self.text.push_str(value);
        Ok(Span { start, len })
    }

    pub(crate) fn push(
        &mut self,
        object_id: &str,
        modified: i64,
        seq: i64,
        deleted: bool,
        facts: BoardFacts<'_>,
    ) -> crate::Result<()> {
        let object_id = self.put(Some(object_id))?;
        let mut spans = [NONE; 7];
        for (span, fact) in spans.iter_mut().zip(facts) {
            *span = self.put(fact)?;
        }
        self.rows.push(Pending {
            row: Row {
                object_id,
                facts: spans,
            },
            modified,
            seq,
            deleted,
        });
        Ok(())
    }

    pub(crate) fn finish(self) -> BoardRecords {
        let Collector { text, rows } = self;
        let mut latest: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
        for (i, pending) in rows.iter().enumerate() {
            let span = pending.row.object_id;
            let id = &text[span.start as usize..(span.start + span.len) as usize];
            match latest.entry(id) {
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
                Entry::Occupied(mut slot) => {
                    let kept = &rows[*slot.get()];
                    if (pending.modified, pending.seq) > (kept.modified, kept.seq) {
                        slot.insert(i);
                    }
                }
            }
        }
        let kept: Vec<Row> = if latest.len() == rows.len() {
            drop(latest);
            rows.into_iter()
                .filter(|p| !p.deleted)
                .map(|p| p.row)
                .collect()
        } else {
            let mut winner = vec![false; rows.len()];
            for i in latest.into_values() {
                winner[i] = true;
            }
            rows.into_iter()
                .zip(winner)
                .filter(|(p, won)| *won && !p.deleted)
                .map(|(p, _)| p.row)
                .collect()
        };
        BoardRecords { text, rows: kept }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_version_of_each_record_is_kept_unless_deleted() {
        let mut c = Collector::default();
        let facts = |label: &'static str| -> BoardFacts<'static> {
            [Some(label), None, None, None, None, None, Some("1")]
        };
        c.push("b", 20, 1, false, facts("b-new")).unwrap();
        c.push("a", 10, 1, false, facts("a-old")).unwrap();
        c.push("b", 10, 5, false, facts("b-old")).unwrap();
        c.push("a", 10, 2, false, facts("a-new")).unwrap();
        c.push("gone", 5, 1, false, facts("gone")).unwrap();
        c.push("gone", 6, 1, true, [None; 7]).unwrap();
        c.push("back", 6, 1, true, [None; 7]).unwrap();
        c.push("back", 7, 1, false, facts("back")).unwrap();
        let records = c.finish();
        let mut got: Vec<_> = records
            .iter()
            .map(|r| (r.object_id, r.facts[0].unwrap()))
            .collect();
        got.sort();
        assert_eq!(got, [("a", "a-new"), ("b", "b-new"), ("back", "back")]);
        assert_eq!(records.get(0).facts[1], None);
        assert_eq!(records.get(0).facts[6], Some("1"));

        let mut unique = Collector::default();
        unique.push("x", 1, 1, false, facts("")).unwrap();
        unique.push("y", 1, 1, true, facts("y")).unwrap();
        let records = unique.finish();
        assert_eq!(records.len(), 1);
        assert_eq!(records.get(0).facts[0], Some(""));
    }
}
