//! killOp: interrupt an operation by its opid.

use super::{cluster, Command, Handler, Invocation};
use crate::error::{type_mismatch, whole_number, Code, CommandError, CommandResult};
use bson::{doc, Document};

pub const KILL_OP: Command = Command {
    admin_only: true,
    privileges: &[cluster("killop")],
    ..Command::new(
        "killOp",
        "Kill an operation by its opid",
        Handler::Sync(kill_op),
    )
};

fn kill_op(inv: &Invocation, cmd: &Document) -> CommandResult {
    let opid = match cmd.get("op") {
        None => {
            return Err(CommandError::new(
                Code::NoSuchKey,
                "Missing expected field \"op\"",
            ))
        }
        Some(value) => whole_number(value).ok_or_else(|| type_mismatch("op", value, "int"))?,
    };
    if let Ok(opid) = u32::try_from(opid) {
        inv.server.ops.kill(opid);
    }
    Ok(doc! {"info": "attempting to kill op"})
}
