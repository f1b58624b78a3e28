//! setParameter: change runtime-settable server parameters; replies with the old value.

use super::{cluster, is_generic_argument, Command, Handler, Invocation};
use crate::error::{Code, CommandError, CommandResult};
use crate::params;
use bson::{doc, Bson, Document};

pub const SET_PARAMETER: Command = Command {
    admin_only: true,
    privileges: &[cluster("setParameter")],
    ..Command::new(
        "setParameter",
        "set administrative option(s)\n{ setParameter:1, <param>:<value> }\n",
        Handler::Sync(set_parameter),
    )
};

fn set_parameter(inv: &Invocation, cmd: &Document) -> CommandResult {
    let updates: Vec<(String, Bson)> = cmd
        .iter()
        .skip(1)
        .filter(|(name, _)| !is_generic_argument(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    if updates.is_empty() {
        return Err(CommandError::new(
            Code::InvalidOptions,
            "no option found to set, use help:true to see options ",
        ));
    }
    let previous = inv.server.params.set_many(&updates, false)?;
    apply(&inv.server);
    Ok(doc! {"was": previous.into_iter().next().unwrap_or(Bson::Null)})
}

/// Pushes parameters that steer other components (the log, the pools) to them.
pub fn apply(server: &crate::state::ServerState) {
    server
        .log
        .set_verbosity(server.params.get_i64(params::LOG_LEVEL) as i32);
    if let Some(tree) = server.params.get(params::LOG_COMPONENT_VERBOSITY) {
        server
            .log
            .set_component_levels(crate::log_components::effective(&tree));
    }
    if let Some(Bson::Boolean(quiet)) = server.params.get(params::QUIET) {
        server.log.set_quiet(quiet);
    }
    server.pools.apply_settings(&server.params);
    server
        .log
        .set_max_attribute_kb(server.params.get_i64(params::MAX_LOG_SIZE_KB) as u64);
    crate::wire::depth::set_max_bson_depth(server.params.get_i64(params::MAX_BSON_DEPTH) as u32);
    crate::repl::raft::set_entries_per_snapshot(
        server.params.get_i64(params::REPL_LOG_ENTRIES_PER_SNAPSHOT) as u64,
    );
}
