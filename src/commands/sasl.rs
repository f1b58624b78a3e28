//! saslStart / saslContinue: SCRAM-SHA-1 and SCRAM-SHA-256 logins, and the speculative
//! saslStart carried inside hello.
//!
//! As in mongod, any failure inside a SCRAM step is 18 `Authentication failed.` (the detail
//! is logged), and any error ends the conversation.

use super::{Command, Handler, Invocation};
use crate::auth::key_file::ClusterKey;
use crate::auth::scram::{ClientFirst, Mechanism, ServerConversation};
use crate::auth::{users, Name, SaslStep};
use crate::client::Client;
use crate::error::{missing_field, type_mismatch, Code, CommandError, CommandResult};
use crate::state::ServerState;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, Document};

pub const SASL_START: Command = Command {
    api_version_1: true,
    allowed_before_auth: true,
    compress_reply: false,
    ..Command::new(
        "saslStart",
        "First step in a SASL authentication conversation.",
        Handler::Sync(|inv, cmd| sasl_start(&inv.server, &inv.client, &inv.db, cmd, false)),
    )
};

pub const SASL_CONTINUE: Command = Command {
    api_version_1: true,
    allowed_before_auth: true,
    compress_reply: false,
    ..Command::new(
        "saslContinue",
        "Subsequent steps in a SASL authentication conversation.",
        Handler::Sync(sasl_continue),
    )
};

fn authentication_failed() -> CommandError {
    CommandError::new(Code::AuthenticationFailed, "Authentication failed.")
}

/// A payload is BinData or, from older shells, a base64 string; the reply uses the same form.
struct Payload {
    bytes: Vec<u8>,
    as_string: bool,
}

fn payload(cmd: &Document, command: &str) -> CommandResult<Payload> {
    match cmd.get("payload") {
        Some(Bson::Binary(b)) => Ok(Payload {
            bytes: b.bytes.clone(),
            as_string: false,
        }),
        Some(Bson::String(s)) => Ok(Payload {
            bytes: B64.decode(s).map_err(|_| {
                CommandError::new(Code::BadValue, "Invalid base64 encoding of SASL payload")
            })?,
            as_string: true,
        }),
        Some(other) => Err(type_mismatch(
            &format!("{command}.payload"),
            other,
            "binData",
        )),
        None => Err(missing_field(&format!("{command}.payload"))),
    }
}

fn reply(done: bool, message: &[u8], as_string: bool) -> Document {
    let payload = if as_string {
        Bson::String(B64.encode(message))
    } else {
        Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: message.to_vec(),
        })
    };
    doc! {"conversationId": 1, "done": done, "payload": payload}
}

fn log_failure(client: &Client, mechanism: &str, user: &str, db: &str, error: &str) {
    // mongod 7.0's line (id 5286307), with its attribute names.
    tracing::info!(target: "ACCESS", id = 5286307, ctx = format!("conn{}", client.id),
        client = %client.remote, isClusterMember = is_cluster_member(user, db),
        mechanism, user, db, error, result = 18, "Failed to authenticate");
}

/// Runs saslStart, also for hello's speculativeAuthenticate.
pub fn sasl_start(
    server: &ServerState,
    client: &Client,
    db: &str,
    cmd: &Document,
    speculative: bool,
) -> CommandResult {
    let command = "saslStart";
    // A new saslStart abandons whatever conversation was under way.
    client.auth.lock().sasl = None;
    let mechanism_name = match cmd.get("mechanism") {
        Some(Bson::String(m)) => m.as_str(),
        Some(other) => {
            return Err(type_mismatch(
                &format!("{command}.mechanism"),
                other,
                "string",
            ))
        }
        None => return Err(missing_field(&format!("{command}.mechanism"))),
    };
    let payload = payload(cmd, command)?;
    let enabled = server
        .params
        .get("authenticationMechanisms")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let mechanism = Mechanism::from_name(mechanism_name)
        .filter(|m| enabled.iter().any(|e| e.as_str() == Some(m.name())))
        .ok_or_else(|| {
            CommandError::new(
                Code::MechanismUnavailable,
                format!("Received authentication for mechanism {mechanism_name} which is unknown or not enabled"),
            )
        })?;
    let skip_empty_exchange = cmd
        .get_document("options")
        .ok()
        .and_then(|o| o.get("skipEmptyExchange"))
        .is_some_and(|v| matches!(v, Bson::Boolean(true)) || v.as_i32().is_some_and(|n| n != 0));

    let first = ClientFirst::parse(&payload.bytes).map_err(|e| {
        log_failure(client, mechanism.name(), "", db, &e.0);
        authentication_failed()
    })?;
    let user = Name::new(first.user.clone(), db);
    let credentials = match server.cluster_key.get() {
        Some(key) if ClusterKey::is_internal_user(&user) => Some(key.credentials(mechanism)),
        _ => users::get_user(server.catalog().as_ref(), &user)?
            .and_then(|doc| users::credentials(&doc, mechanism)),
    };
    let Some(credentials) = credentials else {
        log_failure(
            client,
            mechanism.name(),
            &user.name,
            db,
            &format!(
                "UserNotFound: Could not find user \"{}\" for db \"{db}\"",
                user.name
            ),
        );
        return Err(authentication_failed());
    };
    let (conversation, server_first) = ServerConversation::start(mechanism, first, credentials);
    client.auth.lock().sasl = Some(SaslStep::AwaitingProof {
        conversation: Box::new(conversation),
        db: db.to_owned(),
        skip_empty_exchange,
        speculative,
    });
    Ok(reply(false, server_first.as_bytes(), payload.as_string))
}

fn sasl_continue(inv: &Invocation, cmd: &Document) -> CommandResult {
    let client = &inv.client;
    // Taking the state out ends the conversation on every error path below.
    let step = client.auth.lock().sasl.take();
    let Some(step) = step else {
        return Err(CommandError::new(
            Code::ProtocolError,
            "No SASL session state found",
        ));
    };
    let conversation_id = match cmd.get("conversationId") {
        Some(Bson::Int32(n)) => *n as i64,
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(d)) if d.fract() == 0.0 => *d as i64,
        Some(other) => return Err(type_mismatch("saslContinue.conversationId", other, "int")),
        None => return Err(missing_field("saslContinue.conversationId")),
    };
    let payload = payload(cmd, "saslContinue")?;
    if conversation_id != 1 {
        return Err(CommandError::new(
            Code::ProtocolError,
            "sasl: Mismatched conversation id",
        ));
    }
    match step {
        SaslStep::AwaitingProof {
            conversation,
            db,
            skip_empty_exchange,
            speculative,
        } => {
            let user = Name::new(conversation.user.clone(), db);
            let server_final = conversation.finish(&payload.bytes).map_err(|e| {
                log_failure(
                    client,
                    conversation.mechanism.name(),
                    &user.name,
                    &user.db,
                    &e.0,
                );
                authentication_failed()
            })?;
            if skip_empty_exchange {
                log_in(client, user, conversation.mechanism, speculative);
                Ok(reply(true, server_final.as_bytes(), payload.as_string))
            } else {
                client.auth.lock().sasl = Some(SaslStep::AwaitingEmpty {
                    user,
                    mechanism: conversation.mechanism,
                });
                Ok(reply(false, server_final.as_bytes(), payload.as_string))
            }
        }
        SaslStep::AwaitingEmpty { user, mechanism } => {
            if !payload.bytes.is_empty() {
                return Err(authentication_failed());
            }
            log_in(client, user, mechanism, false);
            Ok(reply(true, b"", payload.as_string))
        }
    }
}

fn log_in(client: &Client, user: Name, mechanism: Mechanism, speculative: bool) {
    // mongod 7.0's line (id 5286306), with its attribute names: drivers' tests and
    // operators look for the mechanism and isSpeculative here.
    tracing::info!(target: "ACCESS", id = 5286306, ctx = format!("conn{}", client.id),
        client = %client.remote, isSpeculative = speculative,
        isClusterMember = is_cluster_member(&user.name, &user.db),
        mechanism = mechanism.name(), user = %user.name, db = %user.db, result = 0,
        "Successfully authenticated");
    client.auth.lock().user = Some(user);
}

fn is_cluster_member(user: &str, db: &str) -> bool {
    user == "__system" && db == "local"
}

/// hello's `speculativeAuthenticate`: a saslStart whose database is in `db`. Any failure
/// means no speculative reply, and the driver falls back to a normal saslStart.
pub fn speculative(server: &ServerState, client: &Client, request: &Document) -> Option<Document> {
    if !request.contains_key("saslStart") {
        return None;
    }
    let db = request.get_str("db").ok()?;
    sasl_start(server, client, db, request, true).ok()
}

/// hello's `saslSupportedMechs: "db.user"`: the user's mechanisms, or None if no such user.
pub fn supported_mechanisms(server: &ServerState, db_user: &str) -> Option<Vec<Bson>> {
    let (db, user) = db_user.split_once('.')?;
    let doc = users::get_user(server.catalog().as_ref(), &Name::new(user, db)).ok()??;
    Some(
        users::mechanisms(&doc)
            .into_iter()
            .map(|m| Bson::String(m.name().into()))
            .collect(),
    )
}
