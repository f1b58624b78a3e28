//! SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677): credentials as mongod stores
//! them, the server half of a conversation, and the client half (used by
//! member-to-member authentication and by the tests).
//!
//! The server keeps only salt, StoredKey and ServerKey, so a login costs it two HMACs and
//! a hash; the expensive PBKDF2 is the client's.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bson::{doc, Bson, Document};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    ScramSha1,
    ScramSha256,
}

/// Why a SCRAM step failed. Clients only ever see "Authentication failed."; the detail
/// goes to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramError(pub String);

impl std::fmt::Display for ScramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(msg: impl Into<String>) -> ScramError {
    ScramError(msg.into())
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::ScramSha1, Mechanism::ScramSha256];

    pub const fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// mongod's salt length: the hash length less four bytes.
    const fn salt_len(self) -> usize {
        match self {
            Mechanism::ScramSha1 => 16,
            Mechanism::ScramSha256 => 28,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::ScramSha1 => {
                let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("any key size");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Mechanism::ScramSha256 => {
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key size");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::ScramSha1 => Sha1::digest(data).to_vec(),
            Mechanism::ScramSha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with HMAC of this mechanism's hash.
    pub fn salted_password(self, prepared: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::ScramSha1 => {
                let mut out = vec![0u8; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(prepared, salt, iterations, &mut out);
                out
            }
            Mechanism::ScramSha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(prepared, salt, iterations, &mut out);
                out
            }
        }
    }

    /// The password as the mechanism hashes it: SCRAM-SHA-1 uses mongod's
    /// `hex(md5(user:mongo:password))` digest, SCRAM-SHA-256 the SASLprep'd password.
    pub fn prepare_password(self, user: &str, password: &str) -> Result<String, ScramError> {
        match self {
            Mechanism::ScramSha1 => Ok(mongo_digest(user, password)),
            Mechanism::ScramSha256 => stringprep::saslprep(password)
                .map(|p| p.into_owned())
                .map_err(|e| err(format!("Error preparing password with SASLprep: {e}"))),
        }
    }
}

/// mongod's legacy password digest, the SCRAM-SHA-1 "password".
pub fn mongo_digest(user: &str, password: &str) -> String {
    use md5::Md5;
    hex::encode(Md5::digest(format!("{user}:mongo:{password}").as_bytes()))
}

/// What the server stores per user and mechanism (mongod's `credentials.<mechanism>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredentials {
    pub iteration_count: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredentials {
    /// Derives credentials with a fresh random salt.
    pub fn derive(
        mechanism: Mechanism,
        user: &str,
        password: &str,
        iterations: u32,
    ) -> Result<ScramCredentials, ScramError> {
        let prepared = mechanism.prepare_password(user, password)?;
        let salt = crate::random::random_bytes(mechanism.salt_len());
        Ok(Self::from_prepared(
            mechanism,
            prepared.as_bytes(),
            salt,
            iterations,
        ))
    }

    pub fn from_prepared(
        mechanism: Mechanism,
        prepared: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredentials {
        let salted = mechanism.salted_password(prepared, &salt, iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        ScramCredentials {
            iteration_count: iterations,
            salt,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(&salted, b"Server Key"),
        }
    }

    pub fn to_document(&self) -> Document {
        doc! {
            "iterationCount": self.iteration_count as i32,
            "salt": B64.encode(&self.salt),
            "storedKey": B64.encode(&self.stored_key),
            "serverKey": B64.encode(&self.server_key),
        }
    }

    pub fn from_document(doc: &Document) -> Option<ScramCredentials> {
        let field = |name: &str| doc.get_str(name).ok().and_then(|s| B64.decode(s).ok());
        let iteration_count = match doc.get("iterationCount")? {
            Bson::Int32(n) => *n as u32,
            Bson::Int64(n) => *n as u32,
            _ => return None,
        };
        Some(ScramCredentials {
            iteration_count,
            salt: field("salt")?,
            stored_key: field("storedKey")?,
            server_key: field("serverKey")?,
        })
    }
}

/// `saslname` of RFC 5802: `=2C` is a comma, `=3D` an equals sign; nothing else may follow `=`.
fn decode_sasl_name(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('=') {
        out.push_str(&rest[..pos]);
        let escape = rest.get(pos..pos + 3).unwrap_or("");
        match escape {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return Err(err("Invalid SCRAM user name encoding")),
        }
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn encode_sasl_name(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

/// The value of attribute `key` (`k=value`) in a comma-separated SCRAM message part.
fn attribute(part: Option<&str>, key: char) -> Result<&str, ScramError> {
    let part = part.ok_or_else(|| err(format!("missing attribute '{key}'")))?;
    let mut chars = part.chars();
    if chars.next() != Some(key) || chars.next() != Some('=') {
        return Err(err(format!("expected attribute '{key}', got '{part}'")));
    }
    Ok(&part[2..])
}

fn utf8(payload: &[u8]) -> Result<&str, ScramError> {
    std::str::from_utf8(payload).map_err(|_| err("SCRAM message is not UTF-8"))
}

/// The client's first message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    pub user: String,
    pub nonce: String,
    /// The gs2 header (`n,,` or `y,,`), echoed base64 in the final message's `c=`.
    gs2_header: String,
    bare: String,
}

impl ClientFirst {
    pub fn parse(payload: &[u8]) -> Result<ClientFirst, ScramError> {
        let text = utf8(payload)?;
        let mut parts = text.splitn(3, ',');
        let cbind = parts.next().unwrap_or("");
        let authzid = parts
            .next()
            .ok_or_else(|| err("Incorrect number of arguments for first SCRAM client message"))?;
        let bare = parts
            .next()
            .ok_or_else(|| err("Incorrect number of arguments for first SCRAM client message"))?;
        match cbind {
            "n" | "y" => {}
            _ if cbind.starts_with("p=") => {
                return Err(err("Server does not support channel binding"))
            }
            _ => {
                return Err(err(format!(
                    "Incorrect SCRAM client message prefix: {cbind}"
                )))
            }
        }
        if !authzid.is_empty() && !authzid.starts_with("a=") {
            return Err(err(format!("Incorrect SCRAM authzid: {authzid}")));
        }
        let mut attrs = bare.split(',');
        let first = attrs.next();
        if first.is_some_and(|p| p.starts_with("m=")) {
            return Err(err("SCRAM mandatory extensions are not supported"));
        }
        let user = decode_sasl_name(attribute(first, 'n')?)?;
        let nonce = attribute(attrs.next(), 'r')?.to_owned();
        if user.is_empty() {
            return Err(err("SCRAM user name is empty"));
        }
        if nonce.is_empty()
            || !nonce
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
        {
            return Err(err("Invalid SCRAM client nonce"));
        }
        Ok(ClientFirst {
            user,
            nonce,
            gs2_header: format!("{cbind},{authzid},"),
            bare: bare.to_owned(),
        })
    }
}

/// The server half after it has sent its first message, waiting for the client's proof.
#[derive(Debug, Clone)]
pub struct ServerConversation {
    pub mechanism: Mechanism,
    pub user: String,
    credentials: ScramCredentials,
    client_first: ClientFirst,
    server_first: String,
    nonce: String,
}

impl ServerConversation {
    /// Answers the client's first message with a fresh server nonce.
    pub fn start(
        mechanism: Mechanism,
        client_first: ClientFirst,
        credentials: ScramCredentials,
    ) -> (ServerConversation, String) {
        let server_nonce = B64.encode(crate::random::random_bytes(24));
        Self::start_with_nonce(mechanism, client_first, credentials, &server_nonce)
    }

    pub fn start_with_nonce(
        mechanism: Mechanism,
        client_first: ClientFirst,
        credentials: ScramCredentials,
        server_nonce: &str,
    ) -> (ServerConversation, String) {
        let nonce = format!("{}{server_nonce}", client_first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credentials.salt),
            credentials.iteration_count
        );
        let conversation = ServerConversation {
            mechanism,
            user: client_first.user.clone(),
            credentials,
            client_first,
            server_first: server_first.clone(),
            nonce,
        };
        (conversation, server_first)
    }

    /// Checks the client's proof; on success returns the server-final message (`v=...`).
    pub fn finish(&self, payload: &[u8]) -> Result<String, ScramError> {
        let text = utf8(payload)?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| err("SCRAM client final message has no proof"))?;
        let mut parts = without_proof.split(',');
        let channel = attribute(parts.next(), 'c')?;
        let nonce = attribute(parts.next(), 'r')?;
        if parts.next().is_some() {
            return Err(err(
                "Incorrect number of arguments for SCRAM client final message",
            ));
        }
        let expected_channel = B64.encode(&self.client_first.gs2_header);
        if channel != expected_channel {
            return Err(err("Unmatched SCRAM channel binding data"));
        }
        if nonce != self.nonce {
            return Err(err("Unmatched SCRAM nonce received from client"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| err("SCRAM client proof is not base64"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first.bare, self.server_first, without_proof
        );
        let m = self.mechanism;
        let client_signature = m.hmac(&self.credentials.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(err("SCRAM client proof has the wrong length"));
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let stored_key = m.hash(&client_key);
        if !bool::from(stored_key.ct_eq(&self.credentials.stored_key)) {
            return Err(err("SCRAM authentication failed, storedKey mismatch"));
        }
        let server_signature = m.hmac(&self.credentials.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

/// The client half: `first()`, then `respond(server_first)`, then `verify(server_final)`.
#[derive(Debug, Clone)]
pub struct ScramClient {
    mechanism: Mechanism,
    prepared_password: String,
    nonce: String,
    client_first_bare: String,
    expected_server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(
        mechanism: Mechanism,
        user: &str,
        password: &str,
    ) -> Result<ScramClient, ScramError> {
        Self::with_nonce(
            mechanism,
            user,
            password,
            &B64.encode(crate::random::random_bytes(24)),
        )
    }

    pub fn with_nonce(
        mechanism: Mechanism,
        user: &str,
        password: &str,
        nonce: &str,
    ) -> Result<ScramClient, ScramError> {
        Ok(Self::with_prepared(
            mechanism,
            user,
            mechanism.prepare_password(user, password)?,
            nonce,
        ))
    }

    /// For a password that is already prepared (RFC test vectors use raw passwords).
    pub fn with_prepared(
        mechanism: Mechanism,
        user: &str,
        prepared: String,
        nonce: &str,
    ) -> ScramClient {
        ScramClient {
            mechanism,
            prepared_password: prepared,
            nonce: nonce.to_owned(),
            client_first_bare: format!("n={},r={nonce}", encode_sasl_name(user)),
            expected_server_signature: None,
        }
    }

    pub fn first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Computes the client-final message (with proof) from the server's first message.
    pub fn respond(&mut self, server_first: &[u8]) -> Result<String, ScramError> {
        let text = utf8(server_first)?;
        let mut parts = text.split(',');
        let nonce = attribute(parts.next(), 'r')?;
        let salt = B64
            .decode(attribute(parts.next(), 's')?)
            .map_err(|_| err("salt is not base64"))?;
        let iterations: u32 = attribute(parts.next(), 'i')?
            .parse()
            .map_err(|_| err("bad iteration count"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(err("server nonce does not extend the client nonce"));
        }
        let m = self.mechanism;
        let salted = m.salted_password(self.prepared_password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let client_signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.expected_server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Checks the server's signature: the server proves it knew the credentials too.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let text = utf8(server_final)?;
        let signature = B64
            .decode(attribute(text.split(',').next(), 'v')?)
            .map_err(|_| err("server signature is not base64"))?;
        let expected = self
            .expected_server_signature
            .as_ref()
            .ok_or_else(|| err("verify called before respond"))?;
        if bool::from(signature.ct_eq(expected)) {
            Ok(())
        } else {
            Err(err("server signature mismatch"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the RFC's exchange through both halves with its fixed nonces and salt.
    fn rfc_exchange(
        mechanism: Mechanism,
        client_nonce: &str,
        server_nonce: &str,
        salt_b64: &str,
    ) -> (String, String, String) {
        let mut client =
            ScramClient::with_prepared(mechanism, "user", "pencil".into(), client_nonce);
        let first = client.first();
        let credentials = ScramCredentials::from_prepared(
            mechanism,
            b"pencil",
            B64.decode(salt_b64).unwrap(),
            4096,
        );
        let parsed = ClientFirst::parse(first.as_bytes()).unwrap();
        assert_eq!(parsed.user, "user");
        let (server, server_first) =
            ServerConversation::start_with_nonce(mechanism, parsed, credentials, server_nonce);
        let client_final = client.respond(server_first.as_bytes()).unwrap();
        let server_final = server.finish(client_final.as_bytes()).unwrap();
        client.verify(server_final.as_bytes()).unwrap();
        (server_first, client_final, server_final)
    }

    #[test]
    fn rfc5802_scram_sha1_vector() {
        let (server_first, client_final, server_final) = rfc_exchange(
            Mechanism::ScramSha1,
            "fyko+d2lbbFgONRv9qkxdawL",
            "3rfcNHYJY1ZVvWVs7j",
            "QSXCR+Q6sek8bf92",
        );
        assert_eq!(
            server_first,
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
        );
        assert_eq!(
            client_final,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        assert_eq!(server_final, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    }

    #[test]
    fn rfc7677_scram_sha256_vector() {
        let (_, client_final, server_final) = rfc_exchange(
            Mechanism::ScramSha256,
            "rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "W22ZaJ0SNY7soEsUEjb6gQ==",
        );
        assert_eq!(client_final, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        assert_eq!(
            server_final,
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn wrong_password_and_tampered_proofs_fail() {
        let m = Mechanism::ScramSha256;
        let creds = ScramCredentials::derive(m, "u", "right", 4096).unwrap();
        let mut client = ScramClient::new(m, "u", "wrong").unwrap();
        let (server, sf) = ServerConversation::start(
            m,
            ClientFirst::parse(client.first().as_bytes()).unwrap(),
            creds.clone(),
        );
        let cf = client.respond(sf.as_bytes()).unwrap();
        assert!(server.finish(cf.as_bytes()).is_err());
        // A truncated proof and a missing proof are refused, not panics.
        let mut good = ScramClient::new(m, "u", "right").unwrap();
        let (server, sf) = ServerConversation::start(
            m,
            ClientFirst::parse(good.first().as_bytes()).unwrap(),
            creds,
        );
        let cf = good.respond(sf.as_bytes()).unwrap();
        assert!(server.finish(&cf.as_bytes()[..cf.len() - 8]).is_err());
        assert!(server.finish(b"c=biws,r=x").is_err());
        assert!(server.finish(cf.as_bytes()).is_ok());
    }

    #[test]
    fn saslprep_maps_soft_hyphen_away_and_sha1_uses_the_mongo_digest() {
        let m = Mechanism::ScramSha256;
        assert_eq!(m.prepare_password("u", "I\u{00AD}X").unwrap(), "IX");
        assert_eq!(m.prepare_password("u", "\u{2168}").unwrap(), "IX");
        assert!(m.prepare_password("u", "\u{0007}").is_err());
        assert_eq!(
            mongo_digest("user", "pencil"),
            "1c33006ec1ffd90f9cadcbcc0e118200"
        );
    }

    #[test]
    fn malformed_client_first_messages_are_errors() {
        for bad in [
            "",
            "n,,",
            "x,,n=u,r=abc",
            "p=tls,,n=u,r=abc",
            "n,,m=ext,n=u,r=abc",
            "n,,n=,r=abc",
            "n,,n=u",
            "n,,n=a=ZZ,r=abc",
            "n,,r=abc,n=u",
        ] {
            assert!(
                ClientFirst::parse(bad.as_bytes()).is_err(),
                "{bad:?} must fail"
            );
        }
        assert_eq!(
            ClientFirst::parse(b"n,,n=a=2Cb=3D,r=abc").unwrap().user,
            "a,b="
        );
    }
}
