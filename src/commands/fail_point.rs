//! configureFailPoint and waitForFailPoint (test commands, as in mongod), and what the
//! `failCommand` fail point does to a command; the dispatcher decides where it applies.

use super::{BoxFuture, Command, Handler, Invocation};
use crate::client::Client;
use crate::error::{missing_field, type_mismatch, whole_number, Code, CommandError, CommandResult};
use crate::failpoint;
use bson::{doc, Bson, Document};
use std::sync::atomic::Ordering;
use std::time::Duration;

pub const CONFIGURE_FAIL_POINT: Command = Command {
    admin_only: true,
    test_only: true,
    // No login needed: the command exists only when enabled on the command line.
    allowed_before_auth: true,
    ..Command::new(
        "configureFailPoint",
        "modifies the settings of a fail point",
        Handler::Sync(configure),
    )
};

pub const WAIT_FOR_FAIL_POINT: Command = Command {
    admin_only: true,
    test_only: true,
    allowed_before_auth: true,
    validate: Some(validate_wait),
    ..Command::new(
        "waitForFailPoint",
        "wait for a fail point to be entered a certain number of times",
        Handler::Async(wait),
    )
};

fn configure(inv: &Invocation, cmd: &Document) -> CommandResult {
    let name = match cmd.iter().next() {
        Some((_, Bson::String(name))) => name.clone(),
        _ => String::new(),
    };
    let fp = inv
        .server
        .failpoints
        .find(&name)
        .ok_or_else(|| failpoint::not_found(&name))?;
    let (mode, data) = failpoint::parse_mode(cmd)?;
    let count = fp.set(mode, data);
    let described = Bson::Document(fp.describe()).into_relaxed_extjson();
    tracing::warn!(target: "CONTROL", id = 23829, failPointName = %name, failPoint = %described, "Set failpoint");
    // mongod's appendIntOrLL: an int while it fits.
    let count = i32::try_from(count).map_or(Bson::Int64(count), Bson::Int32);
    Ok(doc! {"count": count})
}

fn times_entered(cmd: &Document) -> CommandResult<i64> {
    let value = cmd
        .get("timesEntered")
        .ok_or_else(|| missing_field("waitForFailPoint.timesEntered"))?;
    whole_number(value).ok_or_else(|| type_mismatch("waitForFailPoint.timesEntered", value, "long"))
}

/// Both fields are required (mongod's IDL); the dispatcher applies maxTimeMS.
fn validate_wait(cmd: &Document) -> CommandResult<()> {
    times_entered(cmd)?;
    if !cmd.contains_key("maxTimeMS") {
        return Err(missing_field("waitForFailPoint.maxTimeMS"));
    }
    Ok(())
}

fn wait(inv: Invocation, cmd: Document) -> BoxFuture {
    Box::pin(async move {
        let target = times_entered(&cmd)?;
        let name = cmd.get_str("waitForFailPoint").unwrap_or_default();
        let fp = inv
            .server
            .failpoints
            .find(name)
            .ok_or_else(|| failpoint::not_found(name))?;
        fp.wait_for_times_entered(target).await;
        Ok(Document::new())
    })
}

/// A boolean option as mongod's bsonExtractBooleanField reads it (numbers too).
fn flag(data: &Document, field: &str) -> bool {
    match data.get(field) {
        Some(Bson::Boolean(b)) => *b,
        Some(Bson::Int32(n)) => *n != 0,
        Some(Bson::Int64(n)) => *n != 0,
        Some(Bson::Double(d)) => *d != 0.0,
        _ => false,
    }
}

fn error_code(data: &Document) -> Option<i64> {
    data.get("errorCode").and_then(whole_number)
}

/// Whether failCommand's `data` names this command on this connection (mongod's
/// shouldActivateFailCommandFailPoint): configureFailPoint is never affected, other
/// cluster members only with `failInternalCommands`.
fn names(data: &Document, client: &Client, command: &Command) -> bool {
    if command.name == CONFIGURE_FAIL_POINT.name {
        return false;
    }
    if let Some(thread) = data.get("threadName") {
        if thread.as_str() != Some(format!("conn{}", client.id).as_str()) {
            return false;
        }
    }
    if let Some(app) = data.get("appName") {
        let wanted = app.as_str().unwrap_or_default();
        if client.app_name().as_deref().unwrap_or_default() != wanted {
            return false;
        }
    }
    if client.internal.load(Ordering::Relaxed) && !flag(data, "failInternalCommands") {
        return false;
    }
    if data.contains_key("failAllCommands") {
        return true;
    }
    let Ok(listed) = data.get_array("failCommands") else {
        return false;
    };
    listed.iter().any(|c| {
        c.as_str()
            .is_some_and(|c| c == command.name || command.aliases.contains(&c))
    })
}

/// What an active failCommand leaves the command to do.
pub struct Effect {
    /// Error labels that replace the command's own on its error reply.
    pub error_labels: Option<Bson>,
}

/// Applies failCommand to a command about to run: closes the connection (an error with
/// code 50985, which the dispatcher turns into a hang-up), blocks for `blockTimeMS`, or
/// fails with `errorCode`, as the fail point's data says. `Ok(None)` when it does not
/// apply. The wait is interruptible: the dispatcher bounds it like the command itself.
pub fn evaluate(inv: &Invocation, command: &Command) -> Option<Document> {
    inv.server.failpoints.fail_command.evaluate(|data| {
        names(data, &inv.client, command)
            && (flag(data, "closeConnection")
                || flag(data, "blockConnection")
                || error_code(data).is_some())
    })
}

/// The block part of an evaluated failCommand (run under the dispatcher's bounds).
pub async fn block(inv: Invocation, command_name: &'static str, data: Document) -> CommandResult {
    if flag(&data, "blockConnection") {
        let ms = data
            .get("blockTimeMS")
            .and_then(whole_number)
            .ok_or_else(|| {
                CommandError::new(
                    Code::InvalidOptions,
                    "must specify 'blockTimeMS' when 'blockConnection' is true",
                )
            })?;
        if ms < 0 {
            return Err(CommandError::new(
                Code::InvalidOptions,
                "'blockTimeMS' must be non-negative",
            ));
        }
        let ctx = format!("conn{}", inv.client.id);
        tracing::info!(target: "COMMAND", id = 20432, ctx, command = command_name, blockTime = %format!("{ms} ms"),
            "Blocking command via 'failCommand' failpoint");
        tokio::time::sleep(Duration::from_millis(ms as u64)).await;
        tracing::info!(target: "COMMAND", id = 20433, ctx = format!("conn{}", inv.client.id), command = command_name,
            "Unblocking command via 'failCommand' failpoint");
    }
    Ok(Document::new())
}

const FAIL_MESSAGE: &str = "Failing command via 'failCommand' failpoint";

/// The error part of an evaluated failCommand, after any block: the connection closes,
/// or the command fails with the given code.
pub fn fail(inv: &Invocation, command_name: &str, data: &Document) -> CommandResult<Effect> {
    let ctx = format!("conn{}", inv.client.id);
    let labels = match data.get("errorLabels") {
        Some(labels @ Bson::Array(_)) => Some(labels.clone()),
        _ => None,
    };
    if flag(data, "closeConnection") {
        tracing::info!(target: "COMMAND", id = 20431, ctx, command = command_name,
            "Failing command via 'failCommand' failpoint: closing connection");
        return Err(CommandError::new(Code::Location50985, FAIL_MESSAGE));
    }
    let extra_info = match data.get("errorExtraInfo") {
        None => None,
        Some(Bson::Document(info)) => Some(info.clone()),
        Some(other) => return Err(type_mismatch("errorExtraInfo", other, "object")),
    };
    if let Some(code) = error_code(data) {
        tracing::info!(target: "COMMAND", id = 20435, ctx, command = command_name, errorCode = code,
            "Failing command via 'failCommand' failpoint: returning errorCode");
        let mut err = error_with_number(code, FAIL_MESSAGE);
        let mut extra = err.extra.take().unwrap_or_default();
        if let Some(info) = extra_info {
            extra.extend(info);
        }
        err.extra = Some(extra);
        return Err(with_labels(err, labels.as_ref()));
    }
    Ok(Effect {
        error_labels: labels,
    })
}

/// An error with any code number a test names; codes ferrod does not list get mongod's
/// name for an unknown code, `Location<n>`.
fn error_with_number(number: i64, message: &str) -> CommandError {
    let n = number as i32;
    match Code::from_number(n) {
        Some(code) => CommandError::new(code, message),
        None => CommandError {
            extra: Some(doc! {"code": n, "codeName": format!("Location{n}")}),
            ..CommandError::new(Code::UnknownError, message)
        },
    }
}

/// Replaces an error's labels with failCommand's `errorLabels` (mongod's override).
pub fn with_labels(mut err: CommandError, labels: Option<&Bson>) -> CommandError {
    let Some(labels) = labels else {
        return err;
    };
    let mut extra = err.extra.take().unwrap_or_default();
    if labels.as_array().is_some_and(|l| !l.is_empty()) {
        extra.insert("errorLabels", labels.clone());
    } else {
        extra.remove("errorLabels");
    }
    err.extra = Some(extra);
    err
}

/// failCommand's `writeConcernError` on the successful reply of a command that writes.
pub fn write_concern_error(inv: &Invocation, command: &Command, reply: &mut Document) {
    let fired = inv.server.failpoints.fail_command.evaluate(|data| {
        names(data, &inv.client, command) && data.contains_key("writeConcernError")
    });
    let Some(data) = fired else { return };
    if let Some(wce) = data.get("writeConcernError") {
        reply.insert("writeConcernError", wce.clone());
    }
    if let Some(Bson::Array(labels)) = data.get("errorLabels") {
        if !labels.is_empty() {
            reply.insert("errorLabels", labels.clone());
        }
    }
}

/// Records that a connection is another cluster member (hello's `internalClient`).
pub fn note_internal_client(
    client: &Client,
    command: &Command,
    has_internal_client: impl FnOnce() -> bool,
) {
    if command.name == "hello" && has_internal_client() {
        client.internal.store(true, Ordering::Relaxed);
    }
}
