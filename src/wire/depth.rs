//! How deeply BSON nests, measured without recursion, and the limits mongod puts on it.
//!
//! Every recursive walk over a document (decoding, conversion, comparison, logging,
//! serialization) uses stack in proportion to the nesting, so a small message nested a
//! few thousand levels deep would overflow a worker's stack. mongod bounds the nesting of
//! everything it parses by its `maxBSONDepth` parameter (200 by default, 21..=250, set at
//! startup) and refuses to store documents whose fields nest deeper than that less 20
//! levels, kept for the wrappers it adds (oplog entries). ferrod checks the bytes of every
//! document it reads from the wire or from its store here, with an explicit stack, before
//! anything recursive sees them; every walk after that is bounded by the limit.

use bson::{Bson, Document};
use std::sync::atomic::{AtomicU32, Ordering};

/// mongod's default `maxBSONDepth`.
pub const DEFAULT_MAX_BSON_DEPTH: u32 = 200;
/// The nesting mongod keeps in reserve above the user-storage limit.
pub const EXTRA_SYSTEM_DEPTH: u32 = 20;
/// The range mongod accepts for `maxBSONDepth` (BSONDepth's floor and ceiling).
pub const MIN_MAX_BSON_DEPTH: u32 = EXTRA_SYSTEM_DEPTH + 1;
pub const MAX_MAX_BSON_DEPTH: u32 = 250;

/// Process-wide, as in mongod: the parameter is read at startup and fixed after it.
static MAX_BSON_DEPTH: AtomicU32 = AtomicU32::new(DEFAULT_MAX_BSON_DEPTH);

/// Sets `maxBSONDepth` (startup only; the caller has checked the range).
pub fn set_max_bson_depth(depth: u32) {
    MAX_BSON_DEPTH.store(
        depth.clamp(MIN_MAX_BSON_DEPTH, MAX_MAX_BSON_DEPTH),
        Ordering::Relaxed,
    );
}

/// How many levels of documents and arrays may nest inside a document ferrod parses.
pub fn max_bson_depth() -> u32 {
    MAX_BSON_DEPTH.load(Ordering::Relaxed)
}

/// How deep the fields of a stored document may be (a top-level field is at level 1).
pub fn max_depth_for_user_storage() -> u32 {
    max_bson_depth() - EXTRA_SYSTEM_DEPTH
}

/// mongod's message for a document nested past `maxBSONDepth` (code Overflow).
pub const TOO_DEEP_MESSAGE: &str = "BSONObj exceeds maximum nested object depth";

/// What [`check_raw`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawDepth {
    /// Nested no deeper than the limit.
    Within,
    /// Nested deeper than the limit.
    TooDeep,
    /// The structure is broken before the limit was passed: the decoder reports it, and
    /// cannot recurse deeper than this walk got, since it reads the same elements in the
    /// same order.
    Malformed,
}

/// Whether the documents and arrays inside `raw` (one BSON document) nest more than
/// `limit` levels below it. Only the structure is read (types, lengths, key ends), as
/// leniently as any decoder reads it, so no decoder can get deeper than this walk.
pub fn check_raw(raw: &[u8], limit: u32) -> RawDepth {
    match walk(raw, limit) {
        Ok(()) => RawDepth::Within,
        Err(Stop::TooDeep) => RawDepth::TooDeep,
        Err(Stop::Malformed) => RawDepth::Malformed,
    }
}

enum Stop {
    TooDeep,
    Malformed,
}

/// The end offsets of the documents being read, innermost last: on the stack for the few
/// levels a request has (every request is walked, so a heap stack cost an allocation
/// each), on the heap past that.
struct Ends {
    inline: [usize; Ends::INLINE],
    len: usize,
    deeper: Vec<usize>,
}

impl Ends {
    const INLINE: usize = 8;

    fn new() -> Ends {
        Ends {
            inline: [0; Ends::INLINE],
            len: 0,
            deeper: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, end: usize) {
        if self.len < Ends::INLINE {
            self.inline[self.len] = end;
        } else {
            self.deeper.push(end);
        }
        self.len += 1;
    }

    fn pop(&mut self) {
        if self.len > Ends::INLINE {
            self.deeper.pop();
        }
        self.len = self.len.saturating_sub(1);
    }

    fn last(&self) -> Option<&usize> {
        match self.len {
            0 => None,
            n if n <= Ends::INLINE => Some(&self.inline[n - 1]),
            _ => self.deeper.last(),
        }
    }
}

fn walk(raw: &[u8], limit: u32) -> Result<(), Stop> {
    let mut ends = Ends::new();
    let mut pos = 0;
    ends.push(document_end(raw, pos)?);
    pos += 4;
    while let Some(&end) = ends.last() {
        let element_type = *raw.get(pos).ok_or(Stop::Malformed)?;
        pos += 1;
        if element_type == 0 {
            if pos != end {
                return Err(Stop::Malformed);
            }
            ends.pop();
            continue;
        }
        // The key: a cstring within this document.
        let key_len = raw
            .get(pos..end)
            .and_then(|rest| rest.iter().position(|&b| b == 0))
            .ok_or(Stop::Malformed)?;
        pos += key_len + 1;
        let value_len = match element_type {
            0x03 | 0x04 => {
                if ends.len() as u32 > limit {
                    return Err(Stop::TooDeep);
                }
                let inner_end = document_end(raw, pos)?;
                if inner_end > end {
                    return Err(Stop::Malformed);
                }
                ends.push(inner_end);
                pos += 4;
                continue;
            }
            // Code with scope: int32 total, string, then the scope document.
            0x0F => {
                let total = length_at(raw, pos)?;
                let code_len = length_at(raw, pos + 4)?;
                let scope_at = pos + 8 + code_len;
                if ends.len() as u32 > limit {
                    return Err(Stop::TooDeep);
                }
                let scope_end = document_end(raw, scope_at)?;
                if scope_end != pos + total || scope_end > end {
                    return Err(Stop::Malformed);
                }
                ends.push(scope_end);
                pos = scope_at + 4;
                continue;
            }
            0x01 | 0x09 | 0x11 | 0x12 => 8,
            0x02 | 0x0D | 0x0E => 4 + length_at(raw, pos)?,
            0x05 => 5 + length_at(raw, pos)?,
            0x06 | 0x0A | 0x7F | 0xFF => 0,
            0x07 => 12,
            0x08 => 1,
            0x0B => {
                let pattern = cstring_len(raw, pos, end)?;
                pattern + cstring_len(raw, pos + pattern, end)?
            }
            0x0C => 4 + length_at(raw, pos)? + 12,
            0x10 => 4,
            0x13 => 16,
            _ => return Err(Stop::Malformed),
        };
        pos = pos.checked_add(value_len).ok_or(Stop::Malformed)?;
        if pos >= end {
            // The terminating NUL of this document must still follow.
            return Err(Stop::Malformed);
        }
    }
    Ok(())
}

/// The end offset of the document whose length is at `at`.
fn document_end(raw: &[u8], at: usize) -> Result<usize, Stop> {
    let len = length_at(raw, at)?;
    if len < 5 {
        return Err(Stop::Malformed);
    }
    let end = at.checked_add(len).ok_or(Stop::Malformed)?;
    if end > raw.len() {
        return Err(Stop::Malformed);
    }
    Ok(end)
}

/// A non-negative int32 length at `at`.
fn length_at(raw: &[u8], at: usize) -> Result<usize, Stop> {
    let bytes = raw.get(at..at + 4).ok_or(Stop::Malformed)?;
    let len = i32::from_le_bytes(bytes.try_into().expect("4 bytes"));
    usize::try_from(len).map_err(|_| Stop::Malformed)
}

/// The length of the cstring at `at`, its NUL included.
fn cstring_len(raw: &[u8], at: usize, end: usize) -> Result<usize, Stop> {
    raw.get(at..end)
        .and_then(|rest| rest.iter().position(|&b| b == 0))
        .map(|n| n + 1)
        .ok_or(Stop::Malformed)
}

/// The deepest level any field of `doc` sits at: 1 for a top-level field, 2 for a field
/// of a subdocument or an element of an array, and so on (0 for an empty document). This
/// is the level mongod's storage validation compares with its limit. Walked with an
/// explicit stack, so any document that exists in memory can be measured.
pub fn field_depth(doc: &Document) -> u32 {
    let mut deepest = 0;
    let mut pending: Vec<(&Bson, u32)> = doc.values().map(|v| (v, 1)).collect();
    while let Some((value, level)) = pending.pop() {
        deepest = deepest.max(level);
        match value {
            Bson::Document(d) => pending.extend(d.values().map(|v| (v, level + 1))),
            Bson::Array(a) => pending.extend(a.iter().map(|v| (v, level + 1))),
            Bson::JavaScriptCodeWithScope(c) => {
                pending.extend(c.scope.values().map(|v| (v, level + 1)))
            }
            _ => {}
        }
    }
    deepest
}

/// Drops `value` without recursion: bson's own `Drop` of a document recurses once per
/// level, so a value nested deeper than the stack allows must be taken apart here.
pub fn drop_flat(value: Bson) {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Bson::Document(d) => pending.extend(d.into_iter().map(|(_, v)| v)),
            Bson::Array(a) => pending.extend(a),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    /// `{a: {a: ... {a: 1}}}` with `levels` documents below the top one.
    pub(crate) fn nested(levels: usize) -> Document {
        let mut value = Bson::Int32(1);
        for _ in 0..levels {
            value = Bson::Document(doc! {"a": value});
        }
        doc! {"x": value}
    }

    fn bytes(doc: &Document) -> Vec<u8> {
        let mut out = Vec::new();
        doc.to_writer(&mut out).unwrap();
        out
    }

    #[test]
    fn counts_levels_below_the_top_document() {
        // {x: {a: 1}} holds one document below the top one.
        assert_eq!(check_raw(&bytes(&nested(0)), 0), RawDepth::Within);
        assert_eq!(check_raw(&bytes(&nested(1)), 0), RawDepth::TooDeep);
        assert_eq!(check_raw(&bytes(&nested(1)), 1), RawDepth::Within);
        assert_eq!(check_raw(&bytes(&nested(200)), 200), RawDepth::Within);
        assert_eq!(check_raw(&bytes(&nested(201)), 200), RawDepth::TooDeep);
        // Arrays count as levels too.
        let arrays = doc! {"x": [[[1]]]};
        assert_eq!(check_raw(&bytes(&arrays), 3), RawDepth::Within);
        assert_eq!(check_raw(&bytes(&arrays), 2), RawDepth::TooDeep);
    }

    #[test]
    fn every_element_type_is_stepped_over() {
        use bson::spec::BinarySubtype;
        let doc = doc! {
            "d": 1.5, "s": "str", "o": {"k": 1}, "a": [1, "two"],
            "b": bson::Binary { subtype: BinarySubtype::Generic, bytes: vec![1, 2, 3] },
            "u": Bson::Undefined, "id": bson::oid::ObjectId::new(), "t": true,
            "dt": bson::DateTime::from_millis(5), "n": Bson::Null,
            "re": bson::Regex { pattern: "a.c".into(), options: "i".into() },
            "c": Bson::JavaScriptCode("f()".into()),
            "cws": bson::JavaScriptCodeWithScope { code: "g()".into(), scope: doc! {"z": {"y": 1}} },
            "i": 7_i32, "ts": bson::Timestamp { time: 1, increment: 2 }, "l": 8_i64,
            "dec": bson::Decimal128::from_bytes([0; 16]), "min": Bson::MinKey, "max": Bson::MaxKey,
            "sym": Bson::Symbol("s".into()),
        };
        let raw = bytes(&doc);
        assert_eq!(check_raw(&raw, 2), RawDepth::Within);
        // The scope's subdocument is two levels down.
        assert_eq!(check_raw(&raw, 1), RawDepth::TooDeep);
        for cut in 0..raw.len() {
            assert_ne!(check_raw(&raw[..cut], 2), RawDepth::Within, "cut at {cut}");
        }
    }

    #[test]
    fn broken_structure_is_reported_not_followed() {
        let mut raw = bytes(&doc! {"a": {"b": 1}});
        raw[4] = 0x42; // an unknown element type
        assert_eq!(check_raw(&raw, 10), RawDepth::Malformed);
        assert_eq!(check_raw(&[5, 0, 0, 0], 10), RawDepth::Malformed);
        assert_eq!(check_raw(&[], 10), RawDepth::Malformed);
    }

    #[test]
    fn a_hundred_thousand_levels_are_measured_without_recursion() {
        // Built as bytes: a Document this deep could not even be dropped recursively.
        let levels = 100_000;
        let mut raw = Vec::new();
        for _ in 0..levels {
            raw.extend_from_slice(&[0, 0, 0, 0, 0x03, b'a', 0]);
        }
        raw.extend_from_slice(&[5, 0, 0, 0, 0]);
        let mut end = raw.len();
        for level in (0..levels).rev() {
            raw.push(0);
            end += 1;
            let start = level * 7;
            let len = (end - start) as i32;
            raw[start..start + 4].copy_from_slice(&len.to_le_bytes());
        }
        assert_eq!(check_raw(&raw, 200), RawDepth::TooDeep);
        assert_eq!(check_raw(&raw, u32::MAX), RawDepth::Within);
    }

    #[test]
    fn field_depth_is_mongods_storage_level() {
        assert_eq!(field_depth(&doc! {}), 0);
        assert_eq!(field_depth(&doc! {"a": 1}), 1);
        assert_eq!(field_depth(&doc! {"a": {"b": 1}}), 2);
        assert_eq!(field_depth(&doc! {"a": [1]}), 2);
        assert_eq!(field_depth(&doc! {"a": {}}), 1);
        assert_eq!(field_depth(&nested(179)), 180);
        let deep = Bson::Document(nested(100_000));
        drop_flat(deep);
    }
}
