//! buildInfo / buildinfo: the version and build facts drivers and mongosh read.

use super::{Command, Handler, Invocation};
use crate::error::CommandResult;
use crate::wire::MAX_BSON_SIZE;
use bson::{doc, Document};

pub const BUILD_INFO: Command = Command {
    aliases: &["buildinfo"],
    allowed_before_auth: true,
    ..Command::new(
        "buildInfo",
        "get version #, etc.\n{ buildinfo:1 }",
        Handler::Sync(build_info),
    )
};

fn build_info(_: &Invocation, _: &Document) -> CommandResult {
    let parts: Vec<i32> = crate::version::MONGODB_VERSION
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .chain(std::iter::once(0))
        .collect();
    Ok(doc! {
        "version": crate::version::MONGODB_VERSION,
        "gitVersion": option_env!("FERROD_GIT_VERSION").unwrap_or("unknown"),
        "modules": [],
        "allocator": "system",
        "javascriptEngine": "none",
        "sysInfo": "deprecated",
        "versionArray": parts,
        "openssl": {"running": "disabled", "compiled": "disabled"},
        "buildEnvironment": {
            "distarch": std::env::consts::ARCH,
            "target_arch": std::env::consts::ARCH,
            "target_os": std::env::consts::OS,
        },
        "bits": 64,
        "debug": cfg!(debug_assertions),
        "maxBsonObjectSize": MAX_BSON_SIZE as i32,
        "storageEngines": ["ferrod"],
        "ferrodVersion": env!("CARGO_PKG_VERSION"),
    })
}
