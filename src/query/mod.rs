//! The query language on documents in memory: BSON's comparison order, dotted paths,
//! the filter matcher, sort, projection, the update language and aggregation
//! expressions. A leaf: it knows BSON and `error`, nothing of storage, commands or
//! replication, so every member evaluates the same input to the same result.

pub mod decimal;
pub mod expr;
pub mod field_names;
pub mod matcher;
pub mod order;
pub mod path;
pub mod pipeline;
pub mod projection;
pub mod sort;
pub mod update;
