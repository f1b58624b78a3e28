//! logout: forget the connection's login.

use super::{Command, Handler};
use bson::Document;

pub const LOGOUT: Command = Command {
    allowed_before_auth: true,
    ..Command::new(
        "logout",
        "de-authenticate",
        Handler::Sync(|inv, _| {
            let mut auth = inv.client.auth.lock();
            auth.user = None;
            auth.sasl = None;
            Ok(Document::new())
        }),
    )
};
