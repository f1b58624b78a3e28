//! The registry of in-flight commands behind `currentOp` and `killOp`.

use bson::{doc, Document};
use parking_lot::Mutex;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::client::Client;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct OpInfo {
    pub opid: u32,
    /// The connection; its id, address and application name are read only when
    /// currentOp asks, so registering an operation copies none of them.
    pub client: Arc<Client>,
    /// The request itself (handlers borrow it from here), possibly without the generic
    /// arguments the wire layer leaves out; [`OpInfo::full_command`] has them all. Its
    /// `$db` is the namespace currentOp shows (`<db>.$cmd`).
    pub command: Document,
    /// The raw request body when `command` leaves arguments out.
    pub raw_body: Option<Vec<u8>>,
    /// Fields currentOp shows as "xxx".
    pub redacted_fields: &'static [&'static str],
    pub started: Instant,
    /// killOp's request to stop, and the token an async handler waits on; created only
    /// when one is needed, as most commands finish without either.
    cancel: Mutex<Cancel>,
}

#[derive(Debug, Default)]
struct Cancel {
    requested: bool,
    token: Option<CancellationToken>,
}

/// Shards of the registry: each connection's operations go to one, so that requests on
/// different threads do not take (and bounce between cores) one lock twice each.
const SHARDS: usize = 16;

/// One shard, on a cache line of its own. A vector, not a map: it holds the few
/// operations of its connections and keeps its capacity when they end, so registering
/// allocates nothing (a tree allocated and freed a node per request on an idle shard).
#[derive(Debug, Default)]
#[repr(align(64))]
struct Shard(Mutex<Vec<Arc<OpInfo>>>);

#[derive(Debug, Default)]
pub struct OpRegistry {
    next: AtomicU32,
    shards: [Shard; SHARDS],
}

/// Removes its operation from the registry when dropped.
pub struct OpGuard<'a> {
    registry: &'a OpRegistry,
    pub info: Arc<OpInfo>,
}

impl Drop for OpGuard<'_> {
    fn drop(&mut self) {
        self.registry
            .shard(&self.info.client)
            .lock()
            .retain(|op| op.opid != self.info.opid);
    }
}

impl OpRegistry {
    fn shard(&self, client: &Client) -> &Mutex<Vec<Arc<OpInfo>>> {
        &self.shards[client.id as usize % SHARDS].0
    }

    pub fn register(
        &self,
        client: &Arc<Client>,
        command: Document,
        raw_body: Option<Vec<u8>>,
        redacted_fields: &'static [&'static str],
    ) -> OpGuard<'_> {
        let opid = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let info = Arc::new(OpInfo {
            opid,
            client: client.clone(),
            command,
            raw_body,
            redacted_fields,
            started: Instant::now(),
            cancel: Mutex::new(Cancel::default()),
        });
        self.shard(client).lock().push(info.clone());
        OpGuard {
            registry: self,
            info,
        }
    }

    /// Asks an operation to stop; true if it was running.
    pub fn kill(&self, opid: u32) -> bool {
        let op = self
            .shards
            .iter()
            .find_map(|shard| shard.0.lock().iter().find(|op| op.opid == opid).cloned());
        match op {
            Some(op) => {
                op.request_cancel();
                true
            }
            None => false,
        }
    }

    /// Asks the operations `matches` picks to stop (killSessions); returns how many.
    pub fn kill_matching(&self, matches: impl Fn(&OpInfo) -> bool) -> usize {
        let mut count = 0;
        for shard in &self.shards {
            for op in shard.0.lock().iter().filter(|op| matches(op)) {
                op.request_cancel();
                count += 1;
            }
        }
        count
    }

    /// Interrupts every operation (shutdown after its grace period); returns how many.
    pub fn kill_all(&self) -> usize {
        let mut count = 0;
        for shard in &self.shards {
            let ops = shard.0.lock();
            for op in ops.iter() {
                op.request_cancel();
            }
            count += ops.len();
        }
        count
    }

    /// currentOp's `inprog` entries, in opid order.
    pub fn in_progress(&self) -> Vec<Document> {
        let mut ops: Vec<Arc<OpInfo>> = Vec::new();
        for shard in &self.shards {
            ops.extend(shard.0.lock().iter().cloned());
        }
        ops.sort_by_key(|op| op.opid);
        ops.iter()
            .map(|op| {
                let elapsed = op.started.elapsed();
                let conn_id = op.client.id;
                let full = op.full_command();
                let db = full.get_str("$db").unwrap_or_default();
                let mut entry = doc! {
                    "type": "op",
                    "active": true,
                    "opid": op.opid as i32,
                    "connectionId": conn_id as i64,
                    "client": op.client.remote.to_string(),
                    "desc": format!("conn{conn_id}"),
                    "op": "command",
                    "ns": format!("{db}.$cmd"),
                    "command": redacted(&full, op.redacted_fields),
                    "currentOpTime": bson::DateTime::now(),
                    "secs_running": elapsed.as_secs() as i64,
                    "microsecs_running": elapsed.as_micros() as i64,
                    "killPending": op.cancel_requested(),
                };
                if let Some(app) = op.client.app_name() {
                    entry.insert("appName", app);
                }
                // As in mongod, the comment shows inside `command`, not beside it.
                entry
            })
            .collect()
    }
}

impl OpInfo {
    /// The token that is cancelled when killOp (or shutdown) stops this operation;
    /// already cancelled if that happened before the first call.
    pub fn cancellation(&self) -> CancellationToken {
        let mut cancel = self.cancel.lock();
        let requested = cancel.requested;
        let token = cancel.token.get_or_insert_with(CancellationToken::new);
        if requested {
            token.cancel();
        }
        token.clone()
    }

    fn request_cancel(&self) {
        let mut cancel = self.cancel.lock();
        cancel.requested = true;
        if let Some(token) = &cancel.token {
            token.cancel();
        }
    }

    pub fn cancel_requested(&self) -> bool {
        self.cancel.lock().requested
    }

    /// The request as the client sent it, every argument in place.
    pub fn full_command(&self) -> Cow<'_, Document> {
        crate::wire::full_command(&self.command, self.raw_body.as_deref())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_reaches_a_token_made_before_or_after_it() {
        let registry = OpRegistry::default();
        let addr = "127.0.0.1:1".parse().unwrap();
        let client = Arc::new(Client::new(1, addr, addr));
        let early = registry.register(&client, Document::new(), None, &[]);
        let late = registry.register(&client, Document::new(), None, &[]);
        let token = early.info.cancellation();
        assert!(!token.is_cancelled() && !early.info.cancel_requested());
        assert!(registry.kill(early.info.opid) && registry.kill(late.info.opid));
        assert!(token.is_cancelled() && early.info.cancel_requested());
        assert!(late.info.cancellation().is_cancelled());
        let opid = late.info.opid;
        drop(late);
        assert!(!registry.kill(opid));
    }

    #[test]
    fn operations_of_every_connection_are_listed_in_opid_order_and_can_be_killed() {
        let registry = OpRegistry::default();
        let addr = "127.0.0.1:1".parse().unwrap();
        let clients: Vec<Arc<Client>> = (1..=3)
            .map(|id| Arc::new(Client::new(id, addr, addr)))
            .collect();
        let command = || bson::doc! {"ping": 1, "$db": "admin"};
        let guards: Vec<_> = [2, 0, 1, 2]
            .iter()
            .map(|&i| registry.register(&clients[i], command(), None, &[]))
            .collect();
        let listed: Vec<i32> = registry
            .in_progress()
            .iter()
            .map(|op| op.get_i32("opid").unwrap())
            .collect();
        assert_eq!(listed, [1, 2, 3, 4]);
        let conns: Vec<i64> = registry
            .in_progress()
            .iter()
            .map(|op| op.get_i64("connectionId").unwrap())
            .collect();
        assert_eq!(conns, [3, 1, 2, 3]);
        assert!(registry.kill(guards[1].info.opid));
        assert!(guards[1].info.cancel_requested());
        assert_eq!(registry.kill_all(), 4);
        drop(guards);
        assert!(registry.in_progress().is_empty());
        assert!(!registry.kill(1));
    }
}
