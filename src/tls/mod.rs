//! TLS material: the server's certificate, the CA its clients' certificates chain to and
//! the revocation list, read from mongod's `net.tls` files into a rustls configuration
//! that `rotateCertificates` can replace while the server runs. The handshakes
//! themselves are in `server::tls`; `certgen` writes development certificates.

pub mod certgen;

use crate::config::{TlsSettings, TlsVersion};
use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The process's TLS state: the configuration new handshakes use, and the per-version
/// counts serverStatus shows.
#[derive(Default)]
pub struct Tls {
    server: RwLock<Option<Arc<ServerConfig>>>,
    tls12: AtomicU64,
    tls13: AtomicU64,
    unknown: AtomicU64,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("loaded", &self.server.read().is_some())
            .finish()
    }
}

impl Tls {
    /// Reads the files and, only if all of them are good, makes new handshakes use them;
    /// connections already made keep the material they were made with.
    pub fn load(&self, settings: &TlsSettings) -> Result<(), String> {
        let config = server_config(settings)?;
        *self.server.write() = Some(Arc::new(config));
        Ok(())
    }

    /// The configuration for the next incoming handshake (None: TLS is not configured).
    pub fn server_config(&self) -> Option<Arc<ServerConfig>> {
        self.server.read().clone()
    }

    /// Counts one finished incoming handshake by its protocol version.
    pub fn count(&self, version: Option<rustls::ProtocolVersion>) {
        let counter = match version {
            Some(rustls::ProtocolVersion::TLSv1_2) => &self.tls12,
            Some(rustls::ProtocolVersion::TLSv1_3) => &self.tls13,
            _ => &self.unknown,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// serverStatus `transportSecurity`: connections by TLS version.
    pub fn transport_security(&self) -> bson::Document {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed) as i64;
        bson::doc! {
            "1.0": 0_i64, "1.1": 0_i64,
            "1.2": get(&self.tls12), "1.3": get(&self.tls13),
            "unknown": get(&self.unknown),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_error(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("cannot read {what} {}: {e}", path.display())
}

/// The certificate chain and private key of one PEM file (mongod's
/// `tlsCertificateKeyFile`/`tlsClusterFile` layout).
pub fn read_certificate_key_file(
    path: &Path,
    password: Option<&str>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let what = "certificate key file";
    let text = std::fs::read_to_string(path).map_err(|e| read_error(what, path, e))?;
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        // rustls reads only unencrypted keys, and ferrod decrypts no key by hand.
        return Err(format!(
            "cannot read certificate key file {}: its private key is encrypted{}, which ferrod does not support; give it an unencrypted key",
            path.display(),
            if password.is_some() { " (tlsCertificateKeyFilePassword)" } else { " and no password was given" }
        ));
    }
    let chain = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(what, path, e))?;
    if chain.is_empty() {
        return Err(read_error(what, path, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_slice(text.as_bytes())
        .map_err(|e| read_error(what, path, format!("no private key in the file ({e})")))?;
    Ok((chain, key))
}

/// The certificates of a CA file, as trust anchors.
pub fn read_ca_file(path: &Path) -> Result<RootCertStore, String> {
    let what = "CA file";
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(what, path, e))?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| read_error(what, path, e))?;
    }
    if roots.is_empty() {
        return Err(read_error(what, path, "no certificate in the file"));
    }
    Ok(roots)
}

fn read_crl_file(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let what = "CRL file";
    CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|e| read_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(what, path, e))
}

fn versions(settings: &TlsSettings) -> Vec<&'static rustls::SupportedProtocolVersion> {
    settings
        .versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect()
}

/// The listener's configuration from the `net.tls` files.
pub fn server_config(settings: &TlsSettings) -> Result<ServerConfig, String> {
    let Some(cert_path) = &settings.certificate_key_file else {
        return Err("need tlsCertificateKeyFile or certificateSelector when TLS is enabled".into());
    };
    let (chain, key) =
        read_certificate_key_file(cert_path, settings.certificate_key_file_password.as_deref())?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(settings))
        .map_err(|e| format!("TLS protocol versions: {e}"))?;
    let crls = match &settings.crl_file {
        Some(path) => read_crl_file(path)?,
        None => Vec::new(),
    };
    let builder = match &settings.ca_file {
        // Without a CA file no client certificate is asked for.
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = Arc::new(read_ca_file(ca)?);
            let verifier: Arc<dyn ClientCertVerifier> = if settings.allow_invalid_certificates {
                Arc::new(AnyClientCertificate {
                    provider: provider.clone(),
                    mandatory: !settings.allow_connections_without_certificates,
                })
            } else {
                let mut b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                    .with_crls(crls);
                if settings.allow_connections_without_certificates {
                    b = b.allow_unauthenticated();
                }
                b.build()
                    .map_err(|e| format!("tlsCAFile {}: {e}", ca.display()))?
            };
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("certificate key file {}: {e}", cert_path.display()))
}

/// `tlsAllowInvalidCertificates`: a client certificate is asked for and its handshake
/// signature checked (it proves the client holds the key), but its chain is not.
#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn subjects_are_written_as_rfc_2253() {
        let ca = super::certgen::Ca::new("CA").unwrap();
        let pem = ca
            .issue(&super::certgen::Leaf {
                common_name: "a, b".into(),
                organizational_unit: "ops".into(),
                ..Default::default()
            })
            .unwrap();
        let der = rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            super::subject_rfc2253(&der).unwrap(),
            "CN=a\\, b,OU=ops,O=ferrod-dev"
        );
    }
}

#[derive(Debug)]
struct AnyClientCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
    mandatory: bool,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A certificate's subject in RFC 2253 form, as mongod names `$external` x509 users
/// ("CN=client,OU=ferrod-clients,O=ferrod-dev": last RDN first, no spaces). None if the
/// certificate does not parse.
pub fn subject_rfc2253(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|attr| {
                let oid = attr.attr_type();
                let name = match x509_parser::objects::oid2abbrev(
                    oid,
                    x509_parser::objects::oid_registry(),
                ) {
                    Ok(abbrev) if RFC2253_NAMES.contains(&abbrev) => abbrev.to_owned(),
                    _ => oid.to_id_string(),
                };
                let value = match attr.as_str() {
                    Ok(s) => escape_rfc2253(s),
                    // Values that are not strings are written as '#' and their hex.
                    Err(_) => format!("#{}", hex::encode(attr.attr_value().as_bytes())),
                };
                format!("{name}={value}")
            })
            .collect();
        rdns.push(attrs.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// The attribute names RFC 2253 writes by name; others are written as their OID.
const RFC2253_NAMES: &[&str] = &["CN", "L", "ST", "O", "OU", "C", "STREET", "DC", "UID"];

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
