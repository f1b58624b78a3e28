//! replSetFreeze: keep this member out of elections for a while (0 unfreezes).

use super::{cluster, Command, Handler, Invocation};
use crate::error::{type_mismatch, CommandResult};
use crate::repl::no_replication;
use bson::{Bson, Document};

pub const REPL_SET_FREEZE: Command = Command {
    admin_only: true,
    privileges: &[cluster("replSetStateChange")],
    ..Command::new(
        "replSetFreeze",
        "{ replSetFreeze : <seconds> }'freeze' state of member to the extent we can do that.  What this really means is that\nthis node will not attempt to become primary until the time period specified expires.\nYou can call again with {replSetFreeze:0} to unfreeze sooner.\nA process restart unfreezes the member also.\n\nhttp://dochub.mongodb.org/core/replicasetcommands",
        Handler::Sync(run),
    )
};

fn run(inv: &Invocation, cmd: &Document) -> CommandResult {
    let repl = inv.server.repl.as_ref().ok_or_else(no_replication)?;
    let secs = match cmd.get("replSetFreeze") {
        Some(Bson::Int32(n)) => *n as i64,
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(d)) => *d as i64,
        Some(other) => return Err(type_mismatch("replSetFreeze", other, "number")),
        None => 0,
    };
    repl.freeze(&inv.server, secs)
}
