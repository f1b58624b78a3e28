//! getParameter: one, several, or every (`'*'`) server parameter.

use super::{cluster, is_generic_argument, Command, Handler, Invocation};
use crate::error::{Code, CommandError, CommandResult};
use bson::{Bson, Document};

pub const GET_PARAMETER: Command = Command {
    admin_only: true,
    privileges: &[cluster("getParameter")],
    ..Command::new(
        "getParameter",
        "get administrative option(s)\nexample:\n{ getParameter:1, notablescan:1 }\npass a document as the value for getParameter to request options\nExample:\n{ getParameter:{showDetails: true}, notablescan:1 }\n{ getParameter:'*' } to get everything\n",
        Handler::Sync(get_parameter),
    )
};

fn get_parameter(inv: &Invocation, cmd: &Document) -> CommandResult {
    let all = inv.server.params.all();
    let everything = match cmd.get("getParameter") {
        Some(Bson::String(s)) => s == "*",
        Some(Bson::Document(opts)) => opts.get_bool("allParameters").unwrap_or(false),
        _ => false,
    };
    let mut reply = Document::new();
    if everything {
        reply = all;
    } else {
        for (name, _) in cmd.iter().skip(1) {
            if is_generic_argument(name) {
                continue;
            }
            if let Some(value) = all.get(name) {
                reply.insert(name.clone(), value.clone());
            }
        }
    }
    if reply.is_empty() {
        return Err(CommandError::new(
            Code::InvalidOptions,
            "no option found to get",
        ));
    }
    Ok(reply)
}
