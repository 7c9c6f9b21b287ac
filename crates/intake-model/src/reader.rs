//! Streaming validation of a whole LDJSON file with bounded memory.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufRead, BufReader, Read};

use crate::record::{validate_line, ValidRecord};
use crate::report::LineError;
use crate::schema::Schema;
use crate::types::ObjectType;

/// Longest accepted line, in bytes, without its line ending.
pub const MAX_LINE_BYTES: usize = 1_048_576;

/// The result of one non-blank line.
#[derive(Clone, Debug, PartialEq)]
pub struct LineOutcome {
    /// 1-based physical line number.
    pub line: u64,
    pub result: Result<ValidRecord, String>,
    /// For a failed line, its readable objectId (see [`crate::validate_line`]); `None` for
    /// a valid line (its record has it).
    pub object_id: Option<String>,
}

impl LineOutcome {
    /// The error of a failed line, with its objectId and the field at fault when known.
    pub fn error(&self) -> Option<LineError> {
        let description = self.result.as_ref().err()?;
        Some(LineError::new(self.line, description.clone()).with_object_id(self.object_id.clone()))
    }
}

/// Hasher for keys that already are uniformly distributed 64-bit hashes.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A per-validator random seed, so that no fixed set of ids collides in every file.
fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x1d5u64)
}

/// The SplitMix64 finalizer: a bijection on u64 with full avalanche.
fn fmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 64-bit hash of an objectId for the duplicate check. Each 8-byte block is absorbed by a
/// bijection of the state, so two ids of the same length that differ in a single block
/// never collide (the common case of sequential ids); other pairs collide with probability
/// about 2^-64.
fn id_hash(seed: u64, id: &[u8]) -> u64 {
    let mut h = fmix(seed ^ id.len() as u64);
    let mut chunks = id.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = fmix(h ^ u64::from_le_bytes(w)).rotate_left(17);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = fmix(h ^ u64::from_le_bytes(w));
    }
    fmix(h)
}

/// Validates an LDJSON byte stream line by line; yields one [`LineOutcome`] per non-blank line.
///
/// - Line numbers are 1-based and count every physical line (`\n`-terminated); a final
///   line without `\n` is read too. A `\r` before the `\n` is removed; a UTF-8 BOM at the
///   very start of the stream is removed.
/// - Blank lines (empty, or only ASCII whitespace) yield nothing.
/// - A line longer than [`MAX_LINE_BYTES`] is reported as `Line is longer than 1048576 bytes`
///   and skipped without being held in memory.
/// - Duplicate objectIds: only lines that passed validation count as "seen"; a later
///   valid line with an already seen objectId becomes the error `Duplicate objectId [X] in
///   file: ...` (and is not itself added again). Lines that failed another rule neither
///   count nor are checked. Why: an id is only "in the file" once a line has actually
///   established it; a broken line must not make a later, correct line for the same record
///   fail. The set keeps one randomly seeded 64-bit hash per valid line (9 to 18 bytes a
///   line, never the ids themselves); a false duplicate needs a 64-bit collision (about
///   3e-8 for a million-line file, and impossible between ids that differ in only one
///   8-byte block).
/// - Memory otherwise stays bounded by one line buffer (at most 1 MiB + 2 bytes) and the
///   reader's buffer.
/// - An I/O error of the source is yielded once as `Err` and ends the iteration.
pub struct FileValidator<R: Read> {
    reader: BufReader<R>,
    ty: ObjectType,
    schema: Schema,
    buf: Vec<u8>,
    line: u64,
    /// Bytes of the source read so far, and where the last line starts in it.
    consumed: u64,
    line_start: u64,
    done: bool,
    seen: HashSet<u64, BuildHasherDefault<PreHashed>>,
    id_seed: u64,
}

impl<R: Read> FileValidator<R> {
    pub fn new(source: R, ty: ObjectType, schema: Schema) -> Self {
        FileValidator {
            reader: BufReader::with_capacity(64 * 1024, source),
            ty,
            schema,
            buf: Vec::with_capacity(4096),
            line: 0,
            consumed: 0,
            line_start: 0,
            done: false,
            seen: HashSet::with_capacity_and_hasher(4096, BuildHasherDefault::default()),
            id_seed: random_seed(),
        }
    }

    /// The bytes of the line the last outcome is about, as sent, without its line end and
    /// without a leading BOM. Empty for a line longer than [`MAX_LINE_BYTES`] (it is never
    /// held in memory).
    pub fn last_line(&self) -> &[u8] {
        &self.buf
    }

    /// Where the bytes of [`Self::last_line`] start in the source.
    pub fn last_line_offset(&self) -> u64 {
        self.line_start
    }

    /// Number of physical lines read so far.
    pub fn lines_read(&self) -> u64 {
        self.line
    }

    /// Reads the next physical line into `self.buf` (without line ending). Returns
    /// Ok(None) at end of input, Ok(Some(too_long)) otherwise.
    fn read_line(&mut self) -> io::Result<Option<bool>> {
        self.buf.clear();
        // Room for MAX bytes, an optional '\r' and the '\n'.
        // The first line may also carry a 3-byte BOM.
        let bom = if self.line == 0 { 3 } else { 0 };
        let limit = (MAX_LINE_BYTES + 2 + bom) as u64;
        self.line_start = self.consumed;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)?;
        self.consumed += n as u64;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        let mut too_long = false;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        } else if n as u64 == limit {
            // No newline within the limit: discard the rest of the line as it streams by.
            too_long = true;
            self.buf.clear();
            loop {
                let chunk = match self.reader.fill_buf() {
                    Ok(c) => c,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                if chunk.is_empty() {
                    break;
                }
                match chunk.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        self.reader.consume(i + 1);
                        self.consumed += i as u64 + 1;
                        break;
                    }
                    None => {
                        let len = chunk.len();
                        self.reader.consume(len);
                        self.consumed += len as u64;
                    }
                }
            }
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if self.line == 1 && self.buf.starts_with(b"\xEF\xBB\xBF") {
            self.buf.drain(..3);
            self.line_start += 3;
        }
        if self.buf.len() > MAX_LINE_BYTES {
            too_long = true;
        }
        Ok(Some(too_long))
    }
}

impl<R: Read> Iterator for FileValidator<R> {
    type Item = io::Result<LineOutcome>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let too_long = match self.read_line() {
                Ok(Some(t)) => t,
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            let line = self.line;
            if too_long {
                self.buf.clear();
                return Some(Ok(LineOutcome {
                    line,
                    result: Err(format!("Line is longer than {MAX_LINE_BYTES} bytes")),
                    object_id: None,
                }));
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (result, object_id) = match validate_line(self.ty, &self.schema, &self.buf) {
                Ok(rec) => {
                    let h = id_hash(self.id_seed, rec.object_id.as_bytes());
                    if self.seen.insert(h) {
                        (Ok(rec), None)
                    } else {
                        (
                            Err(format!(
                                "Duplicate objectId [{}] in file: send multiple updates of a record in separate files",
                                rec.object_id
                            )),
                            Some(rec.object_id),
                        )
                    }
                }
                Err((description, object_id)) => (Err(description), object_id),
            };
            return Some(Ok(LineOutcome {
                line,
                result,
                object_id,
            }));
        }
    }
}

impl<R: Read> std::iter::FusedIterator for FileValidator<R> {}
