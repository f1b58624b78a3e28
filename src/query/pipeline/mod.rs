//! The aggregation pipeline: parsing a pipeline (an array of one-field stage documents)
//! with mongod's errors, and running it over documents. Pure: the stages that need the
//! outside world (`$lookup`'s foreign collection, `$out`/`$merge`'s target,
//! `$collStats`, `$indexStats`, `$currentOp`) reach it through [`PipelineHost`], which the
//! command layer implements.
//!
//! Stage facts (names, option rules, error codes and messages) follow mongod 7.0's
//! src/mongo/db/pipeline/document_source_*.cpp.

mod group;
pub use group::{accumulator_names, NOT_SUPPORTED as NOT_SUPPORTED_ACCUMULATORS};
mod project;

/// The parts of the query language the pipeline uses, in one place.
pub(crate) mod lang {
    pub use crate::query::expr::Expr;
    pub use crate::query::matcher::Filter;
    pub use crate::query::sort::SortSpec;
}

use crate::error::{type_name, whole_number, Code, CommandError, CommandResult};
use bson::{Bson, Document};
use lang::{Expr, Filter, SortSpec};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// The memory a blocking stage (`$sort`, `$group`) may hold without `allowDiskUse`:
/// mongod's internalQueryMaxBlockingSortMemoryUsageBytes and
/// internalDocumentSourceGroupMaxMemoryBytes, both 100 MB.
pub const DEFAULT_MEMORY_LIMIT: usize = 100 * 1024 * 1024;

/// What a pipeline runs against.
#[derive(Clone, Debug)]
pub struct Options {
    /// The database of the command.
    pub db: String,
    /// The collection aggregated, `None` for `aggregate: 1`.
    pub coll: Option<String>,
    /// The command's `let` variables and system variables such as `NOW`.
    pub vars: Document,
    /// Whether blocking stages may exceed `memory_limit`. ferrod keeps their data in
    /// memory either way (it has no external sorter yet).
    pub allow_disk_use: bool,
    /// What `$sort` may hold without disk use.
    pub memory_limit: usize,
    /// What `$group` may hold without disk use.
    pub group_memory_limit: usize,
}

impl Options {
    pub fn new(db: &str, coll: Option<&str>) -> Options {
        Options {
            db: db.to_string(),
            coll: coll.map(str::to_string),
            vars: Document::new(),
            allow_disk_use: true,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            group_memory_limit: DEFAULT_MEMORY_LIMIT,
        }
    }
}

/// How `$merge` and `$out` write; every call is for one document or one collection.
pub trait PipelineHost {
    /// All documents of a collection (`$lookup`'s foreign side); none if it does not exist.
    fn read_collection(&self, db: &str, coll: &str) -> CommandResult<Vec<Document>>;
    /// `$out`: the collection's documents become exactly `docs` (indexes kept).
    fn replace_collection(&self, db: &str, coll: &str, docs: Vec<Document>) -> CommandResult<()>;
    /// `$merge`: the documents of the target whose fields equal `fields`' values.
    fn find_matching(
        &self,
        db: &str,
        coll: &str,
        fields: &Document,
    ) -> CommandResult<Vec<Document>>;
    fn insert_document(&self, db: &str, coll: &str, doc: Document) -> CommandResult<()>;
    /// Replaces the document with `old`'s `_id` by `new`.
    fn replace_document(
        &self,
        db: &str,
        coll: &str,
        old: &Document,
        new: Document,
    ) -> CommandResult<()>;
    /// `$collStats` with its specification (`latencyStats`, `storageStats`, `count`, ...).
    fn coll_stats(&self, db: &str, coll: &str, spec: &Document) -> CommandResult<Document>;
    fn index_stats(&self, db: &str, coll: &str) -> CommandResult<Vec<Document>>;
    /// `$currentOp` with its options (already checked).
    fn current_op(&self, spec: &Document) -> CommandResult<Vec<Document>>;
    /// `$listLocalSessions` with its specification (already checked).
    fn list_local_sessions(&self, spec: &Document) -> CommandResult<Vec<Document>>;
    /// Called now and then by long stages: `maxTimeMS` and `killOp` answer here.
    fn check_interrupt(&self) -> CommandResult<()> {
        Ok(())
    }
}

pub(crate) fn failed(code: Code, msg: impl Into<String>) -> CommandError {
    CommandError::new(code, msg)
}

/// The running state shared by the stages of one execution.
pub struct Ctx<'a> {
    pub host: &'a dyn PipelineHost,
    pub opts: &'a Options,
    vars: Document,
    /// Foreign collections, read once per execution.
    foreign: RefCell<BTreeMap<String, Rc<Vec<Document>>>>,
}

/// Evaluates an expression; `None` is a missing value.
pub(crate) fn eval(e: &Expr, doc: &Document, ctx: &Ctx) -> CommandResult<Option<Bson>> {
    e.evaluate_opt(doc, &ctx.vars)
}

/// An estimate of a value's memory, for the blocking stages' limit.
pub(crate) fn approx_size(v: &Bson) -> usize {
    match v {
        Bson::Document(d) => doc_size(d),
        Bson::Array(items) => 16 + items.iter().map(|i| 8 + approx_size(i)).sum::<usize>(),
        Bson::String(s) => 16 + s.len(),
        Bson::Binary(b) => 16 + b.bytes.len(),
        _ => 16,
    }
}

pub(crate) fn doc_size(d: &Document) -> usize {
    16 + d
        .iter()
        .map(|(k, v)| k.len() + 8 + approx_size(v))
        .sum::<usize>()
}

#[derive(Clone, Debug)]
enum Target {
    Coll(String, String),
}

#[derive(Clone, Debug, PartialEq)]
enum WhenMatched {
    Replace,
    KeepExisting,
    Merge,
    Fail,
    Pipeline(Vec<Bson>),
}

#[derive(Clone, Debug, PartialEq)]
enum WhenNotMatched {
    Insert,
    Discard,
    Fail,
}

#[derive(Clone, Debug)]
struct Merge {
    target: Target,
    on: Vec<String>,
    let_vars: Option<Document>,
    when_matched: WhenMatched,
    when_not_matched: WhenNotMatched,
}

#[derive(Clone, Debug)]
struct Lookup {
    from: String,
    as_path: String,
    local_field: Option<String>,
    foreign_field: Option<String>,
    let_vars: Vec<(String, Expr)>,
    pipeline: Option<Vec<Bson>>,
}

#[derive(Clone, Debug)]
enum Stage {
    Match(Filter),
    Project(project::Projection),
    AddFields(project::AddFields),
    Group(group::Group),
    Sort(SortSpec),
    Limit(u64),
    Skip(u64),
    Count(String),
    Unwind {
        path: String,
        index: Option<String>,
        preserve: bool,
    },
    ReplaceRoot(Expr),
    SortByCount(Expr),
    Facet(Vec<(String, Pipeline)>),
    Sample(u64),
    Lookup(Box<Lookup>),
    Out(Target),
    Merge(Box<Merge>),
    CollStats(Document),
    IndexStats,
    CurrentOp(Document),
    ListLocalSessions(Document),
    Documents(Expr),
}

impl Stage {
    /// Stages that see every input before producing anything.
    fn is_blocking(&self) -> bool {
        matches!(
            self,
            Stage::Group(_)
                | Stage::Sort(_)
                | Stage::Count(_)
                | Stage::SortByCount(_)
                | Stage::Facet(_)
                | Stage::Sample(_)
                | Stage::Out(_)
                | Stage::Merge(_)
        )
    }
}

/// The stages ferrod runs.
pub const STAGES: &[&str] = &[
    "$addFields",
    "$collStats",
    "$count",
    "$currentOp",
    "$documents",
    "$facet",
    "$group",
    "$indexStats",
    "$limit",
    "$listLocalSessions",
    "$lookup",
    "$match",
    "$merge",
    "$out",
    "$project",
    "$replaceRoot",
    "$replaceWith",
    "$sample",
    "$set",
    "$skip",
    "$sort",
    "$sortByCount",
    "$unset",
    "$unwind",
];

/// mongod 7.0's other stages: refused by name as not supported (238), not as unknown.
pub const NOT_SUPPORTED: &[&str] = &[
    "$bucket",
    "$bucketAuto",
    "$changeStreamSplitLargeEvent",
    "$densify",
    "$fill",
    "$geoNear",
    "$graphLookup",
    "$listSampledQueries",
    "$listSearchIndexes",
    "$listSessions",
    "$planCacheStats",
    "$redact",
    "$search",
    "$searchMeta",
    "$setWindowFields",
    "$shardedDataDistribution",
    "$unionWith",
    "$vectorSearch",
];

/// A parsed pipeline.
#[derive(Clone, Debug)]
pub struct Pipeline {
    stages: Vec<Stage>,
}

/// Where a pipeline sits, for the stages that are allowed only in some places.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Nesting {
    Top,
    Facet,
    Lookup,
}

fn stage_name(value: &Bson) -> CommandResult<(&str, &Bson)> {
    match value {
        Bson::Document(d) if d.len() == 1 => {
            let (name, arg) = d.iter().next().expect("one field");
            Ok((name.as_str(), arg))
        }
        _ => Err(failed(
            Code::Location40323,
            "A pipeline stage specification object must contain exactly one field.",
        )),
    }
}

fn positive_integer(v: &Bson) -> Option<i64> {
    match v {
        Bson::Decimal128(_) => None,
        v => whole_number(v),
    }
}

fn namespace_arg(v: &Bson, db: &str, stage: &str) -> CommandResult<Target> {
    match v {
        Bson::String(c) if !c.is_empty() => Ok(Target::Coll(db.to_string(), c.clone())),
        Bson::Document(d) => {
            let coll = match d.get("coll") {
                Some(Bson::String(c)) if !c.is_empty() => c.clone(),
                Some(other) => {
                    return Err(crate::error::type_mismatch(
                        &format!("{stage}.coll"),
                        other,
                        "string",
                    ))
                }
                None => return Err(crate::error::missing_field(&format!("{stage}.coll"))),
            };
            let db = match d.get("db") {
                Some(Bson::String(d)) if !d.is_empty() => d.clone(),
                None => db.to_string(),
                Some(other) => {
                    return Err(crate::error::type_mismatch(
                        &format!("{stage}.db"),
                        other,
                        "string",
                    ))
                }
            };
            for key in d.keys() {
                if key != "db" && key != "coll" {
                    return Err(crate::error::unknown_field(&format!("{stage}.{key}")));
                }
            }
            Ok(Target::Coll(db, coll))
        }
        other => Err(failed(
            Code::Location16990,
            format!(
                "{stage} only supports a string or object argument, not {}",
                type_name(other)
            ),
        )),
    }
}

impl Pipeline {
    /// Parses a pipeline; `vars` are the variables its expressions may use (`let`).
    pub fn parse(stages: &[Bson], opts: &Options) -> CommandResult<Pipeline> {
        Self::parse_nested(stages, opts, &opts.vars, Nesting::Top)
    }

    fn parse_nested(
        stages: &[Bson],
        opts: &Options,
        vars: &Document,
        nesting: Nesting,
    ) -> CommandResult<Pipeline> {
        let mut parsed = Vec::new();
        for (i, value) in stages.iter().enumerate() {
            let (name, arg) = stage_name(value)?;
            let last = i + 1 == stages.len();
            let stage = Self::parse_stage(name, arg, opts, vars, nesting)?;
            let first_only = matches!(
                stage,
                Stage::CollStats(_)
                    | Stage::IndexStats
                    | Stage::CurrentOp(_)
                    | Stage::ListLocalSessions(_)
                    | Stage::Documents(_)
            );
            if first_only && i != 0 {
                return Err(failed(
                    Code::Location40602,
                    format!("{name} is only valid as the first stage in a pipeline"),
                ));
            }
            if matches!(stage, Stage::Out(_) | Stage::Merge(_)) {
                if nesting == Nesting::Facet {
                    return Err(failed(
                        Code::Location40600,
                        format!("{name} is not allowed to be used within a $facet stage"),
                    ));
                }
                if nesting == Nesting::Lookup {
                    return Err(failed(
                        Code::Location51047,
                        format!("{name} is not allowed within a $lookup's sub-pipeline"),
                    ));
                }
                if !last {
                    return Err(failed(
                        Code::Location40601,
                        format!("{name} can only be the final stage in the pipeline"),
                    ));
                }
            }
            if nesting == Nesting::Facet
                && matches!(
                    stage,
                    Stage::Facet(_) | Stage::CollStats(_) | Stage::IndexStats | Stage::CurrentOp(_)
                )
            {
                return Err(failed(
                    Code::Location40600,
                    format!("{name} is not allowed to be used within a $facet stage"),
                ));
            }
            parsed.push(stage);
        }
        Ok(Pipeline { stages: parsed })
    }

    fn parse_stage(
        name: &str,
        arg: &Bson,
        opts: &Options,
        vars: &Document,
        nesting: Nesting,
    ) -> CommandResult<Stage> {
        Ok(match name {
            "$match" => {
                let Bson::Document(filter) = arg else {
                    return Err(failed(
                        Code::Location15959,
                        "the match filter must be an expression in an object",
                    ));
                };
                Stage::Match(Filter::parse_with_vars(filter, vars)?)
            }
            "$project" => Stage::Project(project::Projection::parse_project(arg)?),
            "$unset" => Stage::Project(project::Projection::parse_unset(arg)?),
            "$addFields" | "$set" => Stage::AddFields(project::AddFields::parse(name, arg)?),
            "$group" => Stage::Group(group::Group::parse(arg)?),
            "$sort" => {
                let Bson::Document(spec) = arg else {
                    return Err(failed(
                        Code::Location15973,
                        "the $sort key specification must be an object",
                    ));
                };
                if spec.is_empty() {
                    return Err(failed(
                        Code::Location15976,
                        "$sort stage must have at least one sort key",
                    ));
                }
                Stage::Sort(SortSpec::parse(spec)?)
            }
            "$limit" => {
                let Some(n) = positive_integer(arg) else {
                    return Err(failed(
                        Code::Location15957,
                        "the limit must be specified as a number",
                    ));
                };
                if n <= 0 {
                    return Err(failed(Code::Location15958, "the limit must be positive"));
                }
                Stage::Limit(n as u64)
            }
            "$skip" => {
                let Some(n) = positive_integer(arg) else {
                    return Err(failed(
                        Code::Location15972,
                        "Argument to $skip must be a number",
                    ));
                };
                if n < 0 {
                    return Err(failed(
                        Code::Location15956,
                        "Argument to $skip cannot be negative",
                    ));
                }
                Stage::Skip(n as u64)
            }
            "$count" => {
                let Bson::String(field) = arg else {
                    return Err(failed(Code::Location40156, "the count field must be a non-empty string"));
                };
                if field.is_empty() {
                    return Err(failed(
                        Code::Location40157,
                        "the count field must be a non-empty string",
                    ));
                }
                if field.starts_with('$') {
                    return Err(failed(
                        Code::Location40158,
                        "the count field cannot be a $-prefixed path",
                    ));
                }
                if field.contains('.') {
                    return Err(failed(
                        Code::Location40160,
                        "the count field cannot contain '.'",
                    ));
                }
                Stage::Count(field.clone())
            }
            "$unwind" => Self::parse_unwind(arg)?,
            "$replaceRoot" => {
                let Bson::Document(spec) = arg else {
                    return Err(failed(
                        Code::Location40229,
                        format!(
                            "expected an object as specification for $replaceRoot stage, got {}",
                            type_name(arg)
                        ),
                    ));
                };
                let mut new_root = None;
                for (k, v) in spec {
                    if k != "newRoot" {
                        return Err(crate::error::unknown_field(&format!("$replaceRoot.{k}")));
                    }
                    new_root = Some(v);
                }
                let Some(new_root) = new_root else {
                    return Err(crate::error::missing_field("$replaceRoot.newRoot"));
                };
                Stage::ReplaceRoot(Expr::parse(new_root)?)
            }
            "$replaceWith" => Stage::ReplaceRoot(Expr::parse(arg)?),
            "$sortByCount" => {
                let msg = "the sortByCount field must be defined as a $-prefixed path or an expression inside an object";
                match arg {
                    Bson::String(s) if s.starts_with('$') => Stage::SortByCount(Expr::parse(arg)?),
                    Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
                        Stage::SortByCount(Expr::parse(arg)?)
                    }
                    Bson::String(_) => return Err(failed(Code::Location40148, msg)),
                    Bson::Document(_) => return Err(failed(Code::Location40147, msg)),
                    _ => {
                        return Err(failed(
                            Code::Location40149,
                            "the sortByCount field must be specified as a string or as an object",
                        ))
                    }
                }
            }
            "$facet" => {
                let spec = match arg {
                    Bson::Document(spec) if !spec.is_empty() => spec,
                    _ => {
                        return Err(failed(
                            Code::Location40169,
                            format!("the $facet specification must be a non-empty object, but found: $facet: {arg}"),
                        ))
                    }
                };
                let mut facets = Vec::new();
                for (k, v) in spec {
                    let Bson::Array(sub) = v else {
                        return Err(failed(
                            Code::Location40170,
                            format!("arguments to $facet must be arrays, {k} is type {}", type_name(v)),
                        ));
                    };
                    facets.push((k.clone(), Self::parse_nested(sub, opts, vars, Nesting::Facet)?));
                }
                Stage::Facet(facets)
            }
            "$sample" => {
                let Bson::Document(spec) = arg else {
                    return Err(failed(
                        Code::Location28745,
                        "the $sample stage specification must be an object",
                    ));
                };
                let mut size = None;
                for (k, v) in spec {
                    if k != "size" {
                        return Err(failed(
                            Code::Location28748,
                            format!("unrecognized option to $sample: {k}"),
                        ));
                    }
                    let Some(n) = positive_integer(v) else {
                        return Err(failed(
                            Code::Location28746,
                            "size argument to $sample must be a number",
                        ));
                    };
                    if n < 0 {
                        return Err(failed(
                            Code::Location28747,
                            "size argument to $sample must not be negative",
                        ));
                    }
                    size = Some(n as u64);
                }
                let Some(size) = size else {
                    return Err(failed(Code::Location28749, "$sample stage must specify a size"));
                };
                Stage::Sample(size)
            }
            "$lookup" => Stage::Lookup(Box::new(Self::parse_lookup(arg, opts, vars)?)),
            "$out" => Stage::Out(namespace_arg(arg, &opts.db, "$out")?),
            "$merge" => Stage::Merge(Box::new(Self::parse_merge(arg, opts)?)),
            "$collStats" => {
                let Bson::Document(spec) = arg else {
                    return Err(failed(
                        Code::Location5447000,
                        format!("$collStats must take a nested object but found: {arg}"),
                    ));
                };
                for k in spec.keys() {
                    if !["latencyStats", "storageStats", "count", "queryExecStats"]
                        .contains(&k.as_str())
                    {
                        return Err(crate::error::unknown_field(&format!("$collStats.{k}")));
                    }
                }
                Stage::CollStats(spec.clone())
            }
            "$indexStats" => {
                if !matches!(arg, Bson::Document(d) if d.is_empty()) {
                    return Err(failed(
                        Code::Location28803,
                        "The $indexStats stage specification must be an empty object",
                    ));
                }
                Stage::IndexStats
            }
            "$currentOp" => {
                let Bson::Document(spec) = arg else {
                    return Err(failed(
                        Code::FailedToParse,
                        format!(
                            "$currentOp options must be specified in an object, but found: {}",
                            type_name(arg)
                        ),
                    ));
                };
                Stage::CurrentOp(spec.clone())
            }
            "$documents" => Stage::Documents(Expr::parse(arg)?),
            "$listLocalSessions" => {
                let Bson::Document(spec) = arg else {
                    return Err(crate::error::type_mismatch("$listLocalSessions", arg, "object"));
                };
                for (k, v) in spec {
                    match (k.as_str(), v) {
                        ("allUsers", Bson::Boolean(_)) | ("users", Bson::Array(_)) => {}
                        ("allUsers", _) => {
                            return Err(crate::error::type_mismatch("$listLocalSessions.allUsers", v, "bool"))
                        }
                        ("users", _) => {
                            return Err(crate::error::type_mismatch("$listLocalSessions.users", v, "array"))
                        }
                        _ => return Err(crate::error::unknown_field(&format!("$listLocalSessions.{k}"))),
                    }
                }
                Stage::ListLocalSessions(spec.clone())
            }
            "$changeStream" => {
                return Err(failed(
                    Code::CommandNotSupported,
                    "$changeStream is not supported by ferrod yet: change streams come with a later version",
                ))
            }
            n if NOT_SUPPORTED.contains(&n) => {
                return Err(failed(
                    Code::NotImplemented,
                    format!("The pipeline stage {n} is not supported by ferrod"),
                ))
            }
            n => {
                let _ = nesting;
                return Err(failed(
                    Code::Location40324,
                    format!("Unrecognized pipeline stage name: '{n}'"),
                ));
            }
        })
    }

    fn parse_unwind(arg: &Bson) -> CommandResult<Stage> {
        let (path, index, preserve) = match arg {
            Bson::String(p) => (p.clone(), None, false),
            Bson::Document(spec) => {
                let mut path = None;
                let mut index = None;
                let mut preserve = false;
                for (k, v) in spec {
                    match (k.as_str(), v) {
                        ("path", Bson::String(p)) => path = Some(p.clone()),
                        ("path", _) => {
                            return Err(failed(
                                Code::Location28808,
                                format!(
                                    "expected a string as the path for $unwind stage, got {}",
                                    type_name(v)
                                ),
                            ))
                        }
                        ("includeArrayIndex", Bson::String(i)) => {
                            if i.is_empty() {
                                return Err(failed(
                                    Code::Location28810,
                                    "expected a non-empty string for the includeArrayIndex  option to $unwind stage",
                                ));
                            }
                            if i.starts_with('$') {
                                return Err(failed(
                                    Code::Location28822,
                                    format!("includeArrayIndex option to $unwind stage should not be prefixed with a '$': {i}"),
                                ));
                            }
                            index = Some(i.clone());
                        }
                        ("includeArrayIndex", _) => {
                            return Err(failed(
                                Code::Location28810,
                                format!(
                                    "expected a non-empty string for the includeArrayIndex  option to $unwind stage, got {}",
                                    type_name(v)
                                ),
                            ))
                        }
                        ("preserveNullAndEmptyArrays", Bson::Boolean(b)) => preserve = *b,
                        ("preserveNullAndEmptyArrays", _) => {
                            return Err(failed(
                                Code::Location28809,
                                format!(
                                    "expected a boolean for the preserveNullAndEmptyArrays option to $unwind stage, got {}",
                                    type_name(v)
                                ),
                            ))
                        }
                        (other, _) => {
                            return Err(failed(
                                Code::Location28811,
                                format!("unrecognized option to $unwind stage: {other}"),
                            ))
                        }
                    }
                }
                let Some(path) = path else {
                    return Err(failed(Code::Location28812, "no path specified to $unwind stage"));
                };
                (path, index, preserve)
            }
            other => {
                return Err(failed(
                    Code::Location15981,
                    format!(
                        "expected either a string or an object as specification for $unwind stage, got {}",
                        type_name(other)
                    ),
                ))
            }
        };
        if path.is_empty() {
            return Err(failed(
                Code::Location40352,
                "FieldPath cannot be constructed with empty string",
            ));
        }
        let Some(path) = path.strip_prefix('$') else {
            return Err(failed(
                Code::Location28818,
                format!("path option to $unwind stage should be prefixed with a '$': {path}"),
            ));
        };
        Ok(Stage::Unwind {
            path: path.to_string(),
            index,
            preserve,
        })
    }

    fn parse_lookup(arg: &Bson, opts: &Options, vars: &Document) -> CommandResult<Lookup> {
        let Bson::Document(spec) = arg else {
            return Err(failed(
                Code::Location40319,
                "the $lookup stage specification must be an object",
            ));
        };
        let mut lookup = Lookup {
            from: String::new(),
            as_path: String::new(),
            local_field: None,
            foreign_field: None,
            let_vars: Vec::new(),
            pipeline: None,
        };
        let mut from = None;
        let mut as_path = None;
        for (k, v) in spec {
            match (k.as_str(), v) {
                ("from", Bson::String(s)) => from = Some(s.clone()),
                ("from", Bson::Document(d)) => {
                    let Target::Coll(db, coll) = namespace_arg(v, &opts.db, "$lookup.from")?;
                    if db != opts.db {
                        return Err(failed(
                            Code::FailedToParse,
                            format!(
                                "$lookup with a 'from' of another database is not supported: {d}"
                            ),
                        ));
                    }
                    from = Some(coll);
                }
                ("as", Bson::String(s)) => as_path = Some(s.clone()),
                ("localField", Bson::String(s)) => lookup.local_field = Some(s.clone()),
                ("foreignField", Bson::String(s)) => lookup.foreign_field = Some(s.clone()),
                ("let", Bson::Document(d)) => {
                    for (name, e) in d {
                        lookup.let_vars.push((name.clone(), Expr::parse(e)?));
                    }
                }
                ("pipeline", Bson::Array(p)) => lookup.pipeline = Some(p.clone()),
                ("from" | "as" | "localField" | "foreignField", _) => {
                    return Err(failed(
                        Code::FailedToParse,
                        format!(
                            "$lookup argument '{k}: {v}' must be a string, is type {}",
                            type_name(v)
                        ),
                    ))
                }
                ("let", _) => {
                    return Err(failed(
                        Code::FailedToParse,
                        format!(
                            "$lookup argument '{k}: {v}' must be an object, is type {}",
                            type_name(v)
                        ),
                    ))
                }
                ("pipeline", _) => {
                    return Err(failed(
                        Code::FailedToParse,
                        format!(
                            "$lookup argument '{k}: {v}' must be an array, is type {}",
                            type_name(v)
                        ),
                    ))
                }
                _ => {
                    return Err(failed(
                        Code::FailedToParse,
                        format!("unknown argument to $lookup: {k}"),
                    ))
                }
            }
        }
        let Some(as_path) = as_path else {
            return Err(failed(
                Code::FailedToParse,
                "must specify 'as' field for a $lookup",
            ));
        };
        lookup.as_path = as_path;
        match (&lookup.local_field, &lookup.foreign_field, &lookup.pipeline) {
            (Some(_), Some(_), _) | (None, None, Some(_)) => {}
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err(failed(
                    Code::FailedToParse,
                    "$lookup requires both or neither of 'localField' and 'foreignField' to be specified",
                ))
            }
            (None, None, None) => {
                return Err(failed(
                    Code::FailedToParse,
                    "$lookup requires either 'pipeline' or both 'localField' and 'foreignField' to be specified",
                ))
            }
        }
        if lookup.pipeline.is_none() && !lookup.let_vars.is_empty() {
            return Err(failed(
                Code::FailedToParse,
                "$lookup with 'let' must also specify 'pipeline'",
            ));
        }
        let Some(from) = from else {
            return Err(failed(
                Code::FailedToParse,
                "must specify 'from' field for a $lookup",
            ));
        };
        lookup.from = from;
        if let Some(p) = &lookup.pipeline {
            // Checked now with the variables bound to null; run with their values per document.
            let mut sub_vars = vars.clone();
            for (name, _) in &lookup.let_vars {
                sub_vars.insert(name.clone(), Bson::Null);
            }
            Self::parse_nested(p, opts, &sub_vars, Nesting::Lookup)?;
        }
        Ok(lookup)
    }

    fn parse_merge(arg: &Bson, opts: &Options) -> CommandResult<Merge> {
        let mut merge = Merge {
            target: Target::Coll(String::new(), String::new()),
            on: vec!["_id".into()],
            let_vars: None,
            when_matched: WhenMatched::Merge,
            when_not_matched: WhenNotMatched::Insert,
        };
        let spec = match arg {
            Bson::String(_) => {
                merge.target = namespace_arg(arg, &opts.db, "$merge")?;
                return Ok(merge);
            }
            Bson::Document(d) => d,
            other => {
                return Err(failed(
                    Code::Location51182,
                    format!(
                        "$merge only supports a string or object argument, not {}",
                        type_name(other)
                    ),
                ))
            }
        };
        let mut into = None;
        for (k, v) in spec {
            match k.as_str() {
                "into" => into = Some(namespace_arg(v, &opts.db, "$merge.into")?),
                "on" => {
                    merge.on = match v {
                        Bson::String(s) => vec![s.clone()],
                        Bson::Array(items) if !items.is_empty() => items
                            .iter()
                            .map(|i| match i {
                                Bson::String(s) => Ok(s.clone()),
                                _ => Err(failed(
                                    Code::Location51134,
                                    "$merge 'on' array elements must be strings",
                                )),
                            })
                            .collect::<CommandResult<_>>()?,
                        Bson::Array(_) => {
                            return Err(failed(
                                Code::Location51187,
                                "If explicitly specifying $merge 'on', must include at least one field",
                            ))
                        }
                        _ => {
                            return Err(failed(
                                Code::Location51186,
                                "$merge 'on' field  must be either a string or an array of strings",
                            ))
                        }
                    }
                }
                "let" => match v {
                    Bson::Document(d) => merge.let_vars = Some(d.clone()),
                    _ => return Err(crate::error::type_mismatch("$merge.let", v, "object")),
                },
                "whenMatched" => {
                    merge.when_matched = match v {
                        Bson::String(s) => match s.as_str() {
                            "replace" => WhenMatched::Replace,
                            "keepExisting" => WhenMatched::KeepExisting,
                            "merge" => WhenMatched::Merge,
                            "fail" => WhenMatched::Fail,
                            other => {
                                return Err(failed(
                                    Code::BadValue,
                                    format!(
                                        "Enumeration value '{other}' for field '$merge.whenMatched' is not a valid value."
                                    ),
                                ))
                            }
                        },
                        Bson::Array(p) => WhenMatched::Pipeline(p.clone()),
                        _ => {
                            return Err(crate::error::type_mismatch(
                                "$merge.whenMatched",
                                v,
                                "[string, array]",
                            ))
                        }
                    }
                }
                "whenNotMatched" => {
                    merge.when_not_matched = match v {
                        Bson::String(s) => match s.as_str() {
                            "insert" => WhenNotMatched::Insert,
                            "discard" => WhenNotMatched::Discard,
                            "fail" => WhenNotMatched::Fail,
                            other => {
                                return Err(failed(
                                    Code::BadValue,
                                    format!(
                                        "Enumeration value '{other}' for field '$merge.whenNotMatched' is not a valid value."
                                    ),
                                ))
                            }
                        },
                        _ => {
                            return Err(crate::error::type_mismatch(
                                "$merge.whenNotMatched",
                                v,
                                "string",
                            ))
                        }
                    }
                }
                other => return Err(crate::error::unknown_field(&format!("$merge.{other}"))),
            }
        }
        let Some(into) = into else {
            return Err(crate::error::missing_field("$merge.into"));
        };
        merge.target = into;
        if let WhenMatched::Pipeline(p) = &merge.when_matched {
            // The update pipeline may use only the stages of a pipeline update.
            for s in p {
                let (name, _) = stage_name(s)?;
                if ![
                    "$addFields",
                    "$set",
                    "$project",
                    "$unset",
                    "$replaceRoot",
                    "$replaceWith",
                ]
                .contains(&name)
                {
                    return Err(failed(
                        Code::InvalidOptions,
                        format!("{name} is not allowed to be used within an update"),
                    ));
                }
            }
            let mut vars = opts.vars.clone();
            vars.insert("new", Bson::Document(Document::new()));
            Self::parse_nested(p, opts, &vars, Nesting::Lookup)?;
        }
        Ok(merge)
    }
}

/// The values of a dotted path through documents only (as `$unwind` and `$lookup`'s
/// `as` read and write).
fn get_path<'d>(doc: &'d Document, path: &str) -> Option<&'d Bson> {
    let mut parts = path.split('.');
    let mut value = doc.get(parts.next()?)?;
    for part in parts {
        value = value.as_document()?.get(part)?;
    }
    Some(value)
}

fn remove_path(doc: &mut Document, path: &str) {
    match path.split_once('.') {
        None => {
            doc.remove(path);
        }
        Some((first, rest)) => {
            if let Some(Bson::Document(sub)) = doc.get_mut(first) {
                remove_path(sub, rest);
            }
        }
    }
}

/// Sets a dotted path, replacing whatever non-document lies on the way.
fn set_path(doc: &mut Document, path: &str, value: Bson) {
    match path.split_once('.') {
        None => {
            doc.insert(path, value);
        }
        Some((first, rest)) => {
            if !matches!(doc.get(first), Some(Bson::Document(_))) {
                doc.insert(first, Document::new());
            }
            if let Some(Bson::Document(sub)) = doc.get_mut(first) {
                set_path(sub, rest, value);
            }
        }
    }
}

/// The values a `$lookup` compares on one side: a path through documents and arrays,
/// arrays expanded one level; a missing value is null.
fn lookup_values(doc: &Document, path: &str) -> Vec<Bson> {
    fn walk(v: &Bson, parts: &[&str], out: &mut Vec<Bson>) {
        let Some((first, rest)) = parts.split_first() else {
            match v {
                Bson::Array(items) => {
                    out.extend(items.iter().cloned());
                    if items.is_empty() {
                        out.push(Bson::Array(Vec::new()));
                    }
                }
                other => out.push(other.clone()),
            }
            return;
        };
        match v {
            Bson::Document(d) => match d.get(*first) {
                Some(next) => walk(next, rest, out),
                None => out.push(Bson::Null),
            },
            Bson::Array(items) => {
                for i in items {
                    walk(i, parts, out);
                }
            }
            _ => out.push(Bson::Null),
        }
    }
    let parts: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    walk(&Bson::Document(doc.clone()), &parts, &mut out);
    out
}

/// A small PRNG for `$sample`, seeded from the OS.
struct Rng(u64);
impl Rng {
    fn new() -> Rng {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Rng(u64::from_le_bytes(seed) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

type DocIter<'a> = Box<dyn Iterator<Item = CommandResult<Document>> + 'a>;

impl Pipeline {
    /// Whether the pipeline writes (`$out`, `$merge`): its reply batch is empty.
    pub fn writes(&self) -> bool {
        matches!(self.stages.last(), Some(Stage::Out(_) | Stage::Merge(_)))
    }

    /// The collections the pipeline reads besides its own (`$lookup`'s `from`, also
    /// inside `$facet`), as (db, coll).
    pub fn foreign_namespaces(&self, db: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for s in &self.stages {
            match s {
                Stage::Lookup(l) => out.push((db.to_string(), l.from.clone())),
                Stage::Facet(facets) => {
                    for (_, p) in facets {
                        out.extend(p.foreign_namespaces(db));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Where `$out` or `$merge` writes, as (db, coll).
    pub fn output_namespace(&self) -> Option<(String, String)> {
        match self.stages.last() {
            Some(Stage::Out(Target::Coll(db, coll))) => Some((db.clone(), coll.clone())),
            Some(Stage::Merge(m)) => {
                let Target::Coll(db, coll) = &m.target;
                Some((db.clone(), coll.clone()))
            }
            _ => None,
        }
    }

    /// Whether the first stage makes its own documents (`$collStats`, `$indexStats`,
    /// `$currentOp`, `$documents`): the collection is not read.
    pub fn is_source(&self) -> bool {
        matches!(
            self.stages.first(),
            Some(
                Stage::CollStats(_)
                    | Stage::IndexStats
                    | Stage::CurrentOp(_)
                    | Stage::ListLocalSessions(_)
                    | Stage::Documents(_)
            )
        )
    }

    /// The names of the stages, for explain and the slow-query log.
    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages
            .iter()
            .map(|s| match s {
                Stage::Match(_) => "$match",
                Stage::Project(_) => "$project",
                Stage::AddFields(_) => "$addFields",
                Stage::Group(_) => "$group",
                Stage::Sort(_) => "$sort",
                Stage::Limit(_) => "$limit",
                Stage::Skip(_) => "$skip",
                Stage::Count(_) => "$count",
                Stage::Unwind { .. } => "$unwind",
                Stage::ReplaceRoot(_) => "$replaceRoot",
                Stage::SortByCount(_) => "$sortByCount",
                Stage::Facet(_) => "$facet",
                Stage::Sample(_) => "$sample",
                Stage::Lookup(_) => "$lookup",
                Stage::Out(_) => "$out",
                Stage::Merge(_) => "$merge",
                Stage::CollStats(_) => "$collStats",
                Stage::IndexStats => "$indexStats",
                Stage::CurrentOp(_) => "$currentOp",
                Stage::ListLocalSessions(_) => "$listLocalSessions",
                Stage::Documents(_) => "$documents",
            })
            .collect()
    }

    /// Runs the pipeline over `input` (ignored when the first stage is a source).
    pub fn run<'a>(
        &self,
        input: impl Iterator<Item = CommandResult<Document>> + 'a,
        host: &dyn PipelineHost,
        opts: &Options,
    ) -> CommandResult<Vec<Document>> {
        let mut runner = self.runner(host, opts);
        if !self.is_source() {
            for doc in input {
                if !runner.push(doc?)? {
                    break;
                }
            }
        }
        runner.finish()
    }

    /// A run fed one document at a time, for a caller that reads its input through a
    /// callback (a storage scan).
    pub fn runner<'a>(&'a self, host: &'a dyn PipelineHost, opts: &'a Options) -> Runner<'a> {
        let prefix = if self.is_source() {
            0
        } else {
            self.stages
                .iter()
                .position(Stage::is_blocking)
                .unwrap_or(self.stages.len())
        };
        Runner {
            stages: &self.stages,
            prefix,
            ctx: Ctx {
                host,
                opts,
                vars: opts.vars.clone(),
                foreign: RefCell::default(),
            },
            counters: vec![0; prefix],
            out: Vec::new(),
            done: false,
            pushed: 0,
        }
    }
}

/// A pipeline run in progress: the streaming stages before the first blocking one see
/// each input document as it is pushed; `finish` runs the rest.
pub struct Runner<'a> {
    stages: &'a [Stage],
    prefix: usize,
    ctx: Ctx<'a>,
    counters: Vec<u64>,
    out: Vec<Document>,
    done: bool,
    pushed: usize,
}

impl Runner<'_> {
    /// Feeds one input document; false once no more input can change the result (a
    /// `$limit` was reached), so the caller can stop reading.
    pub fn push(&mut self, doc: Document) -> CommandResult<bool> {
        if self.done {
            return Ok(false);
        }
        if self.pushed.is_multiple_of(256) {
            self.ctx.host.check_interrupt()?;
        }
        self.pushed += 1;
        push(
            &self.stages[..self.prefix],
            0,
            doc,
            &mut self.counters,
            &mut self.out,
            &mut self.done,
            &self.ctx,
        )?;
        Ok(!self.done)
    }

    /// Runs the remaining stages and returns the results.
    pub fn finish(self) -> CommandResult<Vec<Document>> {
        let rest = &self.stages[self.prefix..];
        run_stages(rest, Box::new(self.out.into_iter().map(Ok)), &self.ctx)
    }
}

fn run_stages(stages: &[Stage], input: DocIter, ctx: &Ctx) -> CommandResult<Vec<Document>> {
    let mut current: DocIter = input;
    let mut i = 0;
    if let Some(first) = stages.first() {
        if let Some(docs) = source(first, ctx)? {
            current = Box::new(docs.into_iter().map(Ok));
            i = 1;
        }
    }
    while i < stages.len() {
        if stages[i].is_blocking() {
            let docs = current.collect::<CommandResult<Vec<_>>>()?;
            current = Box::new(blocking(&stages[i], docs, ctx)?.into_iter().map(Ok));
            i += 1;
            continue;
        }
        let end = (i..stages.len())
            .find(|&j| stages[j].is_blocking())
            .unwrap_or(stages.len());
        current = Box::new(stream(&stages[i..end], current, ctx)?.into_iter().map(Ok));
        i = end;
    }
    current.collect()
}

/// The documents a first stage makes, or `None` when it is not a source.
fn source(stage: &Stage, ctx: &Ctx) -> CommandResult<Option<Vec<Document>>> {
    let opts = ctx.opts;
    let coll = || {
        opts.coll.clone().ok_or_else(|| {
            failed(
                Code::InvalidNamespace,
                "this stage must be run against a collection",
            )
        })
    };
    Ok(Some(match stage {
        Stage::CollStats(spec) => vec![ctx.host.coll_stats(&opts.db, &coll()?, spec)?],
        Stage::IndexStats => ctx.host.index_stats(&opts.db, &coll()?)?,
        Stage::CurrentOp(spec) => ctx.host.current_op(spec)?,
        Stage::ListLocalSessions(spec) => ctx.host.list_local_sessions(spec)?,
        Stage::Documents(e) => match eval(e, &Document::new(), ctx)? {
            Some(Bson::Array(items)) => items
                .into_iter()
                .map(|i| match i {
                    Bson::Document(d) => Ok(d),
                    other => Err(failed(
                        Code::TypeMismatch,
                        format!(
                            "$documents expects an array of objects, found {}",
                            type_name(&other)
                        ),
                    )),
                })
                .collect::<CommandResult<_>>()?,
            _ => return Err(failed(
                Code::Location5858203,
                "error during evaluation of $documents: it must evaluate to an array of objects",
            )),
        },
        _ => return Ok(None),
    }))
}

/// Runs consecutive streaming stages document by document, stopping the input early once
/// a `$limit` is reached.
fn stream(stages: &[Stage], input: DocIter, ctx: &Ctx) -> CommandResult<Vec<Document>> {
    let mut counters = vec![0u64; stages.len()];
    let mut out = Vec::new();
    let mut done = false;
    for (n, doc) in input.enumerate() {
        if n % 256 == 0 {
            ctx.host.check_interrupt()?;
        }
        push(stages, 0, doc?, &mut counters, &mut out, &mut done, ctx)?;
        if done {
            break;
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn push(
    stages: &[Stage],
    k: usize,
    doc: Document,
    counters: &mut [u64],
    out: &mut Vec<Document>,
    done: &mut bool,
    ctx: &Ctx,
) -> CommandResult<()> {
    let Some(stage) = stages.get(k) else {
        out.push(doc);
        return Ok(());
    };
    let next = |d: Document, counters: &mut [u64], out: &mut Vec<Document>, done: &mut bool| {
        push(stages, k + 1, d, counters, out, done, ctx)
    };
    match stage {
        Stage::Match(f) => {
            // A $expr that fails to evaluate fails the pipeline, as in mongod.
            if f.try_matches(&doc)? {
                next(doc, counters, out, done)?;
            }
        }
        Stage::Project(p) => next(p.apply(&doc, ctx)?, counters, out, done)?,
        Stage::AddFields(a) => next(a.apply(&doc, ctx)?, counters, out, done)?,
        Stage::Limit(n) => {
            if counters[k] < *n {
                counters[k] += 1;
                next(doc, counters, out, done)?;
            }
            if counters[k] >= *n {
                *done = true;
            }
        }
        Stage::Skip(n) => {
            if counters[k] < *n {
                counters[k] += 1;
            } else {
                next(doc, counters, out, done)?;
            }
        }
        Stage::Unwind {
            path,
            index,
            preserve,
        } => {
            let value = get_path(&doc, path).cloned();
            match value {
                Some(Bson::Array(items)) if !items.is_empty() => {
                    for (i, item) in items.into_iter().enumerate() {
                        let mut d = doc.clone();
                        set_path(&mut d, path, item);
                        if let Some(ix) = index {
                            set_path(&mut d, ix, Bson::Int64(i as i64));
                        }
                        next(d, counters, out, done)?;
                        if *done {
                            break;
                        }
                    }
                }
                Some(Bson::Array(_)) | Some(Bson::Null) | Some(Bson::Undefined) | None => {
                    if *preserve {
                        let mut d = doc;
                        // An empty array is unwound to a missing field; null stays.
                        if matches!(value, Some(Bson::Array(_))) {
                            remove_path(&mut d, path);
                        }
                        if let Some(ix) = index {
                            set_path(&mut d, ix, Bson::Null);
                        }
                        next(d, counters, out, done)?;
                    }
                }
                Some(_) => {
                    let mut d = doc;
                    if let Some(ix) = index {
                        set_path(&mut d, ix, Bson::Null);
                    }
                    next(d, counters, out, done)?;
                }
            }
        }
        Stage::ReplaceRoot(e) => match eval(e, &doc, ctx)? {
            Some(Bson::Document(d)) => next(d, counters, out, done)?,
            other => {
                let shown = other
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "MISSING".into());
                return Err(failed(
                    Code::Location40228,
                    format!(
                        "'replacement document' must evaluate to an object, but resulting value was: {shown}. Type of resulting value: '{}'. Input document: {doc}",
                        other_type(&shown)
                    ),
                ));
            }
        },
        Stage::Lookup(l) => {
            let joined = run_lookup(l, &doc, ctx)?;
            let mut d = doc;
            set_path(
                &mut d,
                &l.as_path,
                Bson::Array(joined.into_iter().map(Bson::Document).collect()),
            );
            next(d, counters, out, done)?;
        }
        _ => unreachable!("blocking stage in a streaming segment"),
    }
    Ok(())
}

fn other_type(shown: &str) -> &'static str {
    if shown == "MISSING" {
        "missing"
    } else {
        "non-object"
    }
}

fn foreign(ctx: &Ctx, coll: &str) -> CommandResult<Rc<Vec<Document>>> {
    if let Some(docs) = ctx.foreign.borrow().get(coll) {
        return Ok(docs.clone());
    }
    let docs = Rc::new(ctx.host.read_collection(&ctx.opts.db, coll)?);
    ctx.foreign
        .borrow_mut()
        .insert(coll.to_string(), docs.clone());
    Ok(docs)
}

fn run_lookup(l: &Lookup, doc: &Document, ctx: &Ctx) -> CommandResult<Vec<Document>> {
    let all = foreign(ctx, &l.from)?;
    let candidates: Vec<Document> = match (&l.local_field, &l.foreign_field) {
        (Some(local), Some(foreign_field)) => {
            let wanted = lookup_values(doc, local);
            all.iter()
                .filter(|f| {
                    let theirs = lookup_values(f, foreign_field);
                    theirs.iter().any(|t| {
                        wanted
                            .iter()
                            .any(|w| crate::query::order::values_equal(t, w))
                    })
                })
                .cloned()
                .collect()
        }
        _ => all.to_vec(),
    };
    let Some(p) = &l.pipeline else {
        return Ok(candidates);
    };
    let mut vars = ctx.vars.clone();
    for (name, e) in &l.let_vars {
        vars.insert(name.clone(), eval(e, doc, ctx)?.unwrap_or(Bson::Null));
    }
    let sub_opts = Options {
        vars: vars.clone(),
        ..ctx.opts.clone()
    };
    let sub = Pipeline::parse_nested(p, &sub_opts, &vars, Nesting::Lookup)?;
    let sub_ctx = Ctx {
        host: ctx.host,
        opts: ctx.opts,
        vars,
        foreign: RefCell::default(),
    };
    run_stages(
        &sub.stages,
        Box::new(candidates.into_iter().map(Ok)),
        &sub_ctx,
    )
}

fn sort_docs(spec: &SortSpec, docs: Vec<Document>, ctx: &Ctx) -> CommandResult<Vec<Document>> {
    let mut memory = 0usize;
    let mut keyed = Vec::with_capacity(docs.len());
    for d in docs {
        memory += doc_size(&d);
        if memory > ctx.opts.memory_limit && !ctx.opts.allow_disk_use {
            return Err(failed(
                Code::QueryExceededMemoryLimitNoDiskUseAllowed,
                format!(
                    "Sort exceeded memory limit of {} bytes, but did not opt in to external sorting.",
                    ctx.opts.memory_limit
                ),
            ));
        }
        keyed.push((spec.key(&d), d));
    }
    // A stable sort keeps the input order of ties, as mongod's sorter does.
    keyed.sort_by(|a, b| spec.compare_keys(&a.0, &b.0));
    Ok(keyed.into_iter().map(|(_, d)| d).collect())
}

fn blocking(stage: &Stage, docs: Vec<Document>, ctx: &Ctx) -> CommandResult<Vec<Document>> {
    match stage {
        Stage::Group(g) => g.run(docs, ctx),
        Stage::Sort(spec) => sort_docs(spec, docs, ctx),
        Stage::Count(name) => {
            if docs.is_empty() {
                return Ok(Vec::new());
            }
            let mut d = Document::new();
            d.insert(name.clone(), Bson::Int32(docs.len() as i32));
            Ok(vec![d])
        }
        Stage::SortByCount(e) => {
            let grouped = group::Group::sort_by_count(e.clone())?.run(docs, ctx)?;
            let spec = SortSpec::parse(&bson::doc! {"count": -1})?;
            sort_docs(&spec, grouped, ctx)
        }
        Stage::Facet(facets) => {
            let mut out = Document::new();
            for (name, p) in facets {
                let results =
                    run_stages(&p.stages, Box::new(docs.clone().into_iter().map(Ok)), ctx)?;
                out.insert(
                    name.clone(),
                    results.into_iter().map(Bson::Document).collect::<Vec<_>>(),
                );
            }
            Ok(vec![out])
        }
        Stage::Sample(n) => {
            let mut rng = Rng::new();
            let mut docs = docs;
            let n = (*n as usize).min(docs.len());
            // Partial Fisher-Yates: the first n positions become a uniform sample in random order.
            for i in 0..n {
                let j = i + rng.below((docs.len() - i) as u64) as usize;
                docs.swap(i, j);
            }
            docs.truncate(n);
            Ok(docs)
        }
        Stage::Out(Target::Coll(db, coll)) => {
            ctx.host.replace_collection(db, coll, docs)?;
            Ok(Vec::new())
        }
        Stage::Merge(m) => {
            run_merge(m, docs, ctx)?;
            Ok(Vec::new())
        }
        _ => unreachable!("streaming stage run as blocking"),
    }
}

fn run_merge(m: &Merge, docs: Vec<Document>, ctx: &Ctx) -> CommandResult<()> {
    let Target::Coll(db, coll) = &m.target;
    for mut doc in docs {
        let mut key = Document::new();
        for field in &m.on {
            match get_path(&doc, field) {
                None | Some(Bson::Null) | Some(Bson::Undefined) | Some(Bson::Array(_)) => {
                    if field == "_id" && get_path(&doc, field).is_none() {
                        // A missing _id is generated, as an insert would.
                        let id = Bson::ObjectId(bson::oid::ObjectId::new());
                        doc.insert("_id", id.clone());
                        key.insert("_id", id);
                        continue;
                    }
                    return Err(failed(
                        Code::Location51132,
                        format!(
                            "$merge write error: 'on' field '{field}' cannot be missing, null, undefined or an array"
                        ),
                    ));
                }
                Some(v) => {
                    key.insert(field.clone(), v.clone());
                }
            }
        }
        let existing = ctx.host.find_matching(db, coll, &key)?;
        if existing.len() > 1 {
            return Err(failed(
                Code::Location51132,
                "$merge: the 'on' fields must have a unique index in the target collection",
            ));
        }
        match existing.into_iter().next() {
            None => match m.when_not_matched {
                WhenNotMatched::Insert => ctx.host.insert_document(db, coll, doc)?,
                WhenNotMatched::Discard => {}
                WhenNotMatched::Fail => {
                    return Err(failed(
                        Code::Location13113,
                        "$merge could not find a matching document in the target collection for at least one document in the source collection",
                    ))
                }
            },
            Some(old) => {
                let new = match &m.when_matched {
                    WhenMatched::KeepExisting => continue,
                    WhenMatched::Fail => {
                        let mut err = failed(
                            Code::DuplicateKey,
                            format!(
                                "$merge with whenMatched: fail found an existing document with the same values for the 'on' fields: {key}"
                            ),
                        );
                        err.extra = Some(bson::doc! {"keyPattern": m.on.iter().map(|f| (f.clone(), Bson::Int32(1))).collect::<Document>(), "keyValue": key.clone()});
                        return Err(err);
                    }
                    WhenMatched::Replace => {
                        let mut new = doc;
                        if let Some(id) = old.get("_id") {
                            new.insert("_id", id.clone());
                        }
                        new
                    }
                    WhenMatched::Merge => {
                        let mut new = old.clone();
                        for (k, v) in doc {
                            new.insert(k, v);
                        }
                        new
                    }
                    WhenMatched::Pipeline(p) => {
                        let mut vars = ctx.vars.clone();
                        if let Some(lets) = &m.let_vars {
                            for (name, e) in lets {
                                let e = Expr::parse(e)?;
                                vars.insert(name.clone(), eval(&e, &doc, ctx)?.unwrap_or(Bson::Null));
                            }
                        } else {
                            vars.insert("new", Bson::Document(doc.clone()));
                        }
                        let sub = Pipeline::parse_nested(p, ctx.opts, &vars, Nesting::Lookup)?;
                        let sub_ctx = Ctx {
                            host: ctx.host,
                            opts: ctx.opts,
                            vars,
                            foreign: RefCell::default(),
                        };
                        let mut out = run_stages(&sub.stages, Box::new(std::iter::once(Ok(old.clone()))), &sub_ctx)?;
                        let mut new = out.pop().unwrap_or_default();
                        if let Some(id) = old.get("_id") {
                            new.insert("_id", id.clone());
                        }
                        new
                    }
                };
                ctx.host.replace_document(db, coll, &old, new)?;
            }
        }
    }
    Ok(())
}
