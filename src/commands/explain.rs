//! explain: the plan of a find, count, distinct, aggregate (its leading `$match`),
//! update, delete or findAndModify, with mongod's stage names (EOF, IDHACK, COLLSCAN,
//! IXSCAN under FETCH, SORT, SKIP, LIMIT, PROJECTION_*, COUNT, UPDATE, DELETE), and with
//! verbosity executionStats / allPlansExecution the plan run for its counts.

use super::doc_query::Filter;
use super::documents as d;
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::{type_name, Code, CommandError, CommandResult};
use crate::storage::planner::{Plan, ScanStats};
use crate::storage::Scan;
use bson::{doc, Bson, Document};

pub const EXPLAIN: Command = Command {
    privileges: &[database("find")],
    ..Command::new(
        "explain",
        "explain database reads and writes",
        Handler::Async(|inv, cmd| Box::pin(explain(inv, cmd)) as BoxFuture),
    )
};

/// What the explained command asks of the query layer.
#[derive(Default)]
struct Query {
    filter: Document,
    sort: Option<Document>,
    projection: Option<Document>,
    skip: i64,
    limit: i64,
    hint: Option<Bson>,
    /// The stage the command puts above the plan (COUNT, UPDATE, DELETE).
    root: Option<&'static str>,
}

fn sub_doc(d: &Document, field: &str) -> Option<Document> {
    d.get_document(field).ok().cloned()
}

fn num(d: &Document, field: &str) -> i64 {
    d.get(field)
        .and_then(crate::error::whole_number)
        .unwrap_or(0)
}

fn first_statement(inner: &Document, field: &str) -> Document {
    inner
        .get_array(field)
        .ok()
        .and_then(|a| a.first())
        .and_then(|s| s.as_document().cloned())
        .unwrap_or_default()
}

fn query_of(name: &str, inner: &Document) -> CommandResult<Query> {
    let mut q = Query::default();
    match name {
        "find" => {
            q.filter = sub_doc(inner, "filter").unwrap_or_default();
            q.sort = sub_doc(inner, "sort").filter(|s| !s.is_empty());
            q.projection = sub_doc(inner, "projection").filter(|p| !p.is_empty());
            q.skip = num(inner, "skip");
            q.limit = num(inner, "limit").abs();
            q.hint = inner.get("hint").cloned();
        }
        "count" => {
            q.filter = sub_doc(inner, "query").unwrap_or_default();
            q.hint = inner.get("hint").cloned();
            q.root = Some("COUNT");
        }
        "distinct" => q.filter = sub_doc(inner, "query").unwrap_or_default(),
        "aggregate" => {
            let pipeline = inner.get_array("pipeline").cloned().unwrap_or_default();
            if let Some(Bson::Document(first)) = pipeline.first() {
                if let Ok(m) = first.get_document("$match") {
                    q.filter = m.clone();
                }
            }
            q.hint = inner.get("hint").cloned();
        }
        "update" => {
            let stmt = first_statement(inner, "updates");
            q.filter = sub_doc(&stmt, "q").unwrap_or_default();
            q.hint = stmt.get("hint").cloned();
            q.root = Some("UPDATE");
        }
        "delete" => {
            let stmt = first_statement(inner, "deletes");
            q.filter = sub_doc(&stmt, "q").unwrap_or_default();
            q.hint = stmt.get("hint").cloned();
            q.root = Some("DELETE");
        }
        "findAndModify" | "findandmodify" => {
            q.filter = sub_doc(inner, "query").unwrap_or_default();
            q.sort = sub_doc(inner, "sort").filter(|s| !s.is_empty());
            q.hint = inner.get("hint").cloned();
            q.root = Some(if inner.get_bool("remove") == Ok(true) {
                "DELETE"
            } else {
                "UPDATE"
            });
        }
        other => {
            return Err(CommandError::new(
                Code::CommandNotFound,
                format!("Explain failed due to unknown command: {other}"),
            ))
        }
    }
    Ok(q)
}

fn access_stage(plan: Option<&Plan>, filter: &Document, multikey: &[String]) -> Document {
    match plan {
        None => doc! {"stage": "EOF"},
        Some(Plan::IdHack(_)) => doc! {"stage": "IDHACK"},
        Some(Plan::CollScan) => {
            let mut s = doc! {"stage": "COLLSCAN"};
            if !filter.is_empty() {
                s.insert("filter", filter.clone());
            }
            s.insert("direction", "forward");
            s
        }
        Some(Plan::IxScan { spec, bounds, .. }) => {
            let ixscan = doc! {
                "stage": "IXSCAN",
                "keyPattern": spec.key_pattern(),
                "indexName": &spec.name,
                "isMultiKey": multikey.contains(&spec.name),
                "isUnique": spec.unique || spec.is_id(),
                "isSparse": spec.sparse,
                "isPartial": spec.partial.is_some(),
                "indexVersion": 2,
                "direction": "forward",
                "indexBounds": bounds.clone(),
            };
            let mut fetch = doc! {"stage": "FETCH"};
            if !filter.is_empty() {
                fetch.insert("filter", filter.clone());
            }
            fetch.insert("inputStage", ixscan);
            fetch
        }
    }
}

fn wrap(stage: &str, mut fields: Document, input: Document) -> Document {
    let mut s = doc! {"stage": stage};
    s.extend(std::mem::take(&mut fields));
    s.insert("inputStage", input);
    s
}

/// Whether a projection is mongod's simple kind (top-level inclusions or exclusions).
fn simple_projection(p: &Document) -> bool {
    p.iter().all(|(k, v)| {
        !k.contains('.')
            && !k.contains('$')
            && matches!(
                v,
                Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Boolean(_)
            )
    })
}

fn winning_plan(q: &Query, access: Document) -> Document {
    let mut plan = access;
    if let Some(sort) = &q.sort {
        let mut f = doc! {"sortPattern": sort.clone(), "memLimit": 104_857_600, "type": "simple"};
        if q.limit > 0 {
            f.insert("limitAmount", q.skip + q.limit);
        }
        plan = wrap("SORT", f, plan);
    }
    if q.skip > 0 {
        plan = wrap("SKIP", doc! {"skipAmount": q.skip}, plan);
    }
    if q.limit > 0 && q.sort.is_none() {
        plan = wrap("LIMIT", doc! {"limitAmount": q.limit}, plan);
    }
    if let Some(p) = &q.projection {
        let stage = if simple_projection(p) {
            "PROJECTION_SIMPLE"
        } else {
            "PROJECTION_DEFAULT"
        };
        plan = wrap(stage, doc! {"transformBy": p.clone()}, plan);
    }
    if let Some(root) = q.root {
        plan = wrap(root, Document::new(), plan);
    }
    plan
}

async fn explain(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "explain", &["verbosity"])?;
    let inner = match cmd.get("explain") {
        Some(Bson::Document(inner)) if !inner.is_empty() => inner.clone(),
        Some(other) => {
            return Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                    "BSON field 'explain.explain' is the wrong type '{}', expected type 'object'",
                    type_name(other)
                ),
            ))
        }
        None => return Err(crate::error::missing_field("explain.explain")),
    };
    let verbosity = match cmd.get("verbosity") {
        None => "allPlansExecution".to_owned(),
        Some(Bson::String(v))
            if ["queryPlanner", "executionStats", "allPlansExecution"].contains(&v.as_str()) =>
        {
            v.clone()
        }
        Some(other) => {
            return Err(CommandError::new(
                Code::BadValue,
                format!(
                    "Enumeration value '{}' for field 'explain.verbosity' is not a valid value.",
                    super::shell_format(other)
                ),
            ))
        }
    };
    let (name, _) = inner.iter().next().expect("not empty");
    let name = name.clone();
    let q = query_of(&name, &inner)?;
    let (_, ns) = d::namespace(&inv, &inner)?;
    d::check_readable(&inv, &cmd)?;
    let let_vars = d::let_vars(&inner, &name, None)?;
    let filter = Filter::parse_with_vars(&q.filter, &let_vars)?;
    let storage = inv.server.storage().clone();
    let info = d::collection(&storage, &ns)?;
    let plan = match &info {
        Some(info) => Some(super::indexes::plan(
            &storage,
            info,
            &filter,
            q.hint.as_ref(),
        )?),
        None => None,
    };
    let multikey = match &info {
        Some(info) => storage.multikey_indexes(info).map_err(d::storage_error)?,
        None => Vec::new(),
    };
    let winning = winning_plan(&q, access_stage(plan.as_ref(), &q.filter, &multikey));
    let mut reply = doc! {
        "explainVersion": "1",
        "queryPlanner": {
            "namespace": &ns,
            "indexFilterSet": false,
            "parsedQuery": q.filter.clone(),
            "maxIndexedOrSolutionsReached": false,
            "maxIndexedAndSolutionsReached": false,
            "maxScansToExplodeReached": false,
            "winningPlan": winning.clone(),
            "rejectedPlans": [],
        },
    };
    if verbosity != "queryPlanner" {
        let started = std::time::Instant::now();
        let (matched, stats) = match (info, plan) {
            (Some(info), Some(plan)) => {
                let filter = filter.clone();
                crate::blocking::io(move || run(&storage, &info, &plan, &filter)).await?
            }
            _ => (0, ScanStats::default()),
        };
        let after_skip = matched.saturating_sub(q.skip.max(0) as u64);
        let returned = match q.root {
            Some("COUNT") => 0,
            _ if q.limit > 0 => after_skip.min(q.limit as u64),
            _ => after_skip,
        };
        let mut stages = winning;
        stages.insert("nReturned", n32(returned));
        stages.insert("totalKeysExamined", n32(stats.keys_examined));
        stages.insert("totalDocsExamined", n32(stats.docs_examined));
        let mut exec = doc! {
            "executionSuccess": true,
            "nReturned": n32(returned),
            "executionTimeMillis": n32(started.elapsed().as_millis() as u64),
            "totalKeysExamined": n32(stats.keys_examined),
            "totalDocsExamined": n32(stats.docs_examined),
            "executionStages": stages,
        };
        if verbosity == "allPlansExecution" {
            exec.insert("allPlansExecution", Vec::<Bson>::new());
        }
        reply.insert("executionStats", exec);
    }
    let mut command = inner.clone();
    command.insert("$db", &inv.db);
    reply.insert("command", command);
    reply.insert(
        "serverInfo",
        doc! {"version": crate::version::MONGODB_VERSION},
    );
    Ok(reply)
}

/// A count as mongod's explain shows it (an int).
fn n32(n: u64) -> i32 {
    n.min(i32::MAX as u64) as i32
}

/// Runs `plan`: how many documents the filter matched, and what was read.
fn run(
    storage: &crate::storage::Storage,
    info: &crate::storage::CollectionInfo,
    plan: &Plan,
    filter: &Filter,
) -> CommandResult<(u64, ScanStats)> {
    let mut matched = 0u64;
    let mut docs = 0u64;
    let each = |doc: Document| {
        docs += 1;
        if filter.matches(&doc) {
            matched += 1;
        }
        Ok(Scan::Continue)
    };
    let stats = match plan {
        Plan::IdHack(id) => {
            let found = storage.get(info, id).map_err(d::storage_error)?;
            let n = found.iter().filter(|d| filter.matches(d)).count() as u64;
            let examined = found.is_some() as u64;
            return Ok((
                n,
                ScanStats {
                    keys_examined: examined,
                    docs_examined: examined,
                },
            ));
        }
        Plan::IxScan { spec, ranges, .. } => storage.index_scan(info, spec, ranges, each),
        Plan::CollScan => storage.scan(info, None, each).map(|_| ScanStats::default()),
    };
    let mut stats = match stats {
        Ok(s) => s,
        Err(crate::storage::ScanError::Storage(e)) => return Err(d::storage_error(e)),
        Err(crate::storage::ScanError::Command(e)) => return Err(e),
    };
    if matches!(plan, Plan::CollScan) {
        stats.docs_examined = docs;
    }
    Ok((matched, stats))
}
