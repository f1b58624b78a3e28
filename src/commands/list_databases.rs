//! listDatabases: the system databases a fresh mongod shows, and every database that
//! holds a collection, with its size (the BSON bytes of its documents).

use super::doc_query::Filter;
use super::documents as d;
use super::{Command, Handler, Invocation};
use crate::error::CommandResult;
use bson::{doc, Document};
use std::collections::BTreeMap;

pub const LIST_DATABASES: Command = Command {
    api_version_1: true,
    admin_only: true,
    ..Command::new(
        "listDatabases",
        "{ listDatabases:1, [filter: <filterObject>] [, nameOnly: true ] }\nlist databases on this server",
        Handler::Sync(list_databases),
    )
};

/// The system databases of a fresh mongod 7.0 and their sizes on disk.
const SYSTEM_DATABASES: &[(&str, i64)] =
    &[("admin", 40_960), ("config", 12_288), ("local", 40_960)];

fn list_databases(inv: &Invocation, cmd: &Document) -> CommandResult {
    d::check_fields(
        cmd,
        "listDatabases",
        &["filter", "nameOnly", "authorizedDatabases"],
    )?;
    let name_only = d::bool_arg(cmd, "listDatabases", "nameOnly", false)?;
    d::bool_arg(cmd, "listDatabases", "authorizedDatabases", false)?;
    let filter = Filter::parse(&d::doc_arg(cmd, "listDatabases", "filter")?.unwrap_or_default())?;
    let mut sizes: BTreeMap<String, i64> = SYSTEM_DATABASES
        .iter()
        .map(|(name, size)| (name.to_string(), *size))
        .collect();
    for info in inv
        .server
        .storage()
        .collections()
        .map_err(d::storage_error)?
    {
        let (_, bytes) = inv
            .server
            .storage()
            .stats(&info)
            .map_err(d::storage_error)?;
        *sizes.entry(info.db().to_owned()).or_insert(0) += bytes as i64;
    }
    let mut total = 0;
    let mut databases = Vec::new();
    for (name, size) in sizes {
        let full = doc! {"name": &name, "sizeOnDisk": size, "empty": false};
        if !filter.matches(&full) {
            continue;
        }
        total += size;
        databases.push(if name_only {
            doc! {"name": name}
        } else {
            full
        });
    }
    if name_only {
        return Ok(doc! {"databases": databases});
    }
    Ok(doc! {
        "databases": databases,
        "totalSize": total,
        "totalSizeMb": total / (1024 * 1024),
    })
}
