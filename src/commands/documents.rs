//! What the document commands share: namespaces from their arguments, the replica-set
//! checks for reads and writes, committing a batch of [`DocWrite`]s (straight to the
//! store on a standalone, through the replication log on a set), and cursor replies.

use super::catalog_write::{replicate, Replicated};
use super::doc_query::Filter;
use super::{write_concern, Invocation};
use crate::catalog::CatalogError;
use crate::error::{type_name, Code, CommandError, CommandResult};
use crate::repl::raft::ReplOp;
use crate::repl::MemberState;
use crate::storage::{CollectionInfo, DocWrite, Scan, ScanError, Storage};
use bson::{doc, Bson, Document};

/// mongod's maximum user document size (16 MB).
pub const MAX_DOCUMENT_SIZE: usize = 16 * 1024 * 1024;

/// The default first batch of find (mongod: 101 documents).
pub const DEFAULT_BATCH_SIZE: usize = 101;

/// The collection a command names in its first field, and its namespace `db.coll`.
pub fn namespace(inv: &Invocation, cmd: &Document) -> CommandResult<(String, String)> {
    let (_, value) = cmd.iter().next().expect("a command has a first field");
    let coll = match value {
        Bson::String(s) => s.clone(),
        other => {
            return Err(CommandError::new(
                Code::InvalidNamespace,
                format!("collection name has invalid type {}", type_name(other)),
            ))
        }
    };
    check_collection_name(&inv.db, &coll)?;
    let ns = format!("{}.{coll}", inv.db);
    Ok((coll, ns))
}

/// mongod's rules for a collection name (NamespaceString::validCollectionName).
pub fn check_collection_name(db: &str, coll: &str) -> CommandResult<()> {
    if coll.is_empty() || coll.contains('\0') || coll.starts_with('.') || coll.contains('$') {
        return Err(CommandError::new(
            Code::InvalidNamespace,
            format!("Invalid namespace specified '{db}.{coll}'"),
        ));
    }
    Ok(())
}

/// Refuses unknown fields as mongod's IDL parser does (40415).
pub fn check_fields(cmd: &Document, name: &str, known: &[&str]) -> CommandResult<()> {
    for key in cmd.keys().skip(1) {
        if !known.contains(&key.as_str()) && !super::is_generic_argument(key) {
            return Err(CommandError::new(
                Code::IDLUnknownField,
                format!("BSON field '{name}.{key}' is an unknown field."),
            ));
        }
    }
    Ok(())
}

/// A boolean argument (numbers count as their truth, as mongod's IDL reads them).
pub fn bool_arg(cmd: &Document, name: &str, field: &str, default: bool) -> CommandResult<bool> {
    match cmd.get(field) {
        None => Ok(default),
        Some(Bson::Boolean(b)) => Ok(*b),
        Some(Bson::Int32(n)) => Ok(*n != 0),
        Some(Bson::Int64(n)) => Ok(*n != 0),
        Some(Bson::Double(d)) => Ok(*d != 0.0),
        Some(other) => Err(CommandError::new(
            Code::TypeMismatch,
            format!(
                "BSON field '{name}.{field}' is the wrong type '{}', expected types '[bool, long, int, decimal, double]'",
                type_name(other)
            ),
        )),
    }
}

/// A non-negative whole-number argument.
pub fn count_arg(cmd: &Document, name: &str, field: &str) -> CommandResult<Option<i64>> {
    match cmd.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(v) => match crate::error::whole_number(v) {
            Some(n) if n >= 0 => Ok(Some(n)),
            Some(n) => Err(CommandError::new(
                Code::Location51024,
                format!("BSON field '{field}' value must be >= 0, actual value '{n}'"),
            )),
            None => Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                    "BSON field '{name}.{field}' is the wrong type '{}', expected types '[long, int, decimal, double]'",
                    type_name(v)
                ),
            )),
        },
    }
}

/// A document argument (absent: empty).
pub fn doc_arg(cmd: &Document, name: &str, field: &str) -> CommandResult<Option<Document>> {
    match cmd.get(field) {
        None => Ok(None),
        Some(Bson::Document(d)) => Ok(Some(d.clone())),
        Some(other) => Err(CommandError::new(
            Code::TypeMismatch,
            format!(
                "BSON field '{name}.{field}' is the wrong type '{}', expected type 'object'",
                type_name(other)
            ),
        )),
    }
}

pub fn storage_error(e: CatalogError) -> CommandError {
    match e {
        CatalogError::DuplicateKey(_) | CatalogError::Invalid(..) => super::indexes::refusal(e),
        e => CommandError::new(Code::InternalError, e.to_string()),
    }
}

/// Writes need the primary of a set (NotWritablePrimary on the others).
pub fn check_writable(inv: &Invocation) -> CommandResult<()> {
    match &inv.server.repl {
        Some(repl) => repl.check_writable_primary(&inv.server),
        None => Ok(()),
    }
}

/// Reads on a member that is not primary need a read preference other than `primary`
/// (mongod's secondaryOk).
pub fn check_readable(inv: &Invocation, cmd: &Document) -> CommandResult<()> {
    let Some(repl) = &inv.server.repl else {
        return Ok(());
    };
    let state = repl.my_state(&inv.server);
    if state == MemberState::Primary {
        return Ok(());
    }
    let secondary_ok = match cmd.get("$readPreference") {
        Some(Bson::Document(pref)) => pref.get_str("mode").is_ok_and(|m| m != "primary"),
        _ => false,
    };
    if !secondary_ok {
        return Err(CommandError::new(
            Code::NotPrimaryNoSecondaryOk,
            "not primary and secondaryOk=false",
        ));
    }
    if !matches!(state, MemberState::Secondary) {
        return Err(CommandError::new(
            Code::NotPrimaryOrSecondary,
            "node is not in primary or recovering state",
        ));
    }
    Ok(())
}

/// The collection `ns`, read from the store.
pub fn collection(storage: &Storage, ns: &str) -> CommandResult<Option<CollectionInfo>> {
    storage.collection(ns).map_err(storage_error)
}

/// The collection `ns`; when it does not exist, adds its creation to `writes` (namespaces
/// are created on first write) and returns what it will be.
pub fn collection_for_write(
    storage: &Storage,
    ns: &str,
    writes: &mut Vec<DocWrite>,
) -> CommandResult<Option<CollectionInfo>> {
    let info = collection(storage, ns)?;
    if info.is_none()
        && !writes
            .iter()
            .any(|w| matches!(w, DocWrite::CreateCollection { ns: n, .. } if n == ns))
    {
        writes.push(DocWrite::CreateCollection {
            ns: ns.to_owned(),
            uuid: crate::storage::new_uuid(),
            options: Document::new(),
        });
    }
    Ok(info)
}

/// Commits `writes` and waits for the write concern: returns the `writeConcernError` if
/// the wait failed, or the store's refusal.
pub async fn commit(
    inv: &Invocation,
    cmd: &Document,
    writes: Vec<DocWrite>,
) -> CommandResult<Result<Option<Document>, CatalogError>> {
    if writes.is_empty() {
        return Ok(Ok(None));
    }
    let mut writes = writes;
    super::validation::add_capped_trims(inv.server.storage(), &mut writes)?;
    let server = &inv.server;
    if server.repl.is_none() {
        write_concern::parse(cmd, true)?;
        let storage = server.storage().clone();
        let result = crate::blocking::io(move || storage.commit(&writes, true)).await;
        server.clock.tick();
        server.storage().changed.notify_waiters();
        return Ok(result.map(|()| None));
    }
    let tally = crate::op_counters::tally(&writes);
    let result = match replicate(inv, cmd, ReplOp::Documents(writes)).await? {
        Replicated::Applied(concern_error) => {
            crate::op_counters::proposed(tally);
            Ok(concern_error)
        }
        Replicated::Refused(e) => Err(e),
    };
    // Applied here by now (the primary's own apply).
    server.storage().changed.notify_waiters();
    Ok(result)
}

/// `{cursor: {firstBatch | nextBatch, id, ns}}`.
pub fn cursor_reply(ns: &str, id: i64, batch: Vec<Document>, first: bool) -> Document {
    let field = if first { "firstBatch" } else { "nextBatch" };
    let batch: Vec<Bson> = batch.into_iter().map(Bson::Document).collect();
    doc! {"cursor": {field: batch, "id": id, "ns": ns}}
}

/// Takes up to `batch_size` documents (None: no count limit) from `docs`, stopping before
/// the reply would pass 16 MB (always at least one).
pub fn take_batch(
    docs: &mut std::collections::VecDeque<Document>,
    batch_size: Option<usize>,
) -> Vec<Document> {
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    while let Some(next) = docs.front() {
        if batch_size.is_some_and(|n| batch.len() >= n) {
            break;
        }
        let size = bson_size(next);
        if !batch.is_empty() && bytes + size > MAX_DOCUMENT_SIZE {
            break;
        }
        bytes += size;
        batch.push(docs.pop_front().expect("front exists"));
    }
    batch
}

/// The encoded size of a document.
pub fn bson_size(doc: &Document) -> usize {
    let mut out = Vec::new();
    doc.to_writer(&mut out).map(|_| out.len()).unwrap_or(0)
}

/// The user who runs the command (cursors remember their owner).
pub fn user_of(inv: &Invocation) -> Option<String> {
    inv.client.auth.lock().user.as_ref().map(|u| u.to_string())
}

/// The session the command runs in.
pub fn lsid_of(inv: &Invocation) -> Option<Document> {
    crate::sessions::lsid(&inv.op.command, inv.op.raw_body.as_deref())
}

/// Closes cursors idle longer than `cursorTimeoutMillis`.
pub fn reap_cursors(inv: &Invocation) {
    let timeout = inv
        .server
        .params
        .get_i64(crate::params::CURSOR_TIMEOUT_MILLIS)
        .max(0) as u64;
    let reaped = inv
        .server
        .cursors
        .reap(std::time::Duration::from_millis(timeout));
    super::sessions::reap(&inv.server);
    crate::op_counters::cursors_timed_out(reaped as u64);
}

/// The E11000 write error of a duplicate `_id`.
pub fn duplicate_id_error(ns: &str, id: &Bson) -> CommandError {
    CommandError::new(
        Code::DuplicateKey,
        format!(
            "E11000 duplicate key error collection: {ns} index: _id_ dup key: {{ _id: {} }}",
            super::shell_format(id)
        ),
    )
}

/// A write error entry `{index, code, errmsg}` (+ keyPattern/keyValue for E11000).
pub fn write_error(index: usize, e: &CommandError, id: Option<&Bson>) -> Document {
    let mut d = doc! {"index": index as i32, "code": e.code.number(), "errmsg": &e.message};
    if let Some(extra) = e.extra.as_ref().filter(|x| x.contains_key("keyPattern")) {
        d.extend(extra.clone());
    } else if e.code == Code::DuplicateKey {
        d.insert("keyPattern", doc! {"_id": 1});
        d.insert("keyValue", doc! {"_id": id.cloned().unwrap_or(Bson::Null)});
    }
    if let Some(Ok(info)) = e.extra.as_ref().map(|x| x.get_document("errInfo")) {
        d.insert("errInfo", info.clone());
    }
    d
}

/// The documents of `info` that `filter` matches, in `_id` order, at most `stop_after`;
/// the planner (`storage::planner`) picks the access path, following `hint` (an index
/// name or key pattern, `{$natural: 1}`). Stops early when the operation is killed; runs
/// off the async workers (a scan reads and decodes every document).
pub async fn select(
    inv: &Invocation,
    info: &CollectionInfo,
    filter: &Filter,
    stop_after: Option<usize>,
    hint: Option<Bson>,
) -> CommandResult<Vec<Document>> {
    let storage = inv.server.storage().clone();
    let info = info.clone();
    let filter = filter.clone();
    let cancel = inv.op.cancellation();
    let opid = inv.op.opid;
    crate::blocking::io(move || {
        let plan = super::indexes::plan(&storage, &info, &filter, hint.as_ref())?;
        if let crate::storage::planner::Plan::IdHack(id) = &plan {
            let doc = storage.get(&info, id).map_err(storage_error)?;
            crate::op_counters::examined(opid, doc.is_some() as u64, "IDHACK");
            return Ok(doc.into_iter().filter(|d| filter.matches(d)).collect());
        }
        let mut out = Vec::new();
        if stop_after == Some(0) {
            return Ok(out);
        }
        let mut examined = 0u64;
        let each = |doc: Document| {
            examined += 1;
            if cancel.is_cancelled() {
                return Err(CommandError::new(
                    Code::Interrupted,
                    "operation was interrupted",
                ));
            }
            if filter.is_empty() || filter.matches(&doc) {
                out.push(doc);
                if stop_after.is_some_and(|n| out.len() >= n) {
                    return Ok(Scan::Stop);
                }
            }
            Ok(Scan::Continue)
        };
        let (scanned, summary) = match &plan {
            crate::storage::planner::Plan::IxScan { spec, ranges, .. } => (
                storage.index_scan(&info, spec, ranges, each).map(|_| ()),
                "IXSCAN",
            ),
            _ => (storage.scan(&info, None, each).map(|_| ()), "COLLSCAN"),
        };
        crate::op_counters::examined(opid, examined, summary);
        match scanned {
            Ok(_) => Ok(out),
            Err(ScanError::Storage(e)) => Err(storage_error(e)),
            Err(ScanError::Command(e)) => Err(e),
        }
    })
    .await
}

/// Refuses a collation other than the simple one: ferrod compares strings by their bytes
/// only, and a collation it ignored would silently change what matches.
pub fn check_collation(value: Option<&Bson>) -> CommandResult<()> {
    match value {
        None => Ok(()),
        Some(Bson::Document(c)) if c.get_str("locale") == Ok("simple") && c.len() == 1 => Ok(()),
        Some(_) => Err(crate::error::bad_value(
            "ferrod does not support collations other than {locale: \"simple\"} yet",
        )),
    }
}

/// The variables a statement's expressions see: the command's `let` and, for a write
/// statement, its own constants `c` (mongod merges them the same way).
pub fn let_vars(
    cmd: &Document,
    name: &str,
    stmt_constants: Option<&Document>,
) -> CommandResult<Document> {
    // `let`'s values are expressions, evaluated once before the command runs; `c` holds
    // constants.
    let mut vars = Document::new();
    for (key, value) in doc_arg(cmd, name, "let")?.unwrap_or_default() {
        let value = crate::query::expr::Expr::parse(&value)?.evaluate(&Document::new(), &vars)?;
        vars.insert(key, value);
    }
    if let Some(c) = stmt_constants {
        vars.extend(c.clone());
    }
    Ok(vars)
}

/// A filter argument parsed (absent: matches everything).
pub fn filter_arg(cmd: &Document, name: &str, field: &str) -> CommandResult<Filter> {
    Filter::parse(&doc_arg(cmd, name, field)?.unwrap_or_default())
}

/// Refuses unknown fields of a statement (`prefix`: where it sits, as `update.updates`).
pub fn check_statement_fields(stmt: &Document, prefix: &str, known: &[&str]) -> CommandResult<()> {
    for key in stmt.keys() {
        if !known.contains(&key.as_str()) {
            return Err(CommandError::new(
                Code::IDLUnknownField,
                format!("BSON field '{prefix}.{key}' is an unknown field."),
            ));
        }
    }
    Ok(())
}
