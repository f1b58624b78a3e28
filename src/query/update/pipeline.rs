//! Updates given as an aggregation pipeline (mongod's PipelineExecutor): the stages
//! `$addFields`/`$set`, `$project`, `$unset`, `$replaceRoot` and `$replaceWith`; any
//! other stage is refused as mongod refuses it (InvalidOptions 72, or 40324 when the
//! name is no stage at all).

use super::super::expr::Expr;
use super::{err, repr, Result, UpdateContext};
use crate::error::{type_name, Code};
use bson::{Bson, Document};

#[derive(Clone, Debug)]
pub struct Pipeline {
    stages: Vec<Stage>,
}

#[derive(Clone, Debug)]
enum Stage {
    /// `$addFields` and its alias `$set`: paths set to expression values.
    AddFields(Vec<(String, Expr)>),
    /// `$project`: the document as find's projection shapes it.
    Project(super::super::projection::Projection),
    Unset(Vec<String>),
    /// `$replaceRoot: {newRoot}` and `$replaceWith`.
    ReplaceRoot(Expr),
}

/// Aggregation stages mongod knows that an update may not use.
const OTHER_STAGES: &[&str] = &[
    "$bucket",
    "$bucketAuto",
    "$changeStream",
    "$collStats",
    "$count",
    "$currentOp",
    "$densify",
    "$documents",
    "$facet",
    "$fill",
    "$geoNear",
    "$graphLookup",
    "$group",
    "$indexStats",
    "$limit",
    "$listLocalSessions",
    "$listSessions",
    "$lookup",
    "$match",
    "$merge",
    "$out",
    "$planCacheStats",
    "$redact",
    "$sample",
    "$search",
    "$setWindowFields",
    "$skip",
    "$sort",
    "$sortByCount",
    "$unionWith",
    "$unwind",
];

impl Pipeline {
    pub fn parse(stages: &[Bson]) -> Result<Pipeline> {
        let mut out = Vec::new();
        for stage in stages {
            let Bson::Document(spec) = stage else {
                return Err(err(
                    Code::TypeMismatch,
                    format!(
                        "Each element of the 'pipeline' array must be an object, found {}",
                        type_name(stage)
                    ),
                ));
            };
            if spec.len() != 1 {
                return Err(err(
                    Code::Location40323,
                    "A pipeline stage specification object must contain exactly one field.",
                ));
            }
            let (name, arg) = spec.iter().next().expect("one field");
            out.push(match name.as_str() {
                "$addFields" | "$set" => Stage::AddFields(parse_add_fields(name, arg)?),
                "$project" => match arg {
                    Bson::Document(p) => {
                        Stage::Project(super::super::projection::Projection::parse_aggregation(p)?)
                    }
                    other => {
                        return Err(err(
                            Code::Location15969,
                            format!("$project specification must be an object, found {}", type_name(other)),
                        ))
                    }
                },
                "$unset" => Stage::Unset(parse_unset(arg)?),
                "$replaceRoot" => {
                    let Bson::Document(d) = arg else {
                        return Err(err(
                            Code::Location40229,
                            format!("expected an object as specification for $replaceRoot stage, got {}", type_name(arg)),
                        ));
                    };
                    let mut new_root = None;
                    for (k, v) in d {
                        if k != "newRoot" {
                            return Err(err(
                                Code::IDLUnknownField,
                                format!("BSON field '$replaceRoot.{k}' is an unknown field."),
                            ));
                        }
                        new_root = Some(v.clone());
                    }
                    let Some(new_root) = new_root else {
                        return Err(err(
                            Code::IDLFailedToParse,
                            "BSON field '$replaceRoot.newRoot' is missing but a required field",
                        ));
                    };
                    Stage::ReplaceRoot(Expr::parse(&new_root)?)
                }
                "$replaceWith" => Stage::ReplaceRoot(Expr::parse(arg)?),
                other if OTHER_STAGES.contains(&other) => {
                    return Err(err(
                        Code::InvalidOptions,
                        format!("{other} is not allowed to be used within an update"),
                    ))
                }
                other => {
                    return Err(err(
                        Code::Location40324,
                        format!("Unrecognized pipeline stage name: '{other}'"),
                    ))
                }
            });
        }
        Ok(Pipeline { stages: out })
    }

    /// Runs the stages over the document; the caller keeps `_id` as for a replacement.
    pub fn apply(&self, doc: &Document, ctx: &UpdateContext) -> Result<Document> {
        let mut vars = ctx.let_vars.clone();
        vars.insert("NOW", ctx.now);
        vars.insert("CLUSTER_TIME", ctx.now_timestamp);
        let mut current = doc.clone();
        for stage in &self.stages {
            current = match stage {
                Stage::AddFields(fields) => {
                    let root = current.clone();
                    for (path, expr) in fields {
                        // A missing value ($$REMOVE, a missing path) removes the field.
                        match expr.evaluate_opt(&root, &vars)? {
                            Some(value) => set_dotted(&mut current, path, value),
                            None => unset_dotted(&mut current, path),
                        }
                    }
                    current
                }
                Stage::Project(p) => p.apply(&current, None)?,
                Stage::Unset(paths) => {
                    for path in paths {
                        unset_dotted(&mut current, path);
                    }
                    current
                }
                Stage::ReplaceRoot(expr) => match expr.evaluate(&current, &vars)? {
                    Bson::Document(d) => d,
                    other => {
                        return Err(err(
                            Code::Location40228,
                            format!(
                                "'replacement document' must evaluate to an object, but resulting value was: {}. Type of resulting value: '{}'. Input document: {}",
                                repr::value_repr(&other),
                                type_name(&other),
                                repr::document(&current)
                            ),
                        ))
                    }
                },
            };
        }
        Ok(current)
    }
}

fn parse_add_fields(name: &str, arg: &Bson) -> Result<Vec<(String, Expr)>> {
    let Bson::Document(spec) = arg else {
        return Err(err(
            Code::Location40272,
            format!(
                "{name} specification stage must be an object, got {}",
                type_name(arg)
            ),
        ));
    };
    let mut out = Vec::new();
    flatten_add_fields(spec, "", &mut out)?;
    Ok(out)
}

/// `{a: {b: 1}}` in `$addFields` adds `b` inside `a` (keeping a's other fields), as
/// `{"a.b": 1}` does; objects whose first field is an operator are expressions.
fn flatten_add_fields(spec: &Document, prefix: &str, out: &mut Vec<(String, Expr)>) -> Result<()> {
    for (field, expr) in spec {
        let path = if prefix.is_empty() {
            field.clone()
        } else {
            format!("{prefix}.{field}")
        };
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(err(
                Code::Location40352,
                "FieldPath cannot be constructed with empty string",
            ));
        }
        if path.starts_with('$') {
            return Err(err(
                Code::Location16410,
                "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
            ));
        }
        match expr {
            Bson::Document(sub)
                if !sub.is_empty() && sub.keys().next().is_some_and(|k| !k.starts_with('$')) =>
            {
                flatten_add_fields(sub, &path, out)?
            }
            _ => out.push((path, Expr::parse(expr)?)),
        }
    }
    Ok(())
}

fn parse_unset(arg: &Bson) -> Result<Vec<String>> {
    let bad = || {
        err(
            Code::Location31002,
            "$unset specification must be a string or an array containing only string values",
        )
    };
    match arg {
        Bson::String(s) => Ok(vec![s.clone()]),
        Bson::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| match i {
                Bson::String(s) => Ok(s.clone()),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

/// `$addFields` semantics for a dotted path: missing or non-document parents become
/// documents; arrays get the field set in each document element.
fn set_dotted(doc: &mut Document, path: &str, value: Bson) {
    match path.split_once('.') {
        None => {
            doc.insert(path, value);
        }
        Some((head, rest)) => {
            let entry = doc.entry(head.to_string()).or_insert(Bson::Null);
            match entry {
                Bson::Document(inner) => set_dotted(inner, rest, value),
                Bson::Array(items) => {
                    for item in items.iter_mut() {
                        if let Bson::Document(inner) = item {
                            set_dotted(inner, rest, value.clone());
                        }
                    }
                }
                other => {
                    let mut inner = Document::new();
                    set_dotted(&mut inner, rest, value);
                    *other = Bson::Document(inner);
                }
            }
        }
    }
}

fn unset_dotted(doc: &mut Document, path: &str) {
    match path.split_once('.') {
        None => {
            doc.remove(path);
        }
        Some((head, rest)) => match doc.get_mut(head) {
            Some(Bson::Document(inner)) => unset_dotted(inner, rest),
            Some(Bson::Array(items)) => {
                for item in items.iter_mut() {
                    if let Bson::Document(inner) = item {
                        unset_dotted(inner, rest);
                    }
                }
            }
            _ => {}
        },
    }
}
