//! Dotted paths through documents and arrays, as mongod's matcher walks them
//! (src/mongo/db/matcher/path.cpp, BSONElementIterator):
//! - documents are descended field by field; a scalar in the middle of the path yields
//!   "missing" once;
//! - an array in the middle of the path is traversed: each element that is a document
//!   continues the rest of the path; a numeric next component also indexes the array
//!   (the element itself if the path ends there, or the rest of the path inside it);
//!   scalar elements that are not indexed yield nothing;
//! - an array at the end of the path yields each element, then the array itself
//!   (unless the caller asks for the array only, as `$size` and `$elemMatch` do).
//!
//! Each yielded value carries the array offset of the outermost implicitly traversed
//! array, which is what the positional `$` projection and update use.

use bson::{Bson, Document};

/// How an array at the end of a path is yielded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafArrays {
    /// Each element, then the array as a whole.
    Traverse,
    /// The array as a whole only.
    NoTraversal,
}

/// A parsed dotted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    dotted: String,
    parts: Vec<String>,
}

impl FieldPath {
    pub fn new(dotted: &str) -> FieldPath {
        FieldPath {
            dotted: dotted.to_string(),
            parts: dotted.split('.').map(str::to_string).collect(),
        }
    }

    pub fn dotted(&self) -> &str {
        &self.dotted
    }

    pub fn parts(&self) -> &[String] {
        &self.parts
    }

    /// Calls `f(value, array_offset)` for each value the path yields (`None` = missing)
    /// until `f` returns true; returns whether it did.
    pub fn any(
        &self,
        doc: &Document,
        leaf: LeafArrays,
        f: &mut dyn FnMut(Option<&Bson>, Option<usize>) -> bool,
    ) -> bool {
        walk_doc(doc, &self.parts, 0, leaf, None, f)
    }

    /// Every value the path yields, with its array offset.
    pub fn values(&self, doc: &Document, leaf: LeafArrays) -> Vec<Option<Bson>> {
        let mut out = Vec::new();
        self.any(doc, leaf, &mut |v, _| {
            out.push(v.cloned());
            false
        });
        out
    }
}

fn is_all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether a path component indexes the array element at `idx` (mongod compares the
/// component with the element's field name, so "01" indexes nothing).
fn indexes(component: &str, idx: usize) -> bool {
    is_all_digits(component) && component.parse::<usize>().ok() == Some(idx) && {
        // Field names of array elements never have leading zeros.
        component == "0" || !component.starts_with('0')
    }
}

fn walk_doc(
    doc: &Document,
    parts: &[String],
    start: usize,
    leaf: LeafArrays,
    offset: Option<usize>,
    f: &mut dyn FnMut(Option<&Bson>, Option<usize>) -> bool,
) -> bool {
    let mut ctx = doc;
    let mut i = start;
    loop {
        let Some(v) = ctx.get(&parts[i]) else {
            return f(None, offset);
        };
        if i + 1 == parts.len() {
            return walk_value(v, parts, i + 1, leaf, offset, f);
        }
        match v {
            Bson::Document(d) => {
                ctx = d;
                i += 1;
            }
            Bson::Array(_) => return walk_value(v, parts, i + 1, leaf, offset, f),
            _ => return f(None, offset),
        }
    }
}

/// `v` was found at the path's component `rest - 1`; `rest` indexes what remains.
fn walk_value(
    v: &Bson,
    parts: &[String],
    rest: usize,
    leaf: LeafArrays,
    offset: Option<usize>,
    f: &mut dyn FnMut(Option<&Bson>, Option<usize>) -> bool,
) -> bool {
    let Bson::Array(arr) = v else {
        return f(Some(v), offset);
    };
    let has_more = rest < parts.len();
    if !has_more && leaf == LeafArrays::NoTraversal {
        return f(Some(v), offset);
    }
    if walk_array(arr, parts, rest, leaf, offset, f) {
        return true;
    }
    if has_more {
        return false;
    }
    f(Some(v), offset)
}

/// The elements of an array whose remaining path starts at `rest` (the array itself is
/// yielded by the caller).
fn walk_array(
    arr: &[Bson],
    parts: &[String],
    rest: usize,
    leaf: LeafArrays,
    offset: Option<usize>,
    f: &mut dyn FnMut(Option<&Bson>, Option<usize>) -> bool,
) -> bool {
    let has_more = rest < parts.len();
    for (idx, el) in arr.iter().enumerate() {
        if !has_more {
            if f(Some(el), offset.or(Some(idx))) {
                return true;
            }
            continue;
        }
        let next = &parts[rest];
        let offset_match = indexes(next, idx);
        let ends_at_offset = rest + 1 == parts.len();
        match el {
            Bson::Document(d) => {
                if walk_doc(d, parts, rest, leaf, offset.or(Some(idx)), f) {
                    return true;
                }
                if offset_match {
                    let found = if ends_at_offset {
                        f(Some(el), offset)
                    } else {
                        walk_doc(d, parts, rest + 1, leaf, offset, f)
                    };
                    if found {
                        return true;
                    }
                }
            }
            _ if offset_match => {
                if ends_at_offset {
                    if f(Some(el), offset) {
                        return true;
                    }
                } else if let Bson::Array(inner) = el {
                    if walk_array(inner, parts, rest + 1, leaf, offset, f) {
                        return true;
                    }
                }
            }
            _ => {}
        }
    }
    false
}

/// The value at a dotted path through documents only (no array traversal), as
/// expressions and sort keys on plain documents need; `None` when missing.
pub fn get_simple<'a>(doc: &'a Document, dotted: &str) -> Option<&'a Bson> {
    let mut parts = dotted.split('.');
    let mut cur = doc.get(parts.next()?)?;
    for p in parts {
        cur = match cur {
            Bson::Document(d) => d.get(p)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc};

    fn yields(d: Document, path: &str) -> Vec<(Option<Bson>, Option<usize>)> {
        let mut out = Vec::new();
        FieldPath::new(path).any(&d, LeafArrays::Traverse, &mut |v, o| {
            out.push((v.cloned(), o));
            false
        });
        out
    }

    #[test]
    fn leaf_arrays_yield_elements_then_the_array() {
        assert_eq!(
            yields(doc! {"a": [1, [2]]}, "a"),
            vec![
                (Some(bson!(1)), Some(0)),
                (Some(bson!([2])), Some(1)),
                (Some(bson!([1, [2]])), None)
            ]
        );
    }

    #[test]
    fn missing_and_scalars_in_the_middle() {
        assert_eq!(yields(doc! {"a": 1}, "a.b"), vec![(None, None)]);
        assert_eq!(yields(doc! {}, "a.b"), vec![(None, None)]);
        assert_eq!(yields(doc! {"a": [1, 2]}, "a.b"), vec![]);
        assert_eq!(
            yields(doc! {"a": [{"c": 1}, {"b": 2}]}, "a.b"),
            vec![(None, Some(0)), (Some(bson!(2)), Some(1))]
        );
    }

    #[test]
    fn numeric_components_index_arrays_and_name_fields() {
        assert_eq!(
            yields(doc! {"a": [5, 6]}, "a.1"),
            vec![(Some(bson!(6)), None)]
        );
        assert_eq!(
            yields(doc! {"a": {"1": 7}}, "a.1"),
            vec![(Some(bson!(7)), None)]
        );
        // Both the element's field "0" and the element at index 0.
        assert_eq!(
            yields(doc! {"a": [{"0": 1}]}, "a.0"),
            vec![(Some(bson!(1)), Some(0)), (Some(bson!({"0": 1})), None)]
        );
        assert_eq!(
            yields(doc! {"a": [[{"b": 3}]]}, "a.0.b"),
            // The nested array is traversed implicitly: its offset is recorded.
            vec![(Some(bson!(3)), Some(0))]
        );
        // Nested arrays are not traversed implicitly.
        assert_eq!(yields(doc! {"a": [[{"b": 3}]]}, "a.b"), vec![]);
    }

    #[test]
    fn outermost_offset_wins() {
        assert_eq!(
            yields(doc! {"a": [{"b": [1, 2]}]}, "a.b"),
            vec![
                (Some(bson!(1)), Some(0)),
                (Some(bson!(2)), Some(0)),
                (Some(bson!([1, 2])), Some(0))
            ]
        );
    }
}
