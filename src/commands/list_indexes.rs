//! listIndexes: a collection's index specifications as a cursor.

use super::documents as d;
use super::{database, Command, Handler, Invocation};
use crate::error::{Code, CommandError, CommandResult};
use bson::Document;

pub const LIST_INDEXES: Command = Command {
    api_version_1: true,
    privileges: &[database("listIndexes")],
    ..Command::new(
        "listIndexes",
        "list indexes for a collection",
        Handler::Sync(list_indexes),
    )
};

fn list_indexes(inv: &Invocation, cmd: &Document) -> CommandResult {
    d::check_fields(
        cmd,
        "listIndexes",
        &["cursor", "includeBuildUUIDs", "includeIndexBuildInfo"],
    )?;
    let (_, ns) = d::namespace(inv, cmd)?;
    let batch_size = match d::doc_arg(cmd, "listIndexes", "cursor")? {
        Some(c) => d::count_arg(&c, "listIndexes.cursor", "batchSize")?.map(|n| n as usize),
        None => None,
    };
    d::check_readable(inv, cmd)?;
    let Some(info) = d::collection(inv.server.storage(), &ns)? else {
        return Err(CommandError::new(
            Code::NamespaceNotFound,
            format!("ns does not exist: {ns}"),
        ));
    };
    let mut docs: std::collections::VecDeque<Document> = info.indexes.into_iter().collect();
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
