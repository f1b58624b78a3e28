//! drop and dropDatabase: remove a collection, or every collection of a database.

use super::documents as d;
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::CommandResult;
use crate::storage::DocWrite;
use bson::{doc, Document};

pub const DROP: Command = Command {
    api_version_1: true,
    privileges: &[database("dropCollection")],
    ..Command::new(
        "drop",
        "drop a collection\n{drop : <collectionName>}",
        Handler::Async(|inv, cmd| Box::pin(drop(inv, cmd)) as BoxFuture),
    )
};

pub const DROP_DATABASE: Command = Command {
    api_version_1: true,
    privileges: &[database("dropDatabase")],
    ..Command::new(
        "dropDatabase",
        "drop (delete) this database",
        Handler::Async(|inv, cmd| Box::pin(drop_database(inv, cmd)) as BoxFuture),
    )
};

async fn drop(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "drop", &[])?;
    let (_, ns) = d::namespace(&inv, &cmd)?;
    d::check_writable(&inv)?;
    let storage = inv.server.storage().clone();
    let _guard = storage.lock_writes().await;
    // mongod 7.0: dropping a collection that does not exist succeeds.
    let Some(info) = d::collection(&storage, &ns)? else {
        return Ok(Document::new());
    };
    let writes = vec![DocWrite::DropCollection { ns: ns.clone() }];
    let concern_error = d::commit(&inv, &cmd, writes)
        .await?
        .map_err(d::storage_error)?;
    let mut reply = doc! {"nIndexesWas": info.indexes.len() as i32, "ns": ns};
    if let Some(e) = concern_error {
        reply.insert("writeConcernError", e);
    }
    Ok(reply)
}

async fn drop_database(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "dropDatabase", &[])?;
    d::check_writable(&inv)?;
    let storage = inv.server.storage().clone();
    let _guard = storage.lock_writes().await;
    let writes: Vec<DocWrite> = storage
        .collections()
        .map_err(d::storage_error)?
        .into_iter()
        .filter(|c| c.db() == inv.db)
        .map(|c| DocWrite::DropCollection { ns: c.ns })
        .collect();
    if writes.is_empty() {
        return Ok(Document::new());
    }
    let concern_error = d::commit(&inv, &cmd, writes)
        .await?
        .map_err(d::storage_error)?;
    let mut reply = doc! {"dropped": &inv.db};
    if let Some(e) = concern_error {
        reply.insert("writeConcernError", e);
    }
    Ok(reply)
}
