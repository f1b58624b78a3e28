//! `--keyFile`: the shared secret members use to log in to each other as `__system@local`
//! with SCRAM. The secret is the password; the server derives its SCRAM credentials at
//! startup and keeps them in memory only (mongod never stores `__system`).

use super::scram::{Mechanism, ScramClient, ScramCredentials};
use super::Name;
use std::path::Path;

pub const INTERNAL_USER: &str = "__system";
pub const INTERNAL_DB: &str = "local";

pub struct ClusterKey {
    secret: String,
    sha1: ScramCredentials,
    sha256: ScramCredentials,
}

impl ClusterKey {
    /// Reads the key file as mongod does: whitespace is ignored, 6 to 1024 base64 characters.
    pub fn load(
        path: &Path,
        sha1_iterations: u32,
        sha256_iterations: u32,
    ) -> Result<ClusterKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("error opening file: {}: {e}", path.display()))?;
        let secret: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if secret.len() < 6 {
            return Err(format!(
                "security key in {} has length {}, must be at least 6 characters",
                path.display(),
                secret.len()
            ));
        }
        if secret.len() > 1024 {
            return Err(format!(
                "security key in {} is too long (over 1024 characters)",
                path.display()
            ));
        }
        if let Some(bad) = secret
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '+' || *c == '/' || *c == '='))
        {
            return Err(format!(
                "invalid char in key file {}: {bad}",
                path.display()
            ));
        }
        let derive = |m, i| ScramCredentials::derive(m, INTERNAL_USER, &secret, i).map_err(|e| e.0);
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
}
