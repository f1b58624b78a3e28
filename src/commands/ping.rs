//! ping: answers `{ok: 1}`.

use super::{Command, Handler};

pub const PING: Command = Command {
    api_version_1: true,
    allowed_before_auth: true,
    ..Command::new(
        "ping",
        "a way to check that the server is alive. responds immediately even if server is in a db lock.",
        Handler::ReplyOk,
    )
};
