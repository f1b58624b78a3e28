//! OP_MSG: flag bits, a body section (kind 0), document sequences (kind 1), optional CRC-32C.

use super::{
    decode_document, decode_eliding, write_cstring, write_document, ParseError, Reader,
    ELIDED_ARGUMENTS, HEADER_LEN,
};
use bson::{Bson, Document, RawDocumentBuf};

pub const CHECKSUM_PRESENT: u32 = 1 << 0;
pub const MORE_TO_COME: u32 = 1 << 1;
pub const EXHAUST_ALLOWED: u32 = 1 << 16;
/// The low 16 bits are "required": a receiver must refuse a set bit it does not know.
const REQUIRED_MASK: u32 = 0xffff;
const KNOWN_FLAGS: u32 = CHECKSUM_PRESENT | MORE_TO_COME;
/// mongod accepts at most two document sequences in one message.
const MAX_SEQUENCES: usize = 2;
/// mongod's section kind for a multitenancy security token; refused when, as here,
/// multitenancy is off.
const SECURITY_TOKEN_KIND: u8 = 2;

#[derive(Debug, Clone, PartialEq)]
pub enum Section {
    Body(Document),
    /// A body already encoded: replies whose handler wrote BSON bytes directly (large
    /// ones, where building a `Document` would cost more than the command itself).
    /// Never produced by parsing.
    EncodedBody(RawDocumentBuf),
    Sequence {
        identifier: String,
        documents: Vec<Document>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpMsg {
    pub flags: u32,
    /// Sections in wire order, so that decode-then-encode gives back the same bytes.
    pub sections: Vec<Section>,
}

impl OpMsg {
    /// A message with just a body, as every reply is.
    pub fn from_body(body: Document) -> Self {
        OpMsg {
            flags: 0,
            sections: vec![Section::Body(body)],
        }
    }

    /// A message whose body is already encoded.
    pub fn from_encoded_body(body: RawDocumentBuf) -> Self {
        OpMsg {
            flags: 0,
            sections: vec![Section::EncodedBody(body)],
        }
    }

    pub fn checksum_present(&self) -> bool {
        self.flags & CHECKSUM_PRESENT != 0
    }

    pub fn more_to_come(&self) -> bool {
        self.flags & MORE_TO_COME != 0
    }

    pub fn exhaust_allowed(&self) -> bool {
        self.flags & EXHAUST_ALLOWED != 0
    }

    pub fn body(&self) -> Option<&Document> {
        self.sections.iter().find_map(|s| match s {
            Section::Body(doc) => Some(doc),
            Section::EncodedBody(_) | Section::Sequence { .. } => None,
        })
    }

    /// The command as handlers see it: the body, with each document sequence folded in
    /// as an array under its identifier.
    pub fn into_command(self) -> Document {
        // Not a placeholder Document::new(): each one draws an ahash seed from a counter
        // all threads share.
        let mut body = None;
        let mut sequences = Vec::new();
        for section in self.sections {
            match section {
                Section::Body(doc) => body = Some(doc),
                Section::EncodedBody(raw) => body = raw.to_document().ok(),
                Section::Sequence {
                    identifier,
                    documents,
                } => sequences.push((identifier, documents)),
            }
        }
        let mut body = body.unwrap_or_default();
        for (identifier, documents) in sequences {
            body.insert(
                identifier,
                Bson::Array(documents.into_iter().map(Bson::Document).collect()),
            );
        }
        body
    }

    /// Parses the bytes after the header. `header` is the 16 header bytes the checksum covers.
    ///
    /// The checks run in mongod's order (op_msg.cpp): flags, room for the checksum, the
    /// sections, the body's presence, sequences shadowing body fields, and the checksum
    /// last, so a message with both a bad section and a bad checksum gets the section's error.
    pub fn parse(header: &[u8], bytes: &[u8]) -> Result<OpMsg, ParseError> {
        Self::parse_request(header, bytes, false).map(|(msg, _)| msg)
    }

    /// [`OpMsg::parse`]; with `elide`, the body may leave out the generic arguments in
    /// [`super::ELIDED_ARGUMENTS`], and then its raw bytes come back too.
    pub(crate) fn parse_request(
        header: &[u8],
        bytes: &[u8],
        elide: bool,
    ) -> Result<(OpMsg, Option<Vec<u8>>), ParseError> {
        let mut reader = Reader::new(bytes);
        let flags = reader.i32("OP_MSG flags")? as u32;
        if flags & REQUIRED_MASK & !KNOWN_FLAGS != 0 {
            return Err(ParseError::IllegalFlags(flags));
        }
        let checksum_present = flags & CHECKSUM_PRESENT != 0;
        // The flags and the checksum must leave room for at least one byte of sections.
        if checksum_present && bytes.len() <= 8 {
            return Err(ParseError::NoRoomForChecksum);
        }
        let sections_end = bytes.len() - if checksum_present { 4 } else { 0 };
        let mut reader = Reader::new(&bytes[..sections_end]);
        reader.pos = 4;

        let mut sections = Vec::new();
        let mut have_body = false;
        let mut elided_from: Option<&[u8]> = None;
        let mut sequence_names: Vec<String> = Vec::new();
        while !reader.at_end() {
            match reader.u8("section kind")? {
                0 => {
                    if have_body {
                        return Err(ParseError::MultipleBodies);
                    }
                    have_body = true;
                    let raw = reader.document_bytes()?;
                    let body = match elide.then(|| decode_eliding(raw)).flatten() {
                        Some((body, elided)) => {
                            elided_from = elided.then_some(raw);
                            body
                        }
                        None => decode_document(raw)?,
                    };
                    sections.push(Section::Body(body));
                }
                1 => {
                    if sequence_names.len() >= MAX_SEQUENCES {
                        return Err(ParseError::TooManySequences);
                    }
                    let size = reader.i32("document sequence size")?;
                    // The size counts its own four bytes.
                    let payload = usize::try_from(size)
                        .ok()
                        .and_then(|s| s.checked_sub(4))
                        .filter(|&p| p <= reader.remaining())
                        .ok_or(ParseError::BadSequence("size does not fit the message"))?;
                    let mut seq = Reader::new(reader.take(payload, "sequence")?);
                    let identifier = seq.cstring("document sequence identifier")?;
                    if sequence_names.contains(&identifier) {
                        return Err(ParseError::DuplicateSequence(identifier));
                    }
                    let mut documents = Vec::new();
                    while !seq.at_end() {
                        documents.push(seq.document()?);
                    }
                    sequence_names.push(identifier.clone());
                    sections.push(Section::Sequence {
                        identifier,
                        documents,
                    });
                }
                SECURITY_TOKEN_KIND => return Err(ParseError::SecurityToken),
                kind => return Err(ParseError::UnknownSectionKind(kind)),
            }
        }
        if !have_body {
            return Err(ParseError::NoBody);
        }
        // A sequence named after a left-out argument must meet it in the shadowing check.
        if let Some(raw) = elided_from {
            let shadows = |name: &String| {
                let first = name.split('.').next().unwrap_or_default();
                ELIDED_ARGUMENTS.contains(&first)
            };
            if sequence_names.iter().any(shadows) {
                let full = decode_document(raw)?;
                if let Some(Section::Body(body)) =
                    sections.iter_mut().find(|s| matches!(s, Section::Body(_)))
                {
                    *body = full;
                }
                elided_from = None;
            }
        }
        let msg = OpMsg { flags, sections };
        let body = msg.body().expect("checked above");
        if let Some(name) = sequence_names.iter().find(|n| path_exists(body, n)) {
            return Err(ParseError::SequenceShadowsBody(name.clone()));
        }
        if checksum_present {
            let expected = u32::from_le_bytes(bytes[sections_end..].try_into().expect("4 bytes"));
            let actual = crc32c::crc32c_append(crc32c::crc32c(header), &bytes[..sections_end]);
            if expected != actual {
                return Err(ParseError::ChecksumMismatch);
            }
        }
        Ok((msg, elided_from.map(<[u8]>::to_vec)))
    }

    /// Writes flags and sections; with `checksumPresent`, the caller appends the CRC via
    /// [`append_checksum`] once the header is in place.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.flags.to_le_bytes());
        for section in &self.sections {
            match section {
                Section::Body(doc) => {
                    out.push(0);
                    write_document(doc, out);
                }
                Section::EncodedBody(raw) => {
                    out.push(0);
                    out.extend_from_slice(raw.as_bytes());
                }
                Section::Sequence {
                    identifier,
                    documents,
                } => {
                    out.push(1);
                    let size_at = out.len();
                    out.extend_from_slice(&[0; 4]);
                    write_cstring(identifier, out);
                    for doc in documents {
                        write_document(doc, out);
                    }
                    let size = (out.len() - size_at) as i32;
                    out[size_at..size_at + 4].copy_from_slice(&size.to_le_bytes());
                }
            }
        }
    }
}

/// Whether a dotted path names something in `doc`. Like mongod's duplicate check, an
/// array met along the way counts as a match.
fn path_exists(doc: &Document, path: &str) -> bool {
    let mut current = doc;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        match current.get(part) {
            None => return false,
            Some(_) if parts.peek().is_none() => return true,
            Some(Bson::Document(inner)) => current = inner,
            Some(Bson::Array(_)) => return true,
            Some(_) => return false,
        }
    }
    false
}

/// Appends the CRC-32C of `message` (header included) and fixes up the length field.
pub fn append_checksum(message: &mut Vec<u8>) {
    let new_len = (message.len() + 4) as i32;
    message[..4].copy_from_slice(&new_len.to_le_bytes());
    let crc = crc32c::crc32c(message);
    message.extend_from_slice(&crc.to_le_bytes());
    debug_assert!(message.len() > HEADER_LEN);
}

/// The body of an uncompressed OP_MSG `frame` (a whole frame, header included) that has
/// no flag bits and one body section filling the rest of it; None for any other frame.
/// The body's own contents are not checked.
pub fn plain_body(frame: &[u8]) -> Option<&[u8]> {
    const BODY_AT: usize = HEADER_LEN + 5;
    if frame.len() < BODY_AT + 5
        || super::le_i32(frame, 12) != super::OP_MSG
        || super::le_i32(frame, HEADER_LEN) != 0
        || frame[BODY_AT - 1] != 0
    {
        return None;
    }
    let body = &frame[BODY_AT..];
    (usize::try_from(super::le_i32(body, 0)).ok() == Some(body.len())).then_some(body)
}
