//! OP_REPLY, the answer to an OP_QUERY.

use super::{write_document, ParseError, Reader};
use bson::Document;

#[derive(Debug, Clone, PartialEq)]
pub struct OpReply {
    pub response_flags: i32,
    pub cursor_id: i64,
    pub starting_from: i32,
    pub documents: Vec<Document>,
}

impl OpReply {
    /// The reply to a handshake: flags 0, no cursor, one document.
    pub fn single(doc: Document) -> Self {
        OpReply {
            response_flags: 0,
            cursor_id: 0,
            starting_from: 0,
            documents: vec![doc],
        }
    }

    /// Parses the bytes after the header. Every fault is [`ParseError::BadReply`]: a server
    /// ignores an OP_REPLY whatever it holds, a client treats it as a broken reply.
    pub fn parse(bytes: &[u8]) -> Result<OpReply, ParseError> {
        Self::parse_fields(bytes).map_err(|e| match e {
            ParseError::BadReply(_) => e,
            other => ParseError::BadReply(other.to_string()),
        })
    }

    fn parse_fields(bytes: &[u8]) -> Result<OpReply, ParseError> {
        let mut r = Reader::new(bytes);
        let response_flags = r.i32("responseFlags")?;
        let cursor_id = r.i64("cursorID")?;
        let starting_from = r.i32("startingFrom")?;
        let number_returned = r.i32("numberReturned")?;
        let mut documents = Vec::new();
        while !r.at_end() {
            documents.push(r.document()?);
        }
        if number_returned < 0 || number_returned as usize != documents.len() {
            return Err(ParseError::BadReply(format!(
                "numberReturned {number_returned} does not match its {} documents",
                documents.len()
            )));
        }
        Ok(OpReply {
            response_flags,
            cursor_id,
            starting_from,
            documents,
        })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.response_flags.to_le_bytes());
        out.extend_from_slice(&self.cursor_id.to_le_bytes());
        out.extend_from_slice(&self.starting_from.to_le_bytes());
        out.extend_from_slice(&(self.documents.len() as i32).to_le_bytes());
        for doc in &self.documents {
            write_document(doc, out);
        }
    }
}
