//! shutdown: the same graceful shutdown as SIGTERM; the caller's connection closes
//! without a reply, as with mongod. `timeoutSecs` bounds how long
//! in-flight commands may still run (default: shutdownTimeoutMillisForSignaledShutdown).

use super::{cluster, Command, Handler, Invocation};
use crate::error::{type_mismatch, CommandResult};
use crate::params::SIGNALED_SHUTDOWN_TIMEOUT_MS;
use bson::{Bson, Document};
use std::time::Duration;

pub const SHUTDOWN: Command = Command {
    admin_only: true,
    // mongod never answers: the client expects the socket to close as the server exits.
    hangs_up: true,
    privileges: &[cluster("shutdown")],
    ..Command::new(
        "shutdown",
        "shutdown the database.  must be ran against admin db and either (1) ran from localhost or (2) authenticated.",
        Handler::Sync(shutdown),
    )
};

fn shutdown(inv: &Invocation, cmd: &Document) -> CommandResult {
    let force = match cmd.get("force") {
        None | Some(Bson::Null) => false,
        Some(Bson::Boolean(b)) => *b,
        Some(other) => return Err(type_mismatch("shutdown.force", other, "bool")),
    };
    let grace_ms = match cmd.get("timeoutSecs") {
        None | Some(Bson::Null) => inv.server.params.get_i64(SIGNALED_SHUTDOWN_TIMEOUT_MS),
        Some(Bson::Int32(n)) => *n as i64 * 1000,
        Some(Bson::Int64(n)) => n.saturating_mul(1000),
        Some(Bson::Double(d)) => (*d * 1000.0) as i64,
        Some(other) => return Err(type_mismatch("shutdown.timeoutSecs", other, "long")),
    }
    .max(0);
    tracing::info!(target: "COMMAND", id = 4695400, ctx = format!("conn{}", inv.client.id),
        force, timeoutMillis = grace_ms, "Terminating via shutdown command");
    let grace = Duration::from_millis(grace_ms as u64);
    tokio::spawn(inv.server.clone().shut_down(grace, force));
    Ok(Document::new())
}
