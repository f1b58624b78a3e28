//! insert: adds documents, ordered or not, as mongod 7.0 answers (`n`, `writeErrors`
//! with each failed document's index). A document without `_id` gets an ObjectId, put
//! first as mongod puts it.

use super::documents::{self as d, MAX_DOCUMENT_SIZE};
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::{bad_value, type_name, Code, CommandError, CommandResult};
use crate::storage::DocWrite;
use bson::{doc, Bson, Document};
use std::collections::HashSet;

pub const INSERT: Command = Command {
    api_version_1: true,
    privileges: &[database("insert")],
    ..Command::new(
        "insert",
        "insert documents",
        Handler::Async(|inv, cmd| Box::pin(insert(inv, cmd)) as BoxFuture),
    )
};

const FIELDS: &[&str] = &["documents", "ordered", "bypassDocumentValidation"];

/// The document as stored: `_id` first (generated when absent), or why it cannot be.
pub fn prepare(doc: &Document) -> CommandResult<Document> {
    if d::bson_size(doc) > MAX_DOCUMENT_SIZE {
        return Err(CommandError::new(
            Code::BadValue,
            format!(
                "object to insert too large. size in bytes: {}, max size: {MAX_DOCUMENT_SIZE}",
                d::bson_size(doc)
            ),
        ));
    }
    check_storable(doc)?;
    let mut out = Document::new();
    match doc.get("_id") {
        Some(id) => {
            check_id(id)?;
            out.insert("_id", id.clone());
        }
        None => {
            out.insert("_id", bson::oid::ObjectId::new());
        }
    }
    for (k, v) in doc {
        if k != "_id" {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

/// mongod's nesting limit for a stored document (`$`-prefixed and dotted names are
/// allowed since 5.0).
pub fn check_storable(doc: &Document) -> CommandResult<()> {
    let limit = crate::wire::depth::max_depth_for_user_storage();
    if crate::wire::depth::field_depth(doc) > limit {
        return Err(CommandError::new(
            Code::Overflow,
            format!("Document exceeds maximum nesting depth of {limit}"),
        ));
    }
    Ok(())
}

/// What may be an `_id` (mongod: not an array, regex or undefined).
pub fn check_id(id: &Bson) -> CommandResult<()> {
    match id {
        Bson::Array(_) => Err(bad_value("can't use an array for _id")),
        Bson::RegularExpression(_) => Err(bad_value("can't use a regex for _id")),
        Bson::Undefined => Err(bad_value("can't use a undefined for _id")),
        Bson::Document(d) => crate::query::field_names::check_id_object(d),
        _ => Ok(()),
    }
}

async fn insert(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "insert", FIELDS)?;
    let (_, ns) = d::namespace(&inv, &cmd)?;
    let ordered = d::bool_arg(&cmd, "insert", "ordered", true)?;
    let documents = match cmd.get("documents") {
        Some(Bson::Array(a)) => a.clone(),
        Some(other) => {
            return Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                    "BSON field 'insert.documents' is the wrong type '{}', expected type 'array'",
                    type_name(other)
                ),
            ))
        }
        None => return Err(crate::error::missing_field("insert.documents")),
    };
    if documents.is_empty() {
        return Err(CommandError::new(
            Code::InvalidLength,
            "Write batch sizes must be between 1 and 100000. Got 0 operations.",
        ));
    }
    d::check_writable(&inv)?;
    if let Some(reply) = super::local_db::refused_write_reply(&inv, &ns, false) {
        return Ok(reply);
    }
    let storage = inv.server.storage().clone();
    let _guard = storage.lock_writes().await;
    let mut retry = super::retryable::Retry::begin(&inv, &cmd)?;
    let mut writes = Vec::new();
    let info = d::collection_for_write(&storage, &ns, &mut writes)?;
    let prepared: Vec<CommandResult<Document>> = documents
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Bson::Document(doc) => prepare(doc),
            other => Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                    "BSON field 'insert.documents.{index}' is the wrong type '{}', expected type 'object'",
                    type_name(other)
                ),
            )),
        })
        .collect();
    let keys: Vec<Vec<u8>> = prepared
        .iter()
        .map(|p| match p {
            Ok(doc) => crate::storage::record_key(doc.get("_id").unwrap_or(&Bson::Null)),
            Err(_) => Vec::new(),
        })
        .collect();
    // One read for the whole batch's duplicate check.
    let existing = match &info {
        Some(info) => storage.existing(info, &keys).map_err(d::storage_error)?,
        None => vec![false; keys.len()],
    };
    let checks = super::validation::WriteChecks::new(&cmd, info.as_ref())?;
    let mut unique = match &info {
        Some(info) => Some(
            crate::storage::planner::UniqueChecker::new(&storage, info)
                .map_err(d::storage_error)?,
        ),
        None => None,
    };
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    let mut n = 0;
    for (index, result) in prepared.into_iter().enumerate() {
        if retry.executed(index).is_some() {
            n += 1;
            continue;
        }
        let outcome = match result {
            Err(e) => Err((e, None)),
            Ok(doc) => {
                let key = &keys[index];
                if existing[index] || !seen.insert(key.clone()) {
                    let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
                    Err((d::duplicate_id_error(&ns, &id), Some(id)))
                } else if let Err(e) = checks.insert(&doc) {
                    // Validation first: a refused document must not reserve unique keys.
                    Err((e, None))
                } else if let Some(Err(e)) = unique.as_mut().map(|u| u.admit(&doc)) {
                    Err((d::storage_error(e), None))
                } else {
                    Ok(doc)
                }
            }
        };
        match outcome {
            Ok(doc) => {
                n += 1;
                retry.ran(index, doc! {"n": 1});
                writes.push(DocWrite::Insert {
                    ns: ns.clone(),
                    doc,
                });
            }
            Err((e, id)) => {
                errors.push(d::write_error(index, &e, id.as_ref()));
                if ordered {
                    break;
                }
            }
        }
    }
    if !writes.iter().any(|w| matches!(w, DocWrite::Insert { .. })) {
        // Nothing to insert: no collection to create either.
        writes.clear();
    }
    retry.record(&mut writes);
    let concern_error = match d::commit(&inv, &cmd, writes).await? {
        Ok(e) => e,
        Err(e) => return Err(d::storage_error(e)),
    };
    crate::op_counters::insert_done(n as u64, errors.len() as u64);
    let mut reply = doc! {"n": n};
    if !errors.is_empty() {
        reply.insert("writeErrors", errors);
    }
    retry.finish(&mut reply);
    if let Some(e) = concern_error {
        reply.insert("writeConcernError", e);
    }
    Ok(reply)
}
