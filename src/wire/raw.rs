//! The one place BSON is written byte by byte: replies built without a `Document` (the
//! ping fast lane, `$clusterTime` on every reply, connPoolStats) and the direct writer
//! behind every encoded reply. Everything else encodes through the `bson` crate.

use super::MAX_BSON_SIZE;
use bson::{Bson, Document};

/// Starts a top-level document (or a message body) in `out`; returns where its length
/// goes, for [`finish_document`].
pub fn start_document(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    start
}

/// Writes an int32 element.
pub fn write_int32(key: &[u8], n: i32, out: &mut Vec<u8>) {
    debug_assert!(!key.contains(&0), "BSON keys hold no NUL");
    out.push(bson::spec::ElementType::Int32 as u8);
    write_cstring_bytes(key, out);
    out.extend_from_slice(&n.to_le_bytes());
}

/// Writes an int64 element.
pub fn write_int64(key: &[u8], n: i64, out: &mut Vec<u8>) {
    debug_assert!(!key.contains(&0), "BSON keys hold no NUL");
    out.push(bson::spec::ElementType::Int64 as u8);
    write_cstring_bytes(key, out);
    out.extend_from_slice(&n.to_le_bytes());
}

/// Writes a generic (subtype 0) binary element from borrowed bytes (no `Binary` copy).
pub fn write_generic_binary(key: &[u8], bytes: &[u8], out: &mut Vec<u8>) {
    debug_assert!(!key.contains(&0), "BSON keys hold no NUL");
    out.push(bson::spec::ElementType::Binary as u8);
    write_cstring_bytes(key, out);
    out.extend_from_slice(&(bytes.len() as i32).to_le_bytes());
    out.push(bson::spec::BinarySubtype::Generic.into());
    out.extend_from_slice(bytes);
}

/// Starts a subdocument element named `key`; returns where its length goes, for
/// [`finish_document`]. As [`open_document`], for a key that is a `str`.
pub fn open_subdocument(key: &str, out: &mut Vec<u8>) -> usize {
    debug_assert!(!key.contains('\0'), "BSON keys hold no NUL: {key:?}");
    open_document(key.as_bytes(), out)
}

/// Writes an embedded-document element holding `doc`, encoded by the `bson` crate.
pub fn write_document_element(key: &[u8], doc: &Document, out: &mut Vec<u8>) {
    debug_assert!(!key.contains(&0), "BSON keys hold no NUL");
    out.push(bson::spec::ElementType::EmbeddedDocument as u8);
    write_cstring_bytes(key, out);
    doc.to_writer(out)
        .expect("writing BSON to a Vec cannot fail");
}

fn write_cstring_bytes(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(s);
    out.push(0);
}

pub fn write_document(doc: &Document, out: &mut Vec<u8>) {
    // bson's `to_writer` serializes through serde into a Vec of its own and copies that;
    // writing straight into `out` is several times cheaper for a reply. Anything the
    // direct writer does not handle goes through bson, from the document's start.
    let start = out.len();
    if write_direct(doc, out).is_none() {
        out.truncate(start);
        doc.to_writer(out)
            .expect("writing BSON to a Vec cannot fail");
    }
}

/// Writes `doc` as bson's serializer does, for the common element types; None (with
/// `out` partly written) for anything else, or a key bson would refuse.
fn write_direct(doc: &Document, out: &mut Vec<u8>) -> Option<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    for (key, value) in doc {
        write_element(key.as_bytes(), value, out)?;
    }
    finish_document(start, out);
    Some(())
}

/// Starts a subdocument element named `key` in a document being written; returns where
/// its length goes, for [`finish_document`].
pub fn open_document(key: &[u8], out: &mut Vec<u8>) -> usize {
    out.push(bson::spec::ElementType::EmbeddedDocument as u8);
    out.extend_from_slice(key);
    out.push(0);
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    start
}

/// Ends the document whose length goes at `start`.
pub fn finish_document(start: usize, out: &mut Vec<u8>) {
    out.push(0);
    let len = (out.len() - start) as i32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Writes one element; None (with `out` partly written) for a key holding a NUL or a
/// value type the direct writer leaves to bson.
pub fn write_element(key: &[u8], value: &Bson, out: &mut Vec<u8>) -> Option<()> {
    use bson::spec::{BinarySubtype, ElementType};
    if key.contains(&0) {
        return None;
    }
    let type_at = out.len();
    out.push(0);
    out.extend_from_slice(key);
    out.push(0);
    let element_type = match value {
        Bson::Double(d) => {
            out.extend_from_slice(&d.to_le_bytes());
            ElementType::Double
        }
        Bson::String(s) => {
            out.extend_from_slice(&(s.len() as i32 + 1).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
            ElementType::String
        }
        Bson::Document(d) => {
            write_direct(d, out)?;
            ElementType::EmbeddedDocument
        }
        Bson::Array(items) => {
            let start = out.len();
            out.extend_from_slice(&[0; 4]);
            let mut index = itoa_buf();
            for (i, item) in items.iter().enumerate() {
                write_element(decimal(i, &mut index), item, out)?;
            }
            finish_document(start, out);
            ElementType::Array
        }
        Bson::Binary(b)
            if b.subtype != BinarySubtype::BinaryOld && b.bytes.len() <= MAX_BSON_SIZE =>
        {
            out.extend_from_slice(&(b.bytes.len() as i32).to_le_bytes());
            out.push(b.subtype.into());
            out.extend_from_slice(&b.bytes);
            ElementType::Binary
        }
        Bson::ObjectId(o) => {
            out.extend_from_slice(&o.bytes());
            ElementType::ObjectId
        }
        Bson::Boolean(b) => {
            out.push(*b as u8);
            ElementType::Boolean
        }
        Bson::DateTime(d) => {
            out.extend_from_slice(&d.timestamp_millis().to_le_bytes());
            ElementType::DateTime
        }
        Bson::Null => ElementType::Null,
        Bson::Int32(n) => {
            out.extend_from_slice(&n.to_le_bytes());
            ElementType::Int32
        }
        Bson::Int64(n) => {
            out.extend_from_slice(&n.to_le_bytes());
            ElementType::Int64
        }
        Bson::Timestamp(t) => {
            out.extend_from_slice(&t.increment.to_le_bytes());
            out.extend_from_slice(&t.time.to_le_bytes());
            ElementType::Timestamp
        }
        _ => return None,
    };
    out[type_at] = element_type as u8;
    Some(())
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// `n` in decimal, written into the end of `buf` (an array index as a key).
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

pub fn write_cstring(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}
