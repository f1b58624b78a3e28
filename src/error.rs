//! The one error type commands return, and how it becomes a reply document.

pub mod codes;

pub use codes::Code;

use bson::{doc, Document};
use std::fmt;

/// An error a command returns to its client: `{ok: 0.0, errmsg, code, codeName}`.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandError {
    pub code: Code,
    pub message: String,
    /// Extra reply fields some errors carry (for example `errorLabels`).
    pub extra: Option<Document>,
}

pub type CommandResult<T = Document> = Result<T, CommandError>;

impl CommandError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        CommandError {
            code,
            message: message.into(),
            extra: None,
        }
    }

    /// The reply body, without the cluster-time fields the dispatcher adds to every reply.
    pub fn to_document(&self) -> Document {
        let mut reply = doc! {
            "ok": 0.0,
            "errmsg": self.message.clone(),
            "code": self.code.number(),
            "codeName": self.code.name(),
        };
        if let Some(extra) = &self.extra {
            reply.extend(extra.clone());
        }
        reply
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.name(),
            self.code.number(),
            self.message
        )
    }
}

impl std::error::Error for CommandError {}

/// Shorthand constructors for the errors every command family uses.
pub fn bad_value(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::BadValue, msg)
}

/// A numeric field read as mongod reads integers: an int, a long, or a double without
/// a fraction.
pub fn whole_number(value: &bson::Bson) -> Option<i64> {
    match value {
        bson::Bson::Int32(n) => Some(*n as i64),
        bson::Bson::Int64(n) => Some(*n),
        bson::Bson::Double(f) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    }
}

pub fn type_mismatch(field: &str, got: &bson::Bson, expected: &str) -> CommandError {
    CommandError::new(
        Code::TypeMismatch,
        format!(
            "BSON field '{field}' is the wrong type '{}', expected type '{expected}'",
            type_name(got)
        ),
    )
}

pub fn missing_field(field: &str) -> CommandError {
    CommandError::new(
        Code::IDLFailedToParse,
        format!("BSON field '{field}' is missing but a required field"),
    )
}

pub fn unknown_field(field: &str) -> CommandError {
    CommandError::new(
        Code::IDLUnknownField,
        format!("BSON field '{field}' is an unknown field."),
    )
}

pub fn unauthorized(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::Unauthorized, msg)
}

/// MongoDB's name for a BSON type, as used in its error messages.
pub fn type_name(value: &bson::Bson) -> &'static str {
    use bson::Bson::*;
    match value {
        Double(_) => "double",
        String(_) => "string",
        Document(_) => "object",
        Array(_) => "array",
        Binary(_) => "binData",
        Undefined => "undefined",
        ObjectId(_) => "objectId",
        Boolean(_) => "bool",
        DateTime(_) => "date",
        Null => "null",
        RegularExpression(_) => "regex",
        DbPointer(_) => "dbPointer",
        JavaScriptCode(_) => "javascript",
        Symbol(_) => "symbol",
        JavaScriptCodeWithScope(_) => "javascriptWithScope",
        Int32(_) => "int",
        Timestamp(_) => "timestamp",
        Int64(_) => "long",
        Decimal128(_) => "decimal",
        MinKey => "minKey",
        MaxKey => "maxKey",
    }
}

/// The error reply mongod sends for a message it could parse only partly. The codes are
/// the ones mongod's OP_MSG parser raises (op_msg.cpp, bson_validate, BufReader); those of
/// faults after which the connection is closed only reach the log.
pub fn from_parse_error(err: &crate::wire::ParseError) -> CommandError {
    use crate::wire::ParseError::*;
    let code = match err {
        InvalidBson(_) => Code::InvalidBSON,
        BsonTooLarge(_) => Code::BSONObjectTooLarge,
        TooDeep => Code::Overflow,
        MultipleBodies => Code::Location40430,
        DuplicateSequence(_) => Code::Location40431,
        UnknownSectionKind(_) => Code::Location40432,
        SequenceShadowsBody(_) => Code::Location40433,
        NoBody => Code::Location40587,
        // Section kind 2 is mongod's security token, refused without multitenancy.
        SecurityToken => Code::Unauthorized,
        NoRoomForChecksum => Code::Location51252,
        // Reads past the end of a buffer fail with Overflow in mongod's BufReader.
        Truncated(_) | BadSequence(_) => Code::Overflow,
        IllegalFlags(_) => Code::IllegalOpMsgFlag,
        TooManySequences => Code::TooManyDocumentSequences,
        ChecksumMismatch => Code::ChecksumMismatch,
        BadLength(_) | UnsupportedOpcode(_) | BadReply(_) => Code::ProtocolError,
        UnknownCompressor(_) => Code::InternalError,
        Decompression(_) => Code::BadValue,
    };
    CommandError::new(code, err.to_string())
}

/// A value as mongod prints BSON in messages: `{ name: "x", n: 1, list: [ 1, 2 ] }`.
pub fn shell_format(value: &bson::Bson) -> String {
    use bson::Bson;
    match value {
        Bson::Document(d) if d.is_empty() => "{}".into(),
        Bson::Document(d) => {
            let fields: Vec<String> = d
                .iter()
                .map(|(k, v)| format!("{k}: {}", shell_format(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        Bson::Array(a) if a.is_empty() => "[]".into(),
        Bson::Array(a) => {
            let items: Vec<String> = a.iter().map(shell_format).collect();
            format!("[ {} ]", items.join(", "))
        }
        Bson::String(s) => format!("{s:?}"),
        Bson::Double(d) if d.fract() == 0.0 && d.is_finite() => format!("{d:.1}"),
        Bson::Binary(b) if b.subtype == bson::spec::BinarySubtype::Uuid && b.bytes.len() == 16 => {
            let bytes: [u8; 16] = b.bytes.as_slice().try_into().unwrap_or([0; 16]);
            format!("UUID(\"{}\")", bson::Uuid::from_bytes(bytes))
        }
        Bson::Binary(b) => format!(
            "BinData({}, {})",
            u8::from(b.subtype),
            hex::encode_upper(&b.bytes)
        ),
        other => other.to_string(),
    }
}
