//! hello / isMaster / ismaster: the handshake every driver starts with.

use super::{Command, Handler, Invocation};
use crate::error::{Code, CommandError, CommandResult};
use crate::wire::{Compressor, MAX_BSON_SIZE, MAX_MESSAGE_SIZE};
use bson::{Bson, Document};
use std::sync::atomic::Ordering;

pub const HELLO: Command = Command {
    aliases: &["isMaster", "ismaster"],
    allowed_before_auth: true,
    compress_reply: false,
    ..Command::new(
        "hello",
        "Check if this server is primary for a replica set\n{ hello : 1 }",
        Handler::Sync(hello),
    )
};

pub const MAX_WRITE_BATCH_SIZE: i32 = 100_000;
pub const LOGICAL_SESSION_TIMEOUT_MINUTES: i32 = 30;
pub const MIN_WIRE_VERSION: i32 = 0;
/// MongoDB 7.0.
pub const MAX_WIRE_VERSION: i32 = 21;

fn hello(inv: &Invocation, cmd: &Document) -> CommandResult {
    let client = &inv.client;
    let first = !client.hello_done.swap(true, Ordering::AcqRel);
    if let Some(meta) = cmd.get("client") {
        let Bson::Document(meta) = meta else {
            return Err(crate::error::type_mismatch("client", meta, "object"));
        };
        let raw = bson::RawDocumentBuf::from_document(meta)
            .map_err(|e| CommandError::new(Code::BadValue, e.to_string()))?;
        if client.metadata.set(raw).is_err() {
            return Err(CommandError::new(
                Code::ClientMetadataCannotBeMutated,
                "The client metadata document may only be sent in the first hello",
            ));
        }
        let attr = Bson::Document(meta.clone()).into_relaxed_extjson();
        tracing::info!(
            target: "NETWORK",
            id = 51800,
            ctx = format!("conn{}", client.id),
            remote = %client.remote,
            client = format!("conn{}", client.id),
            doc = %attr,
            "client metadata"
        );
    }

    // The legacy names answer with `ismaster`; hello with `isWritablePrimary`.
    let legacy = cmd.keys().next().is_some_and(|k| k != "hello");
    let mut reply = Document::new();
    if cmd.get_bool("helloOk").unwrap_or(false) {
        reply.insert("helloOk", true);
    }
    if legacy {
        reply.insert("ismaster", true);
    } else {
        reply.insert("isWritablePrimary", true);
    }
    reply.insert("maxBsonObjectSize", MAX_BSON_SIZE as i32);
    reply.insert("maxMessageSizeBytes", MAX_MESSAGE_SIZE as i32);
    reply.insert("maxWriteBatchSize", MAX_WRITE_BATCH_SIZE);
    reply.insert("localTime", bson::DateTime::now());
    reply.insert(
        "logicalSessionTimeoutMinutes",
        LOGICAL_SESSION_TIMEOUT_MINUTES,
    );
    reply.insert("connectionId", client.id as i32);
    reply.insert("minWireVersion", MIN_WIRE_VERSION);
    reply.insert("maxWireVersion", MAX_WIRE_VERSION);
    reply.insert("readOnly", false);

    if let Some(requested) = cmd.get("compression") {
        let Bson::Array(names) = requested else {
            return Err(crate::error::type_mismatch(
                "compression",
                requested,
                "array",
            ));
        };
        // Only the first hello negotiates; later ones report what was agreed.
        if first {
            let offered = &inv.server.config.compressors;
            let agreed: Vec<Compressor> = names
                .iter()
                .filter_map(|n| n.as_str().and_then(Compressor::from_name))
                .filter(|c| offered.contains(c))
                .collect();
            *client.compressors.lock() = agreed;
        }
        let agreed: Vec<Bson> = client
            .compressors
            .lock()
            .iter()
            .map(|c| Bson::String(c.name().into()))
            .collect();
        reply.insert("compression", agreed);
    }
    Ok(reply)
}
