//! Logical sessions in memory (mongod's LogicalSessionCache): the sessions this server
//! has seen, by id, with their last use. Sessions expire after
//! `logicalSessionTimeoutMinutes` (30) without use, and the cursors opened in a session
//! close with it (ended, killed or expired). What must survive a restart or a failover,
//! a session's retryable-write record, lives in the store (`storage::sessions`).

use bson::{Bson, Document};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// hello's `logicalSessionTimeoutMinutes` (mongod's default).
pub const LOGICAL_SESSION_TIMEOUT_MINUTES: i32 = 30;

/// How long a session lives without use.
pub const TIMEOUT: Duration = Duration::from_secs(LOGICAL_SESSION_TIMEOUT_MINUTES as u64 * 60);

/// The request's `lsid`: the wire layer leaves it out of the command document it builds
/// and keeps the raw body (`raw_body`), from which only this field is decoded.
pub fn lsid(command: &Document, raw_body: Option<&[u8]>) -> Option<Document> {
    if let Some(Bson::Document(d)) = command.get("lsid") {
        return Some(d.clone());
    }
    let raw = bson::RawDocument::from_bytes(raw_body?).ok()?;
    match raw.get("lsid").ok()?? {
        bson::RawBsonRef::Document(d) => d.to_owned().to_document().ok(),
        _ => None,
    }
}

/// Whether two session ids name the same session (`id`, and `uid` when both have one).
pub fn same_session(a: &Document, b: &Document) -> bool {
    a.get("id") == b.get("id")
        && match (a.get("uid"), b.get("uid")) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

struct Active {
    lsid: Document,
    last_use: Instant,
    last_use_wall: bson::DateTime,
}

#[derive(Default)]
pub struct SessionRegistry {
    active: Mutex<HashMap<Vec<u8>, Active>>,
}

fn key(lsid: &Document) -> Vec<u8> {
    crate::storage::sessions::session_key(lsid)
}

impl SessionRegistry {
    /// Notes a use of `lsid` (starting it if new).
    pub fn touch(&self, lsid: &Document) {
        let mut active = self.active.lock();
        let entry = active.entry(key(lsid)).or_insert_with(|| Active {
            lsid: lsid.clone(),
            last_use: Instant::now(),
            last_use_wall: bson::DateTime::now(),
        });
        entry.last_use = Instant::now();
        entry.last_use_wall = bson::DateTime::now();
    }

    /// [`Self::touch`] for an `lsid` as the request carries it: a known session is found by
    /// the bytes of `{id[, uid]}` (its key's encoding) without decoding or allocating.
    pub fn touch_raw(&self, lsid: &bson::RawDocument) {
        if let Some(entry) = self.active.lock().get_mut(lsid.as_bytes()) {
            entry.last_use = Instant::now();
            entry.last_use_wall = bson::DateTime::now();
            return;
        }
        if let Ok(lsid) = bson::Document::try_from(lsid) {
            self.touch(&lsid);
        }
    }

    /// Forgets `lsid`; whether it was active.
    pub fn end(&self, lsid: &Document) -> bool {
        self.active.lock().remove(&key(lsid)).is_some()
    }

    /// Forgets every session matching `matches`; the ones forgotten.
    pub fn end_matching(&self, matches: impl Fn(&Document) -> bool) -> Vec<Document> {
        let mut active = self.active.lock();
        let mut ended = Vec::new();
        active.retain(|_, a| {
            let keep = !matches(&a.lsid);
            if !keep {
                ended.push(a.lsid.clone());
            }
            keep
        });
        ended
    }

    /// Forgets sessions unused for longer than `timeout`; the ones forgotten.
    pub fn reap(&self, timeout: Duration) -> Vec<Document> {
        let mut active = self.active.lock();
        let mut expired = Vec::new();
        active.retain(|_, a| {
            let keep = a.last_use.elapsed() <= timeout;
            if !keep {
                expired.push(a.lsid.clone());
            }
            keep
        });
        expired
    }

    /// The active sessions and their last use.
    pub fn list(&self) -> Vec<(Document, bson::DateTime)> {
        self.active
            .lock()
            .values()
            .map(|a| (a.lsid.clone(), a.last_use_wall))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.active.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
