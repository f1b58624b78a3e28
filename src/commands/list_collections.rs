//! listCollections (as a cursor) and dbStats.

use super::documents as d;
use super::{database, Command, Handler, Invocation};
use crate::error::CommandResult;
use crate::storage::{id_index_spec, CollectionInfo};
use bson::{doc, Document};

pub const LIST_COLLECTIONS: Command = Command {
    api_version_1: true,
    privileges: &[database("listCollections")],
    ..Command::new(
        "listCollections",
        "list collections for this db",
        Handler::Sync(list_collections),
    )
};

pub const DB_STATS: Command = Command {
    privileges: &[database("dbStats")],
    ..Command::new(
        "dbStats",
        "Get stats on a database. Not instantaneous. Slower for databases with large .ns files.\nExample: { dbStats:1, scale:1 }",
        Handler::Sync(db_stats),
    )
};

fn entry(info: &CollectionInfo, name_only: bool) -> Document {
    if name_only {
        return doc! {"name": info.name(), "type": "collection"};
    }
    doc! {
        "name": info.name(),
        "type": "collection",
        "options": info.options.clone(),
        "info": {"readOnly": false, "uuid": info.uuid_bson()},
        "idIndex": id_index_spec(),
    }
}

fn list_collections(inv: &Invocation, cmd: &Document) -> CommandResult {
    d::check_fields(
        cmd,
        "listCollections",
        &[
            "filter",
            "nameOnly",
            "authorizedCollections",
            "cursor",
            "includePendingDrops",
        ],
    )?;
    let filter = d::filter_arg(cmd, "listCollections", "filter")?;
    let name_only = d::bool_arg(cmd, "listCollections", "nameOnly", false)?;
    d::bool_arg(cmd, "listCollections", "authorizedCollections", false)?;
    let batch_size = match d::doc_arg(cmd, "listCollections", "cursor")? {
        Some(c) => d::count_arg(&c, "listCollections.cursor", "batchSize")?.map(|n| n as usize),
        None => None,
    };
    d::check_readable(inv, cmd)?;
    let storage = inv.server.storage();
    let mut docs: std::collections::VecDeque<Document> = storage
        .collections()
        .map_err(d::storage_error)?
        .iter()
        .filter(|c| c.db() == inv.db)
        // The filter sees the full entry; the reply shows what nameOnly asks for.
        .filter(|c| filter.matches(&entry(c, false)))
        .map(|c| entry(c, name_only))
        .collect();
    docs.extend(
        super::local_db::list_entries(inv)
            .into_iter()
            .filter(|(full, _)| filter.matches(full))
            .map(|(full, short)| if name_only { short } else { full }),
    );
    let ns = format!("{}.$cmd.listCollections", inv.db);
    let batch = d::take_batch(&mut docs, batch_size);
    let id = if docs.is_empty() {
        0
    } else {
        inv.server
            .cursors
            .open(crate::storage::cursors::Cursor::new(
                ns.clone(),
                docs,
                false,
                d::user_of(inv),
            ))
    };
    Ok(d::cursor_reply(&ns, id, batch, true))
}

/// The sizes of a database's collections: (collections, documents, bytes).
pub fn database_size(inv: &Invocation, db: &str) -> CommandResult<(i64, i64, i64)> {
    let storage = inv.server.storage();
    let (mut colls, mut objects, mut bytes) = (0, 0, 0);
    for info in storage.collections().map_err(d::storage_error)? {
        if info.db() != db {
            continue;
        }
        let (n, size) = storage.stats(&info).map_err(d::storage_error)?;
        colls += 1;
        objects += n as i64;
        bytes += size as i64;
    }
    Ok((colls, objects, bytes))
}

fn db_stats(inv: &Invocation, cmd: &Document) -> CommandResult {
    d::check_fields(cmd, "dbStats", &["scale", "freeStorage"])?;
    let scale = match cmd.get("scale") {
        None => 1,
        Some(v) => match crate::error::whole_number(v) {
            Some(n) if n > 0 => n,
            _ => {
                return Err(crate::error::bad_value(
                    "Scale factor must be greater than zero",
                ))
            }
        },
    };
    let (colls, objects, bytes) = database_size(inv, &inv.db)?;
    let avg = if objects > 0 {
        bytes as f64 / objects as f64
    } else {
        0.0
    };
    Ok(doc! {
        "db": &inv.db,
        "collections": number(colls),
        "views": 0,
        "objects": number(objects),
        "avgObjSize": avg,
        "dataSize": (bytes / scale) as f64,
        "storageSize": (bytes / scale) as f64,
        "indexes": number(colls),
        "indexSize": 0.0,
        "totalSize": (bytes / scale) as f64,
        "scaleFactor": number(scale),
        "fsUsedSize": 0.0,
        "fsTotalSize": 0.0,
    })
}

/// A count as mongod's BSONObjBuilder::appendNumber writes it: int when it fits.
fn number(n: i64) -> bson::Bson {
    match i32::try_from(n) {
        Ok(small) => bson::Bson::Int32(small),
        Err(_) => bson::Bson::Int64(n),
    }
}
