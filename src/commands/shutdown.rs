//! shutdown: the same graceful shutdown as SIGTERM.

use super::{cluster, Command, Handler};

pub const SHUTDOWN: Command = Command {
    admin_only: true,
    privileges: &[cluster("shutdown")],
    ..Command::new(
        "shutdown",
        "shutdown the database.  must be ran against admin db and either (1) ran from localhost or (2) authenticated.",
        Handler::Sync(|inv, _| {
            tracing::info!(target: "COMMAND", id = 4695400, ctx = format!("conn{}", inv.client.id), "Terminating via shutdown command");
            inv.server.shutdown.cancel();
            Ok(bson::Document::new())
        }),
    )
};
