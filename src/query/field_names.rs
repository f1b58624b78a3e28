//! mongod 5.0+'s rules for `$`-prefixed and dotted field names in stored documents
//! (src/mongo/db/update/storage_validation.cpp, ops/insert.cpp, BSONObj::storageValidEmbedded).
//!
//! - An inserted document may hold `$`-prefixed and dotted names at any level; only its
//!   `_id`, when an object, may not contain a `$`-prefixed name (except a DBRef's
//!   `$ref`, `$id`, `$db` in that order): 52.
//! - A replacement or operator update may not leave a `$`-prefixed top-level field, again
//!   except a well-formed DBRef (52, or 55 for a malformed DBRef); nested ones are fine.
//! - A pipeline update may leave top-level `$`-prefixed fields: its stages cannot be
//!   confused with update operators.

use crate::error::{type_name, Code, CommandError};
use bson::{Bson, Document};

type Result<T> = std::result::Result<T, CommandError>;

/// The checks on an object `_id` (mongod's storageValidIdField for objects).
pub fn check_id_object(id: &Document) -> Result<()> {
    storage_valid_embedded(id).map_err(|e| {
        CommandError::new(
            e.code,
            format!(
                "_id fields may not contain '$'-prefixed fields: {}",
                e.message
            ),
        )
    })
}

/// BSONObj::storageValidEmbedded: no `$`-prefixed names at any depth, except a DBRef
/// (`$ref` string first, `$id` next, an optional string `$db` after).
fn storage_valid_embedded(doc: &Document) -> Result<()> {
    let mut iter = doc.iter().peekable();
    let mut first = true;
    while let Some((name, value)) = iter.next() {
        if name.starts_with('$') {
            let dbref = first
                && name == "$ref"
                && matches!(value, Bson::String(_))
                && iter.peek().is_some_and(|(n, _)| n.as_str() == "$id");
            if !dbref {
                return Err(not_valid_for_storage(name));
            }
            // `$id` is skipped unchecked, as mongod's iterator does; an optional `$db`.
            iter.next();
            if let Some((n, v)) = iter.peek() {
                if n.as_str() == "$db" && matches!(v, Bson::String(_)) {
                    iter.next();
                } else if n.starts_with('$') {
                    return Err(not_valid_for_storage(n));
                }
            }
        } else {
            embedded_values(value)?;
        }
        first = false;
    }
    Ok(())
}

fn embedded_values(value: &Bson) -> Result<()> {
    match value {
        Bson::Document(d) => storage_valid_embedded(d),
        Bson::Array(items) => items.iter().try_for_each(embedded_values),
        Bson::JavaScriptCodeWithScope(c) => storage_valid_embedded(&c.scope),
        _ => Ok(()),
    }
}

fn not_valid_for_storage(name: &str) -> CommandError {
    CommandError::new(
        Code::DollarPrefixedFieldName,
        format!("{name} is not valid for storage."),
    )
}

/// An updated document's top-level names (storage_validation's scanDocument at level 1):
/// `changed` says which fields the update wrote (unchanged ones were valid before).
pub fn check_updated(doc: &Document, changed: impl Fn(&str) -> bool) -> Result<()> {
    let fields: Vec<(&String, &Bson)> = doc.iter().collect();
    for (i, (name, _)) in fields.iter().enumerate() {
        if name.starts_with('$') && changed(name) {
            validate_dollar_prefixed(&fields, i)?;
        }
    }
    Ok(())
}

/// storage_validation's validateDollarPrefixElement: a `$`-prefixed top-level field is
/// only a DBRef's `$ref` (string, followed by `$id`), `$id` (after `$ref`) or `$db`
/// (string, after `$id`).
fn validate_dollar_prefixed(fields: &[(&String, &Bson)], at: usize) -> Result<()> {
    let invalid = |msg: String| Err(CommandError::new(Code::InvalidDBRef, msg));
    let mut i = at;
    let mut name = fields[i].0.as_str();
    if name == "$db" {
        if !matches!(fields[i].1, Bson::String(_)) {
            return invalid(format!(
                "The DBRef $db field must be a String, not a {}",
                type_name(fields[i].1)
            ));
        }
        if i == 0 || fields[i - 1].0 != "$id" {
            return invalid("Found $db field without a $id before it, which is invalid.".into());
        }
        i -= 1;
        name = "$id";
    }
    if name == "$id" {
        if i == 0 || fields[i - 1].0 != "$ref" {
            return invalid("Found $id field without a $ref before it, which is invalid.".into());
        }
        i -= 1;
        name = "$ref";
    }
    if name == "$ref" {
        if !matches!(fields[i].1, Bson::String(_)) {
            return invalid(format!(
                "The DBRef $ref field must be a String, not a {}",
                type_name(fields[i].1)
            ));
        }
        if fields.get(i + 1).is_none_or(|(n, _)| n.as_str() != "$id") {
            return invalid("The DBRef $ref field must be followed by a $id field".into());
        }
        return Ok(());
    }
    let name = fields[at].0;
    Err(CommandError::new(
        Code::DollarPrefixedFieldName,
        format!(
            "The dollar ($) prefixed field '{name}' in '{name}' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith."
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn id_objects_refuse_dollar_names_but_not_dbrefs() {
        assert!(check_id_object(&doc! {"a.b": 1, "c": {"d.e": 1}}).is_ok());
        assert!(check_id_object(&doc! {"$ref": "c", "$id": 1, "$db": "d"}).is_ok());
        let e = check_id_object(&doc! {"$a": 1}).unwrap_err();
        assert_eq!(e.code, Code::DollarPrefixedFieldName);
        assert_eq!(
            e.message,
            "_id fields may not contain '$'-prefixed fields: $a is not valid for storage."
        );
        assert!(check_id_object(&doc! {"a": {"$b": 1}}).is_err());
        assert!(check_id_object(&doc! {"a": [{"$b": 1}]}).is_err());
        assert!(check_id_object(&doc! {"$ref": "c", "$id": 1, "$x": 1}).is_err());
        assert!(check_id_object(&doc! {"$id": 1}).is_err());
    }

    #[test]
    fn updated_top_level_names_follow_dbref_rules() {
        let all = |_: &str| true;
        assert!(check_updated(&doc! {"a": {"$b": 1}}, all).is_ok());
        assert!(check_updated(&doc! {"$ref": "c", "$id": 1, "$db": "d"}, all).is_ok());
        let e = check_updated(&doc! {"$a": 1}, all).unwrap_err();
        assert_eq!(e.code, Code::DollarPrefixedFieldName);
        let e = check_updated(&doc! {"$id": 1}, all).unwrap_err();
        assert_eq!(e.code, Code::InvalidDBRef);
        let e = check_updated(&doc! {"$ref": 1, "$id": 1}, all).unwrap_err();
        assert_eq!(e.code, Code::InvalidDBRef);
        assert!(check_updated(&doc! {"$a": 1}, |_| false).is_ok());
    }
}
