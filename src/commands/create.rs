//! create: makes a collection explicitly (otherwise the first write does).

use super::documents as d;
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::{Code, CommandError, CommandResult};
use crate::storage::DocWrite;
use bson::{doc, Document};

pub const CREATE: Command = Command {
    api_version_1: true,
    privileges: &[database("createCollection")],
    ..Command::new(
        "create",
        "explicitly creates a collection or view",
        Handler::Async(|inv, cmd| Box::pin(create(inv, cmd)) as BoxFuture),
    )
};

/// mongod's create options that ferrod refuses by name until it implements them.
const NOT_YET: &[&str] = &[
    "capped",
    "size",
    "max",
    "autoIndexId",
    "validator",
    "validationLevel",
    "validationAction",
    "viewOn",
    "pipeline",
    "collation",
    "timeseries",
    "clusteredIndex",
    "expireAfterSeconds",
    "changeStreamPreAndPostImages",
    "storageEngine",
    "indexOptionDefaults",
    "encryptedFields",
    "idIndex",
    "recordPreImages",
    "flags",
    "temp",
];

async fn create(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "create", NOT_YET)?;
    let (_, ns) = d::namespace(&inv, &cmd)?;
    if let Some(option) = cmd.keys().skip(1).find(|k| NOT_YET.contains(&k.as_str())) {
        return Err(CommandError::new(
            Code::InvalidOptions,
            format!("ferrod does not support the create option '{option}' yet"),
        ));
    }
    d::check_writable(&inv)?;
    let storage = inv.server.storage().clone();
    let _guard = storage.lock_writes().await;
    if d::collection(&storage, &ns)?.is_some() {
        // mongod 7.0: creating an existing collection with the same options succeeds.
        return Ok(Document::new());
    }
    let writes = vec![DocWrite::CreateCollection {
        ns: ns.clone(),
        uuid: crate::storage::new_uuid(),
        options: Document::new(),
    }];
    let concern_error = d::commit(&inv, &cmd, writes).await?.map_err(|_| {
        CommandError::new(
            Code::NamespaceExists,
            format!("Collection {ns} already exists."),
        )
    })?;
    Ok(match concern_error {
        Some(e) => doc! {"writeConcernError": e},
        None => Document::new(),
    })
}
