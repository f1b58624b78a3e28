//! logRotate: start a new log file, keeping the old one under a timestamped name.

use super::{cluster, Command, Handler};
use crate::error::{Code, CommandError};

pub const LOG_ROTATE: Command = Command {
    admin_only: true,
    privileges: &[cluster("logRotate")],
    ..Command::new(
        "logRotate",
        "rotate the log file",
        Handler::Sync(|inv, _| {
            let rotated = inv.server.log.rotate().map_err(|e| {
                CommandError::new(Code::OperationFailed, format!("log rotation failed: {e}"))
            })?;
            tracing::info!(target: "CONTROL", id = 23166, ctx = format!("conn{}", inv.client.id), rotated, "Log rotation initiated");
            Ok(bson::Document::new())
        }),
    )
};
