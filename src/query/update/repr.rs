//! Values printed as mongod prints a `BSONElement` in its error messages
//! (`a: 1`, `{ b: "x" }`, `[ 1, 2 ]`), so messages read like mongod's.

use bson::Bson;
use std::fmt::Write;

/// An element as `name: value` (mongod's `BSONElement::toString`).
pub fn element(name: &str, value: &Bson) -> String {
    format!("{name}: {}", value_repr(value))
}

/// A document as mongod's `BSONObj::toString` prints it.
pub fn document(doc: &bson::Document) -> String {
    if doc.is_empty() {
        return "{}".to_string();
    }
    let fields: Vec<String> = doc.iter().map(|(k, v)| element(k, v)).collect();
    format!("{{ {} }}", fields.join(", "))
}

pub fn value_repr(value: &Bson) -> String {
    match value {
        Bson::Double(f) => double(*f),
        Bson::String(s) => format!("{s:?}"),
        Bson::Document(d) => document(d),
        Bson::Array(items) => {
            if items.is_empty() {
                return "[]".to_string();
            }
            let parts: Vec<String> = items.iter().map(value_repr).collect();
            format!("[ {} ]", parts.join(", "))
        }
        Bson::Binary(b) => {
            let mut hex = String::new();
            for byte in &b.bytes {
                let _ = write!(hex, "{byte:02X}");
            }
            format!("BinData({}, {hex})", u8::from(b.subtype))
        }
        Bson::Undefined => "undefined".to_string(),
        Bson::ObjectId(oid) => format!("ObjectId('{oid}')"),
        Bson::Boolean(b) => b.to_string(),
        Bson::DateTime(d) => format!("new Date({})", d.timestamp_millis()),
        Bson::Null => "null".to_string(),
        Bson::RegularExpression(r) => format!("/{}/{}", r.pattern, r.options),
        Bson::DbPointer(_) => "DBRef(...)".to_string(),
        Bson::JavaScriptCode(code) => code.clone(),
        Bson::Symbol(s) => s.clone(),
        Bson::JavaScriptCodeWithScope(c) => c.code.clone(),
        Bson::Int32(n) => n.to_string(),
        Bson::Timestamp(ts) => format!("Timestamp({}, {})", ts.time, ts.increment),
        Bson::Int64(n) => n.to_string(),
        Bson::Decimal128(d) => format!("NumberDecimal(\"{d}\")"),
        Bson::MinKey => "MinKey".to_string(),
        Bson::MaxKey => "MaxKey".to_string(),
    }
}

/// Doubles print with a fraction when whole (`2.0`), as mongod's number formatting does.
fn double(f: f64) -> String {
    if f.is_nan() {
        "nan".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.to_string()
    } else if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// The `_id` element of a document for messages (`_id: 1`), or `no id`.
pub fn id_of(doc: &bson::Document) -> String {
    match doc.get("_id") {
        Some(id) => element("_id", id),
        None => "no id".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc};

    #[test]
    fn prints_like_mongod() {
        assert_eq!(element("a", &Bson::Int32(1)), "a: 1");
        assert_eq!(element("a", &Bson::Double(2.0)), "a: 2.0");
        assert_eq!(
            element(
                "eatenBy",
                &bson!([{"name": "alice", "amount": 2.0}, {"name": "bob", "amount": 3.0}])
            ),
            "eatenBy: [ { name: \"alice\", amount: 2.0 }, { name: \"bob\", amount: 3.0 } ]"
        );
        assert_eq!(id_of(&doc! {"_id": "x"}), "_id: \"x\"");
        assert_eq!(value_repr(&bson!({})), "{}");
    }
}
