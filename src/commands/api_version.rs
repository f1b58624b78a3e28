//! The Stable API parameters (`apiVersion`, `apiStrict`, `apiDeprecationErrors`), checked
//! for every command as mongod's initializeAPIParameters does.

use super::Command;
use crate::error::{type_mismatch, Code, CommandError, CommandResult};
use bson::Bson;

/// mongod parses the three fields as the IDL struct of this name (it shows in messages).
const PARSER: &str = "APIParametersFromClient";

fn field<'a>(value: Option<&'a Bson>, name: &str, kind: &str) -> CommandResult<Option<&'a Bson>> {
    match value {
        None => Ok(None),
        Some(v @ Bson::String(_)) if kind == "string" => Ok(Some(v)),
        Some(v @ Bson::Boolean(_)) if kind == "bool" => Ok(Some(v)),
        Some(other) => Err(type_mismatch(&format!("{PARSER}.{name}"), other, kind)),
    }
}

/// Refuses a request whose API parameters mongod would refuse. `invoked` is the name the
/// request used: only a command's own name is in API Version 1, not its aliases (mongod's
/// isMaster is a command of its own, outside it, while hello is in it). The values are
/// the request's `apiVersion`, `apiStrict` and `apiDeprecationErrors`.
pub fn check(
    version: Option<&Bson>,
    strict: Option<&Bson>,
    deprecation_errors: Option<&Bson>,
    command: &Command,
    invoked: &str,
) -> CommandResult<()> {
    let version = field(version, "apiVersion", "string")?.and_then(Bson::as_str);
    let strict = field(strict, "apiStrict", "bool")?.and_then(Bson::as_bool);
    let deprecation_errors =
        field(deprecation_errors, "apiDeprecationErrors", "bool")?.and_then(Bson::as_bool);
    if (strict.is_some() || deprecation_errors.is_some()) && version.is_none() {
        return Err(CommandError::new(
            Code::Location4886600,
            "Provided apiStrict and/or apiDeprecationErrors without passing apiVersion",
        ));
    }
    match version {
        None | Some("1") => {}
        Some("2") => {
            return Err(CommandError::new(
                Code::APIVersionError,
                "Cannot accept API version 2",
            ))
        }
        Some(_) => {
            return Err(CommandError::new(
                Code::APIVersionError,
                "API version must be \"1\"",
            ))
        }
    }
    if strict == Some(true) && !(command.api_version_1 && invoked == command.name) {
        return Err(CommandError::new(
            Code::APIStrictError,
            format!(
                "Provided apiStrict:true, but the command {invoked} is not in API Version 1. \
                 Information on supported commands and migrations in API Version 1 can be \
                 found at https://dochub.mongodb.org/core/manual-versioned-api"
            ),
        ));
    }
    // No command ferrod serves is deprecated in API Version 1, so apiDeprecationErrors
    // never refuses one (mongod's APIDeprecationError, 324).
    Ok(())
}
