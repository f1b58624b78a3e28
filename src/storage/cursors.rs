//! Open cursors: what a find (or listCollections) has yet to return, by cursor id, for
//! getMore and killCursors. A cursor idle longer than `cursorTimeoutMillis` is closed
//! unless it was opened with `noCursorTimeout`.

use bson::Document;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub struct Cursor {
    /// `db.collection` (what the replies' `ns` shows).
    pub ns: String,
    /// What is left to return, in order.
    pub docs: VecDeque<Document>,
    /// Opened with `noCursorTimeout`: never closed for idleness.
    pub no_timeout: bool,
    /// The user that opened it (getMore by another user is refused).
    pub owner: Option<String>,
    /// A tailable cursor's state (the command layer's): set, the cursor stays open when
    /// it has nothing left and getMore reads what was added since.
    pub tail: Option<Box<dyn std::any::Any + Send>>,
    /// The session it was opened in (getMore must come in the same one; it closes with
    /// its session).
    pub lsid: Option<Document>,
    last_used: Instant,
}

impl Cursor {
    pub fn new(
        ns: String,
        docs: VecDeque<Document>,
        no_timeout: bool,
        owner: Option<String>,
    ) -> Cursor {
        Cursor {
            ns,
            docs,
            no_timeout,
            owner,
            tail: None,
            lsid: None,
            last_used: Instant::now(),
        }
    }

    /// The cursor, opened in the session `lsid`.
    pub fn in_session(mut self, lsid: Option<Document>) -> Cursor {
        self.lsid = lsid;
        self
    }
}

#[derive(Default)]
pub struct CursorRegistry {
    open: Mutex<HashMap<i64, Cursor>>,
}

impl CursorRegistry {
    /// Registers `cursor` and returns its id (positive, random, never 0).
    pub fn open(&self, cursor: Cursor) -> i64 {
        let mut open = self.open.lock();
        loop {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).expect("the OS random source");
            let id = (u64::from_le_bytes(bytes) >> 2) as i64;
            if id != 0 && !open.contains_key(&id) {
                open.insert(id, cursor);
                return id;
            }
        }
    }

    /// Takes the cursor out while a getMore reads it (so two getMores never share it).
    pub fn check_out(&self, id: i64) -> Option<Cursor> {
        self.open.lock().remove(&id)
    }

    /// Puts a cursor back after a getMore that left documents in it.
    pub fn check_in(&self, id: i64, mut cursor: Cursor) {
        cursor.last_used = Instant::now();
        self.open.lock().insert(id, cursor);
    }

    /// Closes a cursor; whether it was open.
    pub fn kill(&self, id: i64) -> bool {
        self.open.lock().remove(&id).is_some()
    }

    /// Closes the cursors `matches` picks; their ids.
    pub fn kill_matching(&self, mut matches: impl FnMut(&Cursor) -> bool) -> Vec<i64> {
        let mut open = self.open.lock();
        let ids: Vec<i64> = open
            .iter()
            .filter(|(_, c)| matches(c))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            open.remove(id);
        }
        ids
    }

    /// The namespace of an open cursor.
    pub fn ns_of(&self, id: i64) -> Option<String> {
        self.open.lock().get(&id).map(|c| c.ns.clone())
    }

    /// Closes cursors idle longer than `timeout`; how many.
    pub fn reap(&self, timeout: Duration) -> usize {
        let mut open = self.open.lock();
        let before = open.len();
        open.retain(|_, c| c.no_timeout || c.last_used.elapsed() <= timeout);
        before - open.len()
    }

    pub fn len(&self) -> usize {
        self.open.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
