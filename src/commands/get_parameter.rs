//! getParameter: one, several, or every (`'*'`) server parameter.

use super::{cluster, is_generic_argument, Command, Handler, Invocation};
use crate::error::{Code, CommandError, CommandResult};
use crate::params::PARAMETERS;
use bson::{doc, Bson, Document};

pub const GET_PARAMETER: Command = Command {
    admin_only: true,
    privileges: &[cluster("getParameter")],
    ..Command::new(
        "getParameter",
        "get administrative option(s)\nexample:\n{ getParameter:1, notablescan:1 }\npass a document as the value for getParameter to request options\nExample:\n{ getParameter:{showDetails: true}, notablescan:1 }\n{ getParameter:'*' } to get everything\n",
        Handler::Sync(get_parameter),
    )
};

/// How the `getParameter` argument asks to be answered.
struct Options {
    all: bool,
    show_details: bool,
}

fn options(arg: Option<&Bson>) -> Options {
    match arg {
        Some(Bson::String(s)) => Options {
            all: s == "*",
            show_details: false,
        },
        Some(Bson::Document(opts)) => Options {
            all: opts.get_bool("allParameters").unwrap_or(false),
            show_details: opts.get_bool("showDetails").unwrap_or(false),
        },
        _ => Options {
            all: false,
            show_details: false,
        },
    }
}

/// `{value, settableAtRuntime, settableAtStartup}`, as mongod's `showDetails` gives.
fn detailed(name: &str, value: Bson) -> Bson {
    let spec = PARAMETERS.iter().find(|p| p.name == name);
    Bson::Document(doc! {
        "value": value,
        "settableAtRuntime": spec.is_some_and(|p| p.at_runtime),
        "settableAtStartup": spec.is_some_and(|p| p.at_startup),
    })
}

fn get_parameter(inv: &Invocation, cmd: &Document) -> CommandResult {
    let all = inv.server.params.all();
    let opts = options(cmd.get("getParameter"));
    let wanted = |name: &str| {
        opts.all || (cmd.contains_key(name) && name != "getParameter" && !is_generic_argument(name))
    };
    let mut reply = Document::new();
    for (name, value) in all {
        if wanted(&name) {
            let value = if opts.show_details {
                detailed(&name, value)
            } else {
                value
            };
            reply.insert(name, value);
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
