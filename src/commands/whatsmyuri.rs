//! whatsmyuri: the client's own address as the server sees it.

use super::{Command, Handler};
use bson::doc;

pub const WHATSMYURI: Command = Command {
    allowed_before_auth: true,
    ..Command::new(
        "whatsmyuri",
        "{whatsmyuri:1}",
        Handler::Sync(|inv, _| Ok(doc! {"you": inv.client.remote.to_string()})),
    )
};
