//! create: makes a collection explicitly (otherwise the first write does).

use super::documents as d;
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::{Code, CommandError, CommandResult};
use crate::storage::DocWrite;
use bson::{doc, Bson, Document};

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
    "autoIndexId",
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

/// The options ferrod implements, kept in the collection's metadata.
const OPTIONS: &[&str] = &[
    "capped",
    "size",
    "max",
    "validator",
    "validationLevel",
    "validationAction",
];

async fn create(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "create", &[NOT_YET, OPTIONS].concat())?;
    let (_, ns) = d::namespace(&inv, &cmd)?;
    if let Some(option) = cmd.keys().skip(1).find(|k| NOT_YET.contains(&k.as_str())) {
        return Err(CommandError::new(
            Code::InvalidOptions,
            format!("ferrod does not support the create option '{option}' yet"),
        ));
    }
    let options = options(&cmd)?;
    d::check_writable(&inv)?;
    let storage = inv.server.storage().clone();
    let _guard = storage.lock_writes().await;
    if let Some(existing) = d::collection(&storage, &ns)? {
        // mongod 7.0: creating an existing collection with the same options succeeds.
        if existing.options == options {
            return Ok(Document::new());
        }
        return Err(CommandError::new(
            Code::NamespaceExists,
            format!("namespace {ns} already exists, but with different options"),
        ));
    }
    let writes = vec![DocWrite::CreateCollection {
        ns: ns.clone(),
        uuid: crate::storage::new_uuid(),
        options,
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

/// The collection options of `cmd`, checked as mongod's create does, in the form the
/// collection keeps (and listCollections shows): `capped: true`, `size` rounded up to a
/// multiple of 256 bytes.
fn options(cmd: &Document) -> CommandResult<Document> {
    let number = |field: &str| -> CommandResult<Option<i64>> {
        match cmd.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(v) => crate::error::whole_number(v).map(Some).ok_or_else(|| {
                CommandError::new(
                    Code::TypeMismatch,
                    format!(
                        "BSON field 'create.{field}' is the wrong type '{}', expected types '[long, int, decimal, double]'",
                        crate::error::type_name(v)
                    ),
                )
            }),
        }
    };
    let capped = match cmd.get("capped") {
        None | Some(Bson::Null) => false,
        Some(_) => d::bool_arg(cmd, "create", "capped", false)?,
    };
    let (size, max) = (number("size")?, number("max")?);
    if let Some(size) = size.filter(|s| *s < 1) {
        return Err(CommandError::new(
            Code::Location51024,
            format!("BSON field 'size' value must be >= 1, actual value '{size}'"),
        ));
    }
    if capped && size.is_none() {
        return Err(CommandError::new(
            Code::InvalidOptions,
            "the 'size' field is required when 'capped' is true",
        ));
    }
    if (size.is_some() || max.is_some()) && !capped {
        return Err(CommandError::new(
            Code::InvalidOptions,
            "the 'capped' field needs to be true when either the 'size' or 'max' fields are present",
        ));
    }
    super::validation::check_options(cmd, "create")?;
    let mut out = Document::new();
    if capped {
        out.insert("capped", true);
        let size = size.unwrap_or(0);
        out.insert("size", (size + 0xff) & !0xff);
        if let Some(max) = max.filter(|m| *m > 0) {
            out.insert("max", max);
        }
    }
    for field in ["validator", "validationLevel", "validationAction"] {
        if let Some(v) = cmd.get(field) {
            out.insert(field, v.clone());
        }
    }
    Ok(out)
}
