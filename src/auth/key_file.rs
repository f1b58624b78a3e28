//! `--keyFile`: the shared secret members use to log in to each other as `__system@local`
//! with SCRAM. The secret is the password; the server derives its SCRAM credentials at
//! startup and keeps them in memory only (mongod never stores `__system`).
//!
//! The same key is the outgoing pools' [`ConnectionSetup`]: every pooled connection to
//! another member logs in with SCRAM-SHA-256 after its hello, before it carries anything.

use super::scram::{Mechanism, ScramClient, ScramCredentials};
use super::Name;
use crate::error::{Code, CommandError};
use crate::pool::{Connection, ConnectionSetup, PoolError, SetupFuture};
use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, Document};
use std::path::Path;
use std::time::Duration;

pub const INTERNAL_USER: &str = "__system";
pub const INTERNAL_DB: &str = "local";

/// Each login step's own limit; the pool's connect timeout (RefreshTimeoutMS) bounds the
/// whole handshake anyway.
const LOGIN_STEP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct ClusterKey {
    secret: String,
    sha1: ScramCredentials,
    sha256: ScramCredentials,
}

/// Why a key file was refused: mongod's error (InvalidPath for the file itself,
/// UnsupportedFormat for its content).
pub type KeyFileError = CommandError;

/// mongod refuses a key file that anyone but its owner may read, write or execute.
#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        CommandError::new(
            Code::InvalidPath,
            format!("Error reading file {}: {e}", path.display()),
        )
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(CommandError::new(
            Code::InvalidPath,
            format!("permissions on {} are too open", path.display()),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_: &Path) -> Result<(), KeyFileError> {
    Ok(())
}

impl ClusterKey {
    /// Reads the key file as mongod does: owner-only permissions; whitespace is ignored;
    /// 6 to 1024 characters, all from the base64 alphabet.
    pub fn load(
        path: &Path,
        sha1_iterations: u32,
        sha256_iterations: u32,
    ) -> Result<ClusterKey, KeyFileError> {
        check_permissions(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| {
            CommandError::new(
                Code::InvalidPath,
                format!("error opening file: {}: {e}", path.display()),
            )
        })?;
        let format = |msg: String| CommandError::new(Code::UnsupportedFormat, msg);
        let secret: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if secret.len() < 6 {
            return Err(format(format!(
                "security key in {} has length {}, must be at least 6 characters",
                path.display(),
                secret.len()
            )));
        }
        if secret.len() > 1024 {
            return Err(format(format!(
                "security key in {} has length {}, must be at most 1024 characters",
                path.display(),
                secret.len()
            )));
        }
        if let Some(bad) = secret
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '+' || *c == '/' || *c == '='))
        {
            return Err(format(format!(
                "invalid char in key file {}: {bad}",
                path.display()
            )));
        }
        let derive = |m, i| {
            ScramCredentials::derive(m, INTERNAL_USER, &secret, i)
                .map_err(|e| CommandError::new(Code::UnsupportedFormat, e.0))
        };
        Ok(ClusterKey {
            sha1: derive(Mechanism::ScramSha1, sha1_iterations)?,
            sha256: derive(Mechanism::ScramSha256, sha256_iterations)?,
            secret,
        })
    }

    pub fn is_internal_user(user: &Name) -> bool {
        user.name == INTERNAL_USER && user.db == INTERNAL_DB
    }

    pub fn credentials(&self, mechanism: Mechanism) -> ScramCredentials {
        match mechanism {
            Mechanism::ScramSha1 => self.sha1.clone(),
            Mechanism::ScramSha256 => self.sha256.clone(),
        }
    }

    /// The client half for logging in to another member (saslStart on `local`).
    pub fn client(&self) -> ScramClient {
        ScramClient::new(Mechanism::ScramSha256, INTERNAL_USER, &self.secret)
            .expect("a base64 key always survives SASLprep")
    }

    /// SCRAM-SHA-256 as `__system@local` on a fresh connection: saslStart, saslContinue,
    /// then the server's signature is checked (the peer must know the key too).
    async fn log_in(&self, conn: &mut Connection) -> Result<(), PoolError> {
        scram_log_in(conn, self.client(), INTERNAL_DB).await
    }
}

/// A SCRAM-SHA-256 conversation for `client` against `db` on a fresh connection:
/// saslStart, saslContinue, then the server's signature is checked.
pub async fn scram_log_in(
    conn: &mut Connection,
    mut client: ScramClient,
    db: &str,
) -> Result<(), PoolError> {
    let start = conn
        .run_command(
            doc! {
                "saslStart": 1, "mechanism": Mechanism::ScramSha256.name(),
                "payload": binary(client.first().as_bytes()),
                "options": {"skipEmptyExchange": true}, "$db": db,
            },
            LOGIN_STEP_TIMEOUT,
        )
        .await?;
    let server_first = sasl_payload(&start)?;
    // PBKDF2 over the key: CPU work, kept off the async workers.
    let (client, client_final) = crate::blocking::cpu(move || {
        let client_final = client.respond(&server_first);
        (client, client_final)
    })
    .await;
    let client_final = client_final.map_err(|e| refused(e.to_string()))?;
    let conversation_id = start
        .get("conversationId")
        .cloned()
        .unwrap_or(Bson::Int32(1));
    let mut reply = conn
        .run_command(
            doc! {
                "saslContinue": 1, "conversationId": conversation_id.clone(),
                "payload": binary(client_final.as_bytes()), "$db": db,
            },
            LOGIN_STEP_TIMEOUT,
        )
        .await?;
    client
        .verify(&sasl_payload(&reply)?)
        .map_err(|e| refused(e.to_string()))?;
    // A server that ignores skipEmptyExchange waits for one empty message.
    if !reply.get_bool("done").unwrap_or(false) {
        reply = conn
            .run_command(
                doc! {
                    "saslContinue": 1, "conversationId": conversation_id,
                    "payload": binary(b""), "$db": db,
                },
                LOGIN_STEP_TIMEOUT,
            )
            .await?;
        sasl_payload(&reply)?;
        if !reply.get_bool("done").unwrap_or(false) {
            return Err(refused("the SASL conversation did not finish".into()));
        }
    }
    Ok(())
}

fn binary(bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

fn refused(message: String) -> PoolError {
    PoolError::AuthenticationFailed(message)
}

/// The SASL payload of a reply; an `ok: 0` reply is the peer refusing the login.
fn sasl_payload(reply: &Document) -> Result<Vec<u8>, PoolError> {
    if reply.get_f64("ok").ok() != Some(1.0) {
        let code = reply.get_i32("code").unwrap_or(0);
        let errmsg = reply.get_str("errmsg").unwrap_or("login refused");
        return Err(refused(format!("{errmsg} (code {code})")));
    }
    match reply.get("payload") {
        Some(Bson::Binary(b)) => Ok(b.bytes.clone()),
        Some(Bson::String(s)) => Ok(s.as_bytes().to_vec()),
        _ => Err(refused("SASL reply without a payload".into())),
    }
}

impl ConnectionSetup for ClusterKey {
    fn hello_fields(&self) -> Document {
        doc! {"saslSupportedMechs": format!("{INTERNAL_DB}.{INTERNAL_USER}")}
    }

    fn after_hello<'a>(
        &'a self,
        conn: &'a mut Connection,
        _hello_reply: &'a Document,
    ) -> SetupFuture<'a> {
        Box::pin(async move {
            let result = self.log_in(conn).await;
            if let Err(e) = &result {
                // The side whose login is refused says why; the peer logs its own
                // "Failed to authenticate" line.
                tracing::warn!(target: "ACCESS", id = 20249, ctx = "ReplNetwork",
                    mechanism = Mechanism::ScramSha256.name(),
                    principalName = INTERNAL_USER, authenticationDatabase = INTERNAL_DB,
                    remote = %conn.host(),
                    error = %format!("{}: {e}", Code::AuthenticationFailed.name()),
                    code = Code::AuthenticationFailed.number(),
                    "Failed to authenticate to a cluster member with the keyFile");
            }
            result
        })
    }
}
