//! authenticate: MONGODB-X509 logins. The user is the `$external` user named by the
//! subject (RFC 2253) of the connection's verified TLS client certificate.

use super::{Command, Handler, Invocation};
use crate::auth::{users, Name};
use crate::error::{bad_value, type_mismatch, Code, CommandError, CommandResult};
use bson::{doc, Bson, Document};

pub const AUTHENTICATE: Command = Command {
    api_version_1: true,
    allowed_before_auth: true,
    ..Command::new("authenticate", "internal", Handler::Sync(authenticate))
};

const X509: &str = "MONGODB-X509";

fn string_arg<'a>(cmd: &'a Document, field: &str) -> CommandResult<Option<&'a str>> {
    match cmd.get(field) {
        None => Ok(None),
        Some(Bson::String(s)) => Ok(Some(s)),
        Some(other) => Err(type_mismatch(
            &format!("authenticate.{field}"),
            other,
            "string",
        )),
    }
}

fn authenticate(inv: &Invocation, cmd: &Document) -> CommandResult {
    let mechanism = string_arg(cmd, "mechanism")?.unwrap_or_default();
    if mechanism.is_empty() {
        return Err(bad_value("Auth mechanism not specified"));
    }
    if mechanism != X509 {
        return Err(bad_value(format!(
            "Unsupported mechanism '{mechanism}' on authenticate command"
        )));
    }
    if inv.db != "$external" {
        return Err(CommandError::new(
            Code::ProtocolError,
            "X.509 authentication must always use the $external database.",
        ));
    }
    if !inv.server.config.tls.enabled() {
        return Err(CommandError::new(
            Code::ProtocolError,
            "SSL support is required for the MONGODB-X509 mechanism.",
        ));
    }
    let requested = string_arg(cmd, "user")?.unwrap_or_default().to_owned();
    let client = &inv.client;
    let failed = |user: &str, reason: &str| {
        tracing::info!(target: "ACCESS", id = 20249, ctx = format!("conn{}", client.id),
            mechanism = X509, user = %user, db = "$external", error = %reason, result = 18,
            client = %client.remote, "Authentication failed");
        CommandError::new(Code::AuthenticationFailed, "Authentication failed.")
    };
    let Some(subject) = client.tls_subject.get() else {
        return Err(failed(
            &requested,
            "No verified subject name available from client",
        ));
    };
    if !requested.is_empty() && requested != *subject {
        return Err(failed(
            &requested,
            "There is no x.509 client certificate matching the user.",
        ));
    }
    let user = Name::new(subject.clone(), "$external");
    match users::get_user(inv.server.catalog().as_ref(), &user)? {
        Some(_) => {}
        None => {
            return Err(failed(
                subject,
                &format!("Could not find user \"{subject}\" for db \"$external\""),
            ))
        }
    }
    tracing::info!(target: "ACCESS", id = 5286306, ctx = format!("conn{}", client.id),
        client = %client.remote, isSpeculative = false, isClusterMember = false,
        mechanism = X509, user = %subject, db = "$external", result = 0,
        "Successfully authenticated");
    client.auth.lock().user = Some(user);
    Ok(doc! {"dbname": "$external", "user": subject.as_str()})
}
