//! replSetInitiate: mongosh's `rs.initiate(cfg)`; with no config, this node alone.

use super::{cluster, BoxFuture, Command, Handler, Invocation};
use crate::error::type_mismatch;
use crate::repl::no_replication;
use bson::{Bson, Document};

pub const REPL_SET_INITIATE: Command = Command {
    admin_only: true,
    privileges: &[cluster("replSetConfigure")],
    ..Command::new(
        "replSetInitiate",
        "Initiate/christen a replica set.\nhttp://dochub.mongodb.org/core/replicasetcommands",
        Handler::Async(run),
    )
};

fn run(inv: Invocation, cmd: Document) -> BoxFuture {
    Box::pin(async move {
        let repl = inv.server.repl.clone().ok_or_else(no_replication)?;
        let config = match cmd.get("replSetInitiate") {
            Some(Bson::Document(d)) => Some(d.clone()),
            // `rs.initiate()` sends `{replSetInitiate: {}}` or a non-object placeholder.
            Some(Bson::Null) | None => None,
            Some(other)
                if !matches!(other, Bson::Document(_)) && cmd.get("replSetInitiate").is_some() =>
            {
                if matches!(
                    other,
                    Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Boolean(_)
                ) {
                    None
                } else {
                    return Err(type_mismatch("replSetInitiate", other, "object"));
                }
            }
            Some(_) => None,
        };
        let config = config.filter(|d| !d.is_empty());
        repl.initiate(&inv.server, config.as_ref()).await
    })
}
