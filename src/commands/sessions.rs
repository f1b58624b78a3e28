//! Logical-session commands, over the in-memory registry of [`crate::sessions`]:
//! startSession, refreshSessions and endSessions; killSessions, killAllSessions and
//! killAllSessionsByPattern, which also close the cursors opened in the sessions they
//! kill. The arguments are arrays, as mongod's IDL requires. The cursor-session rule of
//! getMore (a cursor opened in a session is read in that session) is here too.

use super::{cluster, Command, Handler, Invocation};
use crate::error::{type_mismatch, Code, CommandError, CommandResult};
use crate::sessions::same_session;
use crate::storage::cursors::Cursor;
use bson::{doc, Bson, Document};

/// mongod's parse check: `{<name>: [<item>, ...]}`, each item a document.
fn session_list(name: &str, cmd: &Document) -> CommandResult<()> {
    items(name, cmd).map(|_| ())
}

fn items<'a>(name: &str, cmd: &'a Document) -> CommandResult<Vec<&'a Document>> {
    match cmd.get(name) {
        Some(Bson::Array(a)) => a
            .iter()
            .map(|i| match i {
                Bson::Document(d) => Ok(d),
                other => Err(type_mismatch(&format!("{name}.{name}"), other, "object")),
            })
            .collect(),
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
        Handler::Sync(end_sessions),
    )
};

pub const REFRESH_SESSIONS: Command = Command {
    api_version_1: true,
    validate: Some(|cmd| session_list("refreshSessions", cmd)),
    ..Command::new(
        "refreshSessions",
        "renew a set of logical sessions",
        Handler::Sync(refresh_sessions),
    )
};

pub const KILL_SESSIONS: Command = Command {
    validate: Some(|cmd| session_list("killSessions", cmd)),
    ..Command::new(
        "killSessions",
        "kill a logical session and its operations",
        Handler::Sync(kill_sessions),
    )
};

pub const KILL_ALL_SESSIONS: Command = Command {
    validate: Some(|cmd| session_list("killAllSessions", cmd)),
    privileges: &[cluster("killAnySession")],
    ..Command::new(
        "killAllSessions",
        "kill all logical sessions, for a user, and their operations",
        Handler::Sync(kill_all_sessions),
    )
};

pub const KILL_ALL_SESSIONS_BY_PATTERN: Command = Command {
    validate: Some(|cmd| session_list("killAllSessionsByPattern", cmd)),
    privileges: &[cluster("killAnySession")],
    ..Command::new(
        "killAllSessionsByPattern",
        "kill logical sessions by pattern",
        Handler::Sync(kill_all_sessions_by_pattern),
    )
};

pub const START_SESSION: Command = Command::new(
    "startSession",
    "start a logical session",
    Handler::Sync(start_session),
);

fn start_session(inv: &Invocation, _: &Document) -> CommandResult {
    let lsid = doc! {"id": bson::Binary::from_uuid(bson::Uuid::new())};
    inv.server.sessions.touch(&lsid);
    Ok(doc! {
        "id": lsid,
        "timeoutMinutes": crate::sessions::LOGICAL_SESSION_TIMEOUT_MINUTES,
    })
}

fn refresh_sessions(inv: &Invocation, cmd: &Document) -> CommandResult {
    for lsid in items("refreshSessions", cmd)? {
        inv.server.sessions.touch(lsid);
    }
    Ok(Document::new())
}

/// Ends the sessions `matches` picks and closes their cursors; `interrupt`: also stops
/// their running operations (the kill commands; not endSessions), except this one.
fn end(inv: &Invocation, interrupt: bool, matches: impl Fn(&Document) -> bool) {
    inv.server.sessions.end_matching(&matches);
    inv.server
        .cursors
        .kill_matching(|c| c.lsid.as_ref().is_some_and(&matches));
    if interrupt {
        inv.server.ops.kill_matching(|op| {
            op.opid != inv.op.opid
                && crate::sessions::lsid(&op.command, op.raw_body.as_deref())
                    .is_some_and(|l| matches(&l))
        });
    }
}

fn end_sessions(inv: &Invocation, cmd: &Document) -> CommandResult {
    let ended = items("endSessions", cmd)?;
    end(inv, false, |s| ended.iter().any(|e| same_session(e, s)));
    Ok(Document::new())
}

fn kill_sessions(inv: &Invocation, cmd: &Document) -> CommandResult {
    let killed = items("killSessions", cmd)?;
    // mongod: an empty list kills every session.
    end(inv, true, |s| {
        killed.is_empty() || killed.iter().any(|k| same_session(k, s))
    });
    Ok(Document::new())
}

/// `uid` of a session: SHA-256 of its user's name (`user@db`), as mongod derives it.
fn uid_of(user: &str) -> Bson {
    use sha2::Digest;
    Bson::Binary(bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes: sha2::Sha256::digest(user.as_bytes()).to_vec(),
    })
}

fn kill_all_sessions(inv: &Invocation, cmd: &Document) -> CommandResult {
    let users: Vec<String> = items("killAllSessions", cmd)?
        .iter()
        .map(|u| {
            format!(
                "{}@{}",
                u.get_str("user").unwrap_or(""),
                u.get_str("db").unwrap_or("")
            )
        })
        .collect();
    kill_cursors_and_sessions(inv, users.is_empty(), |c| {
        users.is_empty() || c.owner.as_ref().is_some_and(|o| users.contains(o))
    });
    Ok(Document::new())
}

fn kill_all_sessions_by_pattern(inv: &Invocation, cmd: &Document) -> CommandResult {
    let patterns = items("killAllSessionsByPattern", cmd)?;
    kill_cursors_and_sessions(inv, patterns.is_empty(), |c| {
        patterns.is_empty()
            || patterns
                .iter()
                .any(|p| match (p.get("lsid"), p.get("uid")) {
                    (Some(Bson::Document(l)), _) => {
                        c.lsid.as_ref().is_some_and(|s| same_session(l, s))
                    }
                    (None, Some(uid)) => uid_of(c.owner.as_deref().unwrap_or("")) == *uid,
                    _ => true,
                })
    });
    Ok(Document::new())
}

/// Closes the session cursors `matches` picks and ends their sessions; `everything`:
/// every session ends, with cursors or not.
fn kill_cursors_and_sessions(
    inv: &Invocation,
    everything: bool,
    matches: impl Fn(&Cursor) -> bool,
) {
    let mut sessions = Vec::new();
    inv.server.cursors.kill_matching(|c| {
        let hit = c.lsid.is_some() && matches(c);
        if hit {
            sessions.extend(c.lsid.clone());
        }
        hit
    });
    end(inv, true, |s| {
        everything || sessions.iter().any(|k| same_session(k, s))
    });
}

/// getMore's session rule (mongod's codes 50736, 50737, 50738).
pub fn check_cursor_session(
    id: i64,
    cursor: &Cursor,
    lsid: Option<&Document>,
) -> CommandResult<()> {
    let name = |l: &Document| match l.get("id") {
        Some(Bson::Binary(b)) => b
            .to_uuid()
            .map_or_else(|_| b.to_string(), |u| u.to_string()),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    match (&cursor.lsid, lsid) {
        (None, None) => Ok(()),
        (None, Some(mine)) => Err(CommandError::new(
            Code::Location50736,
            format!(
                "Cannot run getMore on cursor {id}, which was not created in a session, in session {}",
                name(mine)
            ),
        )),
        (Some(theirs), None) => Err(CommandError::new(
            Code::Location50737,
            format!(
                "Cannot run getMore on cursor {id}, which was created in session {}, without an lsid",
                name(theirs)
            ),
        )),
        (Some(theirs), Some(mine)) if !same_session(theirs, mine) => Err(CommandError::new(
            Code::Location50738,
            format!(
                "Cannot run getMore on cursor {id}, which was created in session {}, in session {}",
                name(theirs),
                name(mine)
            ),
        )),
        _ => Ok(()),
    }
}

/// Ends the sessions unused for `logicalSessionTimeoutMinutes` and closes their cursors.
pub fn reap(server: &crate::state::ServerState) {
    let expired = server.sessions.reap(crate::sessions::TIMEOUT);
    if !expired.is_empty() {
        server.cursors.kill_matching(|c| {
            c.lsid
                .as_ref()
                .is_some_and(|l| expired.iter().any(|e| same_session(e, l)))
        });
    }
}
