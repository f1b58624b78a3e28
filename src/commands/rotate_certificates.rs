//! rotateCertificates: re-reads the `net.tls` certificate, CA and CRL files. New
//! handshakes use the new material; connections already made keep theirs. Files that do
//! not load leave the old material in place and fail the command.

use super::{cluster, BoxFuture, Command, Handler, Invocation};
use crate::error::{type_name, Code, CommandError, CommandResult};
use bson::{Bson, Document};

pub const ROTATE_CERTIFICATES: Command = Command {
    admin_only: true,
    privileges: &[cluster("rotateCertificates")],
    ..Command::new(
        "rotateCertificates",
        "Rotate certificates for new SSL connections",
        Handler::Async(|inv, cmd| Box::pin(rotate(inv, cmd)) as BoxFuture),
    )
};

async fn rotate(inv: Invocation, cmd: Document) -> CommandResult {
    let message = match cmd.get("message") {
        None => String::new(),
        Some(Bson::String(s)) => s.clone(),
        Some(other) => {
            return Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                    "BSON field 'rotateCertificates.message' is the wrong type '{}', expected type 'string'",
                    type_name(other)
                ),
            ))
        }
    };
    // As mongod, a server without TLS has nothing to rotate and succeeds.
    if inv.server.config.tls.enabled() {
        let server = inv.server.clone();
        // Reading and parsing the files is file I/O: off the async workers.
        crate::blocking::io(move || server.tls.load(&server.config.tls))
            .await
            .map_err(|e| {
                tracing::warn!(target: "NETWORK", id = 4913401, ctx = format!("conn{}", inv.client.id),
                    error = %e, "Certificate rotation failed; the old certificates stay in use");
                CommandError::new(Code::InvalidSSLConfiguration, e)
            })?;
        tracing::info!(target: "NETWORK", id = 4913400, ctx = format!("conn{}", inv.client.id),
            "Successfully rotated X509 certificates.");
    }
    tracing::info!(target: "COMMAND", id = 4988500, ctx = format!("conn{}", inv.client.id),
        attr.message = %message, "Certificate rotation completed successfully");
    Ok(Document::new())
}
