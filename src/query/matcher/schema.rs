//! `$jsonSchema` with the keywords mongod supports (json_schema_parser.cpp): each keyword
//! constrains only values of the types it is about, as in JSON Schema draft 4.
//! Keywords mongod refuses (`$ref`, `$schema`, `default`, `definitions`, `format`, `id`)
//! are refused with its FailedToParse error, unknown keywords likewise.

use super::{parse_type_one, type_matches, Re, TypeSel};
use crate::error::{Code, CommandError};
use crate::query::order::{compare, is_number};
use bson::{Bson, Document};
use std::cmp::Ordering;

fn fail(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::FailedToParse, msg)
}

fn type_err(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::TypeMismatch, msg)
}

#[derive(Debug, Clone, Default)]
pub struct Schema {
    types: Option<Vec<TypeSel>>,
    properties: Vec<(String, Schema)>,
    required: Vec<String>,
    minimum: Option<(Bson, bool)>,
    maximum: Option<(Bson, bool)>,
    multiple_of: Option<Bson>,
    min_length: Option<i64>,
    max_length: Option<i64>,
    pattern: Option<Re>,
    enumeration: Option<Vec<Bson>>,
    items: Option<Items>,
    additional_items: Option<Additional>,
    min_items: Option<i64>,
    max_items: Option<i64>,
    unique_items: bool,
    additional_properties: Option<Additional>,
    pattern_properties: Vec<(Re, Schema)>,
    min_properties: Option<i64>,
    max_properties: Option<i64>,
    all_of: Vec<Schema>,
    any_of: Vec<Schema>,
    one_of: Vec<Schema>,
    not: Option<Box<Schema>>,
    dependencies: Vec<(String, Dependency)>,
}

#[derive(Debug, Clone)]
enum Items {
    One(Box<Schema>),
    Each(Vec<Schema>),
}

#[derive(Debug, Clone)]
enum Additional {
    Allowed(bool),
    Schema(Box<Schema>),
}

#[derive(Debug, Clone)]
enum Dependency {
    Fields(Vec<String>),
    Schema(Box<Schema>),
}

fn non_negative(key: &str, v: &Bson) -> Result<i64, CommandError> {
    if !is_number(v) {
        return Err(type_err(format!(
            "$jsonSchema keyword '{key}' must be a number"
        )));
    }
    match crate::error::whole_number(v) {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(fail(format!(
            "$jsonSchema keyword '{key}' must be a non-negative integer"
        ))),
    }
}

fn sub_schema(key: &str, v: &Bson) -> Result<Schema, CommandError> {
    match v {
        Bson::Document(d) => Schema::parse(d),
        _ => Err(type_err(format!(
            "$jsonSchema keyword '{key}' must be an object"
        ))),
    }
}

fn schema_list(key: &str, v: &Bson) -> Result<Vec<Schema>, CommandError> {
    let Bson::Array(items) = v else {
        return Err(type_err(format!(
            "$jsonSchema keyword '{key}' must be an array"
        )));
    };
    if items.is_empty() {
        return Err(fail(format!(
            "$jsonSchema keyword '{key}' must be a non-empty array"
        )));
    }
    items.iter().map(|i| sub_schema(key, i)).collect()
}

fn string_list(key: &str, v: &Bson) -> Result<Vec<String>, CommandError> {
    let Bson::Array(items) = v else {
        return Err(type_err(format!(
            "$jsonSchema keyword '{key}' must be an array"
        )));
    };
    let mut out: Vec<String> = Vec::new();
    for i in items {
        let Bson::String(s) = i else {
            return Err(type_err(format!(
                "$jsonSchema keyword '{key}' must be an array of strings"
            )));
        };
        if out.contains(s) {
            return Err(fail(format!(
                "$jsonSchema keyword '{key}' array cannot contain duplicate values"
            )));
        }
        out.push(s.clone());
    }
    Ok(out)
}

fn additional(key: &str, v: &Bson) -> Result<Additional, CommandError> {
    match v {
        Bson::Boolean(b) => Ok(Additional::Allowed(*b)),
        Bson::Document(d) => Ok(Additional::Schema(Box::new(Schema::parse(d)?))),
        _ => Err(type_err(format!(
            "$jsonSchema keyword '{key}' must be either an object or a boolean"
        ))),
    }
}

fn json_type(name: &str) -> Result<Vec<TypeSel>, CommandError> {
    Ok(match name {
        "object" => vec![TypeSel::Code(3)],
        "array" => vec![TypeSel::Code(4)],
        "number" => vec![TypeSel::Number],
        "boolean" => vec![TypeSel::Code(8)],
        "string" => vec![TypeSel::Code(2)],
        "null" => vec![TypeSel::Code(10)],
        "integer" => {
            return Err(fail(
                "$jsonSchema type 'integer' is not currently supported.",
            ))
        }
        other => return Err(fail(format!("Unknown type name alias: {other}"))),
    })
}

impl Schema {
    pub fn parse(d: &Document) -> Result<Schema, CommandError> {
        let mut s = Schema::default();
        if d.contains_key("type") && d.contains_key("bsonType") {
            return Err(fail(
                "Cannot specify both $jsonSchema keywords 'type' and 'bsonType'",
            ));
        }
        for (key, v) in d {
            match key.as_str() {
                "type" => {
                    let names: Vec<&Bson> = match v {
                        Bson::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    let mut sel = Vec::new();
                    for n in names {
                        let Bson::String(n) = n else {
                            return Err(type_err(
                                "$jsonSchema keyword 'type' must be either a string or an array of strings",
                            ));
                        };
                        sel.extend(json_type(n)?);
                    }
                    s.types = Some(sel);
                }
                "bsonType" => {
                    let sel = match v {
                        Bson::Array(a) => a.iter().map(parse_type_one).collect::<Result<_, _>>()?,
                        other => vec![parse_type_one(other)?],
                    };
                    s.types = Some(sel);
                }
                "properties" => {
                    let Bson::Document(props) = v else {
                        return Err(type_err(
                            "$jsonSchema keyword 'properties' must be an object",
                        ));
                    };
                    for (name, sub) in props {
                        s.properties.push((name.clone(), sub_schema(name, sub)?));
                    }
                }
                "required" => {
                    s.required = string_list(key, v)?;
                    if s.required.is_empty() {
                        return Err(fail(
                            "$jsonSchema keyword 'required' cannot be an empty array",
                        ));
                    }
                }
                "minimum" | "maximum" => {
                    if !is_number(v) {
                        return Err(type_err(format!(
                            "$jsonSchema keyword '{key}' must be a number"
                        )));
                    }
                    let bound = Some((v.clone(), false));
                    if key == "minimum" {
                        s.minimum = bound;
                    } else {
                        s.maximum = bound;
                    }
                }
                "exclusiveMinimum" | "exclusiveMaximum" => {}
                "multipleOf" => {
                    if !is_number(v) {
                        return Err(type_err(
                            "$jsonSchema keyword 'multipleOf' must be a number",
                        ));
                    }
                    if compare(v, &Bson::Int32(0)) != Ordering::Greater {
                        return Err(fail(
                            "$jsonSchema keyword 'multipleOf' must have a positive value",
                        ));
                    }
                    s.multiple_of = Some(v.clone());
                }
                "minLength" => s.min_length = Some(non_negative(key, v)?),
                "maxLength" => s.max_length = Some(non_negative(key, v)?),
                "minItems" => s.min_items = Some(non_negative(key, v)?),
                "maxItems" => s.max_items = Some(non_negative(key, v)?),
                "minProperties" => s.min_properties = Some(non_negative(key, v)?),
                "maxProperties" => s.max_properties = Some(non_negative(key, v)?),
                "pattern" => {
                    let Bson::String(p) = v else {
                        return Err(type_err("$jsonSchema keyword 'pattern' must be a string"));
                    };
                    s.pattern = Some(Re::new(p, "")?);
                }
                "enum" => {
                    let Bson::Array(a) = v else {
                        return Err(type_err("$jsonSchema keyword 'enum' must be an array"));
                    };
                    if a.is_empty() {
                        return Err(fail("$jsonSchema keyword 'enum' cannot be an empty array"));
                    }
                    s.enumeration = Some(a.clone());
                }
                "items" => {
                    s.items = Some(match v {
                        Bson::Document(d) => Items::One(Box::new(Schema::parse(d)?)),
                        Bson::Array(_) => Items::Each(schema_list(key, v)?),
                        _ => {
                            return Err(type_err(
                                "$jsonSchema keyword 'items' must be an array or an object",
                            ))
                        }
                    })
                }
                "additionalItems" => s.additional_items = Some(additional(key, v)?),
                "uniqueItems" => {
                    let Bson::Boolean(b) = v else {
                        return Err(type_err(
                            "$jsonSchema keyword 'uniqueItems' must be a boolean",
                        ));
                    };
                    s.unique_items = *b;
                }
                "additionalProperties" => s.additional_properties = Some(additional(key, v)?),
                "patternProperties" => {
                    let Bson::Document(props) = v else {
                        return Err(type_err(
                            "$jsonSchema keyword 'patternProperties' must be an object",
                        ));
                    };
                    for (p, sub) in props {
                        s.pattern_properties
                            .push((Re::new(p, "")?, sub_schema(key, sub)?));
                    }
                }
                "allOf" => s.all_of = schema_list(key, v)?,
                "anyOf" => s.any_of = schema_list(key, v)?,
                "oneOf" => s.one_of = schema_list(key, v)?,
                "not" => s.not = Some(Box::new(sub_schema(key, v)?)),
                "dependencies" => {
                    let Bson::Document(deps) = v else {
                        return Err(type_err(
                            "$jsonSchema keyword 'dependencies' must be an object",
                        ));
                    };
                    for (name, dep) in deps {
                        let dep = match dep {
                            Bson::Document(d) => Dependency::Schema(Box::new(Schema::parse(d)?)),
                            Bson::Array(_) => Dependency::Fields(string_list(key, dep)?),
                            _ => {
                                return Err(type_err(
                                    "property 'dependencies' must be either an object or an array",
                                ))
                            }
                        };
                        s.dependencies.push((name.clone(), dep));
                    }
                }
                "title" | "description" => {
                    if !matches!(v, Bson::String(_)) {
                        return Err(type_err(format!(
                            "$jsonSchema keyword '{key}' must be a string"
                        )));
                    }
                }
                "$ref" | "$schema" | "default" | "definitions" | "format" | "id" => {
                    return Err(fail(format!(
                        "$jsonSchema keyword '{key}' is not currently supported"
                    )))
                }
                _ => return Err(fail(format!("Unknown $jsonSchema keyword: {key}"))),
            }
        }
        for (flag, bound, name) in [
            ("exclusiveMinimum", &mut s.minimum, "minimum"),
            ("exclusiveMaximum", &mut s.maximum, "maximum"),
        ] {
            if let Some(v) = d.get(flag) {
                let Bson::Boolean(b) = v else {
                    return Err(type_err(format!(
                        "$jsonSchema keyword '{flag}' must be a boolean"
                    )));
                };
                match bound {
                    Some((_, excl)) => *excl = *b,
                    None => {
                        return Err(fail(format!(
                            "$jsonSchema keyword '{name}' must be a present if {flag} is present"
                        )))
                    }
                }
            }
        }
        Ok(s)
    }

    /// The top-level schema applies to the document itself.
    pub fn matches(&self, doc: &Document) -> bool {
        self.matches_doc(doc)
            && self
                .types
                .as_ref()
                .is_none_or(|t| type_matches(t, &Bson::Document(Document::new())))
    }

    fn matches_doc(&self, doc: &Document) -> bool {
        for r in &self.required {
            if !doc.contains_key(r) {
                return false;
            }
        }
        for (name, sub) in &self.properties {
            if let Some(v) = doc.get(name) {
                if !sub.matches_value(v) {
                    return false;
                }
            }
        }
        for (re, sub) in &self.pattern_properties {
            for (k, v) in doc {
                if re.matches(&Bson::String(k.clone())) && !sub.matches_value(v) {
                    return false;
                }
            }
        }
        if let Some(add) = &self.additional_properties {
            for (k, v) in doc {
                let declared = self.properties.iter().any(|(n, _)| n == k)
                    || self
                        .pattern_properties
                        .iter()
                        .any(|(re, _)| re.matches(&Bson::String(k.clone())));
                if declared {
                    continue;
                }
                let ok = match add {
                    Additional::Allowed(b) => *b,
                    Additional::Schema(s) => s.matches_value(v),
                };
                if !ok {
                    return false;
                }
            }
        }
        let n = doc.len() as i64;
        if self.min_properties.is_some_and(|m| n < m) || self.max_properties.is_some_and(|m| n > m)
        {
            return false;
        }
        for (name, dep) in &self.dependencies {
            if !doc.contains_key(name) {
                continue;
            }
            let ok = match dep {
                Dependency::Fields(fields) => fields.iter().all(|f| doc.contains_key(f)),
                Dependency::Schema(s) => s.matches_value(&Bson::Document(doc.clone())),
            };
            if !ok {
                return false;
            }
        }
        self.matches_logical(&Bson::Document(doc.clone()))
    }

    fn matches_logical(&self, v: &Bson) -> bool {
        if let Some(e) = &self.enumeration {
            if !e.iter().any(|x| compare(x, v) == Ordering::Equal) {
                return false;
            }
        }
        self.all_of.iter().all(|s| s.matches_value(v))
            && (self.any_of.is_empty() || self.any_of.iter().any(|s| s.matches_value(v)))
            && (self.one_of.is_empty()
                || self.one_of.iter().filter(|s| s.matches_value(v)).count() == 1)
            && self.not.as_ref().is_none_or(|s| !s.matches_value(v))
    }

    fn matches_value(&self, v: &Bson) -> bool {
        if let Some(t) = &self.types {
            if !type_matches(t, v) {
                return false;
            }
        }
        match v {
            Bson::Document(d) => {
                // Object keywords; logical ones are checked inside.
                return self.matches_doc(d);
            }
            Bson::Array(items) => {
                let n = items.len() as i64;
                if self.min_items.is_some_and(|m| n < m) || self.max_items.is_some_and(|m| n > m) {
                    return false;
                }
                if self.unique_items {
                    for (i, a) in items.iter().enumerate() {
                        if items[i + 1..]
                            .iter()
                            .any(|b| compare(a, b) == Ordering::Equal)
                        {
                            return false;
                        }
                    }
                }
                match &self.items {
                    Some(Items::One(s)) if !items.iter().all(|i| s.matches_value(i)) => {
                        return false;
                    }
                    Some(Items::One(_)) => {}
                    Some(Items::Each(list)) => {
                        for (i, item) in items.iter().enumerate() {
                            match list.get(i) {
                                Some(s) => {
                                    if !s.matches_value(item) {
                                        return false;
                                    }
                                }
                                None => {
                                    let ok = match &self.additional_items {
                                        None | Some(Additional::Allowed(true)) => true,
                                        Some(Additional::Allowed(false)) => false,
                                        Some(Additional::Schema(s)) => s.matches_value(item),
                                    };
                                    if !ok {
                                        return false;
                                    }
                                }
                            }
                        }
                    }
                    None => {}
                }
            }
            Bson::String(s) => {
                let n = s.chars().count() as i64;
                if self.min_length.is_some_and(|m| n < m) || self.max_length.is_some_and(|m| n > m)
                {
                    return false;
                }
                if let Some(re) = &self.pattern {
                    if !re.matches(v) {
                        return false;
                    }
                }
            }
            _ if is_number(v) => {
                if let Some((min, excl)) = &self.minimum {
                    let o = compare(v, min);
                    if o == Ordering::Less || (*excl && o == Ordering::Equal) {
                        return false;
                    }
                }
                if let Some((max, excl)) = &self.maximum {
                    let o = compare(v, max);
                    if o == Ordering::Greater || (*excl && o == Ordering::Equal) {
                        return false;
                    }
                }
                if let Some(m) = &self.multiple_of {
                    let (x, d) = (as_f64(v), as_f64(m));
                    if !(x % d == 0.0) {
                        return false;
                    }
                }
            }
            _ => {}
        }
        self.matches_logical(v)
    }
}

fn as_f64(v: &Bson) -> f64 {
    match v {
        Bson::Int32(n) => *n as f64,
        Bson::Int64(n) => *n as f64,
        Bson::Double(f) => *f,
        Bson::Decimal128(d) => d.to_string().parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}
