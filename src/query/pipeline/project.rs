//! `$project`, `$addFields`/`$set` and `$unset` in aggregation's own form (inclusion,
//! exclusion, computed fields, `_id` included unless excluded), with the errors of
//! mongod's projection parser as `$project` reports them ("Invalid $project :: caused
//! by :: ...", projection_parser.cpp) .

use super::lang::Expr;
use super::{eval, failed, Ctx};
use crate::error::{Code, CommandError, CommandResult};
use bson::{Bson, Document};

#[derive(Clone, Debug)]
enum Node {
    Include,
    Exclude,
    Computed(Expr),
    Children(Vec<(String, Node)>),
}

#[derive(Clone, Debug)]
pub struct Projection {
    root: Vec<(String, Node)>,
    inclusion: bool,
}

fn invalid(code: Code, stage: &str, msg: impl std::fmt::Display) -> CommandError {
    failed(code, format!("Invalid {stage} :: caused by :: {msg}"))
}

/// Whether a sub-object is an expression (`{$add: ...}`) rather than a nested specification.
fn is_expression(d: &Document) -> bool {
    d.keys().next().is_some_and(|k| k.starts_with('$'))
}

fn check_field_name(stage: &str, path: &str) -> CommandResult<()> {
    for part in path.split('.') {
        if part.is_empty() {
            return Err(invalid(
                Code::Location15998,
                stage,
                "FieldPath field names may not be empty strings.",
            ));
        }
        if part.starts_with('$') {
            return Err(invalid(
                Code::Location16410,
                stage,
                "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
            ));
        }
    }
    Ok(())
}

/// Inserts `node` at `path` in the tree, refusing paths that collide.
fn insert(
    tree: &mut Vec<(String, Node)>,
    path: &[&str],
    node: Node,
    full: &str,
    stage: &str,
) -> CommandResult<()> {
    let (first, rest) = path.split_first().expect("non-empty path");
    let collision = || {
        invalid(
            Code::Location31250,
            stage,
            format!("Path collision at {full}"),
        )
    };
    match tree.iter_mut().find(|(k, _)| k == first) {
        None if rest.is_empty() => tree.push((first.to_string(), node)),
        None => {
            let mut sub = Vec::new();
            insert(&mut sub, rest, node, full, stage)?;
            tree.push((first.to_string(), Node::Children(sub)));
        }
        Some((_, Node::Children(sub))) if !rest.is_empty() => insert(sub, rest, node, full, stage)?,
        Some(_) => return Err(collision()),
    }
    Ok(())
}

impl Projection {
    /// `$project`'s specification.
    pub fn parse_project(spec: &Bson) -> CommandResult<Projection> {
        let Bson::Document(spec) = spec else {
            return Err(failed(
                Code::Location15969,
                "$project specification must be an object",
            ));
        };
        if spec.is_empty() {
            return Err(invalid(
                Code::Location51272,
                "$project",
                "projection specification must have at least one field",
            ));
        }
        let mut leaves = Vec::new();
        flatten("$project", spec, "", &mut leaves)?;
        // The first field other than `_id` decides the kind, as mongod's parser does.
        let inclusion = leaves
            .iter()
            .find(|(p, _)| p != "_id")
            .map(|(_, n)| !matches!(n, Node::Exclude))
            .unwrap_or_else(|| !matches!(leaves[0].1, Node::Exclude));
        let mut root = Vec::new();
        for (path, node) in leaves {
            match (&node, inclusion) {
                (Node::Exclude, true) if path != "_id" => {
                    return Err(invalid(
                        Code::Location31254,
                        "$project",
                        format!("Cannot do exclusion on field {path} in inclusion projection"),
                    ))
                }
                (Node::Include, false) => {
                    return Err(invalid(
                        Code::Location31253,
                        "$project",
                        format!("Cannot do inclusion on field {path} in exclusion projection"),
                    ))
                }
                (Node::Computed(_), false) => {
                    return Err(invalid(
                        Code::Location31252,
                        "$project",
                        "Cannot use expression other than $meta in exclusion projection",
                    ))
                }
                _ => {}
            }
            let parts: Vec<&str> = path.split('.').collect();
            insert(&mut root, &parts, node, &path, "$project")?;
        }
        if inclusion && !root.iter().any(|(k, _)| k == "_id") {
            root.insert(0, ("_id".into(), Node::Include));
        }
        Ok(Projection { root, inclusion })
    }

    /// `$unset`'s argument: a path or an array of paths, removed.
    pub fn parse_unset(spec: &Bson) -> CommandResult<Projection> {
        let paths: Vec<&str> = match spec {
            Bson::String(s) => vec![s.as_str()],
            Bson::Array(items) => {
                if items.is_empty() {
                    return Err(failed(
                        Code::Location31119,
                        "$unset specification must be a string or an array with at least one field",
                    ));
                }
                items
                    .iter()
                    .map(|i| match i {
                        Bson::String(s) => Ok(s.as_str()),
                        _ => Err(failed(
                            Code::Location31120,
                            "$unset specification must be a string or an array containing only string values",
                        )),
                    })
                    .collect::<CommandResult<_>>()?
            }
            _ => {
                return Err(failed(
                    Code::Location31002,
                    "$unset specification must be a string or an array",
                ))
            }
        };
        let mut root = Vec::new();
        for path in paths {
            check_field_name("$unset", path)?;
            let parts: Vec<&str> = path.split('.').collect();
            insert(&mut root, &parts, Node::Exclude, path, "$unset")?;
        }
        Ok(Projection {
            root,
            inclusion: false,
        })
    }

    pub fn apply(&self, doc: &Document, ctx: &Ctx) -> CommandResult<Document> {
        if self.inclusion {
            let mut out = include(doc, &self.root);
            compute(&mut out, doc, &self.root, ctx)?;
            Ok(out)
        } else {
            Ok(exclude(doc, &self.root))
        }
    }
}

/// The specification as (dotted path, leaf) pairs in order.
fn flatten(
    stage: &str,
    spec: &Document,
    prefix: &str,
    out: &mut Vec<(String, Node)>,
) -> CommandResult<()> {
    for (key, value) in spec {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        check_field_name(stage, key)?;
        match value {
            Bson::Boolean(b) => out.push((path, if *b { Node::Include } else { Node::Exclude })),
            v if crate::query::order::is_number(v) => {
                let zero =
                    crate::query::order::compare(v, &Bson::Int32(0)) == std::cmp::Ordering::Equal;
                out.push((path, if zero { Node::Exclude } else { Node::Include }))
            }
            Bson::Document(d) if d.is_empty() => {
                return Err(invalid(
                    Code::Location51270,
                    stage,
                    format!("An empty sub-projection is not a valid value. Found empty object at path {path}"),
                ))
            }
            Bson::Document(d) if !is_expression(d) => flatten(stage, d, &path, out)?,
            other => out.push((path, Node::Computed(Expr::parse(other)?))),
        }
    }
    Ok(())
}

fn include(doc: &Document, tree: &[(String, Node)]) -> Document {
    let mut out = Document::new();
    for (key, value) in doc {
        match tree.iter().find(|(k, _)| k == key).map(|(_, n)| n) {
            Some(Node::Include) => {
                out.insert(key.clone(), value.clone());
            }
            Some(Node::Children(sub)) => match value {
                Bson::Document(d) => {
                    out.insert(key.clone(), include(d, sub));
                }
                Bson::Array(items) => {
                    out.insert(key.clone(), include_array(items, sub));
                }
                _ => {}
            },
            _ => {}
        }
    }
    out
}

/// Inclusion through an array keeps its documents (projected) and nested arrays, and drops
/// its scalars, as mongod does.
fn include_array(items: &[Bson], tree: &[(String, Node)]) -> Bson {
    Bson::Array(
        items
            .iter()
            .filter_map(|item| match item {
                Bson::Document(d) => Some(Bson::Document(include(d, tree))),
                Bson::Array(inner) => Some(include_array(inner, tree)),
                _ => None,
            })
            .collect(),
    )
}

fn has_computed(tree: &[(String, Node)]) -> bool {
    tree.iter().any(|(_, n)| match n {
        Node::Computed(_) => true,
        Node::Children(sub) => has_computed(sub),
        _ => false,
    })
}

/// Sets the computed fields of an inclusion projection, after the included ones, in the
/// specification's order; expressions see the whole input document.
fn compute(
    out: &mut Document,
    root: &Document,
    tree: &[(String, Node)],
    ctx: &Ctx,
) -> CommandResult<()> {
    for (key, node) in tree {
        match node {
            Node::Computed(e) => match eval(e, root, ctx)? {
                Some(v) => {
                    out.insert(key.clone(), v);
                }
                None => {
                    out.remove(key);
                }
            },
            Node::Children(sub) if has_computed(sub) => {
                let value = out.remove(key);
                let value = match value {
                    Some(Bson::Array(items)) => Bson::Array(
                        items
                            .into_iter()
                            .map(|item| compute_in_value(item, root, sub, ctx))
                            .collect::<CommandResult<_>>()?,
                    ),
                    Some(Bson::Document(mut d)) => {
                        compute(&mut d, root, sub, ctx)?;
                        Bson::Document(d)
                    }
                    _ => {
                        let mut d = Document::new();
                        compute(&mut d, root, sub, ctx)?;
                        Bson::Document(d)
                    }
                };
                out.insert(key.clone(), value);
            }
            _ => {}
        }
    }
    Ok(())
}

fn compute_in_value(
    item: Bson,
    root: &Document,
    tree: &[(String, Node)],
    ctx: &Ctx,
) -> CommandResult<Bson> {
    Ok(match item {
        Bson::Document(mut d) => {
            compute(&mut d, root, tree, ctx)?;
            Bson::Document(d)
        }
        Bson::Array(items) => Bson::Array(
            items
                .into_iter()
                .map(|i| compute_in_value(i, root, tree, ctx))
                .collect::<CommandResult<_>>()?,
        ),
        _ => {
            let mut d = Document::new();
            compute(&mut d, root, tree, ctx)?;
            Bson::Document(d)
        }
    })
}

fn exclude(doc: &Document, tree: &[(String, Node)]) -> Document {
    let mut out = Document::new();
    for (key, value) in doc {
        match tree.iter().find(|(k, _)| k == key).map(|(_, n)| n) {
            Some(Node::Exclude) => {}
            Some(Node::Children(sub)) => {
                out.insert(key.clone(), exclude_value(value, sub));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out
}

fn exclude_value(value: &Bson, tree: &[(String, Node)]) -> Bson {
    match value {
        Bson::Document(d) => Bson::Document(exclude(d, tree)),
        Bson::Array(items) => Bson::Array(items.iter().map(|i| exclude_value(i, tree)).collect()),
        other => other.clone(),
    }
}

/// `$addFields` / `$set`: computed fields set into the document (nested objects that are
/// not expressions name sub-fields); existing fields keep their place, new ones go last.
#[derive(Clone, Debug)]
pub struct AddFields {
    tree: Vec<(String, Node)>,
}

impl AddFields {
    pub fn parse(stage: &str, spec: &Bson) -> CommandResult<AddFields> {
        let Bson::Document(spec) = spec else {
            return Err(failed(
                Code::Location40272,
                format!(
                    "{stage} specification stage must be an object, got {}",
                    crate::error::type_name(spec)
                ),
            ));
        };
        let mut leaves = Vec::new();
        flatten_computed(stage, spec, "", &mut leaves)?;
        let mut tree = Vec::new();
        for (path, node) in leaves {
            let parts: Vec<&str> = path.split('.').collect();
            insert(&mut tree, &parts, node, &path, stage)?;
        }
        Ok(AddFields { tree })
    }

    pub fn apply(&self, doc: &Document, ctx: &Ctx) -> CommandResult<Document> {
        let mut out = doc.clone();
        compute(&mut out, doc, &self.tree, ctx)?;
        Ok(out)
    }
}

/// Like `flatten`, but every leaf is an expression (`1` is the literal 1, not an inclusion).
fn flatten_computed(
    stage: &str,
    spec: &Document,
    prefix: &str,
    out: &mut Vec<(String, Node)>,
) -> CommandResult<()> {
    for (key, value) in spec {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        check_field_name(stage, key)?;
        match value {
            Bson::Document(d) if !d.is_empty() && !is_expression(d) => {
                flatten_computed(stage, d, &path, out)?
            }
            other => out.push((path, Node::Computed(Expr::parse(other)?))),
        }
    }
    Ok(())
}
