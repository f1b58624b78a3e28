//! The Raft RPCs members send each other (vote, append entries, snapshot), carried as
//! internal OP_MSG commands.

use super::{cluster, BoxFuture, Command, Handler, Invocation};
use crate::repl::no_replication;
use crate::repl::raft::{APPEND_COMMAND, SNAPSHOT_COMMAND, VOTE_COMMAND};
use bson::Document;

/// Members authenticate as __system, which holds the `internal` action.
const INTERNAL: &[super::Privilege] = &[cluster("internal")];

const fn internal(name: &'static str, handler: fn(Invocation, Document) -> BoxFuture) -> Command {
    Command {
        admin_only: true,
        privileges: INTERNAL,
        ..Command::new(name, "", Handler::Async(handler))
    }
}

pub const RAFT_VOTE: Command = internal(VOTE_COMMAND, |inv, cmd| run(inv, cmd, VOTE_COMMAND));
pub const RAFT_APPEND: Command = internal(APPEND_COMMAND, |inv, cmd| run(inv, cmd, APPEND_COMMAND));
pub const RAFT_SNAPSHOT: Command =
    internal(SNAPSHOT_COMMAND, |inv, cmd| run(inv, cmd, SNAPSHOT_COMMAND));

fn run(inv: Invocation, cmd: Document, name: &'static str) -> BoxFuture {
    Box::pin(async move {
        let repl = inv.server.repl.clone().ok_or_else(no_replication)?;
        repl.handle_raft_rpc(name, &cmd).await
    })
}
