//! getLog: recent log lines (`global`) and the startup warnings, from memory.

use super::{cluster, Command, Handler, Invocation};
use crate::error::{type_name, Code, CommandError, CommandResult};
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
        Some(other) => {
            return Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                    "Argument to getLog must be of type String; found {} of type {}",
                    other,
                    type_name(other)
                ),
            ))
        }
        None => unreachable!("the command name is its first field"),
    };
    let log = &inv.server.log;
    let (lines, total) = match which {
        "*" => return Ok(doc! {"names": ["global", "startupWarnings"]}),
        "global" => (log.global_lines(), log.global_total()),
        "startupWarnings" => {
            let lines = log.startup_warnings();
            let total = lines.len() as u64;
            (lines, total)
        }
        // mongod answers this one without a code.
        other => return Ok(doc! {"ok": 0.0, "errmsg": format!("no RamLog named: {other}")}),
    };
    // mongod's appendNumber: an int while it fits.
    let total = i32::try_from(total)
        .map(Bson::Int32)
        .unwrap_or(Bson::Int64(total as i64));
    Ok(doc! {
        "totalLinesWritten": total,
        "log": lines,
    })
}
