//! replSetHeartbeat: what members send each other every heartbeatIntervalMillis.

use super::{cluster, Command, Handler, Invocation};
use crate::error::{type_mismatch, CommandResult};
use crate::repl::{inconsistent_set_name, no_replication, HeartbeatReply};
use bson::{Bson, Document};

pub const REPL_SET_HEARTBEAT: Command = Command {
    admin_only: true,
    privileges: &[cluster("internal")],
    ..Command::new("replSetHeartbeat", "", Handler::Sync(run))
};

fn run(inv: &Invocation, cmd: &Document) -> CommandResult {
    let repl = inv.server.repl.as_ref().ok_or_else(no_replication)?;
    let set = match cmd.get("replSetHeartbeat") {
        Some(Bson::String(s)) => s,
        Some(other) => return Err(type_mismatch("replSetHeartbeat", other, "string")),
        None => return Err(crate::error::missing_field("replSetHeartbeat")),
    };
    if *set != repl.set_name {
        return Err(inconsistent_set_name(&repl.set_name, set));
    }
    if let Ok(from) = cmd.get_str("from") {
        repl.record_heartbeat_received(from);
    }
    Ok(HeartbeatReply::build(repl, &inv.server))
}
