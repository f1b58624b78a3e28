//! Sort specifications and sort keys, as mongod's find sorts (sort_pattern.cpp for the
//! specification and its codes; the sort key generator for arrays): a path's key is the
//! smallest of its values ascending and the largest descending, where an array at the
//! end of the path contributes its elements, a missing value is null and an empty array
//! is undefined (below null).

use super::order::compare;
use crate::error::{Code, CommandError};
use bson::{Bson, Document};
use std::cmp::Ordering;

/// A parsed `{a: 1, b: -1}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SortSpec {
    parts: Vec<Part>,
    natural: Option<i32>,
}

#[derive(Debug, Clone, PartialEq)]
struct Part {
    path: String,
    parts: Vec<String>,
    ascending: bool,
}

impl SortSpec {
    /// Refuses bad values with mongod's codes; `$meta` sorts are refused (no text or
    /// search scores on ferrod).
    pub fn parse(spec: &Document) -> Result<SortSpec, CommandError> {
        let mut parts: Vec<Part> = Vec::new();
        let mut natural = None;
        for (key, value) in spec {
            if let Bson::Document(meta) = value {
                let first = meta.keys().next().map(String::as_str);
                if first != Some("$meta") {
                    return Err(CommandError::new(
                        Code::Location17312,
                        "$meta is the only expression supported by $sort right now",
                    ));
                }
                if meta.len() != 1 {
                    return Err(CommandError::new(
                        Code::FailedToParse,
                        "Cannot have additional keys in a $meta sort specification",
                    ));
                }
                let name = match meta.get("$meta") {
                    Some(Bson::String(s)) => s.clone(),
                    _ => String::new(),
                };
                if !["textScore", "randVal", "geoNearDistance", "searchScore"]
                    .contains(&name.as_str())
                {
                    return Err(CommandError::new(
                        Code::Location31138,
                        format!(
                            "Illegal $meta sort: $meta: {}",
                            meta.get("$meta").cloned().unwrap_or(Bson::Null)
                        ),
                    ));
                }
                return Err(CommandError::new(
                    Code::BadValue,
                    format!("$meta sort by '{name}' is not supported by ferrod (no text search, search or geospatial scores)"),
                ));
            }
            let direction = match value {
                Bson::Int32(n) => *n as i64,
                Bson::Int64(n) => *n,
                // safeNumberLong: truncation toward zero, NaN as 0.
                Bson::Double(f) if f.is_nan() => 0,
                Bson::Double(f) => f.trunc().clamp(i64::MIN as f64, i64::MAX as f64) as i64,
                Bson::Decimal128(_) => {
                    let f: f64 = value.to_string().parse().unwrap_or(0.0);
                    if f.is_nan() {
                        0
                    } else {
                        f.trunc() as i64
                    }
                }
                _ => {
                    return Err(CommandError::new(
                        Code::Location15974,
                        format!("Illegal key in $sort specification: {key}: {value}"),
                    ))
                }
            };
            if direction != 1 && direction != -1 {
                return Err(CommandError::new(
                    Code::Location15975,
                    "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
                ));
            }
            if key == "$natural" {
                natural = Some(direction as i32);
                continue;
            }
            validate_path(key)?;
            if parts.iter().any(|p| &p.path == key) {
                return Err(CommandError::new(
                    Code::Location7472500,
                    format!("$sort key must not contain duplicate keys (duplicate: '{key}')"),
                ));
            }
            parts.push(Part {
                path: key.clone(),
                parts: key.split('.').map(str::to_string).collect(),
                ascending: direction == 1,
            });
        }
        Ok(SortSpec { parts, natural })
    }

    /// `$natural: 1 | -1` when given (storage order; callers handle it).
    pub fn natural(&self) -> Option<i32> {
        self.natural
    }

    /// No field to sort on (only `$natural`, or `{}`).
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The fields and directions, in order.
    pub fn fields(&self) -> Vec<(String, bool)> {
        self.parts
            .iter()
            .map(|p| (p.path.clone(), p.ascending))
            .collect()
    }

    /// The sort key of a document: per field, the smallest value ascending and the
    /// largest descending (missing is null, an empty array undefined).
    pub fn key(&self, doc: &Document) -> Vec<Bson> {
        self.parts
            .iter()
            .map(|p| {
                let mut values = Vec::new();
                collect(doc.get(&p.parts[0]), &p.parts[1..], &mut values);
                let pick = if p.ascending {
                    values.into_iter().min_by(compare)
                } else {
                    values.into_iter().max_by(compare)
                };
                pick.unwrap_or(Bson::Null)
            })
            .collect()
    }

    pub fn compare_keys(&self, a: &[Bson], b: &[Bson]) -> Ordering {
        for (i, p) in self.parts.iter().enumerate() {
            let (Some(x), Some(y)) = (a.get(i), b.get(i)) else {
                break;
            };
            let o = compare(x, y);
            let o = if p.ascending { o } else { o.reverse() };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }

    pub fn compare(&self, a: &Document, b: &Document) -> Ordering {
        self.compare_keys(&self.key(a), &self.key(b))
    }
}

fn validate_path(path: &str) -> Result<(), CommandError> {
    if path.is_empty() {
        return Err(CommandError::new(
            Code::Location40352,
            "FieldPath cannot be constructed with empty string",
        ));
    }
    for p in path.split('.') {
        if p.is_empty() {
            return Err(CommandError::new(
                Code::Location15998,
                "FieldPath field names may not be empty strings.",
            ));
        }
        if p.starts_with('$') {
            return Err(CommandError::new(
                Code::Location16410,
                "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
            ));
        }
    }
    Ok(())
}

/// The candidate values of a path for a sort key.
fn collect(v: Option<&Bson>, rest: &[String], out: &mut Vec<Bson>) {
    let Some((next, after)) = rest.split_first() else {
        match v {
            None => out.push(Bson::Null),
            Some(Bson::Array(a)) if a.is_empty() => out.push(Bson::Undefined),
            Some(Bson::Array(a)) => out.extend(a.iter().cloned()),
            Some(x) => out.push(x.clone()),
        }
        return;
    };
    match v {
        Some(Bson::Document(d)) => collect(d.get(next), after, out),
        Some(Bson::Array(a)) => {
            // A numeric component indexes the array.
            if next.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(i) = next.parse::<usize>() {
                    return collect(a.get(i), after, out);
                }
            }
            if a.is_empty() {
                out.push(Bson::Undefined);
            }
            for e in a {
                match e {
                    Bson::Document(d) => collect(d.get(next), after, out),
                    _ => out.push(Bson::Null),
                }
            }
        }
        _ => out.push(Bson::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn sorted(spec: Document, docs: Vec<Document>) -> Vec<Bson> {
        let s = SortSpec::parse(&spec).unwrap();
        let mut docs = docs;
        docs.sort_by(|a, b| s.compare(a, b));
        docs.iter()
            .map(|d| d.get("_id").cloned().unwrap())
            .collect()
    }

    #[test]
    fn arrays_sort_by_min_ascending_and_max_descending() {
        let docs = vec![
            doc! {"_id": 1, "a": [1, 5]},
            doc! {"_id": 2, "a": [2, 3]},
            doc! {"_id": 3, "a": 4},
        ];
        assert_eq!(
            sorted(doc! {"a": 1}, docs.clone()),
            vec![Bson::Int32(1), Bson::Int32(2), Bson::Int32(3)]
        );
        assert_eq!(
            sorted(doc! {"a": -1}, docs),
            vec![Bson::Int32(1), Bson::Int32(3), Bson::Int32(2)]
        );
    }

    #[test]
    fn missing_is_null_and_empty_array_below_it() {
        let docs = vec![
            doc! {"_id": 1, "a": 1},
            doc! {"_id": 2},
            doc! {"_id": 3, "a": []},
            doc! {"_id": 4, "a": null},
            doc! {"_id": 5, "a": "s"},
        ];
        assert_eq!(
            sorted(doc! {"a": 1, "_id": 1}, docs),
            vec![
                Bson::Int32(3),
                Bson::Int32(2),
                Bson::Int32(4),
                Bson::Int32(1),
                Bson::Int32(5)
            ]
        );
    }

    #[test]
    fn dotted_paths_through_arrays() {
        let s = SortSpec::parse(&doc! {"a.b": 1}).unwrap();
        assert_eq!(
            s.key(&doc! {"a": [{"b": 3}, {"b": [1, 7]}]}),
            vec![Bson::Int32(1)]
        );
        assert_eq!(s.key(&doc! {"a": [{"b": 3}, {"c": 1}]}), vec![Bson::Null]);
        let s = SortSpec::parse(&doc! {"a.1": -1}).unwrap();
        assert_eq!(s.key(&doc! {"a": [1, 9]}), vec![Bson::Int32(9)]);
    }

    #[test]
    fn bad_specifications() {
        let code = |d: Document| SortSpec::parse(&d).unwrap_err().code.number();
        assert_eq!(code(doc! {"a": 2}), 15975);
        assert_eq!(code(doc! {"a": 0}), 15975);
        assert_eq!(code(doc! {"a": "x"}), 15974);
        assert_eq!(code(doc! {"a": {"b": 1}}), 17312);
        assert_eq!(code(doc! {"a": {"$meta": "foo"}}), 31138);
        assert_eq!(code(doc! {"a": {"$meta": "textScore"}}), 2);
        assert_eq!(code(doc! {"": 1}), 40352);
        assert_eq!(code(doc! {"a..b": 1}), 15998);
        assert_eq!(code(doc! {"$a": 1}), 16410);
        assert!(SortSpec::parse(&doc! {"a": 1.5}).is_ok());
        assert_eq!(
            SortSpec::parse(&doc! {"$natural": -1}).unwrap().natural(),
            Some(-1)
        );
    }
}
