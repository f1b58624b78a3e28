//! createIndexes: adds indexes to a collection (created if it does not exist) and builds
//! them over its documents, as one replicated write; mongod 7.0's reply and conflicts.

use super::documents as d;
use super::indexes::{check_conflict, validate_spec};
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::{bad_value, type_name, Code, CommandError, CommandResult};
use crate::storage::DocWrite;
use bson::{doc, Bson, Document};

pub const CREATE_INDEXES: Command = Command {
    api_version_1: true,
    privileges: &[database("createIndex")],
    ..Command::new(
        "createIndexes",
        "Create indexes.",
        Handler::Async(|inv, cmd| Box::pin(create_indexes(inv, cmd)) as BoxFuture),
    )
};

async fn create_indexes(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "createIndexes", &["indexes", "commitQuorum"])?;
    let (_, ns) = d::namespace(&inv, &cmd)?;
    let items = match cmd.get("indexes") {
        Some(Bson::Array(a)) => a.clone(),
        Some(other) => {
            return Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                "BSON field 'createIndexes.indexes' is the wrong type '{}', expected type 'array'",
                type_name(other)
            ),
            ))
        }
        None => return Err(crate::error::missing_field("createIndexes.indexes")),
    };
    if items.is_empty() {
        return Err(bad_value("Must specify at least one index to create"));
    }
    let specs = items
        .iter()
        .map(validate_spec)
        .collect::<CommandResult<Vec<_>>>()?;
    d::check_writable(&inv)?;
    let storage = inv.server.storage().clone();
    let _guard = storage.lock_writes().await;
    let mut writes = Vec::new();
    let info = d::collection_for_write(&storage, &ns, &mut writes)?;
    let existing = info.as_ref().map_or_else(
        || vec![crate::storage::id_index_spec()],
        |i| i.indexes.clone(),
    );
    let before = existing.len() as i32;
    let mut new: Vec<Document> = Vec::new();
    for spec in specs {
        let mut all = existing.clone();
        all.extend(new.iter().cloned());
        if !check_conflict(&spec, &all)? {
            new.push(spec);
        }
    }
    let created_collection = info.is_none();
    let after = before + new.len() as i32;
    if new.is_empty() && !created_collection {
        return Ok(doc! {
            "numIndexesBefore": before,
            "numIndexesAfter": after,
            "note": "all indexes already exist",
        });
    }
    if !new.is_empty() {
        writes.push(DocWrite::CreateIndexes {
            ns: ns.clone(),
            specs: doc! {"indexes": new.into_iter().map(Bson::Document).collect::<Vec<_>>()},
        });
    }
    let concern_error = d::commit(&inv, &cmd, writes)
        .await?
        .map_err(d::storage_error)?;
    let mut reply = doc! {
        "numIndexesBefore": before,
        "numIndexesAfter": after,
        "createdCollectionAutomatically": created_collection,
    };
    if let Some(e) = concern_error {
        reply.insert("writeConcernError", e);
    }
    Ok(reply)
}
