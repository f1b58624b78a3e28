//! Privileges: a resource pattern and the actions allowed on it, as MongoDB writes them
//! (`{resource: {cluster: true}, actions: ["dropConnections"]}`).

use super::roles::is_known_action;
use crate::error::{bad_value, type_mismatch, CommandResult};

/// The resource a command's required privilege applies to (the command table names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `{cluster: true}`
    Cluster,
    /// The database the command runs against.
    Database,
}
use bson::{doc, Bson, Document};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourcePattern {
    /// `{cluster: true}`
    Cluster,
    /// `{anyResource: true}`
    AnyResource,
    /// `{db: "", collection: ""}`: every database and normal collection.
    AnyNormal,
    /// `{db: "<db>", collection: ""}`
    Database(String),
    /// `{db: "<db>", collection: "<coll>"}`
    Collection(String, String),
    /// `{db: "", collection: "<coll>"}`
    CollectionInAnyDatabase(String),
}

impl ResourcePattern {
    pub fn from_document(doc: &Document) -> CommandResult<ResourcePattern> {
        if doc.get_bool("cluster").is_ok() && doc.len() == 1 {
            return Ok(ResourcePattern::Cluster);
        }
        if doc.get_bool("anyResource").is_ok() && doc.len() == 1 {
            return Ok(ResourcePattern::AnyResource);
        }
        let (Ok(db), Ok(coll)) = (doc.get_str("db"), doc.get_str("collection")) else {
            return Err(bad_value(format!(
                "resource pattern must contain 'db' and 'collection' fields, or 'cluster' or 'anyResource': {doc}"
            )));
        };
        if doc.len() != 2 {
            return Err(bad_value(format!(
                "Unrecognized field in resource pattern: {doc}"
            )));
        }
        Ok(match (db, coll) {
            ("", "") => ResourcePattern::AnyNormal,
            (db, "") => ResourcePattern::Database(db.to_owned()),
            ("", coll) => ResourcePattern::CollectionInAnyDatabase(coll.to_owned()),
            (db, coll) => ResourcePattern::Collection(db.to_owned(), coll.to_owned()),
        })
    }

    pub fn to_document(&self) -> Document {
        match self {
            ResourcePattern::Cluster => doc! {"cluster": true},
            ResourcePattern::AnyResource => doc! {"anyResource": true},
            ResourcePattern::AnyNormal => doc! {"db": "", "collection": ""},
            ResourcePattern::Database(db) => doc! {"db": db, "collection": ""},
            ResourcePattern::Collection(db, c) => doc! {"db": db, "collection": c},
            ResourcePattern::CollectionInAnyDatabase(c) => doc! {"db": "", "collection": c},
        }
    }

    /// Whether a grant on `self` covers a check on `required` (cluster or a database).
    pub fn covers(&self, required: &ResourcePattern) -> bool {
        match (self, required) {
            (ResourcePattern::AnyResource, _) => true,
            (a, b) if a == b => true,
            (ResourcePattern::AnyNormal, ResourcePattern::Database(_)) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privilege {
    pub resource: ResourcePattern,
    pub actions: BTreeSet<String>,
}

impl Privilege {
    pub fn new<'a>(
        resource: ResourcePattern,
        actions: impl IntoIterator<Item = &'a str>,
    ) -> Privilege {
        Privilege {
            resource,
            actions: actions.into_iter().map(str::to_owned).collect(),
        }
    }

    /// Parses one privilege of createRole / grantPrivilegesToRole; unknown actions are 2 BadValue.
    pub fn from_bson(value: &Bson, field: &str) -> CommandResult<Privilege> {
        let Bson::Document(doc) = value else {
            return Err(type_mismatch(field, value, "object"));
        };
        let resource = match doc.get("resource") {
            Some(Bson::Document(r)) => ResourcePattern::from_document(r)?,
            Some(other) => {
                return Err(type_mismatch(&format!("{field}.resource"), other, "object"))
            }
            None => return Err(crate::error::missing_field(&format!("{field}.resource"))),
        };
        let actions = match doc.get("actions") {
            Some(Bson::Array(a)) => a,
            Some(other) => return Err(type_mismatch(&format!("{field}.actions"), other, "array")),
            None => return Err(crate::error::missing_field(&format!("{field}.actions"))),
        };
        let mut set = BTreeSet::new();
        for (i, action) in actions.iter().enumerate() {
            let Bson::String(action) = action else {
                return Err(type_mismatch(
                    &format!("{field}.actions.{i}"),
                    action,
                    "string",
                ));
            };
            if !is_known_action(action) {
                return Err(bad_value(format!(
                    "Unknown action type in privilege set: '{action}'"
                )));
            }
            set.insert(action.clone());
        }
        if let Some(key) = doc.keys().find(|k| *k != "resource" && *k != "actions") {
            return Err(crate::error::unknown_field(&format!("{field}.{key}")));
        }
        Ok(Privilege {
            resource,
            actions: set,
        })
    }

    pub fn to_document(&self) -> Document {
        doc! {
            "resource": self.resource.to_document(),
            "actions": self.actions.iter().map(|a| Bson::String(a.clone())).collect::<Vec<_>>(),
        }
    }

    pub fn allows(&self, required: &ResourcePattern, action: &str) -> bool {
        self.resource.covers(required)
            && (self.actions.contains(action) || self.actions.contains("anyAction"))
    }
}

/// Merges privileges on the same resource into one entry each, as mongod reports them.
pub fn merge(privileges: impl IntoIterator<Item = Privilege>) -> Vec<Privilege> {
    let mut merged: Vec<Privilege> = Vec::new();
    for p in privileges {
        match merged.iter_mut().find(|m| m.resource == p.resource) {
            Some(m) => m.actions.extend(p.actions),
            None => merged.push(p),
        }
    }
    merged
}

/// Parses a `privileges` array.
pub fn parse_privileges(value: &Bson, field: &str) -> CommandResult<Vec<Privilege>> {
    let Bson::Array(items) = value else {
        return Err(type_mismatch(field, value, "array"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, p)| Privilege::from_bson(p, &format!("{field}.{i}")))
        .collect()
}
