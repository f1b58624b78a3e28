//! listDatabases: ferrod keeps no user data, so it reports what an empty mongod does.

use super::{Command, Handler, Invocation};
use crate::error::CommandResult;
use bson::{doc, Bson, Document};

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

fn list_databases(_: &Invocation, cmd: &Document) -> CommandResult {
    let name_only = match cmd.get("nameOnly") {
        Some(Bson::Boolean(b)) => *b,
        Some(Bson::Int32(n)) => *n != 0,
        _ => false,
    };
    let databases: Vec<Document> = SYSTEM_DATABASES
        .iter()
        .map(|(name, size)| {
            if name_only {
                doc! {"name": *name}
            } else {
                doc! {"name": *name, "sizeOnDisk": *size, "empty": false}
            }
        })
        .collect();
    if name_only {
        return Ok(doc! {"databases": databases});
    }
    let total: i64 = SYSTEM_DATABASES.iter().map(|(_, s)| s).sum();
    Ok(doc! {
        "databases": databases,
        "totalSize": total,
        "totalSizeMb": total / (1024 * 1024),
    })
}
