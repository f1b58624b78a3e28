//! The registry of in-flight commands behind `currentOp` and `killOp`.

use bson::{doc, Document};
use parking_lot::Mutex;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct OpInfo {
    pub opid: u32,
    pub conn_id: u64,
    /// The client's address, formatted only when currentOp asks.
    pub client: std::net::SocketAddr,
    pub app_name: Option<String>,
    /// The request's `$db`; currentOp shows the namespace `<db>.$cmd`.
    pub db: String,
    /// The request itself (handlers borrow it from here), possibly without the generic
    /// arguments the wire layer leaves out; [`OpInfo::full_command`] has them all.
    pub command: Document,
    /// The raw request body when `command` leaves arguments out.
    pub raw_body: Option<Vec<u8>>,
    /// Fields currentOp shows as "xxx".
    pub redacted_fields: &'static [&'static str],
    pub started: Instant,
    pub started_wall: bson::DateTime,
    pub cancel: CancellationToken,
}

#[derive(Debug, Default)]
pub struct OpRegistry {
    next: AtomicU32,
    ops: Mutex<BTreeMap<u32, Arc<OpInfo>>>,
}

/// Removes its operation from the registry when dropped.
pub struct OpGuard<'a> {
    registry: &'a OpRegistry,
    pub info: Arc<OpInfo>,
}

impl Drop for OpGuard<'_> {
    fn drop(&mut self) {
        self.registry.ops.lock().remove(&self.info.opid);
    }
}

impl OpRegistry {
    pub fn register(
        &self,
        client: &crate::state::Client,
        db: String,
        command: Document,
        raw_body: Option<Vec<u8>>,
        redacted_fields: &'static [&'static str],
    ) -> OpGuard<'_> {
        let opid = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let info = Arc::new(OpInfo {
            opid,
            conn_id: client.id,
            client: client.remote,
            app_name: client.app_name(),
            db,
            command,
            raw_body,
            redacted_fields,
            started: Instant::now(),
            started_wall: bson::DateTime::now(),
            cancel: CancellationToken::new(),
        });
        self.ops.lock().insert(opid, info.clone());
        OpGuard {
            registry: self,
            info,
        }
    }

    /// Asks an operation to stop; true if it was running.
    pub fn kill(&self, opid: u32) -> bool {
        match self.ops.lock().get(&opid) {
            Some(op) => {
                op.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Interrupts every operation (shutdown after its grace period); returns how many.
    pub fn kill_all(&self) -> usize {
        let ops = self.ops.lock();
        for op in ops.values() {
            op.cancel.cancel();
        }
        ops.len()
    }

    /// currentOp's `inprog` entries, in opid order.
    pub fn in_progress(&self) -> Vec<Document> {
        let ops: Vec<Arc<OpInfo>> = self.ops.lock().values().cloned().collect();
        ops.iter()
            .map(|op| {
                let elapsed = op.started.elapsed();
                let mut entry = doc! {
                    "type": "op",
                    "active": true,
                    "opid": op.opid as i32,
                    "connectionId": op.conn_id as i64,
                    "client": op.client.to_string(),
                    "desc": format!("conn{}", op.conn_id),
                    "op": "command",
                    "ns": format!("{}.$cmd", op.db),
                    "command": redacted(&op.full_command(), op.redacted_fields),
                    "currentOpTime": bson::DateTime::now(),
                    "secs_running": elapsed.as_secs() as i64,
                    "microsecs_running": elapsed.as_micros() as i64,
                    "killPending": op.cancel.is_cancelled(),
                };
                if let Some(app) = &op.app_name {
                    entry.insert("appName", app.clone());
                }
                // As in mongod, the comment shows inside `command`, not beside it.
                entry
            })
            .collect()
    }
}

impl OpInfo {
    /// The request as the client sent it, every argument in place.
    pub fn full_command(&self) -> Cow<'_, Document> {
        full_command(&self.command, self.raw_body.as_deref())
    }
}

/// `command` with the arguments the wire layer left out of it put back from `raw_body`,
/// in their places: the raw body decoded, then the document sequences `command` also
/// holds (they come after the body's fields, as when they were folded in).
pub fn full_command<'a>(command: &'a Document, raw_body: Option<&[u8]>) -> Cow<'a, Document> {
    let Some(Ok(mut full)) = raw_body.map(crate::wire::decode_document) else {
        return Cow::Borrowed(command);
    };
    for (key, value) in command {
        if !full.contains_key(key) {
            full.insert(key.clone(), value.clone());
        }
    }
    Cow::Owned(full)
}

/// A copy of `command` with each of `fields` that is present replaced by "xxx".
pub fn redacted(command: &Document, fields: &[&str]) -> Document {
    let mut shown = command.clone();
    for field in fields {
        if shown.contains_key(*field) {
            shown.insert(*field, "xxx");
        }
    }
    shown
}
