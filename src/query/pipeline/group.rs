//! `$group`: the group key and the accumulators (`$sum $avg $min $max $first $last $push
//! $addToSet $count`), with mongod's parse errors (document_source_group.cpp,
//! accumulator_*.cpp).

use super::lang::Expr;
use super::{approx_size, eval, failed, Ctx};
use crate::error::{Code, CommandError, CommandResult};
use crate::query::decimal;
use crate::query::order::{compare, is_number, values_equal};
use bson::{Bson, Document};
use std::cmp::Ordering;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
    Push,
    AddToSet,
    Count,
}

const ACCUMULATORS: &[(&str, Kind)] = &[
    ("$sum", Kind::Sum),
    ("$avg", Kind::Avg),
    ("$min", Kind::Min),
    ("$max", Kind::Max),
    ("$first", Kind::First),
    ("$last", Kind::Last),
    ("$push", Kind::Push),
    ("$addToSet", Kind::AddToSet),
    ("$count", Kind::Count),
];

/// The accumulators' names, in ACCUMULATORS' order.
pub fn accumulator_names() -> impl Iterator<Item = &'static str> {
    ACCUMULATORS.iter().map(|(name, _)| *name)
}

/// mongod's other accumulators, refused by name (238) rather than as unknown.
pub const NOT_SUPPORTED: &[&str] = &[
    "$accumulator",
    "$bottom",
    "$bottomN",
    "$firstN",
    "$lastN",
    "$maxN",
    "$mergeObjects",
    "$median",
    "$minN",
    "$percentile",
    "$stdDevPop",
    "$stdDevSamp",
    "$top",
    "$topN",
];

#[derive(Clone, Debug)]
struct Field {
    name: String,
    kind: Kind,
    arg: Expr,
}

#[derive(Clone, Debug)]
pub struct Group {
    id: Expr,
    fields: Vec<Field>,
}

/// A value ordered as mongod compares values, for the group table.
#[derive(Clone, Debug)]
struct Key(Bson);
impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        values_equal(&self.0, &other.0)
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(&self.0, &other.0)
    }
}

#[derive(Clone, Debug)]
enum State {
    Sum(Bson),
    /// The sum (as `$sum` adds) and the count of numbers.
    Avg(Bson, u64),
    Min(Option<Bson>),
    Max(Option<Bson>),
    First(Option<Bson>),
    Last(Bson),
    List(Vec<Bson>),
    Set(BTreeMap<Key, ()>, Vec<Bson>),
}

impl Group {
    pub fn parse(arg: &Bson) -> CommandResult<Group> {
        let Bson::Document(spec) = arg else {
            return Err(failed(
                Code::Location15947,
                "a group's fields must be specified in an object",
            ));
        };
        let mut id = None;
        let mut fields = Vec::new();
        for (name, value) in spec {
            if name == "_id" {
                id = Some(Expr::parse(value)?);
                continue;
            }
            if name.starts_with('$') {
                return Err(failed(
                    Code::Location40236,
                    format!("The field name '{name}' cannot be an operator name"),
                ));
            }
            if name.contains('.') {
                return Err(failed(
                    Code::Location40235,
                    format!("The field name '{name}' cannot contain '.'"),
                ));
            }
            let Bson::Document(acc) = value else {
                return Err(failed(
                    Code::Location40234,
                    format!("The field '{name}' must be an accumulator object"),
                ));
            };
            if acc.len() != 1 {
                return Err(failed(
                    Code::Location40238,
                    format!("The field '{name}' must specify one accumulator"),
                ));
            }
            let (op, arg) = acc.iter().next().expect("one field");
            let Some((_, kind)) = ACCUMULATORS.iter().find(|(n, _)| n == op) else {
                if NOT_SUPPORTED.contains(&op.as_str()) {
                    return Err(CommandError::new(
                        Code::NotImplemented,
                        format!("The accumulator '{op}' is not supported by ferrod"),
                    ));
                }
                return Err(failed(
                    Code::Location15952,
                    format!("unknown group operator '{op}'"),
                ));
            };
            if *kind == Kind::Count && !matches!(arg, Bson::Document(d) if d.is_empty()) {
                return Err(failed(
                    Code::TypeMismatch,
                    "$count takes no arguments, i.e. $count:{}",
                ));
            }
            if matches!(arg, Bson::Array(_)) && *kind != Kind::Count {
                return Err(failed(
                    Code::Location40237,
                    format!("The {op} accumulator is a unary operator"),
                ));
            }
            fields.push(Field {
                name: name.clone(),
                kind: *kind,
                arg: if *kind == Kind::Count {
                    Expr::parse(&Bson::Int32(1))?
                } else {
                    Expr::parse(arg)?
                },
            });
        }
        let Some(id) = id else {
            return Err(failed(
                Code::Location15955,
                "a group specification must include an _id",
            ));
        };
        Ok(Group { id, fields })
    }

    /// `$sortByCount: expr` is `$group: {_id: expr, count: {$sum: 1}}` then a sort.
    pub fn sort_by_count(id: Expr) -> CommandResult<Group> {
        Ok(Group {
            id,
            fields: vec![Field {
                name: "count".into(),
                kind: Kind::Sum,
                arg: Expr::parse(&Bson::Int32(1))?,
            }],
        })
    }

    pub fn run(&self, input: Vec<Document>, ctx: &Ctx) -> CommandResult<Vec<Document>> {
        let mut index: BTreeMap<Key, usize> = BTreeMap::new();
        let mut groups: Vec<(Bson, Vec<State>)> = Vec::new();
        let mut memory = 0usize;
        for (n, doc) in input.into_iter().enumerate() {
            if n % 256 == 0 {
                ctx.host.check_interrupt()?;
            }
            let id = eval(&self.id, &doc, ctx)?.unwrap_or(Bson::Null);
            let slot = match index.get(&Key(id.clone())) {
                Some(i) => *i,
                None => {
                    memory += approx_size(&id);
                    groups.push((id.clone(), self.fields.iter().map(initial).collect()));
                    index.insert(Key(id), groups.len() - 1);
                    groups.len() - 1
                }
            };
            for (field, state) in self.fields.iter().zip(groups[slot].1.iter_mut()) {
                let value = eval(&field.arg, &doc, ctx)?;
                memory += accumulate(state, value);
            }
            if memory > ctx.opts.group_memory_limit && !ctx.opts.allow_disk_use {
                return Err(CommandError::new(
                    Code::QueryExceededMemoryLimitNoDiskUseAllowed,
                    "Exceeded memory limit for $group, but didn't allow external sort. Pass allowDiskUse:true to opt in.",
                ));
            }
        }
        Ok(groups
            .into_iter()
            .map(|(id, states)| {
                let mut out = Document::new();
                out.insert("_id", id);
                for (field, state) in self.fields.iter().zip(states) {
                    out.insert(field.name.clone(), finish(state));
                }
                out
            })
            .collect())
    }
}

fn initial(field: &Field) -> State {
    match field.kind {
        Kind::Sum | Kind::Count => State::Sum(Bson::Int32(0)),
        Kind::Avg => State::Avg(Bson::Int32(0), 0),
        Kind::Min => State::Min(None),
        Kind::Max => State::Max(None),
        Kind::First => State::First(None),
        Kind::Last => State::Last(Bson::Null),
        Kind::Push => State::List(Vec::new()),
        Kind::AddToSet => State::Set(BTreeMap::new(), Vec::new()),
    }
}

fn as_f64(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(n) => Some(*n as f64),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(f) => Some(*f),
        _ => None,
    }
}

/// Adds `v` to the running value; returns the bytes the state grew by.
fn accumulate(state: &mut State, value: Option<Bson>) -> usize {
    let missing = value.is_none() || matches!(value, Some(Bson::Undefined));
    let is_max = matches!(state, State::Max(_));
    match state {
        State::Sum(total) => {
            if let Some(v) = value.as_ref().filter(|v| is_number(v)) {
                *total = add_numbers(total, v).unwrap_or(Bson::Null);
            }
            0
        }
        State::Avg(sum, n) => {
            if let Some(v) = value.as_ref().filter(|v| is_number(v)) {
                *sum = add_numbers(sum, v).unwrap_or(Bson::Null);
                *n += 1;
            }
            0
        }
        State::Min(current) | State::Max(current) => {
            // min and max ignore null, undefined and missing.
            let Some(v) = value.filter(|v| !matches!(v, Bson::Null | Bson::Undefined)) else {
                return 0;
            };
            let size = approx_size(&v);
            let keep = if is_max {
                Ordering::Greater
            } else {
                Ordering::Less
            };
            match current {
                Some(old) if compare(&v, old) != keep => 0,
                _ => {
                    *current = Some(v);
                    size
                }
            }
        }
        State::First(first) => {
            if first.is_none() {
                *first = Some(value.unwrap_or(Bson::Null));
            }
            0
        }
        State::Last(last) => {
            *last = value.unwrap_or(Bson::Null);
            0
        }
        State::List(items) => {
            if missing {
                return 0;
            }
            let v = value.expect("present");
            let size = approx_size(&v);
            items.push(v);
            size
        }
        State::Set(seen, items) => {
            if missing {
                return 0;
            }
            let v = value.expect("present");
            if seen.insert(Key(v.clone()), ()).is_some() {
                return 0;
            }
            let size = approx_size(&v);
            items.push(v);
            size
        }
    }
}

fn finish(state: State) -> Bson {
    match state {
        State::Sum(total) => total,
        State::Avg(_, 0) => Bson::Null,
        // With a decimal among the inputs the average is a decimal, as in mongod.
        State::Avg(sum @ Bson::Decimal128(_), n) => {
            decimal::divide(&sum, &decimal::from_count(n)).unwrap_or(Bson::Null)
        }
        State::Avg(sum, n) => Bson::Double(as_f64(&sum).unwrap_or(f64::NAN) / n as f64),
        State::Min(v) | State::Max(v) => v.unwrap_or(Bson::Null),
        State::First(v) => v.unwrap_or(Bson::Null),
        State::Last(v) => v,
        State::List(items) | State::Set(_, items) => Bson::Array(items),
    }
}

/// Adds two numbers with mongod's widening: int, then long, then double; anything with
/// a decimal128 is an exact decimal sum.
pub(crate) fn add_numbers(a: &Bson, b: &Bson) -> Option<Bson> {
    if decimal::involved(a, b) {
        return decimal::add(a, b);
    }
    let int = |v: &Bson| match v {
        Bson::Int32(n) => Some(*n as i64),
        Bson::Int64(n) => Some(*n),
        _ => None,
    };
    Some(match (a, b) {
        (Bson::Int32(x), Bson::Int32(y)) => match x.checked_add(*y) {
            Some(s) => Bson::Int32(s),
            None => Bson::Int64(*x as i64 + *y as i64),
        },
        _ => match (int(a), int(b)) {
            (Some(x), Some(y)) => match x.checked_add(y) {
                Some(s) => Bson::Int64(s),
                None => Bson::Double(x as f64 + y as f64),
            },
            _ => Bson::Double(as_f64(a)? + as_f64(b)?),
        },
    })
}
