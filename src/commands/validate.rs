//! validate: walks a collection's records and checks each against its key (and a capped
//! collection's insertion order against its records), answering mongod 7.0's shape.

use super::coll_stats::number;
use super::documents as d;
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::{Code, CommandError, CommandResult};
use bson::{doc, Bson, Document};

pub const VALIDATE: Command = Command {
    privileges: &[database("validate")],
    ..Command::new(
        "validate",
        "Validate contents of a namespace by scanning its data structures for correctness.\nThis is a slow operation.\n\tAdd {full: true} option to do a more thorough check.\n\tAdd {background: true} to validate in the background.\n\tAdd {repair: true} to run repair mode.\nCannot specify both {full: true, background: true}.",
        Handler::Async(|inv, cmd| Box::pin(validate(inv, cmd)) as BoxFuture),
    )
};

const FIELDS: &[&str] = &[
    "full",
    "repair",
    "metadata",
    "background",
    "checkBSONConformance",
    "enforceFastCount",
    "scandata",
];

async fn validate(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "validate", FIELDS)?;
    let (_, ns) = d::namespace(&inv, &cmd)?;
    let full = d::bool_arg(&cmd, "validate", "full", false)?;
    let background = d::bool_arg(&cmd, "validate", "background", false)?;
    if full && background {
        return Err(CommandError::new(
            Code::CommandNotSupported,
            "Running the validate command with both {background: true} and {full: true} is not supported.",
        ));
    }
    if d::bool_arg(&cmd, "validate", "repair", false)? {
        return Err(CommandError::new(
            Code::CommandNotSupported,
            "ferrod does not support validate with {repair: true}",
        ));
    }
    let storage = inv.server.storage().clone();
    let Some(info) = d::collection(&storage, &ns)? else {
        return Err(CommandError::new(
            Code::NamespaceNotFound,
            format!("Collection '{ns}' does not exist to validate."),
        ));
    };
    let checked = {
        let (storage, info) = (storage.clone(), info.clone());
        crate::blocking::io(move || storage.check(&info))
            .await
            .map_err(d::storage_error)?
    };
    let valid = checked.errors.is_empty() && checked.order_errors.is_empty();
    let errors: Vec<Bson> = checked
        .errors
        .iter()
        .chain(&checked.order_errors)
        .map(|e| Bson::String(e.clone()))
        .collect();
    let names: Vec<String> = info
        .indexes
        .iter()
        .filter_map(|i| i.get_str("name").ok().map(str::to_owned))
        .collect();
    // The records table is the `_id` index: one key per record.
    let keys: Document = names
        .iter()
        .map(|n| (n.clone(), number(checked.records as i64)))
        .collect();
    let details: Document = names
        .iter()
        .map(|n| (n.clone(), Bson::Document(doc! {"valid": valid})))
        .collect();
    Ok(doc! {
        "ns": &ns,
        "uuid": info.uuid_bson(),
        "nInvalidDocuments": number(checked.errors.len() as i64),
        "nNonCompliantDocuments": 0,
        "nrecords": number(checked.records as i64),
        "nIndexes": names.len() as i32,
        "keysPerIndex": keys,
        "indexDetails": details,
        "valid": valid,
        "repaired": false,
        "warnings": Vec::<Bson>::new(),
        "errors": errors,
        "extraIndexEntries": Vec::<Bson>::new(),
        "missingIndexEntries": Vec::<Bson>::new(),
        "corruptRecords": Vec::<Bson>::new(),
    })
}
