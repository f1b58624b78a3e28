//! currentOp: the commands in flight, with their comments.

use super::{cluster, is_generic_argument, Command, Handler, Invocation};
use crate::error::CommandResult;
use bson::{doc, Document};

pub const CURRENT_OP: Command = Command {
    admin_only: true,
    privileges: &[cluster("inprog")],
    ..Command::new(
        "currentOp",
        "Returns information about operations currently in progress",
        Handler::Sync(current_op),
    )
};

fn current_op(inv: &Invocation, cmd: &Document) -> CommandResult {
    // Fields other than the options and generic arguments filter by equality.
    let filter: Vec<(&String, &bson::Bson)> = cmd
        .iter()
        .skip(1)
        .filter(|(k, _)| {
            !is_generic_argument(k) && !matches!(k.as_str(), "$all" | "$ownOps" | "$truncateOps")
        })
        .collect();
    let inprog: Vec<Document> = operations(inv)
        .into_iter()
        .filter(|op| filter.iter().all(|(k, v)| op.get(k.as_str()) == Some(v)))
        .collect();
    Ok(doc! {"inprog": inprog})
}

/// Every operation in progress as currentOp shows it (also `$currentOp`'s documents).
pub(super) fn operations(inv: &Invocation) -> Vec<Document> {
    let host = inv.server.host_and_port();
    inv.server
        .ops
        .in_progress()
        .into_iter()
        .map(|op| with_mongod_fields(op, &host))
        .collect()
}

/// The fields mongod 7.0 reports for every op that ferrod has no real use for: it takes
/// no locks and never yields.
fn with_mongod_fields(mut op: Document, host: &str) -> Document {
    op.insert("host", host);
    op.insert("threaded", true);
    if let Some(lsid) = op
        .get_document("command")
        .ok()
        .and_then(|c| c.get("lsid"))
        .cloned()
    {
        op.insert("lsid", lsid);
    }
    op.insert("numYields", 0);
    op.insert("locks", Document::new());
    op.insert("waitingForLock", false);
    op
}
