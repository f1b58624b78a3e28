//! `ferrod cert-gen`: a CA and certificates for development and tests, so that a TLS
//! setup needs no openssl. Keys are ECDSA P-256 (rcgen on ring). Not for production: the
//! CA key is written next to the certificates and nothing protects it.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// The organisation every generated certificate names (members' certificates share it,
/// as mongod's x509 member authentication expects of a set).
pub const ORGANIZATION: &str = "ferrod-dev";

/// A certificate authority held in memory.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// What a leaf certificate says.
#[derive(Debug, Clone, Default)]
pub struct Leaf {
    pub common_name: String,
    pub organizational_unit: String,
    /// Host names and IP addresses (subject alternative names).
    pub names: Vec<String>,
    /// Valid only in the past (for tests of an expired certificate).
    pub expired: bool,
    /// The serial number (None: a random one), for revocation lists.
    pub serial: Option<u64>,
}

fn err(e: rcgen::Error) -> String {
    format!("certificate generation failed: {e}")
}

impl Ca {
    pub fn new(common_name: &str) -> Result<Ca, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, ORGANIZATION);
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(err)?;
        Ok(Ca {
            issuer: CertifiedIssuer::self_signed(params, key).map_err(err)?,
        })
    }

    /// The CA certificate (PEM), for `tlsCAFile`.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate and its private key in one PEM text (mongod's
    /// `tlsCertificateKeyFile` layout), usable by servers and clients alike.
    pub fn issue(&self, leaf: &Leaf) -> Result<String, String> {
        let mut params = CertificateParams::new(leaf.names.clone()).map_err(err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, ORGANIZATION);
        if !leaf.organizational_unit.is_empty() {
            dn.push(
                DnType::OrganizationalUnitName,
                leaf.organizational_unit.as_str(),
            );
        }
        dn.push(DnType::CommonName, leaf.common_name.as_str());
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if let Some(serial) = leaf.serial {
            params.serial_number = Some(rcgen::SerialNumber::from(serial));
        }
        if leaf.expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        Ok(format!("{}{}", cert.pem(), key.serialize_pem()))
    }

    /// A revocation list (PEM, for `tlsCRLFile`) naming the certificates with `serials`.
    pub fn crl(&self, serials: &[u64]) -> Result<String, String> {
        let revoked_certs = serials
            .iter()
            .map(|&s| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(s),
                revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect();
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(4000, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer)
            .map_err(err)?
            .pem()
            .map_err(err)
    }
}

/// The server certificate's names: the given hosts, then localhost and 127.0.0.1.
pub fn server_names(hosts: &[String]) -> Vec<String> {
    let mut names: Vec<String> = hosts.to_vec();
    for local in ["localhost", "127.0.0.1"] {
        if !names.iter().any(|n| n == local) {
            names.push(local.to_owned());
        }
    }
    names
}

/// Writes `ca.pem`, `server.pem` (certificate and key; names = `hosts` + localhost +
/// 127.0.0.1) and `client.pem` (CN=client, for x509 users) into `dir`.
pub fn write_dev_files(dir: &Path, hosts: &[String]) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let ca = Ca::new("ferrod development CA")?;
    let names = server_names(hosts);
    let server = ca.issue(&Leaf {
        common_name: names[0].clone(),
        organizational_unit: "ferrod-members".into(),
        names,
        expired: false,
        serial: None,
    })?;
    let client = ca.issue(&Leaf {
        common_name: "client".into(),
        organizational_unit: "ferrod-clients".into(),
        names: Vec::new(),
        expired: false,
        serial: None,
    })?;
    let mut written = Vec::new();
    for (name, text) in [
        ("ca.pem", ca.pem()),
        ("server.pem", server),
        ("client.pem", client),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `ferrod cert-gen --out DIR [--host NAME]...`: exit status 0 when the files are written.
pub fn main(args: &[String]) -> std::process::ExitCode {
    let usage =
        "usage: ferrod cert-gen --out DIR [--host NAME]...  (development certificates only)";
    let mut out = None;
    let mut hosts = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match (arg.as_str(), it.next()) {
            ("--out", Some(dir)) => out = Some(PathBuf::from(dir)),
            ("--host", Some(host)) => hosts.push(host.clone()),
            _ => {
                eprintln!("{usage}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let Some(out) = out else {
        eprintln!("{usage}");
        return std::process::ExitCode::from(2);
    };
    match write_dev_files(&out, &hosts) {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
            println!("These certificates are for development only.");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ferrod cert-gen: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
