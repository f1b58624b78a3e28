//! replSetReconfig: `rs.reconfig(cfg, {force})`, on the primary.

use super::{cluster, BoxFuture, Command, Handler, Invocation};
use crate::error::{missing_field, type_mismatch};
use crate::repl::no_replication;
use bson::{Bson, Document};

pub const REPL_SET_RECONFIG: Command = Command {
    admin_only: true,
    privileges: &[cluster("replSetConfigure")],
    ..Command::new(
        "replSetReconfig",
        "Adjust configuration of a replica set\n{ replSetReconfig : config_object }\nhttp://dochub.mongodb.org/core/replicasetcommands",
        Handler::Async(run),
    )
};

fn run(inv: Invocation, cmd: Document) -> BoxFuture {
    Box::pin(async move {
        let repl = inv.server.repl.clone().ok_or_else(no_replication)?;
        let config = match cmd.get("replSetReconfig") {
            Some(Bson::Document(d)) => d.clone(),
            Some(other) => return Err(type_mismatch("replSetReconfig", other, "object")),
            None => return Err(missing_field("replSetReconfig")),
        };
        let force = match cmd.get("force") {
            None | Some(Bson::Null) => false,
            Some(Bson::Boolean(b)) => *b,
            Some(other) => return Err(type_mismatch("force", other, "bool")),
        };
        repl.reconfig(&inv.server, &config, force).await
    })
}
