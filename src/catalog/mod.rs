//! The catalog: users, roles and (later) cluster keys and the replica-set config, kept
//! in an embedded ACID store under `--dbpath`.
//!
//! Everything goes through the [`Catalog`] trait. Writes are whole batches
//! ([`Write`]s applied atomically), so a replicated catalog can later ship the same
//! batch to the other members instead of writing it straight to disk.

mod lock;
mod redb_store;

pub use lock::DbPathLock;
pub use redb_store::RedbCatalog;

use bson::Document;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The kinds of documents the catalog holds, each in its own table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Collection {
    /// `admin.system.users`: one document per user, keyed by `<db>.<user>`.
    Users,
    /// `admin.system.roles`: one document per user-defined role, keyed by `<db>.<role>`.
    Roles,
    /// Cluster keys that sign `$clusterTime`.
    Keys,
    /// The replica-set configuration.
    ReplSetConfig,
}

impl Collection {
    pub const fn table_name(self) -> &'static str {
        match self {
            Collection::Users => "system.users",
            Collection::Roles => "system.roles",
            Collection::Keys => "system.keys",
            Collection::ReplSetConfig => "system.replset",
        }
    }
}

/// The id a document is stored under: its `_id`, as a string.
pub fn catalog_id(doc: &Document) -> String {
    match doc.get("_id") {
        Some(bson::Bson::String(s)) => s.clone(),
        Some(bson::Bson::Int64(n)) => n.to_string(),
        Some(bson::Bson::Int32(n)) => n.to_string(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// One change in a batch. Batches travel through the replicated log (as JSON), so
/// documents are carried as their exact BSON bytes: JSON would lose BSON's types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Write {
    /// Adds a document; the whole batch fails with [`CatalogError::Duplicate`] if the id exists.
    Insert {
        collection: Collection,
        id: String,
        #[serde(with = "bson_bytes")]
        doc: Document,
    },
    /// Replaces a document that must exist; else [`CatalogError::NotFound`].
    Replace {
        collection: Collection,
        id: String,
        #[serde(with = "bson_bytes")]
        doc: Document,
    },
    /// Adds or replaces a document.
    Upsert {
        collection: Collection,
        id: String,
        #[serde(with = "bson_bytes")]
        doc: Document,
    },
    /// Removes a document if present.
    Delete { collection: Collection, id: String },
    /// A precondition for compare-on-write: the batch fails with
    /// [`CatalogError::Changed`] unless the document `id` (with `id: None`, the whole
    /// collection) still has the [`Catalog::version`] `version` the writer read before it
    /// read the documents it changes. It is checked where the batch is applied, so every
    /// member of a replica set decides alike.
    Expect {
        collection: Collection,
        id: Option<String>,
        version: Option<String>,
    },
}

impl Write {
    pub fn collection(&self) -> Collection {
        match self {
            Write::Insert { collection, .. }
            | Write::Replace { collection, .. }
            | Write::Upsert { collection, .. }
            | Write::Delete { collection, .. }
            | Write::Expect { collection, .. } => *collection,
        }
    }

    pub fn touches_keys(&self) -> bool {
        self.collection() == Collection::Keys
    }

    /// The document this write stores, if it stores one.
    pub fn doc(&self) -> Option<&Document> {
        match self {
            Write::Insert { doc, .. } | Write::Replace { doc, .. } | Write::Upsert { doc, .. } => {
                Some(doc)
            }
            Write::Delete { .. } | Write::Expect { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CatalogError {
    Duplicate(String),
    NotFound(String),
    /// A [`Write::Expect`] failed: what the writer read changed before its batch applied.
    Changed(Collection),
    /// The store itself failed (I/O, corruption).
    Storage(String),
    /// A unique index refused a key: `{ns, index, keyPattern, keyValue}`.
    DuplicateKey(#[serde(with = "bson_bytes")] Document),
    /// A document the store cannot take (`code`, message), as mongod refuses it.
    Invalid(i32, String),
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogError::Duplicate(id) => write!(f, "duplicate id {id}"),
            CatalogError::NotFound(id) => write!(f, "no document with id {id}"),
            CatalogError::Changed(c) => write!(f, "{} changed meanwhile", c.table_name()),
            CatalogError::Storage(msg) => write!(f, "catalog storage error: {msg}"),
            CatalogError::DuplicateKey(what) => write!(f, "duplicate key {what}"),
            CatalogError::Invalid(code, msg) => write!(f, "{msg} ({code})"),
        }
    }
}

impl std::error::Error for CatalogError {}

/// The store behind users, roles, keys and config.
pub trait Catalog: Send + Sync {
    fn get(&self, collection: Collection, id: &str) -> Result<Option<Document>, CatalogError>;
    /// Every document of a collection, in id order.
    fn list(&self, collection: Collection) -> Result<Vec<Document>, CatalogError>;
    fn is_empty(&self, collection: Collection) -> Result<bool, CatalogError>;
    /// A digest of what a document holds now (None: absent) or, with `id: None`, of a
    /// whole collection; what [`Write::Expect`] compares.
    fn version(
        &self,
        collection: Collection,
        id: Option<&str>,
    ) -> Result<Option<String>, CatalogError>;
    /// Applies the batch atomically and durably: when this returns Ok, it survives a crash.
    fn apply(&self, writes: Vec<Write>) -> Result<(), CatalogError>;
    /// Applies the batch atomically without waiting for the disk: it survives a crash only
    /// once a later [`Catalog::apply`] has returned Ok (which makes it durable too).
    fn apply_unsynced(&self, writes: Vec<Write>) -> Result<(), CatalogError> {
        self.apply(writes)
    }
    /// Every document of each of `collections`, in id order, all read in one read
    /// transaction (a consistent view: a Raft snapshot).
    fn read_consistent(
        &self,
        collections: &[Collection],
    ) -> Result<Vec<Vec<Document>>, CatalogError>;
    /// [`Catalog::read_consistent`], and `also` reading in the same read transaction
    /// (the documents of a Raft snapshot).
    fn read_consistent_with(
        &self,
        collections: &[Collection],
        also: &mut dyn FnMut(&redb::ReadTransaction) -> Result<(), CatalogError>,
    ) -> Result<Vec<Vec<Document>>, CatalogError> {
        let _ = also;
        self.read_consistent(collections)
    }
    /// The redb database the catalog lives in. The document store keeps its tables in
    /// it, so that a replicated apply writes documents and the applied record in one
    /// transaction.
    fn database(&self) -> Option<std::sync::Arc<redb::Database>> {
        None
    }
    /// Applies `writes` and what `also` writes in one transaction (`durable`: waits for
    /// fsync, as [`Catalog::apply`]; else as [`Catalog::apply_unsynced`]).
    fn apply_with(
        &self,
        writes: Vec<Write>,
        durable: bool,
        also: &mut dyn FnMut(&redb::WriteTransaction) -> Result<(), CatalogError>,
    ) -> Result<(), CatalogError> {
        let _ = (writes, durable, also);
        Err(CatalogError::Storage(
            "this catalog cannot hold documents".into(),
        ))
    }
}

/// Serde for a document as base64 of its BSON bytes.
/// Decodes a document of the catalog or the replication log. A field nested deeper than
/// `maxBSONDepth` (which only an older build could have stored) is left out with a
/// warning, so that such a document can still be read, and dropped or rewritten.
pub(crate) fn decode_stored(bytes: &[u8]) -> Result<Document, crate::wire::ParseError> {
    let (doc, dropped) = crate::wire::decode_stored(bytes)?;
    if !dropped.is_empty() {
        tracing::warn!(target: "STORAGE", id = 7_000_040, ctx = "catalog",
            documentId = %doc.get("_id").map(ToString::to_string).unwrap_or_default(),
            fields = ?dropped,
            maxBSONDepth = crate::wire::depth::max_bson_depth() as i64,
            "Stored document has fields nested deeper than maxBSONDepth; read without them");
    }
    Ok(doc)
}

pub mod bson_bytes {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    use bson::Document;
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};

    /// Base64 text in JSON (the Raft log file); plain binary in BSON (Raft RPCs).
    pub fn serialize<S: Serializer>(doc: &Document, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        doc.to_writer(&mut bytes)
            .map_err(serde::ser::Error::custom)?;
        if s.is_human_readable() {
            s.serialize_str(&B64.encode(bytes))
        } else {
            s.serialize_bytes(&bytes)
        }
    }

    struct DocumentBytes;

    impl Visitor<'_> for DocumentBytes {
        type Value = Document;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a BSON document as bytes or base64")
        }

        fn visit_str<E: Error>(self, text: &str) -> Result<Document, E> {
            let bytes = B64.decode(text).map_err(E::custom)?;
            self.visit_bytes(&bytes)
        }

        fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Document, E> {
            super::decode_stored(bytes).map_err(E::custom)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Document, D::Error> {
        if d.is_human_readable() {
            d.deserialize_str(DocumentBytes)
        } else {
            d.deserialize_bytes(DocumentBytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn writes_survive_json_with_their_bson_types() {
        let write = Write::Upsert {
            collection: Collection::Users,
            id: "admin.a".into(),
            doc: doc! {"i": 1_i32, "l": 1_i64, "b": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16] }},
        };
        let json = serde_json::to_string(&write).unwrap();
        let back: Write = serde_json::from_str(&json).unwrap();
        assert_eq!(back, write);
    }
}
