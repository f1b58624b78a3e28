//! killOp: interrupt an operation by its opid.

use super::{cluster, Command, Handler, Invocation};
use crate::error::{type_mismatch, Code, CommandError, CommandResult};
use bson::{doc, Bson, Document};

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
        Some(Bson::Int32(n)) => *n as i64,
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(d)) if d.fract() == 0.0 => *d as i64,
        Some(other) => return Err(type_mismatch("op", other, "int")),
    };
    if let Ok(opid) = u32::try_from(opid) {
        inv.server.ops.kill(opid);
    }
    Ok(doc! {"info": "attempting to kill op"})
}
