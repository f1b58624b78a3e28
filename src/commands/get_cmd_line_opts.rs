//! getCmdLineOpts: the process's arguments and the options they set.

use super::{cluster, Command, Handler};

pub const GET_CMD_LINE_OPTS: Command = Command {
    admin_only: true,
    privileges: &[cluster("getCmdLineOpts")],
    ..Command::new(
        "getCmdLineOpts",
        "get argv",
        Handler::Sync(|inv, _| Ok(inv.server.config.cmd_line_opts())),
    )
};
