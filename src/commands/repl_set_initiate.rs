//! replSetInitiate: mongosh's `rs.initiate(cfg)`; with no config, this node alone.

use super::{cluster, BoxFuture, Command, Handler, Invocation};
use crate::error::type_mismatch;
use crate::repl::no_replication;
use bson::{Bson, Document};

pub const REPL_SET_INITIATE: Command = Command {
    admin_only: true,
    privileges: &[cluster("replSetConfigure")],
    // mongod's documented keyFile flow: rs.initiate() over localhost before any user.
    allowed_by_localhost_exception: true,
    ..Command::new(
        "replSetInitiate",
        "Initiate/christen a replica set.\nhttp://dochub.mongodb.org/core/replicasetcommands",
        Handler::Async(run),
    )
};

fn run(inv: Invocation, cmd: Document) -> BoxFuture {
    Box::pin(async move {
        let repl = inv.server.repl.clone().ok_or_else(no_replication)?;
        // `rs.initiate()` sends an empty object (older shells a number): both mean
        // "this node alone".
        let config = match cmd.get("replSetInitiate") {
            Some(Bson::Document(d)) if !d.is_empty() => Some(d.clone()),
            Some(Bson::Document(_) | Bson::Null | Bson::Boolean(_))
            | Some(Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_))
            | None => None,
            Some(other) => return Err(type_mismatch("replSetInitiate", other, "object")),
        };
        let mut reply = repl.initiate(&inv.server, config.as_ref()).await?;
        // mongod says so when it made the config itself, and names the member it used.
        if config.is_none() {
            reply.insert(
                "info2",
                "no configuration specified. Using a default configuration for the set",
            );
            reply.insert("me", inv.server.host_and_port());
        }
        Ok(reply)
    })
}
