//! OP_QUERY, which ferrod accepts only for the legacy first handshake.

use super::{write_cstring, write_document, ParseError, Reader};
use bson::Document;

#[derive(Debug, Clone, PartialEq)]
pub struct OpQuery {
    pub flags: i32,
    pub full_collection_name: String,
    pub number_to_skip: i32,
    pub number_to_return: i32,
    pub query: Document,
    pub return_fields_selector: Option<Document>,
}

impl OpQuery {
    pub fn parse(bytes: &[u8]) -> Result<OpQuery, ParseError> {
        let mut r = Reader::new(bytes);
        let flags = r.i32("OP_QUERY flags")?;
        let full_collection_name = r.cstring("fullCollectionName")?;
        let number_to_skip = r.i32("numberToSkip")?;
        let number_to_return = r.i32("numberToReturn")?;
        let query = r.document()?;
        let return_fields_selector = if r.at_end() {
            None
        } else {
            Some(r.document()?)
        };
        if !r.at_end() {
            return Err(ParseError::InvalidBson(
                "bytes left over after the OP_QUERY documents".into(),
            ));
        }
        Ok(OpQuery {
            flags,
            full_collection_name,
            number_to_skip,
            number_to_return,
            query,
            return_fields_selector,
        })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.flags.to_le_bytes());
        write_cstring(&self.full_collection_name, out);
        out.extend_from_slice(&self.number_to_skip.to_le_bytes());
        out.extend_from_slice(&self.number_to_return.to_le_bytes());
        write_document(&self.query, out);
        if let Some(fields) = &self.return_fields_selector {
            write_document(fields, out);
        }
    }

    /// The database of a `<db>.$cmd` namespace, or None for any other collection.
    pub fn command_database(&self) -> Option<&str> {
        self.full_collection_name.strip_suffix(".$cmd")
    }
}
