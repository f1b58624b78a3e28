//! Logical-session commands. ferrod keeps no session state, so these accept their
//! arguments and succeed, as drivers expect (endSessions is sent on every client close).

use super::{Command, Handler};
use bson::doc;

pub const END_SESSIONS: Command = Command::new(
    "endSessions",
    "end a set of logical sessions",
    Handler::Sync(|_, _| Ok(bson::Document::new())),
);

pub const REFRESH_SESSIONS: Command = Command::new(
    "refreshSessions",
    "renew a set of logical sessions",
    Handler::Sync(|_, _| Ok(bson::Document::new())),
);

pub const KILL_SESSIONS: Command = Command::new(
    "killSessions",
    "kill a logical session and its operations",
    Handler::Sync(|_, _| Ok(bson::Document::new())),
);

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
