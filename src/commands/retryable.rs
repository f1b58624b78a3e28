//! Retryable writes, as mongod 7.0 runs them: a write command that carries `lsid` and
//! `txnNumber` records, per statement it runs (`stmtId`: the statement's index in the
//! batch; findAndModify's is 0), the result a retry must answer. A retry with the same
//! `txnNumber` answers the recorded statements from the record without running them
//! again and runs the rest; an older `txnNumber` is refused (TransactionTooOld). The
//! record is a [`DocWrite::SessionTxn`] committed in the same batch as the write (see
//! `storage::sessions`), so it replicates and survives a failover with it.

use super::{Command, Invocation};
use crate::error::{Code, CommandError, CommandResult};
use crate::sessions::lsid;
use crate::state::ServerState;
use crate::storage::sessions::{self, SessionTxn};
use crate::storage::DocWrite;
use bson::{Bson, Document};

/// The commands mongod runs as retryable writes.
const RETRYABLE: &[&str] = &["insert", "update", "delete", "findAndModify"];

/// The dispatcher's handling of the session arguments: notes the session's use (as
/// mongod vivifies it), then checks them in mongod's order
/// (initializeOperationSessionInfo, then the command's own check).
pub fn check_session_args(
    server: &ServerState,
    command: &Command,
    body: &Document,
    raw_body: Option<&[u8]>,
) -> CommandResult<()> {
    let transaction = ["autocommit", "startTransaction"]
        .into_iter()
        .find(|f| body.contains_key(*f));
    let lsid = lsid(body, raw_body);
    if let Some(lsid) = &lsid {
        server.sessions.touch(lsid);
    }
    let Some(txn_number) = body.get("txnNumber") else {
        if let Some(field) = transaction {
            return Err(refuse_transaction(field));
        }
        return Ok(());
    };
    if lsid.is_none() {
        return Err(CommandError::new(
            Code::InvalidOptions,
            "Transaction number requires a session ID to also be specified",
        ));
    }
    if server.repl.is_none() {
        return Err(CommandError::new(
            Code::IllegalOperation,
            "Transaction numbers are only allowed on a replica set member or mongos",
        ));
    }
    let Some(n) = crate::error::whole_number(txn_number) else {
        return Err(crate::error::type_mismatch(
            "OperationSessionInfo.txnNumber",
            txn_number,
            "long",
        ));
    };
    if n < 0 {
        return Err(CommandError::new(
            Code::InvalidOptions,
            "Transaction number cannot be negative",
        ));
    }
    if let Some(field) = transaction {
        return Err(refuse_transaction(field));
    }
    if !RETRYABLE.contains(&command.name) {
        return Err(CommandError::new(
            Code::Location50768,
            format!(
                "txnNumber may only be provided for multi-document transactions and retryable write commands. autocommit:false was not provided, and {} is not a retryable write command.",
                command.name
            ),
        ));
    }
    Ok(())
}

/// Multi-document transactions come with a later version; until then they are refused
/// as a mongod that cannot run them refuses them (IllegalOperation).
fn refuse_transaction(field: &str) -> CommandError {
    CommandError::new(
        Code::IllegalOperation,
        format!(
            "multi-document transactions are not supported by ferrod yet ('{field}' given); retryable writes are"
        ),
    )
}

/// A write command's retryable-write state, taken under the store's write lock.
pub struct Retry(Option<State>);

struct State {
    lsid: Document,
    txn_number: i64,
    /// The session's record when it is of this `txnNumber` (a retry).
    record: Option<SessionTxn>,
    /// Statements run by this attempt, not yet added to a batch.
    ran: Document,
    retried: Vec<i32>,
}

impl Retry {
    /// Reads the session's record for a command with `txnNumber` (the dispatcher checked
    /// the arguments). Call it holding the write lock, so no other attempt of the same
    /// statements runs between this read and the commit.
    pub fn begin(inv: &Invocation, cmd: &Document) -> CommandResult<Retry> {
        let Some(n) = cmd.get("txnNumber").and_then(crate::error::whole_number) else {
            return Ok(Retry(None));
        };
        let Some(lsid) = lsid(cmd, inv.op.raw_body.as_deref()) else {
            return Ok(Retry(None));
        };
        let record = inv
            .server
            .storage()
            .session_txn(&lsid)
            .map_err(super::documents::storage_error)?;
        let record = match record {
            Some(r) if r.txn_number > n => {
                return Err(CommandError::new(
                    Code::TransactionTooOld,
                    format!(
                        "Retryable write with txnNumber {n} is prohibited on session {} because a newer retryable write with txnNumber {} has already started on this session.",
                        session_name(&lsid),
                        r.txn_number
                    ),
                ))
            }
            Some(r) if r.txn_number == n => Some(r),
            _ => None,
        };
        Ok(Retry(Some(State {
            lsid,
            txn_number: n,
            record,
            ran: Document::new(),
            retried: Vec::new(),
        })))
    }

    /// Refuses a statement that cannot be retried (update `multi: true`, delete
    /// `limit: 0`) in a retryable write: `what` names it as mongod does.
    pub fn check_retryable(&self, single: bool, what: &str) -> CommandResult<()> {
        if self.0.is_some() && !single {
            return Err(CommandError::new(
                Code::InvalidOptions,
                format!("Cannot use (or request) retryable writes with {what}"),
            ));
        }
        Ok(())
    }

    /// The recorded result of statement `stmt_id` when an earlier attempt ran it.
    pub fn executed(&mut self, stmt_id: usize) -> Option<Document> {
        let state = self.0.as_mut()?;
        let result = sessions::executed(state.record.as_ref()?, stmt_id as i32)?;
        state.retried.push(stmt_id as i32);
        Some(result)
    }

    /// Notes that statement `stmt_id` ran with `result` (recorded by [`Retry::record`]).
    pub fn ran(&mut self, stmt_id: usize, result: Document) {
        if let Some(state) = self.0.as_mut() {
            state.ran.insert(stmt_id.to_string(), result);
        }
    }

    /// Adds the record of the statements run since the last call to `writes` (the batch
    /// that commits them).
    pub fn record(&mut self, writes: &mut Vec<DocWrite>) {
        let Some(state) = self.0.as_mut() else {
            return;
        };
        if state.ran.is_empty() {
            return;
        }
        writes.push(DocWrite::SessionTxn {
            lsid: state.lsid.clone(),
            txn_number: state.txn_number,
            stmts: std::mem::take(&mut state.ran),
            last_write_millis: bson::DateTime::now().timestamp_millis(),
        });
    }

    /// Adds `retriedStmtIds` (mongod's reply field) when statements were answered from
    /// the record.
    pub fn finish(&self, reply: &mut Document) {
        if let Some(state) = &self.0 {
            if !state.retried.is_empty() {
                reply.insert("retriedStmtIds", state.retried.clone());
            }
        }
    }

    /// The statement ids answered from the record.
    pub fn retried(&self) -> &[i32] {
        self.0.as_ref().map_or(&[], |s| s.retried.as_slice())
    }
}

/// A session as messages name it: its id.
fn session_name(lsid: &Document) -> String {
    match lsid.get("id") {
        Some(Bson::Binary(b)) => match b.to_uuid() {
            Ok(u) => format!("{{ id: UUID(\"{u}\") }}"),
            Err(_) => format!("{{ id: {b} }}"),
        },
        Some(other) => format!("{{ id: {other} }}"),
        None => "{}".to_owned(),
    }
}
