//! Updates given as an aggregation pipeline (mongod's PipelineExecutor): the stages
//! `$addFields`/`$set`, `$project`, `$unset`, `$replaceRoot` and `$replaceWith`; any
//! other stage is refused as mongod refuses it (InvalidOptions 72, or 40324 when the
//! name is no stage at all).

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
    AddFields(Vec<(String, Bson)>),
    /// `$project`: the document as find's projection shapes it.
    Project(super::super::projection::Projection),
    Unset(Vec<String>),
    /// `$replaceRoot: {newRoot}` and `$replaceWith`.
    ReplaceRoot(Bson),
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
                    Bson::Document(p) => Stage::Project(super::super::projection::Projection::parse(p)?),
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
                    Stage::ReplaceRoot(new_root)
                }
                "$replaceWith" => Stage::ReplaceRoot(arg.clone()),
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
        let mut current = doc.clone();
        for stage in &self.stages {
            current = match stage {
                Stage::AddFields(fields) => {
                    let root = current.clone();
                    for (path, expr) in fields {
                        let value = evaluate(expr, &root, Some(ctx))?;
                        set_dotted(&mut current, path, value);
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
                Stage::ReplaceRoot(expr) => match evaluate(expr, &current, Some(ctx))? {
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

fn parse_add_fields(name: &str, arg: &Bson) -> Result<Vec<(String, Bson)>> {
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
fn flatten_add_fields(spec: &Document, prefix: &str, out: &mut Vec<(String, Bson)>) -> Result<()> {
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
            _ => out.push((path, expr.clone())),
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

/// Expression evaluation for pipeline stages: literals, `$field` paths, `$$ROOT`,
/// `$$NOW`, `$literal` and expression objects. Operators come with the shared
/// expression evaluator; until then they are refused by name.
pub(super) fn evaluate(expr: &Bson, root: &Document, ctx: Option<&UpdateContext>) -> Result<Bson> {
    match expr {
        Bson::String(s) if s.starts_with("$$") => {
            let (var, rest) = match s[2..].split_once('.') {
                Some((v, r)) => (v, Some(r)),
                None => (&s[2..], None),
            };
            let base = match var {
                "ROOT" | "CURRENT" => Bson::Document(root.clone()),
                "NOW" if ctx.is_some() => {
                    Bson::DateTime(ctx.map(|c| c.now).unwrap_or_else(bson::DateTime::now))
                }
                "CLUSTER_TIME" if ctx.is_some() => {
                    Bson::Timestamp(ctx.map(|c| c.now_timestamp).unwrap_or(bson::Timestamp {
                        time: 0,
                        increment: 0,
                    }))
                }
                other => {
                    return Err(err(
                        Code::Location17276,
                        format!("Use of undefined variable: {other}"),
                    ))
                }
            };
            Ok(match rest {
                Some(path) => path_value(&base, path).unwrap_or(Bson::Null),
                None => base,
            })
        }
        Bson::String(s) if s.starts_with('$') => {
            Ok(path_value(&Bson::Document(root.clone()), &s[1..]).unwrap_or(Bson::Null))
        }
        Bson::Document(d) => {
            if let Some((first, arg)) = d.iter().next() {
                if first == "$literal" {
                    return Ok(arg.clone());
                }
                if first.starts_with('$') {
                    return Err(err(
                        Code::InvalidPipelineOperator,
                        format!("Unrecognized expression '{first}'"),
                    ));
                }
            }
            let mut out = Document::new();
            for (k, v) in d {
                out.insert(k.clone(), evaluate(v, root, ctx)?);
            }
            Ok(Bson::Document(out))
        }
        Bson::Array(items) => Ok(Bson::Array(
            items
                .iter()
                .map(|i| evaluate(i, root, ctx))
                .collect::<Result<Vec<_>>>()?,
        )),
        other => Ok(other.clone()),
    }
}

/// A field path's value as aggregation reads it: through arrays it yields the array of
/// each element's value (missing ones dropped); None when missing.
fn path_value(value: &Bson, path: &str) -> Option<Bson> {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    match value {
        Bson::Document(d) => {
            let v = d.get(head)?;
            match rest {
                Some(r) => path_value(v, r),
                None => Some(v.clone()),
            }
        }
        Bson::Array(items) => Some(Bson::Array(
            items.iter().filter_map(|i| path_value(i, path)).collect(),
        )),
        _ => None,
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
