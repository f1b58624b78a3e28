//! getLog: recent log lines (`global`) and the startup warnings, from memory.

use super::{cluster, Command, Handler, Invocation};
use crate::error::{type_mismatch, Code, CommandError, CommandResult};
use bson::{doc, Bson, Document};

pub const GET_LOG: Command = Command {
    admin_only: true,
    privileges: &[cluster("getLog")],
    ..Command::new(
        "getLog",
        "{ getLog : '*' }  OR { getLog : 'global' }",
        Handler::Sync(get_log),
    )
};

fn get_log(inv: &Invocation, cmd: &Document) -> CommandResult {
    let which = match cmd.get("getLog") {
        Some(Bson::String(s)) => s.as_str(),
        Some(other) => return Err(type_mismatch("getLog", other, "string")),
        None => unreachable!("the command name is its first field"),
    };
    let lines = match which {
        "*" => return Ok(doc! {"names": ["global", "startupWarnings"]}),
        "global" => inv.server.log.global_lines(),
        "startupWarnings" => inv.server.log.startup_warnings(),
        other => {
            return Err(CommandError::new(
                Code::OperationFailed,
                format!("No log named '{other}'"),
            ))
        }
    };
    Ok(doc! {
        "totalLinesWritten": lines.len() as i32,
        "log": lines,
    })
}
