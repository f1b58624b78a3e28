//! delete: removes the documents each statement's query matches (`limit: 1`: the first).

use super::doc_query::Filter;
use super::documents as d;
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::{type_name, Code, CommandError, CommandResult};
use crate::storage::DocWrite;
use bson::{doc, Bson, Document};

pub const DELETE: Command = Command {
    api_version_1: true,
    privileges: &[database("remove")],
    ..Command::new(
        "delete",
        "delete documents",
        Handler::Async(|inv, cmd| Box::pin(delete(inv, cmd)) as BoxFuture),
    )
};

/// The statements of a write command (`deletes`, `updates`), each a document.
pub fn statements(cmd: &Document, name: &str, field: &str) -> CommandResult<Vec<Document>> {
    let items = match cmd.get(field) {
        Some(Bson::Array(a)) => a,
        Some(other) => {
            return Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                    "BSON field '{name}.{field}' is the wrong type '{}', expected type 'array'",
                    type_name(other)
                ),
            ))
        }
        None => return Err(crate::error::missing_field(&format!("{name}.{field}"))),
    };
    if items.is_empty() {
        return Err(CommandError::new(
            Code::InvalidLength,
            "Write batch sizes must be between 1 and 100000. Got 0 operations.",
        ));
    }
    items
        .iter()
        .map(|item| match item {
            Bson::Document(d) => Ok(d.clone()),
            other => Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                    "BSON field '{name}.{field}' is the wrong type '{}', expected type 'object'",
                    type_name(other)
                ),
            )),
        })
        .collect()
}

async fn delete(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "delete", &["deletes", "ordered", "let"])?;
    let (_, ns) = d::namespace(&inv, &cmd)?;
    let ordered = d::bool_arg(&cmd, "delete", "ordered", true)?;
    let stmts = statements(&cmd, "delete", "deletes")?;
    for stmt in &stmts {
        d::check_statement_fields(stmt, "delete.deletes", &["q", "limit", "collation", "hint"])?;
        d::check_collation(stmt.get("collation"))?;
    }
    let vars = d::let_vars(&cmd, "delete", None)?;
    d::check_writable(&inv)?;
    if let Some(reply) = super::local_db::refused_write_reply(&inv, &ns, false) {
        return Ok(reply);
    }
    let storage = inv.server.storage().clone();
    let _guard = storage.lock_writes().await;
    let mut retry = super::retryable::Retry::begin(&inv, &cmd)?;
    let info = d::collection(&storage, &ns)?;
    let mut writes = Vec::new();
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    let mut n = 0;
    for (index, stmt) in stmts.iter().enumerate() {
        if let Some(done) = retry.executed(index) {
            n += done.get_i32("n").unwrap_or(0);
            continue;
        }
        let result = async {
            let query = match stmt.get("q") {
                Some(Bson::Document(q)) => q.clone(),
                Some(other) => return Err(CommandError::new(Code::TypeMismatch, format!("BSON field 'delete.deletes.q' is the wrong type '{}', expected type 'object'", type_name(other)))),
                None => return Err(crate::error::missing_field("delete.deletes.q")),
            };
            let limit = match stmt.get("limit") {
                Some(v) => crate::error::whole_number(v),
                None => None,
            };
            let limit = match limit {
                Some(0) => None,
                Some(1) => Some(1),
                _ => return Err(CommandError::new(Code::FailedToParse, "The limit field in delete objects must be 0 or 1. Got ".to_owned() + &stmt.get("limit").map(|v| v.to_string()).unwrap_or_default())),
            };
            retry.check_retryable(limit.is_some(), "limit=0")?;
            let filter = Filter::parse_with_vars(&query, &vars)?;
            let Some(info) = &info else { return Ok(0) };
            let mut n = 0;
            // Documents already removed by an earlier statement of this command are gone.
            let hint = stmt.get("hint").cloned();
            for doc in d::select(&inv, info, &filter, None, hint).await? {
                let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
                let key = crate::storage::record_key(&id);
                if removed.contains(&key) {
                    continue;
                }
                removed.push(key);
                writes.push(DocWrite::Delete { ns: ns.clone(), id: doc! {"_id": id} });
                n += 1;
                if limit == Some(1) {
                    break;
                }
            }
            Ok(n)
        }
        .await;
        match result {
            Ok(deleted) => {
                n += deleted;
                retry.ran(index, doc! {"n": deleted});
            }
            Err(e) => {
                errors.push(d::write_error(index, &e, None));
                if ordered {
                    break;
                }
            }
        }
    }
    retry.record(&mut writes);
    let concern_error = d::commit(&inv, &cmd, writes)
        .await?
        .map_err(d::storage_error)?;
    crate::op_counters::delete_done(stmts.len(), n as u64);
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
