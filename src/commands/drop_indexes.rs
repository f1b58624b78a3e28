//! dropIndexes: removes indexes by name, key pattern, a list of names, or all but `_id_`
//! with "*".

use super::documents as d;
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::{type_name, Code, CommandError, CommandResult};
use crate::storage::DocWrite;
use bson::{doc, Bson, Document};

pub const DROP_INDEXES: Command = Command {
    api_version_1: true,
    privileges: &[database("dropIndex")],
    aliases: &["deleteIndexes"],
    ..Command::new(
        "dropIndexes",
        "drop indexes for a collection",
        Handler::Async(|inv, cmd| Box::pin(drop_indexes(inv, cmd)) as BoxFuture),
    )
};

fn not_found(msg: String) -> CommandError {
    CommandError::new(Code::IndexNotFound, msg)
}

/// The names `index` selects among `specs`.
fn selected(index: &Bson, specs: &[Document]) -> CommandResult<Vec<String>> {
    let name_of = |s: &Document| s.get_str("name").unwrap_or("").to_owned();
    let id_refused = || CommandError::new(Code::InvalidOptions, "cannot drop _id index");
    match index {
        Bson::String(s) if s == "*" => Ok(specs
            .iter()
            .map(name_of)
            .filter(|n| n != "_id_")
            .collect()),
        Bson::String(name) => {
            if name == "_id_" {
                return Err(id_refused());
            }
            if specs.iter().any(|s| &name_of(s) == name) {
                Ok(vec![name.clone()])
            } else {
                Err(not_found(format!("index not found with name [{name}]")))
            }
        }
        Bson::Array(names) => {
            let mut out = Vec::new();
            for n in names {
                let Bson::String(n) = n else {
                    return Err(CommandError::new(
                        Code::TypeMismatch,
                        format!("dropIndexes.index must be a string, found {}", type_name(n)),
                    ));
                };
                if n == "*" {
                    return Err(CommandError::new(
                        Code::BadValue,
                        "The '*' value is not allowed in a list of index names",
                    ));
                }
                out.extend(selected(&Bson::String(n.clone()), specs)?);
            }
            Ok(out)
        }
        Bson::Document(key) => {
            let matching: Vec<&Document> = specs
                .iter()
                .filter(|s| s.get_document("key").is_ok_and(|k| k == key))
                .collect();
            match matching.as_slice() {
                [] => Err(not_found(format!(
                    "can't find index with key: {}",
                    super::shell_format(index)
                ))),
                [one] if name_of(one) == "_id_" => Err(id_refused()),
                [one] => Ok(vec![name_of(one)]),
                _ => Err(CommandError::new(
                    Code::BadValue,
                    format!(
                        "{} indexes found for key: {}, identify by name instead.",
                        matching.len(),
                        super::shell_format(index)
                    ),
                )),
            }
        }
        other => Err(CommandError::new(
            Code::TypeMismatch,
            format!(
                "BSON field 'dropIndexes.index' is the wrong type '{}', expected types '[string, object, array]'",
                type_name(other)
            ),
        )),
    }
}

async fn drop_indexes(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "dropIndexes", &["index"])?;
    let (_, ns) = d::namespace(&inv, &cmd)?;
    let Some(index) = cmd.get("index").cloned() else {
        return Err(crate::error::missing_field("dropIndexes.index"));
    };
    d::check_writable(&inv)?;
    let storage = inv.server.storage().clone();
    let _guard = storage.lock_writes().await;
    let Some(info) = d::collection(&storage, &ns)? else {
        return Err(CommandError::new(
            Code::NamespaceNotFound,
            format!("ns not found {ns}"),
        ));
    };
    let names = selected(&index, &info.indexes)?;
    let was = info.indexes.len() as i32;
    let mut reply = doc! {"nIndexesWas": was};
    if names.is_empty() {
        reply.insert("msg", "non-_id indexes dropped for collection");
        return Ok(reply);
    }
    let all = matches!(&index, Bson::String(s) if s == "*");
    let writes = vec![DocWrite::DropIndexes {
        ns: ns.clone(),
        names,
    }];
    let concern_error = d::commit(&inv, &cmd, writes)
        .await?
        .map_err(d::storage_error)?;
    if all {
        reply.insert("msg", "non-_id indexes dropped for collection");
    }
    if let Some(e) = concern_error {
        reply.insert("writeConcernError", e);
    }
    Ok(reply)
}
