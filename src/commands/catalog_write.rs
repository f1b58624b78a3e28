//! How the user- and role-management commands write. A handler works out a
//! [`CatalogChange`]; [`commit`] applies it: on a replica set through the replicated log,
//! waiting for the command's write concern; on a standalone straight to the catalog.
//!
//! Handlers that read before they write (grantRolesToUser reads the user's roles) are
//! made atomic by compare-on-write: they read the [`Catalog::version`] of what they rely
//! on first ([`expect`]), and their batch carries it as a [`Write::Expect`]. A batch
//! refused because something changed meanwhile is worked out again from fresh reads
//! ([`run`]), as mongod's user-management lock would have made it wait.

use super::write_concern::{self, WriteConcern, W};
use super::Invocation;
use crate::auth::users::storage_error;
use crate::catalog::{Catalog, CatalogError, Collection, Write};
use crate::error::{Code, CommandError, CommandResult};
use crate::repl::raft::ReplOp;
use crate::wire::depth;
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

    /// Puts preconditions (see [`expect`]) ahead of the writes.
    pub fn expecting(mut self, preconditions: Vec<Write>) -> CatalogChange {
        self.writes.splice(0..0, preconditions);
        self
    }

    pub fn with_reply(mut self, reply: Document) -> CatalogChange {
        self.reply = reply;
        self
    }
}

/// A precondition on the document `id` (on the whole collection with None) as it is now.
/// Call it before reading what the batch is worked out from.
pub fn expect(
    catalog: &dyn Catalog,
    collection: Collection,
    id: Option<&str>,
) -> CommandResult<Write> {
    Ok(Write::Expect {
        collection,
        id: id.map(str::to_owned),
        version: catalog.version(collection, id).map_err(storage_error)?,
    })
}

/// How many times a handler is worked out again after its reads went stale before the
/// command gives up with WriteConflict (only a flood of edits of the same documents
/// gets there: each round, one of the competing batches applies).
const MAX_ATTEMPTS: usize = 1000;

/// Runs a catalog-writing handler and commits its change, again from fresh reads while
/// what it read changes before its batch applies.
pub async fn run(
    inv: &Invocation,
    cmd: &Document,
    handler: fn(&Invocation, &Document) -> CommandResult<CatalogChange>,
) -> CommandResult {
    for _ in 0..MAX_ATTEMPTS {
        // Off the async workers: these handlers derive SCRAM credentials (PBKDF2, many
        // thousand hash rounds) and read the catalog. `cmd` is the registered command.
        let owned = inv.clone();
        let change = crate::blocking::cpu(move || handler(&owned, &owned.op.command)).await?;
        match commit(inv, cmd, change).await {
            Err(Refusal::Changed) => tokio::task::yield_now().await,
            Err(Refusal::Error(e)) => return Err(e),
            Ok(reply) => return Ok(reply),
        }
    }
    Err(CommandError::new(
        Code::WriteConflict,
        "the user and role documents kept changing; try again",
    ))
}

enum Refusal {
    /// A [`Write::Expect`] failed: work the change out again.
    Changed,
    Error(CommandError),
}

impl From<CommandError> for Refusal {
    fn from(e: CommandError) -> Refusal {
        Refusal::Error(e)
    }
}

/// The error for a batch the catalog refused.
fn refused(error: CatalogError, on_conflict: CommandError) -> Refusal {
    match error {
        CatalogError::Changed(_) => Refusal::Changed,
        CatalogError::Storage(_) | CatalogError::DuplicateKey(_) | CatalogError::Invalid(..) => {
            Refusal::Error(storage_error(error))
        }
        CatalogError::Duplicate(_) | CatalogError::NotFound(_) => Refusal::Error(on_conflict),
    }
}

/// Applies `change` and waits for the write concern of `cmd`.
async fn commit(
    inv: &Invocation,
    cmd: &Document,
    change: CatalogChange,
) -> Result<Document, Refusal> {
    let CatalogChange {
        writes,
        on_conflict,
        mut reply,
    } = change;
    check_storable(&writes)?;
    let server = &inv.server;
    if server.repl.is_none() {
        write_concern::parse(cmd, true)?;
        return match server.catalog().apply(writes) {
            Ok(()) => {
                server.clock.tick();
                Ok(reply)
            }
            Err(e) => Err(refused(e, on_conflict)),
        };
    }
    match replicate(inv, cmd, ReplOp::Catalog(writes)).await? {
        Replicated::Refused(error) => Err(refused(error, on_conflict)),
        Replicated::Applied(concern_error) => {
            if let Some(e) = concern_error {
                reply.insert("writeConcernError", e);
            }
            Ok(reply)
        }
    }
}

/// What proposing an entry gave.
pub(super) enum Replicated {
    /// Applied; with the `writeConcernError` when the wait for the write concern failed.
    Applied(Option<Document>),
    /// The state machine refused the entry (it changed nothing).
    Refused(CatalogError),
}

/// Proposes `op` on the primary and waits for the write concern of `cmd` (majority
/// unless it gives one). A failed wait (the primary stepped down) does not undo the
/// write: it is reported as a writeConcernError, as mongod reports it.
pub(super) async fn replicate(
    inv: &Invocation,
    cmd: &Document,
    op: ReplOp,
) -> CommandResult<Replicated> {
    let server = &inv.server;
    let repl = server
        .repl
        .as_ref()
        .ok_or_else(crate::repl::no_replication)?;
    let concern = write_concern::parse(cmd, false)?.unwrap_or_else(WriteConcern::majority_default);
    let members = repl.config().map(|c| c.members.len()).unwrap_or(0);
    let satisfiable = !matches!(concern.w, W::Nodes(n) if n as usize > members);
    let wait = async {
        let (outcome, index) = repl.propose(server, op).await?;
        // A refused batch changed nothing: there is nothing to wait for.
        if let Some(error) = outcome.error {
            return Ok::<_, CommandError>(Err(error));
        }
        let waited = match concern.w {
            W::Nodes(n) if satisfiable => repl.wait_replicated(server, index, n as usize).await,
            // Raft's commit already counts a majority, but of logs holding the entry:
            // mongod's majority is of members that have applied it.
            W::Majority => {
                repl.wait_replicated(server, index, repl.write_majority())
                    .await
            }
            _ => Ok(()),
        };
        Ok(Ok(waited.err()))
    };
    // w: 0 and 1 ignore wtimeout, as in mongod.
    let limit = concern
        .wtimeout
        .filter(|_| !matches!(concern.w, W::Nodes(0 | 1)));
    let waited = match limit {
        None => wait.await?,
        Some(limit) => match tokio::time::timeout(limit, wait).await {
            Ok(outcome) => outcome?,
            // The write goes on; only the wait for its acknowledgement ended.
            Err(_) => return Ok(Replicated::Applied(Some(concern.timeout_error()))),
        },
    };
    let concern_error = match waited {
        Err(refusal) => return Ok(Replicated::Refused(refusal)),
        Ok(Some(e)) => {
            Some(doc! {"code": e.code.number(), "codeName": e.code.name(), "errmsg": e.message})
        }
        Ok(None) if !satisfiable => Some(unsatisfiable(&concern)),
        Ok(None) => None,
    };
    Ok(Replicated::Applied(concern_error))
}

/// mongod's storage validation of nesting: no field of a stored document deeper than the
/// user-storage limit (`maxBSONDepth` less 20), checked before anything is written or
/// proposed.
fn check_storable(writes: &[Write]) -> CommandResult<()> {
    let limit = depth::max_depth_for_user_storage();
    if writes
        .iter()
        .filter_map(Write::doc)
        .any(|doc| depth::field_depth(doc) > limit)
    {
        return Err(CommandError::new(
            Code::Overflow,
            format!("Document exceeds maximum nesting depth of {limit}"),
        ));
    }
    Ok(())
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
