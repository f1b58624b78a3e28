//! How the user- and role-management commands write. A handler works out a
//! [`CatalogChange`]; [`commit`] applies it: on a replica set through the replicated log,
//! waiting for the command's write concern; on a standalone straight to the catalog.

use super::write_concern::{self, WriteConcern, W};
use super::Invocation;
use crate::auth::users::storage_error;
use crate::catalog::{CatalogError, Write};
use crate::error::{Code, CommandError, CommandResult};
use crate::repl::raft::ReplOp;
use bson::{doc, Document};

/// One command's writes and what it answers.
pub struct CatalogChange {
    pub writes: Vec<Write>,
    /// The error when the catalog refuses the batch: an id that exists already, or a
    /// document that vanished meanwhile.
    pub on_conflict: CommandError,
    pub reply: Document,
}

impl CatalogChange {
    pub fn new(writes: Vec<Write>, on_conflict: CommandError) -> CatalogChange {
        CatalogChange {
            writes,
            on_conflict,
            reply: Document::new(),
        }
    }

    pub fn with_reply(mut self, reply: Document) -> CatalogChange {
        self.reply = reply;
        self
    }
}

/// The error for a batch the catalog refused.
fn refused(error: CatalogError, on_conflict: CommandError) -> CommandError {
    match error {
        CatalogError::Storage(_) => storage_error(error),
        _ => on_conflict,
    }
}

/// Applies `change` and waits for the write concern of `cmd`.
pub async fn commit(inv: &Invocation, cmd: &Document, change: CatalogChange) -> CommandResult {
    let CatalogChange {
        writes,
        on_conflict,
        mut reply,
    } = change;
    let server = &inv.server;
    let Some(repl) = &server.repl else {
        write_concern::parse(cmd, true)?;
        return match server.catalog().apply(writes) {
            Ok(()) => {
                server.clock.tick();
                Ok(reply)
            }
            Err(e) => Err(refused(e, on_conflict)),
        };
    };
    let concern = write_concern::parse(cmd, false)?.unwrap_or_else(WriteConcern::majority_default);
    let members = repl.config().map(|c| c.members.len()).unwrap_or(0);
    let satisfiable = !matches!(concern.w, W::Nodes(n) if n as usize > members);
    // A failed wait (the primary stepped down) does not undo the write: it is reported
    // as a writeConcernError, as mongod reports it.
    let wait = async {
        let (outcome, index) = repl.propose(server, ReplOp::Catalog(writes)).await?;
        let waited = match concern.w {
            W::Nodes(n) if satisfiable => repl.wait_replicated(server, index, n as usize).await,
            _ => Ok(()),
        };
        Ok::<_, CommandError>((outcome, waited.err()))
    };
    // w: 0 and 1 ignore wtimeout, as in mongod.
    let limit = concern
        .wtimeout
        .filter(|_| !matches!(concern.w, W::Nodes(0 | 1)));
    let outcome = match limit {
        None => wait.await?,
        Some(limit) => match tokio::time::timeout(limit, wait).await {
            Ok(outcome) => outcome?,
            // The write goes on; only the wait for its acknowledgement ended.
            Err(_) => {
                reply.insert("writeConcernError", concern.timeout_error());
                return Ok(reply);
            }
        },
    };
    let (outcome, concern_error) = outcome;
    if let Some(error) = outcome.error {
        return Err(refused(error, on_conflict));
    }
    if let Some(e) = concern_error {
        reply.insert(
            "writeConcernError",
            doc! {"code": e.code.number(), "codeName": e.code.name(), "errmsg": e.message},
        );
        return Ok(reply);
    }
    if !satisfiable {
        reply.insert("writeConcernError", unsatisfiable(&concern));
    }
    Ok(reply)
}

/// The `writeConcernError` for `w` above the number of members that can acknowledge.
fn unsatisfiable(concern: &WriteConcern) -> Document {
    doc! {
        "code": Code::UnsatisfiableWriteConcern.number(),
        "codeName": Code::UnsatisfiableWriteConcern.name(),
        "errmsg": "Not enough data-bearing nodes",
        "errInfo": {"writeConcern": concern.to_document()},
    }
}
