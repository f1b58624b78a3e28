//! replSetGetConfig: the current replica-set config (`rs.conf()`).

use super::{cluster, Command, Handler, Invocation};
use crate::error::CommandResult;
use crate::repl::no_replication;
use bson::Document;

pub const REPL_SET_GET_CONFIG: Command = Command {
    admin_only: true,
    privileges: &[cluster("replSetGetConfig")],
    ..Command::new(
        "replSetGetConfig",
        "Returns the current replica set configuration{ replSetGetConfig : 1 }\nhttp://dochub.mongodb.org/core/replicasetcommands",
        Handler::Sync(run),
    )
};

fn run(inv: &Invocation, _cmd: &Document) -> CommandResult {
    inv.server
        .repl
        .as_ref()
        .ok_or_else(no_replication)?
        .get_config()
}
