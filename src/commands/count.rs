//! count and distinct over the documents a query matches.

use super::documents as d;
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::{type_name, Code, CommandError, CommandResult};
use crate::query::path::{FieldPath, LeafArrays};
use bson::{doc, Bson, Document};

pub const COUNT: Command = Command {
    api_version_1: false,
    privileges: &[database("find")],
    ..Command::new(
        "count",
        "count objects in collection",
        Handler::Async(|inv, cmd| Box::pin(count(inv, cmd)) as BoxFuture),
    )
};

pub const DISTINCT: Command = Command {
    privileges: &[database("find")],
    ..Command::new(
        "distinct",
        "{ distinct : 'collection name' , key : 'a.b' , query : {} }",
        Handler::Async(|inv, cmd| Box::pin(distinct(inv, cmd)) as BoxFuture),
    )
};

async fn count(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(
        &cmd,
        "count",
        &["query", "limit", "skip", "hint", "collation", "fields"],
    )?;
    let (_, ns) = d::namespace(&inv, &cmd)?;
    d::check_collation(cmd.get("collation"))?;
    let filter = d::filter_arg(&cmd, "count", "query")?;
    // mongod: a negative limit counts as its absolute value.
    let limit = match cmd.get("limit") {
        None | Some(Bson::Null) => None,
        Some(v) => crate::error::whole_number(v)
            .map(|n| n.unsigned_abs() as usize)
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| CommandError::new(Code::TypeMismatch, format!("BSON field 'count.limit' is the wrong type '{}', expected types '[long, int, decimal, double]'", type_name(v))))?,
    };
    let skip = d::count_arg(&cmd, "count", "skip")?.unwrap_or(0) as usize;
    super::local_db::check_readable(&inv, &cmd, &ns)?;
    let read_concern = super::read_concern::prepare(&inv, &cmd, "count").await?;
    let storage = inv.server.storage().clone();
    let stop = limit.map(|l| l + skip);
    let docs = match super::local_db::select(&inv, &ns, &filter, false, stop).await? {
        Some(docs) => docs,
        None => match d::collection(&storage, &ns)? {
            None => Vec::new(),
            Some(info) => d::select(&inv, &info, &filter, stop, cmd.get("hint").cloned()).await?,
        },
    };
    let n = docs
        .len()
        .saturating_sub(skip)
        .min(limit.unwrap_or(usize::MAX));
    super::read_concern::confirm(&inv, read_concern.as_ref()).await?;
    Ok(doc! {"n": n as i32})
}

async fn distinct(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "distinct", &["key", "query", "collation", "hint"])?;
    d::check_collation(cmd.get("collation"))?;
    let (_, ns) = d::namespace(&inv, &cmd)?;
    let key = match cmd.get("key") {
        Some(Bson::String(k)) => k.clone(),
        Some(other) => {
            return Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                    "BSON field 'distinct.key' is the wrong type '{}', expected type 'string'",
                    type_name(other)
                ),
            ))
        }
        None => return Err(crate::error::missing_field("distinct.key")),
    };
    let filter = d::filter_arg(&cmd, "distinct", "query")?;
    super::local_db::check_readable(&inv, &cmd, &ns)?;
    let read_concern = super::read_concern::prepare(&inv, &cmd, "distinct").await?;
    let storage = inv.server.storage().clone();
    let mut values: Vec<Bson> = Vec::new();
    let docs = match super::local_db::select(&inv, &ns, &filter, false, None).await? {
        Some(docs) => Some(docs),
        None => match d::collection(&storage, &ns)? {
            None => None,
            Some(info) => {
                Some(d::select(&inv, &info, &filter, None, cmd.get("hint").cloned()).await?)
            }
        },
    };
    if let Some(docs) = docs {
        let path = FieldPath::new(&key);
        for doc in docs {
            // Arrays contribute their elements, not themselves.
            for v in path
                .values(&doc, LeafArrays::Traverse)
                .into_iter()
                .flatten()
            {
                if matches!(v, Bson::Array(_)) {
                    continue;
                }
                if !values
                    .iter()
                    .any(|seen| crate::query::order::values_equal(seen, &v))
                {
                    values.push(v);
                }
            }
        }
    }
    values.sort_by(crate::query::order::compare);
    super::read_concern::confirm(&inv, read_concern.as_ref()).await?;
    Ok(doc! {"values": values})
}
