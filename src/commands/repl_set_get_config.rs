//! replSetGetConfig: the current replica-set config (`rs.conf()`).

use super::{cluster, Command, Handler, Invocation};
use crate::error::CommandResult;
use crate::repl::{no_replication, not_yet_initialized};
use bson::{doc, Document};

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
    let config = inv
        .server
        .repl
        .as_ref()
        .ok_or_else(no_replication)?
        .config()
        .ok_or_else(not_yet_initialized)?;
    Ok(doc! {"config": config.to_document()})
}
