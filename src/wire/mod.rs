//! MongoDB's wire protocol: message framing, OP_MSG, OP_QUERY, OP_REPLY and OP_COMPRESSED.
//!
//! Pure data in, data out: nothing here touches a socket or a runtime. The
//! [`codec::WireCodec`] wraps these parsers as a tokio-util `Decoder`/`Encoder`.

pub mod codec;
pub mod compression;
pub mod depth;
pub mod op_msg;
pub mod op_query;
pub mod op_reply;
pub mod raw;

pub(crate) use raw::{write_cstring, write_document};

pub use codec::{CodecError, Incoming, WireCodec};
pub use compression::{CompressedSizes, Compressor};
pub use op_msg::{OpMsg, Section};
pub use op_query::OpQuery;
pub use op_reply::OpReply;

use bson::{Bson, Document};
use std::borrow::Cow;

pub const HEADER_LEN: usize = 16;
/// OP_COMPRESSED's fields before the compressed bytes: originalOpcode, uncompressedSize, compressorId.
pub const COMPRESSED_PREAMBLE_LEN: usize = 9;
/// The largest message a server accepts (`maxMessageSizeBytes`).
pub const MAX_MESSAGE_SIZE: usize = 48_000_000;
/// The largest BSON document a server accepts (`maxBsonObjectSize`).
pub const MAX_BSON_SIZE: usize = 16 * 1024 * 1024;

pub const OP_REPLY: i32 = 1;
pub const OP_QUERY: i32 = 2004;
pub const OP_COMPRESSED: i32 = 2012;
pub const OP_MSG: i32 = 2013;

/// The four int32 that start every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub message_length: i32,
    pub request_id: i32,
    pub response_to: i32,
    pub op_code: i32,
}

impl Header {
    /// Reads a header from the first 16 bytes of `bytes` (the caller checks the length).
    pub fn read(bytes: &[u8]) -> Header {
        Header {
            message_length: le_i32(bytes, 0),
            request_id: le_i32(bytes, 4),
            response_to: le_i32(bytes, 8),
            op_code: le_i32(bytes, 12),
        }
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.message_length.to_le_bytes());
        out.extend_from_slice(&self.request_id.to_le_bytes());
        out.extend_from_slice(&self.response_to.to_le_bytes());
        out.extend_from_slice(&self.op_code.to_le_bytes());
    }
}

/// The body of a message, by opcode.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Msg(OpMsg),
    Query(OpQuery),
    Reply(OpReply),
}

impl Body {
    pub fn op_code(&self) -> i32 {
        match self {
            Body::Msg(_) => OP_MSG,
            Body::Query(_) => OP_QUERY,
            Body::Reply(_) => OP_REPLY,
        }
    }
}

/// One whole message. `compressor` is set when it travelled (or is to travel) as OP_COMPRESSED.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub request_id: i32,
    pub response_to: i32,
    pub compressor: Option<Compressor>,
    pub body: Body,
}

/// Why bytes could not be read as a message. `error::from_parse_error` gives each its
/// MongoDB code; [`ParseError::disposition`] says what mongod does about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message length {0} is outside 16..48000000")]
    BadLength(i64),
    #[error("Operation isn't supported: {0}")]
    UnsupportedOpcode(i32),
    #[error("message is truncated: {0}")]
    Truncated(&'static str),
    #[error("Message contains illegal flags value: Ob{0:032b}")]
    IllegalFlags(u32),
    #[error("Invalid message size for an OpMsg containing a checksum")]
    NoRoomForChecksum,
    #[error("OP_MSG checksum does not match contents")]
    ChecksumMismatch,
    #[error("Multiple body sections in message")]
    MultipleBodies,
    #[error("OP_MSG messages must have a body")]
    NoBody,
    #[error("Unknown section kind {0}")]
    UnknownSectionKind(u8),
    #[error("Unsupported Security Token provided")]
    SecurityToken,
    #[error("Too many document sequences in OP_MSG")]
    TooManySequences,
    #[error("Duplicate document sequence: {0}")]
    DuplicateSequence(String),
    #[error("Duplicate field between body and document sequence {0}")]
    SequenceShadowsBody(String),
    #[error("invalid document sequence: {0}")]
    BadSequence(&'static str),
    #[error("invalid BSON: {0}")]
    InvalidBson(String),
    #[error("BSONObj size: {0} (0x{0:X}) is invalid. Size must be between 0 and 16793600(16MB)")]
    BsonTooLarge(i64),
    /// Nested deeper than `maxBSONDepth` ([`depth`]).
    #[error("{}", depth::TOO_DEEP_MESSAGE)]
    TooDeep,
    #[error("invalid OP_REPLY: {0}")]
    BadReply(String),
    #[error("Compression algorithm specified in message is not available: {0}")]
    UnknownCompressor(u8),
    #[error("compressed message is invalid: {0}")]
    Decompression(String),
}

/// What a server does with a request it could not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Answer with an error reply and keep serving the connection.
    ErrorReply,
    /// Hang up on the client.
    Close,
    /// Send nothing and keep serving the connection.
    Ignore,
}

impl ParseError {
    /// What mongod 7.0 does, from its source:
    /// - the transport layer ends the session on a length outside 16..48000000;
    /// - OP_COMPRESSED is decompressed before any parsing, and a failure there (unknown
    ///   compressor, size out of range or not matching, corrupt data) ends the session;
    /// - OP_MSG parse errors are answered, except the "ConnectionFatalMessageParseError"
    ///   category of error_codes.yml: IllegalOpMsgFlag, TooManyDocumentSequences and
    ///   ChecksumMismatch;
    /// - an opcode other than OP_MSG and OP_QUERY (OP_REPLY from a client, OP_COMPRESSED
    ///   inside OP_COMPRESSED, anything unknown) is logged as "Operation isn't supported"
    ///   and gets no response; the connection stays open.
    pub fn disposition(&self) -> Disposition {
        use ParseError::*;
        match self {
            BadLength(_) | IllegalFlags(_) | ChecksumMismatch | TooManySequences
            | UnknownCompressor(_) | Decompression(_) => Disposition::Close,
            UnsupportedOpcode(_) | BadReply(_) => Disposition::Ignore,
            Truncated(_)
            | NoRoomForChecksum
            | MultipleBodies
            | NoBody
            | UnknownSectionKind(_)
            | SecurityToken
            | DuplicateSequence(_)
            | SequenceShadowsBody(_)
            | BadSequence(_)
            | InvalidBson(_)
            | BsonTooLarge(_)
            | TooDeep => Disposition::ErrorReply,
        }
    }

    pub fn closes_connection(&self) -> bool {
        self.disposition() == Disposition::Close
    }
}

pub(crate) fn le_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// A cursor over a message body with bounds-checked reads.
pub(crate) struct Reader<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ParseError> {
        if self.remaining() < n {
            return Err(ParseError::Truncated(what));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, ParseError> {
        Ok(self.take(1, what)?[0])
    }

    pub fn i32(&mut self, what: &'static str) -> Result<i32, ParseError> {
        Ok(le_i32(self.take(4, what)?, 0))
    }

    pub fn i64(&mut self, what: &'static str) -> Result<i64, ParseError> {
        Ok(i64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }

    /// Reads a NUL-terminated string. Like mongod's default BSON validation, it does not
    /// insist on UTF-8: invalid sequences become U+FFFD.
    pub fn cstring(&mut self, what: &'static str) -> Result<String, ParseError> {
        let rest = &self.bytes[self.pos..];
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(ParseError::Truncated(what))?;
        let s = String::from_utf8_lossy(&rest[..nul]).into_owned();
        self.pos += nul + 1;
        Ok(s)
    }

    /// Reads one BSON document: its declared size must fit what is left (else InvalidBSON,
    /// as mongod's validateBSON says) and stay within 16 MiB (else BSONObjectTooLarge).
    /// mongod's default validation is structural only, so invalid UTF-8 is accepted
    /// (decoded as U+FFFD) rather than refused.
    pub fn document(&mut self) -> Result<Document, ParseError> {
        decode_document(self.document_bytes()?)
    }

    /// The bytes of the next document, with [`Reader::document`]'s checks, undecoded. Its
    /// nesting is checked against `maxBSONDepth` here, before anything recursive reads it.
    pub fn document_bytes(&mut self) -> Result<&'a [u8], ParseError> {
        if self.remaining() < 5 {
            return Err(ParseError::InvalidBson(format!(
                "a document needs at least 5 bytes, {} left",
                self.remaining()
            )));
        }
        let declared = le_i32(self.bytes, self.pos) as i64;
        if declared < 5 || declared > self.remaining() as i64 {
            return Err(ParseError::InvalidBson(format!(
                "document length {declared} does not fit the {} bytes left",
                self.remaining()
            )));
        }
        if declared > MAX_BSON_SIZE as i64 {
            return Err(ParseError::BsonTooLarge(declared));
        }
        let bytes = self.take(declared as usize, "document")?;
        if depth::check_raw(bytes, depth::max_bson_depth()) == depth::RawDepth::TooDeep {
            return Err(ParseError::TooDeep);
        }
        Ok(bytes)
    }
}

/// Decodes one BSON document. mongod's default validation is structural only, so a
/// document with invalid UTF-8 is decoded lossily (U+FFFD) rather than refused. The one
/// exception is a document holding JavaScript code with scope: bson 2.15's lossy decoder
/// panics on one whose code is not UTF-8 (it cuts the scope at the length of the repaired,
/// longer string; found by the fuzz target), so such a document is refused as InvalidBSON.
///
/// The strict path goes through `RawDocument`, which keeps every subdocument a document:
/// `Document::from_reader` goes through serde and turns `{$oid: ...}`, `{$date: ...}` and
/// the like into ObjectId, DateTime..., which mongod never does. The lossy path has that
/// flaw still (bson 2.15 has no other), so it is kept for documents that need it.
pub fn decode_document(raw: &[u8]) -> Result<Document, ParseError> {
    if let Some(doc) = bson::RawDocument::from_bytes(raw)
        .ok()
        .and_then(|raw| direct_document(raw).ok())
    {
        return Ok(doc);
    }
    let strict = match bson::RawDocument::from_bytes(raw).and_then(Document::try_from) {
        Ok(doc) => return Ok(doc),
        Err(e) => ParseError::InvalidBson(e.to_string()),
    };
    if may_hold_code_with_scope(raw) {
        return Err(strict);
    }
    // The suggested replacement, serde_helpers::Utf8LossyDeserialization, is the same
    // decoder behind a wrapper type.
    #[allow(deprecated)]
    Document::from_reader_utf8_lossy(raw).map_err(|_| strict)
}

/// A document read back from ferrod's own store or log. Reading must not overflow the
/// stack whatever an older build wrote: a top-level field nested deeper than
/// `maxBSONDepth` allows is left out, and its name returned for the caller to report.
pub fn decode_stored(raw: &[u8]) -> Result<(Document, Vec<String>), ParseError> {
    use bson::RawBsonRef as R;
    let limit = depth::max_bson_depth();
    if depth::check_raw(raw, limit) != depth::RawDepth::TooDeep {
        return decode_document(raw).map(|doc| (doc, Vec::new()));
    }
    let invalid = |e: bson::raw::Error| ParseError::InvalidBson(e.to_string());
    let mut kept = Document::new();
    let mut dropped = Vec::new();
    for element in bson::RawDocument::from_bytes(raw).map_err(invalid)? {
        let (key, value) = element.map_err(invalid)?;
        let inner = match value {
            R::Document(d) => Some(d.as_bytes()),
            R::Array(a) => Some(a.as_bytes()),
            R::JavaScriptCodeWithScope(c) => Some(c.scope.as_bytes()),
            _ => None,
        };
        if inner.is_some_and(|b| depth::check_raw(b, limit - 1) != depth::RawDepth::Within) {
            dropped.push(key.to_owned());
            continue;
        }
        kept.insert(key, direct_value(value).map_err(invalid)?);
    }
    Ok((kept, dropped))
}

/// The same Document as `Document::try_from(&RawDocument)`, built without it. bson's
/// conversion goes through `RawBson`, which copies every subdocument into a buffer of its
/// own before converting it, and that was most of the cost of decoding a driver's ping
/// (`lsid`, `$clusterTime`). Types a request rarely holds go through bson's conversion;
/// on any error the caller takes bson's path, so errors and lossy decoding are unchanged.
fn direct_document(raw: &bson::RawDocument) -> bson::raw::Result<Document> {
    let mut doc = Document::new();
    for element in raw {
        let (key, value) = element?;
        doc.insert(key, direct_value(value)?);
    }
    Ok(doc)
}

fn direct_value(value: bson::RawBsonRef<'_>) -> bson::raw::Result<Bson> {
    use bson::RawBsonRef as R;
    Ok(match value {
        R::Double(d) => Bson::Double(d),
        R::String(s) => Bson::String(s.to_owned()),
        R::Document(d) => Bson::Document(direct_document(d)?),
        R::Array(a) => Bson::Array(
            a.into_iter()
                .map(|v| direct_value(v?))
                .collect::<bson::raw::Result<_>>()?,
        ),
        R::Binary(b) => Bson::Binary(bson::Binary {
            subtype: b.subtype,
            bytes: b.bytes.to_vec(),
        }),
        R::ObjectId(o) => Bson::ObjectId(o),
        R::Boolean(b) => Bson::Boolean(b),
        R::DateTime(d) => Bson::DateTime(d),
        R::Null => Bson::Null,
        R::Int32(n) => Bson::Int32(n),
        R::Int64(n) => Bson::Int64(n),
        R::Timestamp(t) => Bson::Timestamp(t),
        other => Bson::try_from(other)?,
    })
}

/// Generic arguments a server leaves out of the request document it builds: no handler
/// reads them, and building their nested documents is a good part of decoding a driver's
/// request. The raw request keeps them for currentOp, logs and messages, and signed
/// cluster time gossip reads `$clusterTime` from it.
pub const ELIDED_ARGUMENTS: &[&str] = &["lsid", "$clusterTime"];

/// The request document without [`ELIDED_ARGUMENTS`] (not as the command name, its first
/// field), and whether it held one of them; None when it does not decode cleanly on the
/// direct path and is to be decoded as usual. A document without them comes back whole,
/// so it is decoded once.
pub(crate) fn decode_eliding(raw: &[u8]) -> Option<(Document, bool)> {
    let raw = bson::RawDocument::from_bytes(raw).ok()?;
    let mut doc = Document::new();
    let mut elided = false;
    for (i, element) in raw.into_iter().enumerate() {
        let (key, value) = element.ok()?;
        if i > 0 && ELIDED_ARGUMENTS.contains(&key) {
            // Left out, but still checked as decoding would check it.
            check_value(value)?;
            elided = true;
            continue;
        }
        doc.insert(key, direct_value(value).ok()?);
    }
    Some((doc, elided))
}

/// Some(()) when [`direct_value`] would convert `value`, without building anything for
/// the types it handles itself.
pub(crate) fn check_value(value: bson::RawBsonRef<'_>) -> Option<()> {
    use bson::RawBsonRef as R;
    match value {
        R::Document(d) => {
            for element in d {
                check_value(element.ok()?.1)?;
            }
        }
        R::Array(a) => {
            for item in a {
                check_value(item.ok()?)?;
            }
        }
        R::Double(_)
        | R::String(_)
        | R::Binary(_)
        | R::ObjectId(_)
        | R::Boolean(_)
        | R::DateTime(_)
        | R::Null
        | R::Int32(_)
        | R::Int64(_)
        | R::Timestamp(_) => {}
        other => {
            direct_value(other).ok()?;
        }
    }
    Some(())
}

/// Whether a JavaScript-code-with-scope element is anywhere in `raw`; true when the
/// structure cannot be walked (say, a key that is not UTF-8), to stay on the safe side.
fn may_hold_code_with_scope(raw: &[u8]) -> bool {
    use bson::raw::{RawBsonRef, RawDocument};
    use bson::spec::ElementType;
    let Ok(doc) = RawDocument::from_bytes(raw) else {
        return true;
    };
    doc.iter_elements().any(|element| {
        let Ok(element) = element else {
            return true;
        };
        match element.element_type() {
            ElementType::JavaScriptCodeWithScope => true,
            ElementType::EmbeddedDocument | ElementType::Array => match element.value() {
                Ok(RawBsonRef::Document(inner)) => may_hold_code_with_scope(inner.as_bytes()),
                Ok(RawBsonRef::Array(inner)) => may_hold_code_with_scope(inner.as_bytes()),
                _ => true,
            },
            _ => false,
        }
    })
}

/// `command` with the arguments the wire layer left out of it put back from `raw_body`,
/// in their places: the raw body decoded, then the document sequences `command` also
/// holds (they come after the body's fields, as when they were folded in).
pub fn full_command<'a>(command: &'a Document, raw_body: Option<&[u8]>) -> Cow<'a, Document> {
    let Some(Ok(mut full)) = raw_body.map(decode_document) else {
        return Cow::Borrowed(command);
    };
    for (key, value) in command {
        if !full.contains_key(key) {
            full.insert(key.clone(), value.clone());
        }
    }
    Cow::Owned(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, spec::BinarySubtype, Binary, Regex, Timestamp};

    fn sample() -> Document {
        doc! {
            "ping": 1, "f": 2.5, "nan": f64::NAN, "s": "été", "empty": "", "t": true, "n": Bson::Null,
            "i64": 1_i64 << 40, "ts": Timestamp { time: 1_700_000_000, increment: 7 },
            "date": bson::DateTime::from_millis(-5), "oid": bson::oid::ObjectId::from_bytes([3; 12]),
            "lsid": {"id": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] }},
            "arr": (0..12).map(Bson::Int32).collect::<Vec<_>>(),
            "nested": {"a": [[], {}, {"b": [1, "x"]}], "bin": Binary { subtype: BinarySubtype::Generic, bytes: vec![] }},
        }
    }

    #[test]
    fn direct_writer_writes_what_bson_writes() {
        let mut other = sample();
        other.insert(
            "old",
            Binary {
                subtype: BinarySubtype::BinaryOld,
                bytes: vec![1, 2],
            },
        );
        other.insert(
            "re",
            Regex {
                pattern: "a".into(),
                options: "i".into(),
            },
        );
        for doc in [sample(), other, Document::new()] {
            let mut ours = vec![9];
            write_document(&doc, &mut ours);
            let mut theirs = vec![9];
            doc.to_writer(&mut theirs).unwrap();
            assert_eq!(ours, theirs, "{doc}");
        }
    }

    #[test]
    fn direct_reader_builds_what_bson_builds() {
        let mut doc = sample();
        doc.insert(
            "re",
            Regex {
                pattern: "a".into(),
                options: "i".into(),
            },
        );
        doc.insert(
            "old",
            Binary {
                subtype: BinarySubtype::BinaryOld,
                bytes: vec![1, 2],
            },
        );
        doc.insert("code", Bson::JavaScriptCode("f()".into()));
        let mut bytes = Vec::new();
        doc.to_writer(&mut bytes).unwrap();
        let raw = bson::RawDocument::from_bytes(&bytes).unwrap();
        let ours = direct_document(raw).unwrap();
        let theirs = Document::try_from(raw).unwrap();
        // NaN != NaN: compare encodings.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        ours.to_writer(&mut a).unwrap();
        theirs.to_writer(&mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(decode_document(&bytes).unwrap().len(), doc.len());
    }
}
