//! replSetSyncFrom (`rs.syncFrom()`): mongod's checks and reply shape. ferrod has no sync
//! source to choose (a secondary receives the primary's Raft log), so a valid member is
//! accepted and the reply says what mongod's would; nothing else changes.

use super::{cluster, Command, Handler, Invocation};
use crate::error::{Code, CommandError, CommandResult};
use crate::repl::{no_replication, not_yet_initialized, MemberState};
use bson::{doc, Bson, Document};

pub const REPL_SET_SYNC_FROM: Command = Command {
    admin_only: true,
    privileges: &[cluster("replSetStateChange")],
    ..Command::new(
        "replSetSyncFrom",
        "{ replSetSyncFrom : \"host:port\" }\nChange who this member is syncing from. Note: This will interrupt and restart an in-progress initial sync.",
        Handler::Sync(run),
    )
};

/// `host:port` with mongod's default port when none is given.
fn with_port(host: &str) -> String {
    if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_owned()
    } else {
        format!("{host}:27017")
    }
}

fn run(inv: &Invocation, cmd: &Document) -> CommandResult {
    let repl = inv.server.repl.as_ref().ok_or_else(no_replication)?;
    let config = repl.config().ok_or_else(not_yet_initialized)?;
    let target = match cmd.get("replSetSyncFrom") {
        Some(Bson::String(s)) if !s.is_empty() => with_port(s),
        Some(Bson::String(s)) => s.clone(),
        _ => String::new(),
    };
    if target.is_empty() {
        return Err(CommandError::new(
            Code::FailedToParse,
            "Empty host component parsing HostAndPort from \"\"",
        ));
    }
    let not_secondary = |msg: &str| CommandError::new(Code::NotSecondary, msg);
    let Some(me) = repl.self_member(&inv.server, &config) else {
        return Err(not_secondary("Removed and uninitialized nodes do not sync"));
    };
    if repl.my_state(&inv.server) == MemberState::Primary {
        return Err(not_secondary("primaries don't sync"));
    }
    let Some(member) = config.members.iter().find(|m| with_port(&m.host) == target) else {
        return Err(CommandError::new(
            Code::NodeNotFound,
            format!("Could not find member \"{target}\" in replica set"),
        ));
    };
    let invalid = |msg: String| CommandError::new(Code::InvalidOptions, msg);
    if member.id == me.id {
        return Err(invalid("I cannot sync from myself".into()));
    }
    if !member.build_indexes && me.build_indexes {
        return Err(invalid(format!(
            "Cannot sync from \"{target}\" because it does not build indexes"
        )));
    }
    if me.is_voter() && !member.is_voter() {
        return Err(invalid(format!(
            "Cannot sync from \"{target}\" because it is not a voter"
        )));
    }
    let mut reply = doc! {"syncFromRequested": target};
    // A secondary's source is the primary, whose log it receives.
    if let Some(primary) = repl.primary_host(&inv.server) {
        reply.insert("prevSyncTarget", primary);
    }
    Ok(reply)
}
