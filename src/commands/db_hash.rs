//! dbHash: an md5 per collection over its documents' bytes in `_id` order, and one over
//! those, so that members of a set can be compared once caught up. mongod hashes other
//! bytes; the shape of the reply is its.

use super::documents as d;
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::{type_mismatch, CommandResult};
use crate::storage::capped;
use bson::{doc, Bson, Document};
use md5::{Digest, Md5};

pub const DB_HASH: Command = Command {
    privileges: &[database("dbHash")],
    aliases: &["dbhash"],
    ..Command::new(
        "dbHash",
        "Returns the MD5 hash of the collections of a database",
        Handler::Async(|inv, cmd| Box::pin(db_hash(inv, cmd)) as BoxFuture),
    )
};

async fn db_hash(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "dbHash", &["collections"])?;
    let only: Option<Vec<String>> = match cmd.get("collections") {
        None => None,
        Some(Bson::Array(items)) => Some(
            items
                .iter()
                .map(|i| match i {
                    Bson::String(s) => Ok(s.clone()),
                    other => Err(type_mismatch("dbHash.collections", other, "string")),
                })
                .collect::<CommandResult<_>>()?,
        ),
        Some(other) => return Err(type_mismatch("dbHash.collections", other, "array")),
    };
    d::check_readable(&inv, &cmd)?;
    let started = std::time::Instant::now();
    let storage = inv.server.storage().clone();
    let db = inv.db.clone();
    let (collections, capped_names, uuids, md5) = crate::blocking::io(move || {
        let mut collections = Document::new();
        let mut capped_names = Vec::new();
        let mut uuids = Document::new();
        let mut all = Md5::new();
        let infos = storage.collections().map_err(d::storage_error)?;
        for info in infos.iter().filter(|i| i.db() == db) {
            let name = info.name().to_owned();
            if only.as_ref().is_some_and(|o| !o.contains(&name)) {
                continue;
            }
            let hash = hex::encode(storage.content_md5(info).map_err(d::storage_error)?);
            all.update(hash.as_bytes());
            if capped::is_capped(&info.options) {
                capped_names.push(Bson::String(name.clone()));
            }
            uuids.insert(name.clone(), info.uuid_bson());
            collections.insert(name, hash);
        }
        CommandResult::Ok((
            collections,
            capped_names,
            uuids,
            hex::encode(all.finalize()),
        ))
    })
    .await?;
    Ok(doc! {
        "host": inv.server.host_and_port(),
        "collections": collections,
        "capped": capped_names,
        "uuids": uuids,
        "md5": md5,
        "timeMillis": started.elapsed().as_millis() as i64,
    })
}
