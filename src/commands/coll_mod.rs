//! collMod: changes a collection's validator, validation level and action, replicated as
//! one `DocWrite::SetOptions`.

use super::documents as d;
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::{Code, CommandError, CommandResult};
use crate::storage::DocWrite;
use bson::{doc, Document};

pub const COLL_MOD: Command = Command {
    api_version_1: true,
    privileges: &[database("collMod")],
    ..Command::new(
        "collMod",
        "Sets collection options.",
        Handler::Async(|inv, cmd| Box::pin(coll_mod(inv, cmd)) as BoxFuture),
    )
};

const OPTIONS: &[&str] = &["validator", "validationLevel", "validationAction"];

/// mongod 7.0's other collMod options, refused by name until ferrod has what they change.
const NOT_YET: &[&str] = &[
    "index",
    "expireAfterSeconds",
    "viewOn",
    "pipeline",
    "cappedSize",
    "cappedMax",
    "changeStreamPreAndPostImages",
    "clusteredIndex",
    "timeseries",
    "timeseriesBucketsMayHaveMixedSchemaData",
    "recordPreImages",
    "dryRun",
    "collectionUUID",
];

async fn coll_mod(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "collMod", &[OPTIONS, NOT_YET].concat())?;
    let (_, ns) = d::namespace(&inv, &cmd)?;
    if let Some(option) = cmd.keys().skip(1).find(|k| NOT_YET.contains(&k.as_str())) {
        return Err(CommandError::new(
            Code::InvalidOptions,
            format!("ferrod does not support the collMod option '{option}' yet"),
        ));
    }
    super::validation::check_options(&cmd, "collMod")?;
    d::check_writable(&inv)?;
    let storage = inv.server.storage().clone();
    let _guard = storage.lock_writes().await;
    let Some(info) = d::collection(&storage, &ns)? else {
        return Err(CommandError::new(
            Code::NamespaceNotFound,
            format!("ns does not exist: {ns}"),
        ));
    };
    let mut options = info.options.clone();
    for field in OPTIONS {
        if let Some(v) = cmd.get(*field) {
            options.insert(*field, v.clone());
        }
    }
    if options
        .get_document("validator")
        .is_ok_and(|v| v.is_empty())
    {
        // `validator: {}` removes it, as in mongod.
        options.remove("validator");
    }
    let writes = vec![DocWrite::SetOptions {
        ns: ns.clone(),
        options,
    }];
    let concern_error = d::commit(&inv, &cmd, writes)
        .await?
        .map_err(d::storage_error)?;
    Ok(match concern_error {
        Some(e) => doc! {"writeConcernError": e},
        None => Document::new(),
    })
}
