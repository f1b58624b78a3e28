//! What the index commands share: validating a specification as mongod 7.0's
//! `index_key_validate` does, the conflicts with existing indexes, the generated names,
//! the errors of a refused index write, and the plan of a query (`storage::planner`).

use super::doc_query::Filter;
use super::documents as d;
use crate::catalog::CatalogError;
use crate::error::{bad_value, type_name, Code, CommandError, CommandResult};
use crate::storage::planner::{self, Plan};
use crate::storage::{CollectionInfo, Storage};
use bson::{doc, Bson, Document};

/// The error of a write an index refused (duplicate key, parallel arrays).
pub fn refusal(e: CatalogError) -> CommandError {
    match e {
        CatalogError::DuplicateKey(info) => {
            let key_value = info.get_document("keyValue").cloned().unwrap_or_default();
            let mut e = CommandError::new(
                Code::DuplicateKey,
                format!(
                    "E11000 duplicate key error collection: {} index: {} dup key: {}",
                    info.get_str("ns").unwrap_or(""),
                    info.get_str("index").unwrap_or(""),
                    super::shell_format(&Bson::Document(key_value.clone())),
                ),
            );
            e.extra = Some(doc! {
                "keyPattern": info.get_document("keyPattern").cloned().unwrap_or_default(),
                "keyValue": key_value,
            });
            e
        }
        CatalogError::Invalid(code, msg) => {
            CommandError::new(Code::from_number(code).unwrap_or(Code::BadValue), msg)
        }
        other => CommandError::new(Code::InternalError, other.to_string()),
    }
}

/// The plan of `filter` on `info` (with `hint`).
pub fn plan(
    storage: &Storage,
    info: &CollectionInfo,
    filter: &Filter,
    hint: Option<&Bson>,
) -> CommandResult<Plan> {
    let multikey = storage.multikey_indexes(info).map_err(d::storage_error)?;
    planner::choose(
        info,
        filter.matcher(),
        filter.id_equality(),
        hint,
        &|name| multikey.iter().any(|m| m == name),
    )
}

/// mongod's generated index name: `field_direction` joined by `_` (`a_1_b_-1`).
pub fn generated_name(key: &Document) -> String {
    key.iter()
        .map(|(k, v)| {
            let v = match v {
                Bson::Int32(n) => n.to_string(),
                Bson::Int64(n) => n.to_string(),
                Bson::Double(f) if f.fract() == 0.0 => format!("{}", *f as i64),
                Bson::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{k}_{v}")
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// The specification fields ferrod implements (`background` and `ns` are accepted and
/// ignored, as mongod 7.0 ignores them).
const SPEC_FIELDS: &[&str] = &[
    "key",
    "name",
    "v",
    "unique",
    "sparse",
    "partialFilterExpression",
    "expireAfterSeconds",
    "hidden",
    "background",
    "ns",
];

/// The other fields mongod 7.0 accepts in a specification, which ferrod does not
/// implement: refused by name.
const UNSUPPORTED: &[&str] = &[
    "collation",
    "weights",
    "default_language",
    "language_override",
    "textIndexVersion",
    "2dsphereIndexVersion",
    "bits",
    "min",
    "max",
    "bucketSize",
    "storageEngine",
    "wildcardProjection",
    "prepareUnique",
    "clustered",
    "columnstoreProjection",
    "columnstoreCompressor",
];

fn cannot(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::CannotCreateIndex, msg)
}

fn is_true(v: &Bson) -> bool {
    match v {
        Bson::Boolean(b) => *b,
        other => crate::error::whole_number(other).is_some_and(|n| n != 0),
    }
}

/// Checks and normalizes one specification: the stored form `{v: 2, key, name,
/// ...options}`.
pub fn validate_spec(spec: &Bson) -> CommandResult<Document> {
    let Bson::Document(spec) = spec else {
        return Err(CommandError::new(
            Code::TypeMismatch,
            format!(
                "The elements of the 'indexes' array must be objects, but found {}",
                type_name(spec)
            ),
        ));
    };
    let shown = super::shell_format(&Bson::Document(spec.clone()));
    for field in spec.keys() {
        let field_name = field.as_str();
        if !SPEC_FIELDS.contains(&field_name) && !UNSUPPORTED.contains(&field_name) {
            return Err(CommandError::new(
                Code::InvalidIndexSpecificationOption,
                format!(
                    "The field '{field}' is not valid for an index specification. Specification: {shown}"
                ),
            ));
        }
        if UNSUPPORTED.contains(&field.as_str()) {
            return Err(CommandError::new(
                Code::CannotCreateIndex,
                format!("ferrod does not support the index option '{field}' yet"),
            ));
        }
    }
    let key = match spec.get("key") {
        Some(Bson::Document(k)) => k.clone(),
        Some(other) => {
            return Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                    "The field 'key' must be an object, but got {}",
                    type_name(other)
                ),
            ))
        }
        None => {
            return Err(CommandError::new(
                Code::FailedToParse,
                "The 'key' field is a required property of an index specification",
            ))
        }
    };
    if key.is_empty() {
        return Err(cannot("Index keys cannot be empty."));
    }
    for (field, value) in &key {
        if field.is_empty() {
            return Err(cannot("Index keys cannot be an empty field."));
        }
        if field.starts_with('$') {
            return Err(cannot(
                "Index key contains an illegal field name: field name starts with '$'.",
            ));
        }
        if field.split('.').any(str::is_empty) {
            return Err(cannot(format!(
                "Index key contains an illegal field name: '{field}'."
            )));
        }
        match value {
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
                let zero = match value {
                    Bson::Int32(n) => *n == 0,
                    Bson::Int64(n) => *n == 0,
                    Bson::Double(f) => *f == 0.0 || f.is_nan(),
                    _ => false,
                };
                if zero {
                    return Err(cannot(format!(
                        "Values in the index key pattern can't be 0. Found: {field}: {}",
                        super::shell_format(value)
                    )));
                }
                if matches!(value, Bson::Decimal128(_)) {
                    return Err(cannot(
                        "ferrod does not support decimal directions in an index key pattern",
                    ));
                }
            }
            Bson::String(kind) => {
                let known = ["2d", "2dsphere", "text", "geoHaystack", "hashed", "columnstore"];
                if known.contains(&kind.as_str()) {
                    return Err(cannot(format!(
                        "ferrod does not support '{kind}' indexes yet"
                    )));
                }
                return Err(cannot(format!("Unknown index plugin '{kind}'")));
            }
            other => {
                return Err(cannot(format!(
                    "Values in v:2 index key pattern cannot be of type {}. Only numbers > 0, numbers < 0, and strings are allowed.",
                    type_name(other)
                )))
            }
        }
    }
    let name = match spec.get("name") {
        Some(Bson::String(n)) => n.clone(),
        Some(other) => {
            return Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                    "The field 'name' must be a string, but got {}",
                    type_name(other)
                ),
            ))
        }
        None => generated_name(&key),
    };
    if name.is_empty() {
        return Err(cannot("The index name cannot be empty"));
    }
    if name == "*" {
        return Err(bad_value("The index name '*' is not valid."));
    }
    if let Some(v) = spec.get("v") {
        match crate::error::whole_number(v) {
            Some(1) | Some(2) => {}
            _ => {
                return Err(cannot(format!(
                    "Invalid index specification {shown}; cannot create an index with v={}",
                    super::shell_format(v)
                )))
            }
        }
    }
    let is_id = key.len() == 1 && key.contains_key("_id") && name == "_id_";
    let mut out = doc! {"v": 2, "key": key.clone(), "name": &name};
    for flag in ["unique", "sparse", "hidden"] {
        match spec.get(flag) {
            None => {}
            Some(v @ (Bson::Boolean(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_))) => {
                if is_id && flag != "hidden" {
                    return Err(CommandError::new(
                        Code::InvalidIndexSpecificationOption,
                        format!("The field '{flag}' is not valid for an _id index specification. Specification: {shown}"),
                    ));
                }
                if is_true(v) {
                    out.insert(flag, true);
                }
            }
            Some(other) => {
                return Err(CommandError::new(
                    Code::TypeMismatch,
                    format!(
                        "The field '{flag}' must be a bool, but got {}",
                        type_name(other)
                    ),
                ))
            }
        }
    }
    if is_id && out.contains_key("hidden") {
        return Err(bad_value("can't hide _id index"));
    }
    if let Some(f) = spec.get("partialFilterExpression") {
        let Bson::Document(f) = f else {
            return Err(CommandError::new(
                Code::TypeMismatch,
                "The field 'partialFilterExpression' must be an object",
            ));
        };
        if out.contains_key("sparse") {
            return Err(cannot(
                "cannot mix \"partialFilterExpression\" and \"sparse\" options",
            ));
        }
        crate::query::matcher::Filter::parse(f)?;
        out.insert("partialFilterExpression", f.clone());
    }
    if let Some(ttl) = spec.get("expireAfterSeconds") {
        let secs = match ttl {
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) => {
                crate::error::whole_number(ttl).or(match ttl {
                    Bson::Double(f) if f.is_finite() => Some(*f as i64),
                    _ => None,
                })
            }
            other => {
                return Err(CommandError::new(
                    Code::TypeMismatch,
                    format!(
                        "TTL index 'expireAfterSeconds' option must be numeric, but received a type of '{}'. Index spec: {shown}",
                        type_name(other)
                    ),
                ))
            }
        };
        if key.len() > 1 {
            return Err(cannot(
                "TTL indexes are single-field indexes, compound indexes do not support TTL. Index spec: "
                    .to_owned()
                    + &shown,
            ));
        }
        match secs {
            Some(s) if (0..=i32::MAX as i64).contains(&s) => {
                out.insert("expireAfterSeconds", s as i32);
            }
            _ => {
                return Err(cannot(format!(
                    "TTL index 'expireAfterSeconds' option must be within an acceptable range, try a lower number. Index spec: {shown}"
                )))
            }
        }
    }
    Ok(out)
}

/// The options that make two specifications with the same key different indexes.
fn options_of(spec: &Document) -> Document {
    let mut o = spec.clone();
    for k in ["v", "key", "name", "hidden", "expireAfterSeconds"] {
        o.remove(k);
    }
    o
}

fn same_key(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && crate::query::order::compare(va, vb).is_eq())
}

/// Whether `spec` conflicts with the existing `existing`: Ok(true) when an identical
/// index is there already.
pub fn check_conflict(spec: &Document, existing: &[Document]) -> CommandResult<bool> {
    let key = spec.get_document("key").cloned().unwrap_or_default();
    let name = spec.get_str("name").unwrap_or("");
    let shown = |d: &Document| super::shell_format(&Bson::Document(d.clone()));
    for e in existing {
        let e_key = e.get_document("key").cloned().unwrap_or_default();
        let e_name = e.get_str("name").unwrap_or("");
        if e_name == name {
            if !same_key(&key, &e_key) {
                return Err(CommandError::new(
                    Code::IndexKeySpecsConflict,
                    format!(
                        "An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: {}, existing index: {}",
                        shown(spec),
                        shown(e)
                    ),
                ));
            }
            if options_of(spec) != options_of(e)
                || spec.get("expireAfterSeconds") != e.get("expireAfterSeconds")
            {
                return Err(CommandError::new(
                    Code::IndexOptionsConflict,
                    format!(
                        "An equivalent index already exists with the same name but different options. Requested index: {}, existing index: {}",
                        shown(spec),
                        shown(e)
                    ),
                ));
            }
            return Ok(true);
        }
        if same_key(&key, &e_key) && options_of(spec) == options_of(e) {
            return Err(CommandError::new(
                Code::IndexOptionsConflict,
                format!("Index already exists with a different name: {e_name}"),
            ));
        }
    }
    Ok(false)
}
