//! replSetGetStatus: this member's view of the set (`rs.status()`).

use super::{cluster, Command, Handler, Invocation};
use crate::error::CommandResult;
use crate::repl::no_replication;
use bson::Document;

pub const REPL_SET_GET_STATUS: Command = Command {
    admin_only: true,
    privileges: &[cluster("replSetGetStatus")],
    ..Command::new(
        "replSetGetStatus",
        "Report status of a replica set from the POV of this server\n{ replSetGetStatus : 1 }\nhttp://dochub.mongodb.org/core/replicasetcommands",
        Handler::Sync(run),
    )
};

fn run(inv: &Invocation, _cmd: &Document) -> CommandResult {
    inv.server
        .repl
        .as_ref()
        .ok_or_else(no_replication)?
        .status(&inv.server)
}
