//! hello / isMaster / ismaster: the handshake every driver starts with.

use super::{Command, Handler, Invocation, ReplyBody};
use crate::error::{Code, CommandError, CommandResult};
use crate::repl::{election_id, HelloView, MemberState};
use crate::wire::raw;
use crate::wire::{Compressor, MAX_BSON_SIZE, MAX_MESSAGE_SIZE};
use bson::{doc, Bson, Document, RawArrayBuf, RawBson, RawBsonRef, RawDocument, RawDocumentBuf};
use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::LazyLock;
use std::time::Duration;

pub const HELLO: Command = Command {
    api_version_1: true,
    aliases: &["isMaster", "ismaster"],
    allowed_before_auth: true,
    compress_reply: false,
    ..Command::new(
        "hello",
        "Check if this server is primary for a replica set\n{ hello : 1 }",
        Handler::Raw(hello_now, hello_async),
    )
};

/// A hello that does not ask to wait (the handshake's, a polling monitor's) is answered
/// at once, from the request as it arrived; the others take [`hello_async`], which also
/// refuses what they get wrong.
fn hello_now(inv: &Invocation, cmd: &RawDocument) -> Option<CommandResult<ReplyBody>> {
    let args = HelloArgs::of_raw(cmd);
    (!inv.exhaust_allowed && !args.waits).then(|| hello(inv, &args).map(ReplyBody::Encoded))
}

/// The fields of the request that [`hello`] reads, borrowed from a `Document` or taken
/// from the raw request (converted only when present: a monitor's hello has none).
struct HelloArgs<'a> {
    /// Asked as `isMaster`/`ismaster`: the reply says `ismaster`.
    legacy: bool,
    hello_ok: bool,
    client: Option<Cow<'a, Bson>>,
    compression: Option<Cow<'a, Bson>>,
    sasl_supported_mechs: Option<Cow<'a, Bson>>,
    speculative_authenticate: Option<Cow<'a, Bson>>,
    /// `topologyVersion` or `maxAwaitTimeMS` is there: an awaitable hello.
    waits: bool,
}

impl<'a> HelloArgs<'a> {
    fn of(cmd: &'a Document) -> Self {
        let get = |key| cmd.get(key).map(Cow::Borrowed);
        HelloArgs {
            legacy: cmd.keys().next().is_some_and(|k| k != "hello"),
            hello_ok: cmd.get_bool("helloOk").unwrap_or(false),
            client: get("client"),
            compression: get("compression"),
            sasl_supported_mechs: get("saslSupportedMechs"),
            speculative_authenticate: get("speculativeAuthenticate"),
            waits: cmd.contains_key("topologyVersion") || cmd.contains_key("maxAwaitTimeMS"),
        }
    }

    /// In one walk of `cmd` (which the dispatcher has checked).
    fn of_raw(cmd: &RawDocument) -> HelloArgs<'static> {
        let mut args = HelloArgs {
            legacy: false,
            hello_ok: false,
            client: None,
            compression: None,
            sasl_supported_mechs: None,
            speculative_authenticate: None,
            waits: false,
        };
        let owned = |value: RawBsonRef<'_>| Bson::try_from(value).ok().map(Cow::Owned);
        for (i, element) in cmd.iter().enumerate() {
            let Ok((key, value)) = element else { break };
            match key {
                _ if i == 0 => args.legacy = key != "hello",
                "helloOk" => args.hello_ok = matches!(value, RawBsonRef::Boolean(true)),
                "client" => args.client = owned(value),
                "compression" => args.compression = owned(value),
                "saslSupportedMechs" => args.sasl_supported_mechs = owned(value),
                "speculativeAuthenticate" => args.speculative_authenticate = owned(value),
                "topologyVersion" | "maxAwaitTimeMS" => args.waits = true,
                _ => {}
            }
        }
        args
    }
}

/// With `topologyVersion` + `maxAwaitTimeMS`, the reply waits until the topology changes
/// (the counter moves) or the time passes; a standalone's never changes, so it waits the
/// whole time, as mongod's does.
fn hello_async(inv: Invocation, cmd: Document) -> super::BoxFuture {
    Box::pin(async move {
        let wait = awaitable(&cmd)?;
        // An exhaust stream re-runs this request after each reply: it must be awaitable.
        if inv.exhaust_allowed && wait.is_none() {
            return Err(CommandError::new(
                Code::Location51756,
                "An isMaster or hello request with exhaust must specify 'maxAwaitTimeMS'",
            ));
        }
        if let Some((process_id, counter)) = wait {
            let current = inv.server.topology_version();
            if current.get_object_id("processId").ok() == Some(process_id)
                && current.get_i64("counter").ok() == Some(counter)
            {
                let max = Duration::from_millis(max_await_ms(&cmd)?);
                let change = async {
                    match &inv.server.repl {
                        Some(repl) => repl.wait_topology_change(counter, max).await,
                        None => tokio::time::sleep(max).await,
                    }
                };
                // Shutdown ends the wait at once, as mongod's quiesce mode does: the
                // driver marks the server unknown now, and a streaming monitor does
                // not hold the connection (and the shutdown) for maxAwaitTimeMS.
                tokio::select! {
                    _ = change => {}
                    _ = inv.server.shutdown.cancelled() => {
                        return Err(CommandError::new(
                            Code::ShutdownInProgress,
                            "The server is in quiesce mode and will shut down",
                        ));
                    }
                }
            }
        }
        hello(&inv, &HelloArgs::of(&cmd))?
            .to_document()
            .map_err(|e| CommandError::new(Code::BadValue, e.to_string()))
    })
}

/// The request an exhaust stream runs next after `reply` (mongod's next invocation): the
/// same hello, waiting on the `topologyVersion` just sent. None ends the stream: an error
/// reply, or a request that did not ask to wait.
pub fn exhaust_next(request: &Document, reply: &RawDocument) -> Option<Document> {
    let is_hello = request
        .keys()
        .next()
        .is_some_and(|name| HELLO.name == name || HELLO.aliases.contains(&name.as_str()));
    let ok = matches!(reply.get("ok"), Ok(Some(RawBsonRef::Double(d))) if d == 1.0)
        || matches!(reply.get("ok"), Ok(Some(RawBsonRef::Int32(1))));
    let tv = reply.get_document("topologyVersion").ok()?;
    if !is_hello || !ok || !request.contains_key("maxAwaitTimeMS") {
        return None;
    }
    let mut next = request.clone();
    next.insert("topologyVersion", Document::try_from(tv).ok()?);
    Some(next)
}

/// The client's `topologyVersion` when it asked to wait (mongod: both fields or neither).
fn awaitable(cmd: &Document) -> CommandResult<Option<(bson::oid::ObjectId, i64)>> {
    let tv = match cmd.get("topologyVersion") {
        None | Some(Bson::Null) => {
            if cmd.contains_key("maxAwaitTimeMS") {
                return Err(CommandError::new(
                    Code::Location31368,
                    "A request with a 'maxAwaitTimeMS' must also contain a 'topologyVersion'",
                ));
            }
            return Ok(None);
        }
        Some(Bson::Document(d)) => d,
        Some(other) => {
            return Err(crate::error::type_mismatch(
                "topologyVersion",
                other,
                "object",
            ))
        }
    };
    if !cmd.contains_key("maxAwaitTimeMS") {
        return Err(CommandError::new(
            Code::Location31368,
            "A request with a 'topologyVersion' must include 'maxAwaitTimeMS'",
        ));
    }
    let process_id = tv
        .get_object_id("processId")
        .map_err(|_| crate::error::missing_field("TopologyVersion.processId"))?;
    let counter = match tv.get("counter") {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => *n as i64,
        _ => return Err(crate::error::missing_field("TopologyVersion.counter")),
    };
    Ok(Some((process_id, counter)))
}

fn max_await_ms(cmd: &Document) -> CommandResult<u64> {
    let ms = match cmd.get("maxAwaitTimeMS") {
        Some(Bson::Int32(n)) => *n as i64,
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(d)) => *d as i64,
        Some(other) => return Err(crate::error::type_mismatch("maxAwaitTimeMS", other, "long")),
        None => 0,
    };
    if ms < 0 {
        return Err(CommandError::new(
            Code::BadValue,
            "maxAwaitTimeMS must be a non-negative integer",
        ));
    }
    Ok(ms as u64)
}

pub const MAX_WRITE_BATCH_SIZE: i32 = 100_000;
pub const MIN_WIRE_VERSION: i32 = 0;
/// MongoDB 7.0.
pub const MAX_WIRE_VERSION: i32 = 21;

/// The reply, written as BSON as it is made: a hello is the most frequent command of
/// all (every monitor polls it), and a `Document` of its dozen fields would cost an
/// allocation per key.
fn hello(inv: &Invocation, cmd: &HelloArgs<'_>) -> CommandResult<RawDocumentBuf> {
    let client = &inv.client;
    let metadata = match cmd.client.as_deref() {
        None => None,
        Some(Bson::Document(meta)) => Some(meta),
        Some(other) => return Err(crate::error::type_mismatch("client", other, "object")),
    };
    // mongod finalizes the metadata with the first successful hello, with or without
    // metadata; a hello whose metadata is invalid finalizes nothing.
    if let Some(meta) = metadata {
        if client.hello_done.load(Ordering::Acquire) {
            return Err(CommandError::new(
                Code::ClientMetadataCannotBeMutated,
                "The client metadata document may only be sent in the first hello",
            ));
        }
        validate_metadata(meta)?;
    }
    let first = !client.hello_done.swap(true, Ordering::AcqRel);
    if let Some(meta) = metadata {
        // Kept as raw BSON: a parsed Document costs an idle connection kilobytes.
        let raw = bson::RawDocumentBuf::from_document(meta)
            .map_err(|e| CommandError::new(Code::BadValue, e.to_string()))?;
        let _ = client.metadata.set(raw);
    }

    // The legacy names answer with `ismaster`; hello with `isWritablePrimary`.
    let legacy = cmd.legacy;
    let mut reply = RawDocumentBuf::from_bytes(with_room(REPLY_ROOM)).expect("an empty document");
    if cmd.hello_ok {
        reply.append("helloOk", true);
    }
    if let Some(repl) = &inv.server.repl {
        for (key, value) in repl_fields(&repl.hello_view(&inv.server), legacy) {
            append_bson(&mut reply, &key, value)?;
        }
    }
    // The fields every hello has are written as bytes; a standalone's leading ones never
    // change (its topologyVersion's counter never moves), so they are written once.
    let mut bytes = reply.into_bytes();
    bytes.pop(); // the terminating NUL, written again by finish_document
    if inv.server.repl.is_some() {
        bytes.extend_from_slice(&LIMITS);
    } else {
        bytes.extend_from_slice(&STANDALONE_LEADING[usize::from(legacy)]);
    }
    let plain = "plain elements with plain keys";
    raw::write_element(
        b"localTime",
        &Bson::DateTime(bson::DateTime::now()),
        &mut bytes,
    )
    .expect(plain);
    raw::write_int32(
        b"logicalSessionTimeoutMinutes",
        crate::sessions::LOGICAL_SESSION_TIMEOUT_MINUTES,
        &mut bytes,
    );
    raw::write_int32(b"connectionId", client.id as i32, &mut bytes);
    raw::write_int32(b"minWireVersion", MIN_WIRE_VERSION, &mut bytes);
    raw::write_int32(b"maxWireVersion", MAX_WIRE_VERSION, &mut bytes);
    raw::write_element(b"readOnly", &Bson::Boolean(false), &mut bytes).expect(plain);
    raw::finish_document(0, &mut bytes);
    let mut reply = RawDocumentBuf::from_bytes(bytes).expect("a document just written");

    if let Some(requested) = cmd.compression.as_deref() {
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
        let agreed = client.compressors.lock().clone();
        // mongod leaves the field out when nothing was agreed.
        if !agreed.is_empty() {
            let mut names = RawArrayBuf::new();
            for c in agreed {
                names.push(c.name());
            }
            reply.append("compression", names);
        }
    }
    if let Some(requested) = cmd.sasl_supported_mechs.as_deref() {
        let Bson::String(db_user) = requested else {
            return Err(crate::error::type_mismatch(
                "saslSupportedMechs",
                requested,
                "string",
            ));
        };
        if let Some(mechs) = super::sasl::supported_mechanisms(&inv.server, db_user) {
            append_bson(&mut reply, "saslSupportedMechs", Bson::Array(mechs))?;
        }
    }
    if let Some(Bson::Document(request)) = cmd.speculative_authenticate.as_deref() {
        if let Some(answer) = super::sasl::speculative(&inv.server, client, request) {
            append_bson(
                &mut reply,
                "speculativeAuthenticate",
                Bson::Document(answer),
            )?;
        }
    }
    if let (true, Some(meta)) = (first, metadata) {
        log_metadata(inv, meta);
    }
    Ok(reply)
}

/// maxBsonObjectSize, maxMessageSizeBytes and maxWriteBatchSize, as BSON elements.
static LIMITS: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut out = Vec::new();
    raw::write_int32(b"maxBsonObjectSize", MAX_BSON_SIZE as i32, &mut out);
    raw::write_int32(b"maxMessageSizeBytes", MAX_MESSAGE_SIZE as i32, &mut out);
    raw::write_int32(b"maxWriteBatchSize", MAX_WRITE_BATCH_SIZE, &mut out);
    out
});

/// A standalone's hello fields up to the limits, as BSON elements: `isWritablePrimary`
/// (index 0) or the legacy `ismaster` (1), its `topologyVersion`, then [`LIMITS`]. Shared
/// by every hello; what they hold never changes while the process runs.
static STANDALONE_LEADING: LazyLock<[Vec<u8>; 2]> = LazyLock::new(|| {
    ["isWritablePrimary", "ismaster"].map(|primary| {
        let mut out = Vec::new();
        raw::write_element(primary.as_bytes(), &Bson::Boolean(true), &mut out)
            .expect("a plain element");
        let topology_version = raw::open_document(b"topologyVersion", &mut out);
        raw::write_element(
            b"processId",
            &Bson::ObjectId(crate::state::process_id()),
            &mut out,
        )
        .expect("a plain element");
        raw::write_int64(b"counter", 0, &mut out);
        raw::finish_document(topology_version, &mut out);
        out.extend_from_slice(&LIMITS);
        out
    })
});

/// Room for a hello reply with the dispatcher's `ok` and cluster time (about 400 bytes
/// on a replica set member), so that writing it allocates once.
const REPLY_ROOM: usize = 512;

/// An empty BSON document in a buffer with room for `capacity` bytes.
fn with_room(capacity: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(capacity);
    bytes.extend_from_slice(&5i32.to_le_bytes());
    bytes.push(0);
    bytes
}

/// Appends a field made as a `Bson` value (the replica set's fields, SASL answers).
fn append_bson(reply: &mut RawDocumentBuf, key: &str, value: Bson) -> CommandResult<()> {
    let value =
        RawBson::try_from(value).map_err(|e| CommandError::new(Code::BadValue, e.to_string()))?;
    reply.append(key, value);
    Ok(())
}

/// mongod's "client metadata" line (51800), once per connection.
fn log_metadata(inv: &Invocation, meta: &Document) {
    let client = &inv.client;
    let compressors: Vec<&str> = client.compressors.lock().iter().map(|c| c.name()).collect();
    let compressors = serde_json::to_string(&compressors).unwrap_or_default();
    let doc = Bson::Document(meta.clone()).into_relaxed_extjson();
    tracing::info!(
        target: "NETWORK",
        id = 51800,
        ctx = format!("conn{}", client.id),
        remote = %client.remote,
        client = format!("conn{}", client.id),
        negotiatedCompressors = %compressors,
        doc = %doc,
        "client metadata"
    );
}

/// mongod's limit on the metadata a driver sends to a mongod.
const MAX_METADATA_BYTES: usize = 512;
const MAX_APP_NAME_BYTES: usize = 128;

/// The checks mongod applies to hello's `client` document, with its codes and messages:
/// `driver {name, version}` and `os {type}` are required, `application.name` is optional.
fn validate_metadata(meta: &Document) -> CommandResult<()> {
    let size = bson::to_vec(meta).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(CommandError::new(
            Code::ClientMetadataDocumentTooLarge,
            format!("The client metadata document must be less then or equal to {MAX_METADATA_BYTES} bytes"),
        ));
    }
    let sub_document = |name: &str, value: &Bson| {
        match value {
        Bson::Document(d) => Ok(d.clone()),
        _ => Err(CommandError::new(
            Code::TypeMismatch,
            format!("The '{name}' field is required to be a BSON document in the client metadata document"),
        )),
    }
    };
    let string_field = |doc: &Document, section: &str, field: &str, required: bool| match doc
        .get(field)
    {
        Some(Bson::String(s)) => Ok(Some(s.len())),
        Some(_) => Err(CommandError::new(
            Code::TypeMismatch,
            format!(
                "The '{section}.{field}' field must be a string in the client metadata document"
            ),
        )),
        None if required => Err(CommandError::new(
            Code::ClientMetadataMissingField,
            format!("Missing required field '{section}.{field}' in the client metadata document"),
        )),
        None => Ok(None),
    };
    let (mut driver, mut os) = (false, false);
    for (name, value) in meta {
        match name.as_str() {
            "application" => {
                let app = sub_document(name, value)?;
                if string_field(&app, "application", "name", false)?
                    .is_some_and(|len| len > MAX_APP_NAME_BYTES)
                {
                    return Err(CommandError::new(
                        Code::ClientMetadataAppNameTooLarge,
                        format!("The 'application.name' field must be less then or equal to {MAX_APP_NAME_BYTES} bytes in the client metadata document"),
                    ));
                }
            }
            "driver" => {
                let d = sub_document(name, value)?;
                string_field(&d, "driver", "name", true)?;
                string_field(&d, "driver", "version", true)?;
                driver = true;
            }
            "os" => {
                let o = sub_document(name, value)?;
                string_field(&o, "os", "type", true)?;
                os = true;
            }
            // Other fields are allowed and ignored.
            _ => {}
        }
    }
    for (found, section) in [(driver, "driver"), (os, "os")] {
        if !found {
            return Err(CommandError::new(
                Code::ClientMetadataMissingField,
                format!(
                    "Missing required sub-document '{section}' in the client metadata document"
                ),
            ));
        }
    }
    Ok(())
}

/// The replica-set fields of hello (and of serverStatus' `repl` section), as mongod
/// shapes them.
pub fn repl_fields(view: &HelloView, legacy: bool) -> Document {
    let mut reply = Document::new();
    let state = view.state;
    let primary = state == MemberState::Primary;
    if legacy {
        reply.insert("ismaster", primary);
    } else {
        reply.insert("isWritablePrimary", primary);
    }
    reply.insert(
        "topologyVersion",
        doc! {"processId": view.process_id, "counter": view.topology_counter},
    );

    let Some((config, me)) = &view.member else {
        reply.insert("secondary", false);
        reply.insert("info", "Does not have a valid replica set config");
        reply.insert("isreplicaset", true);
        return reply;
    };
    // mongod lists neither hidden nor delayed members; electable ones are hosts.
    let listed = || {
        config
            .members
            .iter()
            .filter(|m| !m.hidden && m.secondary_delay_secs == 0)
    };
    let hosts: Vec<Bson> = listed()
        .filter(|m| m.priority > 0.0)
        .map(|m| Bson::String(m.host.clone()))
        .collect();
    let passives: Vec<Bson> = listed()
        .filter(|m| m.priority == 0.0)
        .map(|m| Bson::String(m.host.clone()))
        .collect();
    reply.insert("hosts", hosts);
    if !passives.is_empty() {
        reply.insert("passives", passives);
    }
    reply.insert("setName", config.set_name.clone());
    reply.insert("setVersion", config.version as i32);
    reply.insert("secondary", state == MemberState::Secondary);
    if let Some(p) = &view.primary {
        reply.insert("primary", p.clone());
    }
    if me.priority == 0.0 {
        reply.insert("passive", true);
    }
    if me.hidden {
        reply.insert("hidden", true);
    }
    if !me.build_indexes {
        reply.insert("buildIndexes", false);
    }
    if me.secondary_delay_secs > 0 {
        let name = if legacy {
            "slaveDelay"
        } else {
            "secondaryDelaySecs"
        };
        reply.insert(name, me.secondary_delay_secs);
    }
    // Tag-set read preferences select on these; mongod leaves the field out when empty.
    let tags = me.tags_document();
    if !tags.is_empty() {
        reply.insert("tags", tags);
    }
    reply.insert("me", me.host.clone());
    // `arbiterOnly` is for arbiters only, which ferrod has none of.
    if primary {
        reply.insert("electionId", election_id(view.term));
    }
    let (optime, date) = (view.optime.clone(), view.optime_date);
    reply.insert(
        "lastWrite",
        doc! {
            "opTime": optime.clone(), "lastWriteDate": date,
            "majorityOpTime": optime, "majorityWriteDate": date,
        },
    );
    reply
}
