//! collStats (mongod 7.0 keeps it, deprecated in favour of `$collStats`, which shares
//! [`storage_stats`] with it): a collection's sizes, counts and capped settings.

use super::documents as d;
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::{Code, CommandError, CommandResult};
use crate::storage::{capped, CollectionInfo, Storage};
use bson::{doc, Document};

pub const COLL_STATS: Command = Command {
    privileges: &[database("collStats")],
    aliases: &["collstats"],
    ..Command::new(
        "collStats",
        "{ collStats:\"blog.posts\" , scale : 1 } scale divides sizes e.g. for KB use 1024\n    avgObjSize - in bytes",
        Handler::Async(|inv, cmd| Box::pin(coll_stats(inv, cmd)) as BoxFuture),
    )
};

/// A count as mongod's BSONObjBuilder::appendNumber writes it: an int below 2^30, a
/// long above.
pub fn number(n: i64) -> bson::Bson {
    if n.abs() < 1 << 30 {
        bson::Bson::Int32(n as i32)
    } else {
        bson::Bson::Int64(n)
    }
}

/// `storageStats` of `$collStats` and the body of collStats: sizes divided by `scale`.
/// ferrod keeps no separate index structures for `_id`, so index sizes are 0.
pub fn storage_stats(
    storage: &Storage,
    info: &CollectionInfo,
    scale: i64,
) -> CommandResult<Document> {
    let (count, size) = storage.stats(info).map_err(d::storage_error)?;
    let scaled = |n: u64| number((n as i64) / scale.max(1));
    let index_names: Vec<String> = info
        .indexes
        .iter()
        .filter_map(|i| i.get_str("name").ok().map(str::to_owned))
        .collect();
    let mut out = doc! {
        "size": scaled(size),
        "count": number(count as i64),
        "avgObjSize": number(size.checked_div(count).unwrap_or(0) as i64),
        "numOrphanDocs": 0,
        "storageSize": scaled(size),
        "freeStorageSize": 0,
        "capped": capped::is_capped(&info.options),
    };
    if capped::is_capped(&info.options) {
        let (max_size, max_docs) = capped::limits(&info.options);
        out.insert("max", number(max_docs as i64));
        out.insert("maxSize", scaled(max_size));
    }
    let zeros: Document = index_names
        .iter()
        .map(|n| (n.clone(), 0i64.into()))
        .collect();
    let details: Document = index_names
        .iter()
        .map(|n| (n.clone(), Document::new().into()))
        .collect();
    out.insert("nindexes", index_names.len() as i32);
    out.insert("indexDetails", details);
    out.insert("indexBuilds", Vec::<bson::Bson>::new());
    out.insert("totalIndexSize", number(0));
    out.insert("totalSize", scaled(size));
    out.insert("indexSizes", zeros);
    out.insert("scaleFactor", scale as i32);
    Ok(out)
}

async fn coll_stats(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "collStats", &["scale", "verbose", "waitForLock"])?;
    let (_, ns) = d::namespace(&inv, &cmd)?;
    let scale = match cmd.get("scale") {
        None => 1,
        Some(v) => match crate::error::whole_number(v) {
            Some(n) if n >= 1 => n,
            Some(n) => {
                return Err(CommandError::new(
                    Code::Location51024,
                    format!("BSON field 'scale' value must be >= 1, actual value '{n}'"),
                ))
            }
            None => {
                return Err(crate::error::type_mismatch(
                    "collStats.scale",
                    v,
                    "[long, int, decimal, double]",
                ))
            }
        },
    };
    let storage = inv.server.storage().clone();
    let Some(info) = d::collection(&storage, &ns)? else {
        return Err(CommandError::new(
            Code::NamespaceNotFound,
            format!("Collection [{ns}] not found."),
        ));
    };
    let mut out = doc! {"ns": &ns};
    out.extend(crate::blocking::io(move || storage_stats(&storage, &info, scale)).await?);
    Ok(out)
}
