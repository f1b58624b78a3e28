//! The query pieces the document commands use (filter, sort, projection, update), in one
//! place: `query`'s implementations, with what the commands add (the `_id` point lookup,
//! upserts, the time an update runs at).

use crate::error::CommandResult;
use bson::{Bson, Document};

/// A query filter (`query::matcher`), with the `let` variables of its command.
#[derive(Debug, Clone)]
pub struct Filter(crate::query::matcher::Filter);

impl Filter {
    pub fn parse(filter: &Document) -> CommandResult<Filter> {
        crate::query::matcher::Filter::parse(filter).map(Filter)
    }

    pub fn parse_with_vars(filter: &Document, let_vars: &Document) -> CommandResult<Filter> {
        crate::query::matcher::Filter::parse_with_vars(filter, let_vars).map(Filter)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The parsed filter (what the planner reads).
    pub fn matcher(&self) -> &crate::query::matcher::Filter {
        &self.0
    }

    pub fn matches(&self, doc: &Document) -> bool {
        self.0.matches(doc)
    }

    /// The array position the positional `$` of an update or projection refers to.
    pub fn details(&self, doc: &Document) -> Option<crate::query::update::MatchDetails> {
        self.0
            .matches_with_details(doc)
            .map(|d| crate::query::update::MatchDetails {
                array_position: d.array_position,
            })
    }

    /// The `_id` every match must have, when the filter pins it to one scalar: the
    /// record is then read by its key instead of a scan.
    pub fn id_equality(&self) -> Option<Bson> {
        self.0.equalities().into_iter().find_map(|(path, v)| {
            (path == "_id"
                && !matches!(
                    v,
                    Bson::Array(_) | Bson::Document(_) | Bson::RegularExpression(_)
                ))
            .then_some(v)
        })
    }
}

/// A sort specification (`query::sort`).
pub use crate::query::sort::SortSpec;

/// find's projection (`query::projection`).
#[derive(Debug, Clone)]
pub struct Projection(crate::query::projection::Projection);

impl Projection {
    /// With the query, for mongod's checks of a positional projection.
    pub fn parse(spec: &Document, query: &Document) -> CommandResult<Projection> {
        crate::query::projection::Projection::parse_with_query(spec, query).map(Projection)
    }

    pub fn apply(
        &self,
        doc: &Document,
        details: Option<&crate::query::update::MatchDetails>,
    ) -> CommandResult<Document> {
        self.0.apply(doc, details)
    }
}

/// An update (`query::update`): a replacement, operators, or a pipeline, with the `let`
/// variables its pipeline form may read.
#[derive(Debug, Clone)]
pub struct Update(crate::query::update::Update, Document);

impl Update {
    /// `let_vars`: the command's `let` variables, which pipeline updates may read.
    pub fn parse(
        update: &Bson,
        array_filters: Option<&[Document]>,
        let_vars: &Document,
    ) -> CommandResult<Update> {
        crate::query::update::Update::parse(update, array_filters)
            .map(|parsed| Update(parsed, let_vars.clone()))
    }

    pub fn is_replacement(&self) -> bool {
        self.0.is_replacement()
    }

    /// The updated document and whether it changed; `is_insert` for an upsert's new
    /// document (`$setOnInsert`).
    pub fn apply(
        &self,
        doc: &Document,
        details: Option<&crate::query::update::MatchDetails>,
        is_insert: bool,
    ) -> CommandResult<(Document, bool)> {
        let updated = self.0.apply(doc, details, &self.context(is_insert))?;
        Ok((updated.doc, updated.modified))
    }

    /// The document an upsert inserts when nothing matched `filter` (mongod's
    /// produceDocumentForUpsert: the filter's equalities, then the update as an insert).
    pub fn upsert_document(&self, filter: &Filter) -> CommandResult<Document> {
        crate::query::update::upsert_document(&self.0, &filter.0, &self.context(true))
    }

    fn context(&self, is_insert: bool) -> crate::query::update::UpdateContext {
        let now = bson::DateTime::now();
        crate::query::update::UpdateContext {
            now,
            now_timestamp: bson::Timestamp {
                time: (now.timestamp_millis() / 1000) as u32,
                increment: 1,
            },
            is_insert,
            let_vars: self.1.clone(),
        }
    }
}
