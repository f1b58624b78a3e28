//! aggregate: parses the command (mongod's AggregateCommandRequest fields), runs the
//! pipeline with `query::pipeline` on the blocking pool over the collection's documents
//! and answers a cursor (the rest through getMore, as find's). The outside world the
//! stages need (`$currentOp`'s operations, `$collStats`, `$indexStats`, `$lookup`'s
//! foreign side, `$out`/`$merge`'s target) comes from [`Host`]; `$out` and `$merge`
//! collect their writes there, committed afterwards as one batch (replicated on a set).

use super::doc_query::Filter;
use super::documents as d;
use super::{cluster, current_op, BoxFuture, Command, Handler, Invocation};
use crate::auth;
use crate::error::{
    missing_field, type_mismatch, unknown_field, Code, CommandError, CommandResult,
};
use crate::query::pipeline::{Options, Pipeline, PipelineHost};
use crate::storage::cursors::Cursor;
use crate::storage::{CollectionInfo, DocWrite, Scan, ScanError, Storage};
use bson::{doc, Bson, Document};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const AGGREGATE: Command = Command {
    api_version_1: true,
    ..Command::new(
        "aggregate",
        "Runs the sharded aggregation command. See http://dochub.mongodb.org/core/aggregation for more details.",
        Handler::Async(aggregate),
    )
};

const CURRENT_OP_OPTIONS: &[&str] = &[
    "allUsers",
    "idleConnections",
    "idleCursors",
    "idleSessions",
    "localOps",
    "truncateOps",
    "backtrace",
    "targetAllNodes",
];

/// The command's own fields (mongod's aggregate IDL); generic arguments aside.
const FIELDS: &[&str] = &[
    "aggregate",
    "pipeline",
    "explain",
    "allowDiskUse",
    "cursor",
    "bypassDocumentValidation",
    "hint",
    "collation",
    "let",
    "isMapReduceCommand",
    "collectionUUID",
];

/// Stages that run without a collection (`aggregate: 1`).
const COLLECTIONLESS: &[&str] = &["$currentOp", "$documents", "$listLocalSessions"];

/// Options ferrod does not implement yet: refused by name, never ignored.
fn check_refused(cmd: &Document) -> CommandResult<()> {
    d::check_collation(cmd.get("collation"))
}

fn failed_to_parse(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::FailedToParse, msg)
}

fn aggregate(inv: Invocation, cmd: Document) -> BoxFuture {
    Box::pin(run(inv, cmd))
}

/// `allowDiskUse` and the like: a bool, or a number read as one (mongod's optionalBool).
fn bool_field(cmd: &Document, name: &str) -> CommandResult<Option<bool>> {
    match cmd.get(name) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Boolean(b)) => Ok(Some(*b)),
        Some(v @ (Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_))) => Ok(Some(
            crate::query::order::compare(v, &Bson::Int32(0)).is_ne(),
        )),
        Some(other) => Err(type_mismatch(&format!("aggregate.{name}"), other, "bool")),
    }
}

/// The command, checked and parsed.
struct Request {
    collection: Option<String>,
    ns: String,
    pipeline: Pipeline,
    opts: Options,
    batch_size: Option<i64>,
    explain: bool,
    /// Checked against the collection's indexes; the pipeline itself scans the collection.
    hint: Option<Bson>,
}

fn parse(inv: &Invocation, cmd: &Document) -> CommandResult<Request> {
    let collection =
        match cmd.get("aggregate") {
            Some(Bson::String(c)) => Some(c.clone()),
            Some(v) if crate::error::whole_number(v) == Some(1) => None,
            _ => return Err(failed_to_parse(
                "Invalid command format: the 'aggregate' field must specify a collection name or 1",
            )),
        };
    for name in cmd.keys() {
        if !FIELDS.contains(&name.as_str()) && !super::is_generic_argument(name) {
            return Err(unknown_field(&format!("aggregate.{name}")));
        }
    }
    check_refused(cmd)?;
    let stages = match cmd.get("pipeline") {
        None => return Err(missing_field("aggregate.pipeline")),
        Some(Bson::Array(stages)) => stages,
        Some(other) => return Err(type_mismatch("aggregate.pipeline", other, "array")),
    };
    let explain = bool_field(cmd, "explain")?.unwrap_or(false);
    let batch_size =
        match cmd.get("cursor") {
            Some(Bson::Document(c)) => cursor_batch_size(c)?,
            Some(other) => return Err(type_mismatch("aggregate.cursor", other, "object")),
            None if explain => None,
            None => return Err(failed_to_parse(
                "The 'cursor' option is required, except for aggregate with the explain argument",
            )),
        };
    // Stages outside API Version 1 are refused under apiStrict, as mongod does.
    if cmd.get_bool("apiStrict") == Ok(true) {
        for s in stages {
            if let Some(Bson::Document(_)) = s.as_document().and_then(|d| d.get("$currentOp")) {
                return Err(CommandError::new(
                    Code::APIStrictError,
                    "$currentOp is not allowed with 'apiStrict: true' in API Version 1",
                ));
            }
        }
    }
    let mut opts = Options::new(&inv.db, collection.as_deref());
    opts.vars
        .insert("NOW", Bson::DateTime(bson::DateTime::now()));
    // mongod 7.0's allowDiskUseByDefault is true: only an explicit false enforces the limit.
    opts.allow_disk_use = bool_field(cmd, "allowDiskUse")?.unwrap_or(true);
    let params = &inv.server.params;
    opts.memory_limit = params.get_i64(crate::params::SORT_MEMORY_BYTES).max(1) as usize;
    opts.group_memory_limit = params.get_i64(crate::params::GROUP_MEMORY_BYTES).max(1) as usize;
    match cmd.get("let") {
        None => {}
        Some(Bson::Document(lets)) => {
            for (name, value) in lets {
                let e = crate::query::expr::Expr::parse(value)?;
                let v = e.evaluate(&Document::new(), &opts.vars)?;
                opts.vars.insert(name.clone(), v);
            }
        }
        Some(other) => return Err(type_mismatch("aggregate.let", other, "object")),
    }
    let pipeline = Pipeline::parse(stages, &opts)?;
    if collection.is_none() {
        let first = stages
            .first()
            .and_then(Bson::as_document)
            .and_then(|d| d.keys().next().cloned());
        match first {
            Some(name) if COLLECTIONLESS.contains(&name.as_str()) => {}
            name => {
                return Err(CommandError::new(
                    Code::InvalidNamespace,
                    format!(
                        "{{aggregate: 1}} is not valid for '{}'; a collection is required.",
                        name.unwrap_or_default()
                    ),
                ))
            }
        }
    }
    let ns = match &collection {
        Some(c) => {
            d::check_collection_name(&inv.db, c)?;
            format!("{}.{c}", inv.db)
        }
        None => format!("{}.$cmd.aggregate", inv.db),
    };
    Ok(Request {
        collection,
        ns,
        pipeline,
        opts,
        batch_size,
        explain,
        hint: cmd.get("hint").cloned(),
    })
}

async fn run(inv: Invocation, cmd: Document) -> CommandResult {
    let req = parse(&inv, &cmd)?;
    if req.explain {
        let names: Vec<Bson> = req
            .pipeline
            .stage_names()
            .into_iter()
            .map(|n| Bson::Document(doc! {n: {}}))
            .collect();
        return Ok(doc! {
            "explainVersion": "1",
            "stages": names,
            "command": cmd.clone(),
        });
    }
    check_privileges(&inv, &cmd, &req)?;
    if req.collection.is_some() {
        super::local_db::check_readable(&inv, &cmd, &req.ns)?;
    }
    let read_concern = super::read_concern::prepare(&inv, &cmd, "aggregate").await?;
    d::reap_cursors(&inv);
    let storage = inv.server.storage().clone();
    // A pipeline that writes holds the writers' lock from its reads to its commit.
    let _guard = if req.pipeline.writes() {
        d::check_writable(&inv)?;
        Some(storage.lock_writes().await)
    } else {
        None
    };
    let deadline = max_time(&cmd).map(|t| inv.op.started + t);
    let owned = inv.clone();
    let storage = storage.clone();
    // A pipeline may scan and sort a whole collection: off the async workers.
    let (results, writes, req) = crate::blocking::cpu(move || {
        let host = Host {
            inv: &owned,
            storage,
            collection: req.collection.clone(),
            deadline,
            targets: RefCell::default(),
            writes: RefCell::default(),
        };
        let results = execute(&host, &req)?;
        CommandResult::Ok((results, host.writes.into_inner(), req))
    })
    .await?;
    let mut reply = Document::new();
    if !writes.is_empty() {
        match d::commit(&inv, &cmd, writes).await? {
            Ok(Some(concern_error)) => {
                reply.insert("writeConcernError", concern_error);
            }
            Ok(None) => {}
            Err(e) => return Err(d::storage_error(e)),
        }
    }
    super::read_concern::confirm(&inv, read_concern.as_ref()).await?;
    let mut docs: VecDeque<Document> = results.into();
    let first = req.batch_size.map_or(d::DEFAULT_BATCH_SIZE, |n| n as usize);
    let batch = d::take_batch(&mut docs, Some(first));
    let id = if docs.is_empty() {
        0
    } else {
        inv.server.cursors.open(
            Cursor::new(req.ns.clone(), docs, false, d::user_of(&inv)).in_session(d::lsid_of(&inv)),
        )
    };
    let mut out = d::cursor_reply(&req.ns, id, batch, true);
    out.extend(reply);
    Ok(out)
}

/// mongod's privileges for a pipeline: `find` on what it reads (its collection and
/// `$lookup`'s), `insert`, `remove` and `update` where `$out`/`$merge` write.
/// (`$currentOp` checks its own `inprog`.)
fn check_privileges(inv: &Invocation, cmd: &Document, req: &Request) -> CommandResult<()> {
    if !auth::enforced(&inv.server) {
        return Ok(());
    }
    let mut required = Vec::new();
    if req.collection.is_some() {
        required.push((
            auth::required_resource(super::Resource::Database, &inv.db),
            "find",
        ));
    }
    for (db, _) in req.pipeline.foreign_namespaces(&inv.db) {
        required.push((
            auth::required_resource(super::Resource::Database, &db),
            "find",
        ));
    }
    if let Some((db, _)) = req.pipeline.output_namespace() {
        for action in ["insert", "remove", "update"] {
            required.push((
                auth::required_resource(super::Resource::Database, &db),
                action,
            ));
        }
    }
    if auth::is_authorized(&inv.server, &inv.client, &required) {
        return Ok(());
    }
    Err(CommandError::new(
        Code::Unauthorized,
        format!(
            "not authorized on {} to execute command {}",
            inv.db,
            super::shell_format(&Bson::Document(cmd.clone()))
        ),
    ))
}

/// Runs the pipeline over the collection's documents as the store scans them.
fn execute(host: &Host, req: &Request) -> CommandResult<Vec<Document>> {
    let pipeline = &req.pipeline;
    let info = match &req.collection {
        Some(_) if !pipeline.is_source() => d::collection(&host.storage, &req.ns)?,
        _ => None,
    };
    if let (Some(info), Some(hint)) = (&info, &req.hint) {
        // An unknown or hidden index is refused as mongod refuses it.
        super::indexes::plan(&host.storage, info, &Filter::parse(&doc! {})?, Some(hint))?;
    }
    let mut runner = pipeline.runner(host, &req.opts);
    if req.collection.is_some() && !pipeline.is_source() {
        if let Some(docs) = super::local_db::read_all(host.inv, &req.ns)? {
            for doc in docs {
                if !runner.push(doc)? {
                    break;
                }
            }
            return runner.finish();
        }
    }
    if let Some(info) = info {
        scan(&host.storage, &info, |doc| {
            Ok(if runner.push(doc)? {
                Scan::Continue
            } else {
                Scan::Stop
            })
        })?;
    }
    runner.finish()
}

fn scan(
    storage: &Storage,
    info: &CollectionInfo,
    each: impl FnMut(Document) -> CommandResult<Scan>,
) -> CommandResult<()> {
    match storage.scan(info, None, each) {
        Ok(_) => Ok(()),
        Err(ScanError::Storage(e)) => Err(d::storage_error(e)),
        Err(ScanError::Command(e)) => Err(e),
    }
}

fn cursor_batch_size(cursor: &Document) -> CommandResult<Option<i64>> {
    let mut size = None;
    for (k, v) in cursor {
        if k != "batchSize" {
            return Err(unknown_field(&format!("aggregate.cursor.{k}")));
        }
        let Some(n) = crate::error::whole_number(v) else {
            return Err(type_mismatch("aggregate.cursor.batchSize", v, "int"));
        };
        if n < 0 {
            return Err(CommandError::new(
                Code::Location51024,
                format!("BSON field 'batchSize' value must be >= 0, actual value '{n}'"),
            ));
        }
        size = Some(n);
    }
    Ok(size)
}

/// The command's maxTimeMS (checked by the dispatcher already).
fn max_time(cmd: &Document) -> Option<Duration> {
    cmd.get("maxTimeMS")
        .and_then(crate::error::whole_number)
        .filter(|ms| *ms > 0)
        .map(|ms| Duration::from_millis(ms as u64))
}

/// What the pipeline reaches outside itself, for one aggregate command.
struct Host<'a> {
    inv: &'a Invocation,
    storage: Arc<Storage>,
    collection: Option<String>,
    deadline: Option<Instant>,
    /// `$merge` targets as the command leaves them, by namespace (read on first use).
    targets: RefCell<BTreeMap<String, Vec<Document>>>,
    /// What `$out` and `$merge` write, committed after the run.
    writes: RefCell<Vec<DocWrite>>,
}

impl Host<'_> {
    fn read_all(&self, ns: &str) -> CommandResult<Vec<Document>> {
        let Some(info) = d::collection(&self.storage, ns)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        scan(&self.storage, &info, |doc| {
            if out.len() % 256 == 0 {
                self.check_interrupt()?;
            }
            out.push(doc);
            Ok(Scan::Continue)
        })?;
        Ok(out)
    }

    /// Adds the creation of `ns` to the writes when it neither exists nor is created yet.
    fn ensure_collection(&self, ns: &str) -> CommandResult<()> {
        let mut writes = self.writes.borrow_mut();
        d::collection_for_write(&self.storage, ns, &mut writes)?;
        Ok(())
    }

    fn with_target<T>(
        &self,
        ns: &str,
        f: impl FnOnce(&mut Vec<Document>) -> CommandResult<T>,
    ) -> CommandResult<T> {
        if !self.targets.borrow().contains_key(ns) {
            let docs = self.read_all(ns)?;
            self.targets.borrow_mut().insert(ns.to_string(), docs);
        }
        let mut targets = self.targets.borrow_mut();
        f(targets.get_mut(ns).expect("loaded above"))
    }
}

impl PipelineHost for Host<'_> {
    fn read_collection(&self, db: &str, coll: &str) -> CommandResult<Vec<Document>> {
        self.read_all(&format!("{db}.{coll}"))
    }
    fn replace_collection(&self, db: &str, coll: &str, docs: Vec<Document>) -> CommandResult<()> {
        d::check_collection_name(db, coll)?;
        let ns = format!("{db}.{coll}");
        let mut writes = vec![
            DocWrite::DropCollection { ns: ns.clone() },
            DocWrite::CreateCollection {
                ns: ns.clone(),
                uuid: crate::storage::new_uuid(),
                options: Document::new(),
            },
        ];
        let mut seen = HashSet::new();
        for doc in docs {
            let doc = super::insert::prepare(&doc)?;
            let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
            if !seen.insert(crate::storage::record_key(&id)) {
                return Err(d::duplicate_id_error(&ns, &id));
            }
            writes.push(DocWrite::Insert {
                ns: ns.clone(),
                doc,
            });
        }
        self.writes.borrow_mut().extend(writes);
        Ok(())
    }
    fn find_matching(
        &self,
        db: &str,
        coll: &str,
        fields: &Document,
    ) -> CommandResult<Vec<Document>> {
        d::check_collection_name(db, coll)?;
        self.with_target(&format!("{db}.{coll}"), |docs| {
            Ok(docs
                .iter()
                .filter(|doc| {
                    fields.iter().all(|(path, want)| {
                        dotted(doc, path)
                            .is_some_and(|v| crate::query::order::values_equal(v, want))
                    })
                })
                .cloned()
                .collect())
        })
    }
    fn insert_document(&self, db: &str, coll: &str, doc: Document) -> CommandResult<()> {
        let ns = format!("{db}.{coll}");
        let doc = super::insert::prepare(&doc)?;
        let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
        self.with_target(&ns, |docs| {
            if docs.iter().any(|d| {
                d.get("_id")
                    .is_some_and(|i| crate::query::order::values_equal(i, &id))
            }) {
                return Err(d::duplicate_id_error(&ns, &id));
            }
            docs.push(doc.clone());
            Ok(())
        })?;
        self.ensure_collection(&ns)?;
        self.writes.borrow_mut().push(DocWrite::Insert { ns, doc });
        Ok(())
    }
    fn replace_document(
        &self,
        db: &str,
        coll: &str,
        old: &Document,
        new: Document,
    ) -> CommandResult<()> {
        let ns = format!("{db}.{coll}");
        let new = super::insert::prepare(&new)?;
        let id = old.get("_id").cloned().unwrap_or(Bson::Null);
        self.with_target(&ns, |docs| {
            if let Some(slot) = docs.iter_mut().find(|d| {
                d.get("_id")
                    .is_some_and(|i| crate::query::order::values_equal(i, &id))
            }) {
                *slot = new.clone();
            }
            Ok(())
        })?;
        self.writes
            .borrow_mut()
            .push(DocWrite::Put { ns, doc: new });
        Ok(())
    }
    fn coll_stats(&self, db: &str, coll: &str, spec: &Document) -> CommandResult<Document> {
        let ns = format!("{db}.{coll}");
        let mut out = doc! {
            "ns": &ns,
            "host": self.inv.server.host_and_port(),
            "localTime": bson::DateTime::now(),
        };
        if let Some(stats) = super::local_db::coll_stats(self.inv, &ns, spec, out.clone())? {
            return Ok(stats);
        }
        if let Some(info) = d::collection(&self.storage, &ns)? {
            let (count, _) = self.storage.stats(&info).map_err(d::storage_error)?;
            if spec.contains_key("storageStats") {
                let scale = match spec.get_document("storageStats").map(|s| s.get("scale")) {
                    Ok(Some(v)) => crate::error::whole_number(v).unwrap_or(1).max(1),
                    _ => 1,
                };
                out.insert(
                    "storageStats",
                    super::coll_stats::storage_stats(&self.storage, &info, scale)?,
                );
            }
            if spec.contains_key("count") {
                out.insert("count", count as i64);
            }
            return Ok(out);
        }
        // The collection does not exist: mongod answers the header alone, and refuses
        // the statistics that need the collection.
        for (field, what) in [("storageStats", "storageStats"), ("count", "count")] {
            if spec.contains_key(field) {
                return Err(CommandError::new(
                    Code::NamespaceNotFound,
                    format!(
                        "Unable to retrieve {what} in $collStats stage :: caused by :: Collection [{db}.{coll}] not found."
                    ),
                ));
            }
        }
        Ok(out)
    }
    fn index_stats(&self, db: &str, coll: &str) -> CommandResult<Vec<Document>> {
        // Every collection has its _id index; usage is not counted yet.
        Ok(
            match d::collection(&self.storage, &format!("{db}.{coll}"))? {
                Some(_) => vec![doc! {
                    "name": "_id_",
                    "key": {"_id": 1},
                    "host": self.inv.server.host_and_port(),
                    "accesses": {"ops": 0i64, "since": bson::DateTime::now()},
                    "spec": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
                }],
                None => Vec::new(),
            },
        )
    }
    fn current_op(&self, spec: &Document) -> CommandResult<Vec<Document>> {
        if self.inv.db != "admin" || self.collection.is_some() {
            return Err(CommandError::new(
                Code::InvalidNamespace,
                "$currentOp must be run against the 'admin' database with {aggregate: 1}",
            ));
        }
        let all_users = current_op_options(spec)?;
        visible_operations(self.inv, all_users)
    }
    fn list_local_sessions(&self, spec: &Document) -> CommandResult<Vec<Document>> {
        // ferrod keeps no session cache yet: the one session it knows is the one this
        // command runs in (mongod's cache holds it too, vivified by the command).
        let _ = spec;
        let command = self.inv.op.full_command();
        let Some(Bson::Document(lsid)) = command.get("lsid") else {
            return Ok(Vec::new());
        };
        let Some(id) = lsid.get("id") else {
            return Ok(Vec::new());
        };
        use sha2::Digest;
        let user = d::user_of(self.inv).unwrap_or_default();
        let uid = sha2::Sha256::digest(user.as_bytes());
        Ok(vec![doc! {
            "_id": {"id": id.clone(), "uid": bson::Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes: uid.to_vec(),
            }},
            "lastUse": bson::DateTime::now(),
        }])
    }
    fn check_interrupt(&self) -> CommandResult<()> {
        if self.inv.op.cancel_requested() {
            return Err(CommandError::new(
                Code::Interrupted,
                "operation was interrupted",
            ));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(CommandError::new(
                Code::MaxTimeMSExpired,
                "operation exceeded time limit",
            ));
        }
        Ok(())
    }
}

/// `$currentOp`'s options, checked as mongod does; returns `allUsers`.
fn current_op_options(options: &Document) -> CommandResult<bool> {
    let mut all_users = false;
    for (name, value) in options {
        if !CURRENT_OP_OPTIONS.contains(&name.as_str()) {
            return Err(failed_to_parse(format!(
                "Unrecognized option '{name}' in $currentOp stage."
            )));
        }
        let Bson::Boolean(b) = value else {
            return Err(failed_to_parse(format!(
                "The '{name}' parameter of the $currentOp stage must be a boolean value, but found: {}",
                crate::error::type_name(value)
            )));
        };
        if name == "allUsers" {
            all_users = *b;
        }
    }
    Ok(all_users)
}

/// `allUsers: true` needs the `inprog` privilege (mongod's rule); without it a client
/// sees its own connection's operations when authorization is on.
fn visible_operations(inv: &Invocation, all_users: bool) -> CommandResult<Vec<Document>> {
    let ops = current_op::operations(inv);
    if !auth::enforced(&inv.server) {
        return Ok(ops);
    }
    if all_users {
        let required = [(
            auth::required_resource(cluster("inprog").resource, &inv.db),
            "inprog",
        )];
        if !auth::is_authorized(&inv.server, &inv.client, &required) {
            return Err(CommandError::new(
                Code::Unauthorized,
                "not authorized on admin to execute command { aggregate: 1, pipeline: [ { $currentOp: { allUsers: true } } ] }",
            ));
        }
        return Ok(ops);
    }
    let own = inv.client.id as i64;
    Ok(ops
        .into_iter()
        .filter(|op| op.get_i64("connectionId") == Ok(own))
        .collect())
}

/// A dotted field through documents.
fn dotted<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut value = doc.get(parts.next()?)?;
    for part in parts {
        value = value.as_document()?.get(part)?;
    }
    Some(value)
}
