//! find's options that ferrod does not implement yet, refused by name when they would
//! change the answer and accepted when they are no-ops, as mongod's IDL reads them
//! (find_command.idl): `returnKey` and `showRecordId` are optionalBool (false is the
//! default), `min` and `max` are object_owned_nonempty_serialize (an empty object is the
//! default). (`tailable` and `awaitData` are implemented: `commands::tail`.)

use super::documents as d;
use crate::error::{bad_value, CommandResult};
use bson::Document;

const FLAGS: &[&str] = &["returnKey", "showRecordId"];
const BOUNDS: &[&str] = &["min", "max"];

/// BadValue (2) naming the first option given with an effect; type errors (14) first.
pub fn refuse_unsupported(cmd: &Document) -> CommandResult<()> {
    for flag in FLAGS {
        if d::bool_arg(cmd, "find", flag, false)? {
            return Err(refused(flag));
        }
    }
    for bound in BOUNDS {
        if d::doc_arg(cmd, "find", bound)?.is_some_and(|b| !b.is_empty()) {
            return Err(refused(bound));
        }
    }
    // `{locale: "simple"}` is ferrod's own comparison; any other collation is refused.
    d::check_collation(cmd.get("collation"))
}

fn refused(option: &str) -> crate::error::CommandError {
    bad_value(format!(
        "ferrod does not support the find option '{option}' yet"
    ))
}
