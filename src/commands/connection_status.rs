//! connectionStatus: who this connection is logged in as.

use super::{Command, Handler};
use bson::doc;

pub const CONNECTION_STATUS: Command = Command {
    allowed_before_auth: true,
    ..Command::new(
        "connectionStatus",
        "Returns connection-specific information such as logged-in users and their roles",
        Handler::Sync(|_, _| {
            Ok(doc! {"authInfo": {"authenticatedUsers": [], "authenticatedUserRoles": []}})
        }),
    )
};
