//! Logical-session commands. ferrod keeps no session state, so these accept their
//! arguments and succeed, as drivers expect (endSessions is sent on every client close).
//! The argument must be an array of session ids, as mongod's IDL requires.

use super::{Command, Handler};
use crate::error::{type_mismatch, CommandResult};
use bson::{doc, Bson, Document};

/// mongod's parse check: `{<name>: [<lsid>, ...]}`.
fn session_list(name: &str, cmd: &Document) -> CommandResult<()> {
    match cmd.get(name) {
        Some(Bson::Array(_)) => Ok(()),
        Some(other) => Err(type_mismatch(&format!("{name}.{name}"), other, "array")),
        None => unreachable!("the command name is its first field"),
    }
}

pub const END_SESSIONS: Command = Command {
    api_version_1: true,
    validate: Some(|cmd| session_list("endSessions", cmd)),
    ..Command::new(
        "endSessions",
        "end a set of logical sessions",
        Handler::Sync(|_, _| Ok(Document::new())),
    )
};

pub const REFRESH_SESSIONS: Command = Command {
    api_version_1: true,
    validate: Some(|cmd| session_list("refreshSessions", cmd)),
    ..Command::new(
        "refreshSessions",
        "renew a set of logical sessions",
        Handler::Sync(|_, _| Ok(Document::new())),
    )
};

pub const KILL_SESSIONS: Command = Command {
    validate: Some(|cmd| session_list("killSessions", cmd)),
    ..Command::new(
        "killSessions",
        "kill a logical session and its operations",
        Handler::Sync(|_, _| Ok(Document::new())),
    )
};

pub const START_SESSION: Command = Command::new(
    "startSession",
    "start a logical session",
    Handler::Sync(|_, _| {
        Ok(doc! {
            "id": {"id": bson::Uuid::new()},
            "timeoutMinutes": super::hello::LOGICAL_SESSION_TIMEOUT_MINUTES,
        })
    }),
);
