//! The TTL monitor: every `ttlMonitorSleepSecs` (mongod's default: 60), deletes the
//! documents whose indexed date (the earliest, for an array) is older than their TTL
//! index's `expireAfterSeconds`, through the normal write path: straight to the store on
//! a standalone, as one log entry on the primary of a set (secondaries delete nothing
//! themselves; they apply the primary's deletes).

use crate::repl::raft::ReplOp;
use crate::repl::MemberState;
use crate::state::ServerState;
use crate::storage::{DocWrite, Scan, Storage};
use bson::{doc, Bson, Document};
use std::sync::Arc;
use std::time::Duration;

/// Runs the monitor until shutdown.
pub async fn run(server: Arc<ServerState>) {
    loop {
        let secs = server
            .params
            .get_i64(crate::params::TTL_MONITOR_SLEEP_SECS)
            .max(1) as u64;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
            _ = server.shutdown.cancelled() => return,
        }
        if let Some(repl) = &server.repl {
            if repl.my_state(&*server) != MemberState::Primary {
                continue;
            }
        }
        let storage = server.storage().clone();
        let _guard = storage.lock_writes().await;
        let found = {
            let storage = storage.clone();
            crate::blocking::io(move || expired(&storage)).await
        };
        let writes = match found {
            Ok(w) if !w.is_empty() => w,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(target: "INDEX", id = 22537, error = %e, "Error processing ttl index");
                continue;
            }
        };
        let n = writes.len();
        let result = match &server.repl {
            None => {
                let storage = storage.clone();
                crate::blocking::io(move || storage.commit(&writes, true))
                    .await
                    .map_err(|e| e.to_string())
            }
            Some(repl) => match repl.propose(&*server, ReplOp::Documents(writes)).await {
                Ok((outcome, _)) => match outcome.error {
                    Some(e) => Err(e.to_string()),
                    None => Ok(()),
                },
                Err(e) => Err(e.message),
            },
        };
        match result {
            Ok(()) => {
                tracing::info!(target: "INDEX", id = 5479200, numDeleted = n, "Deleted expired documents using index")
            }
            Err(e) => {
                tracing::warn!(target: "INDEX", id = 22537, error = %e, "Error processing ttl index")
            }
        }
    }
}

/// The earliest date of a value (an array's earliest date element).
fn earliest(v: &Bson) -> Option<bson::DateTime> {
    match v {
        Bson::DateTime(d) => Some(*d),
        Bson::Array(items) => items
            .iter()
            .filter_map(|i| match i {
                Bson::DateTime(d) => Some(*d),
                _ => None,
            })
            .min(),
        _ => None,
    }
}

/// The deletes of every expired document, over every TTL index.
fn expired(storage: &Storage) -> Result<Vec<DocWrite>, crate::catalog::CatalogError> {
    let now = bson::DateTime::now().timestamp_millis();
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for info in storage.collections()? {
        for spec in crate::storage::index::secondary(&info.indexes)? {
            let (Some(secs), [(path, _)]) = (spec.expire_after_seconds, spec.fields.as_slice())
            else {
                continue;
            };
            let cutoff = now.saturating_sub(secs.saturating_mul(1000));
            let scanned = storage.scan(&info, None, |doc: Document| {
                let value = crate::query::path::get_simple(&doc, path);
                if let Some(date) = value.and_then(earliest) {
                    if date.timestamp_millis() <= cutoff {
                        let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
                        if seen.insert((info.ns.clone(), crate::storage::record_key(&id))) {
                            out.push(DocWrite::Delete {
                                ns: info.ns.clone(),
                                id: doc! {"_id": id},
                            });
                        }
                    }
                }
                Ok(Scan::Continue)
            });
            if let Err(crate::storage::ScanError::Storage(e)) = scanned {
                return Err(e);
            }
        }
    }
    Ok(out)
}
