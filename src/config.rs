//! The command line and the YAML config file, merged into one validated [`Config`].
//! The command line beats the file, which beats the defaults, as with mongod.

use crate::log::LogFormat;
use crate::pool::host_and_port::{HostAndPort, Parsed};
use crate::wire::Compressor;
use bson::{doc, Bson, Document};
use clap::Parser;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_PORT: u16 = 27017;
/// mongod's default for `net.maxIncomingConnections`.
pub const DEFAULT_MAX_CONNS: usize = 1_000_000;
pub const DEFAULT_SLOW_MS: u64 = 100;

/// Command-line flags, named as mongod names them.
#[derive(Debug, Parser, Default)]
#[command(
    name = "ferrod",
    about = "A mongod-style server for the cluster-networking side of MongoDB",
    disable_version_flag = true
)]
pub struct Cli {
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,
    /// Configuration file (YAML, mongod's layout).
    #[arg(short = 'f', long = "config", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Port to listen on (default 27017; 0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Comma-separated addresses to listen on (default 127.0.0.1).
    #[arg(long = "bind_ip", value_name = "IPS")]
    pub bind_ip: Option<String>,
    /// Listen on every IPv4 and IPv6 address.
    #[arg(long = "bind_ip_all")]
    pub bind_ip_all: bool,
    /// Maximum number of simultaneous client connections.
    #[arg(long = "maxConns", value_name = "N")]
    pub max_conns: Option<usize>,
    /// Comma-separated compressors to offer: snappy, zstd, zlib, or "disabled".
    #[arg(long = "networkMessageCompressors", value_name = "LIST")]
    pub network_message_compressors: Option<String>,
    /// Directory for the data files (created if missing).
    #[arg(long = "dbpath", value_name = "PATH")]
    pub dbpath: Option<PathBuf>,
    /// Write the log to this file instead of standard output.
    #[arg(long = "logpath", value_name = "PATH")]
    pub logpath: Option<PathBuf>,
    /// Append to the log file instead of replacing it.
    #[arg(long = "logappend")]
    pub logappend: bool,
    /// Log line format.
    #[arg(long = "logFormat", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Quieter logging: no connection events.
    #[arg(long)]
    pub quiet: bool,
    /// Commands slower than this many milliseconds are logged.
    #[arg(long = "slowms", value_name = "MS")]
    pub slowms: Option<u64>,
    /// Set a server parameter at startup (repeatable).
    #[arg(long = "setParameter", value_name = "NAME=VALUE")]
    pub set_parameter: Vec<String>,
    /// Turn on access control.
    #[arg(long)]
    pub auth: bool,
    /// Shared secret members use to authenticate to each other (implies --auth).
    #[arg(long = "keyFile", value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Replica set name.
    #[arg(long = "replSet", value_name = "NAME")]
    pub repl_set: Option<String>,
    /// Members (host:port, comma-separated) with which a new set initiates itself.
    #[arg(long = "initialMembers", value_name = "HOST:PORT,...")]
    pub initial_members: Option<String>,
    /// TLS on the listener: disabled, allowTLS, preferTLS or requireTLS.
    #[arg(long = "tlsMode", value_name = "MODE")]
    pub tls_mode: Option<String>,
    /// The server's certificate and private key, in one PEM file.
    #[arg(long = "tlsCertificateKeyFile", value_name = "PATH")]
    pub tls_certificate_key_file: Option<PathBuf>,
    /// Password of an encrypted private key (not supported: see docs/tls.md).
    #[arg(long = "tlsCertificateKeyFilePassword", value_name = "PASSWORD")]
    pub tls_certificate_key_file_password: Option<String>,
    /// CA certificates that client certificates must chain to.
    #[arg(long = "tlsCAFile", value_name = "PATH")]
    pub tls_ca_file: Option<PathBuf>,
    /// Certificate and key presented to other members.
    #[arg(long = "tlsClusterFile", value_name = "PATH")]
    pub tls_cluster_file: Option<PathBuf>,
    /// CA certificates for the members' certificates.
    #[arg(long = "tlsClusterCAFile", value_name = "PATH")]
    pub tls_cluster_ca_file: Option<PathBuf>,
    /// Certificate revocation list (PEM).
    #[arg(long = "tlsCRLFile", value_name = "PATH")]
    pub tls_crl_file: Option<PathBuf>,
    /// With --tlsCAFile: clients without a certificate are still accepted.
    #[arg(long = "tlsAllowConnectionsWithoutCertificates")]
    pub tls_allow_connections_without_certificates: bool,
    /// Accept client certificates that do not verify.
    #[arg(long = "tlsAllowInvalidCertificates")]
    pub tls_allow_invalid_certificates: bool,
    /// Do not check host names in the certificates of other members.
    #[arg(long = "tlsAllowInvalidHostnames")]
    pub tls_allow_invalid_hostnames: bool,
    /// Comma-separated protocols to refuse: TLS1_0, TLS1_1, TLS1_2, TLS1_3, or none.
    #[arg(long = "tlsDisabledProtocols", value_name = "LIST")]
    pub tls_disabled_protocols: Option<String>,
}

/// The YAML config file. Unknown keys are refused with their name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileConfig {
    net: Option<NetSection>,
    storage: Option<StorageSection>,
    system_log: Option<SystemLogSection>,
    set_parameter: Option<BTreeMap<String, serde_norway::Value>>,
    security: Option<SecuritySection>,
    replication: Option<ReplicationSection>,
    operation_profiling: Option<ProfilingSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NetSection {
    port: Option<u16>,
    bind_ip: Option<String>,
    bind_ip_all: Option<bool>,
    max_incoming_connections: Option<usize>,
    compression: Option<CompressionSection>,
    tls: Option<TlsSection>,
}

/// `net.tls`, with mongod's key names (`CAFile` and `CRLFile` keep their capitals).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TlsSection {
    mode: Option<String>,
    certificate_key_file: Option<PathBuf>,
    certificate_key_file_password: Option<String>,
    #[serde(rename = "CAFile")]
    ca_file: Option<PathBuf>,
    cluster_file: Option<PathBuf>,
    #[serde(rename = "clusterCAFile")]
    cluster_ca_file: Option<PathBuf>,
    #[serde(rename = "CRLFile")]
    crl_file: Option<PathBuf>,
    allow_connections_without_certificates: Option<bool>,
    allow_invalid_certificates: Option<bool>,
    allow_invalid_hostnames: Option<bool>,
    disabled_protocols: Option<String>,
}

/// `net.tls.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    #[default]
    Disabled,
    AllowTls,
    PreferTls,
    RequireTls,
}

impl TlsMode {
    pub fn parse(s: &str) -> Option<TlsMode> {
        Some(match s {
            "disabled" => TlsMode::Disabled,
            "allowTLS" => TlsMode::AllowTls,
            "preferTLS" => TlsMode::PreferTls,
            "requireTLS" => TlsMode::RequireTls,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Disabled => "disabled",
            TlsMode::AllowTls => "allowTLS",
            TlsMode::PreferTls => "preferTLS",
            TlsMode::RequireTls => "requireTLS",
        }
    }
}

/// The TLS protocol versions ferrod's TLS stack (rustls) has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// The validated `net.tls` options.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub mode: TlsMode,
    pub certificate_key_file: Option<PathBuf>,
    pub certificate_key_file_password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cluster_file: Option<PathBuf>,
    pub cluster_ca_file: Option<PathBuf>,
    pub crl_file: Option<PathBuf>,
    pub allow_connections_without_certificates: bool,
    pub allow_invalid_certificates: bool,
    pub allow_invalid_hostnames: bool,
    /// The versions left enabled (never empty).
    pub versions: Vec<TlsVersion>,
}

impl TlsSettings {
    pub fn enabled(&self) -> bool {
        self.mode != TlsMode::Disabled
    }
}

/// `--tlsDisabledProtocols`: mongod's names; TLS 1.0 and 1.1 are never offered here, so
/// disabling them is accepted and changes nothing.
fn parse_disabled_protocols(list: &str) -> Result<Vec<TlsVersion>, String> {
    let mut versions = vec![TlsVersion::Tls12, TlsVersion::Tls13];
    if list.trim() == "none" {
        return Ok(versions);
    }
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name {
            "TLS1_0" | "TLS1_1" => {}
            "TLS1_2" => versions.retain(|v| *v != TlsVersion::Tls12),
            "TLS1_3" => versions.retain(|v| *v != TlsVersion::Tls13),
            other => {
                return Err(format!(
                    "tlsDisabledProtocols: unrecognized protocol '{other}' (known: TLS1_0, TLS1_1, TLS1_2, TLS1_3, none)"
                ))
            }
        }
    }
    if versions.is_empty() {
        return Err(
            "tlsDisabledProtocols: TLS 1.2 and 1.3 cannot both be disabled (ferrod has no other protocol)"
                .into(),
        );
    }
    Ok(versions)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompressionSection {
    compressors: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StorageSection {
    db_path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SystemLogSection {
    destination: Option<String>,
    path: Option<PathBuf>,
    log_append: Option<bool>,
    quiet: Option<bool>,
    log_format: Option<LogFormat>,
    verbosity: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SecuritySection {
    authorization: Option<String>,
    key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReplicationSection {
    repl_set_name: Option<String>,
    /// A list of host:port, or one comma-separated string.
    initial_members: Option<serde_norway::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProfilingSection {
    slow_op_threshold_ms: Option<u64>,
}

/// Everything the server needs to start, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub bind_ip: Vec<String>,
    pub bind_ip_all: bool,
    pub max_conns: usize,
    pub compressors: Vec<Compressor>,
    pub dbpath: PathBuf,
    pub logpath: Option<PathBuf>,
    pub log_append: bool,
    pub log_format: LogFormat,
    pub quiet: bool,
    pub verbosity: i32,
    pub slowms: u64,
    /// `--setParameter` and `setParameter:` entries, command line last so it wins.
    pub set_parameters: Vec<(String, Bson)>,
    pub auth: bool,
    pub key_file: Option<PathBuf>,
    pub repl_set: Option<String>,
    /// `--initialMembers`: the set initiates itself with these members.
    pub initial_members: Vec<String>,
    pub tls: TlsSettings,
    pub config_file: Option<PathBuf>,
    /// The process's arguments, for getCmdLineOpts.
    pub argv: Vec<String>,
    /// The options as given, in the config file's layout, for getCmdLineOpts.
    pub parsed: Document,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: DEFAULT_PORT,
            bind_ip: vec!["127.0.0.1".into()],
            bind_ip_all: false,
            max_conns: DEFAULT_MAX_CONNS,
            compressors: default_compressors(),
            dbpath: PathBuf::from("./data"),
            logpath: None,
            log_append: false,
            log_format: LogFormat::Text,
            quiet: false,
            verbosity: 0,
            slowms: DEFAULT_SLOW_MS,
            set_parameters: Vec::new(),
            auth: false,
            key_file: None,
            repl_set: None,
            initial_members: Vec::new(),
            tls: TlsSettings::default(),
            config_file: None,
            argv: Vec::new(),
            parsed: Document::new(),
        }
    }
}

/// mongod 7.0 offers these, in this order, unless told otherwise.
fn default_compressors() -> Vec<Compressor> {
    vec![Compressor::Snappy, Compressor::Zstd, Compressor::Zlib]
}

fn parse_compressors(list: &str, source: &str) -> Result<Vec<Compressor>, String> {
    if list.trim() == "disabled" {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            Compressor::from_name(name)
                .filter(|c| *c != Compressor::Noop)
                .ok_or_else(|| {
                    format!("{source}: unknown compressor '{name}' (known: snappy, zstd, zlib)")
                })
        })
        .collect()
}

fn yaml_to_bson(value: &serde_norway::Value) -> Bson {
    match value {
        serde_norway::Value::Bool(b) => Bson::Boolean(*b),
        serde_norway::Value::Number(n) => match n.as_i64() {
            Some(i) => i32::try_from(i).map(Bson::Int32).unwrap_or(Bson::Int64(i)),
            None => Bson::Double(n.as_f64().unwrap_or_default()),
        },
        serde_norway::Value::String(s) => Bson::String(s.clone()),
        serde_norway::Value::Null => Bson::Null,
        other => Bson::String(
            serde_norway::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_owned(),
        ),
    }
}

/// Puts `value` at a dotted `path` of `doc`, creating the sub-documents on the way.
fn put_path(doc: &mut Document, path: &str, value: Bson) {
    match path.split_once('.') {
        None => {
            doc.insert(path, value);
        }
        Some((head, rest)) => {
            if !matches!(doc.get(head), Some(Bson::Document(_))) {
                doc.insert(head, Document::new());
            }
            if let Some(Bson::Document(sub)) = doc.get_mut(head) {
                put_path(sub, rest, value);
            }
        }
    }
}

impl Config {
    /// Parses the process's arguments and config file. Errors name the bad flag or key.
    pub fn from_args<I, T>(args: I) -> Result<Config, String>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let cli = Cli::try_parse_from(args.clone()).map_err(|e| e.to_string())?;
        let mut config = Config::from_cli(cli)?;
        config.argv = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        Ok(config)
    }

    pub fn from_cli(cli: Cli) -> Result<Config, String> {
        let file = match &cli.config {
            Some(path) => read_config_file(path)?,
            None => FileConfig::default(),
        };
        let mut c = Config::default();
        let mut parsed = Document::new();
        if let Some(path) = &cli.config {
            parsed.insert("config", path.display().to_string());
        }

        // The file first, then the command line over it.
        let net = file.net.unwrap_or_default();
        let storage = file.storage.unwrap_or_default();
        let log = file.system_log.unwrap_or_default();
        let security = file.security.unwrap_or_default();
        let replication = file.replication.unwrap_or_default();
        let profiling = file.operation_profiling.unwrap_or_default();

        if let Some(port) = cli.port.or(net.port) {
            c.port = port;
            put_path(&mut parsed, "net.port", Bson::Int32(port.into()));
        }
        // bindIp and bindIpAll exclude each other (mongod refuses both); across the two
        // sources the command line wins.
        if cli.bind_ip.is_some() && cli.bind_ip_all {
            return Err("--bind_ip and --bind_ip_all are mutually exclusive".into());
        }
        if net.bind_ip.is_some() && net.bind_ip_all == Some(true) {
            return Err("net.bindIp and net.bindIpAll are mutually exclusive".into());
        }
        let (bind_ip, bind_ip_all) = if cli.bind_ip.is_some() || cli.bind_ip_all {
            (cli.bind_ip.clone(), cli.bind_ip_all)
        } else {
            (net.bind_ip, net.bind_ip_all.unwrap_or(false))
        };
        if let Some(ips) = bind_ip {
            c.bind_ip = ips
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            if c.bind_ip.is_empty() {
                return Err("bind_ip: no address given".into());
            }
            // mongod 4.2+: "*" means every IPv4 and IPv6 address.
            if c.bind_ip.iter().any(|ip| ip == "*") {
                c.bind_ip_all = true;
            }
            put_path(&mut parsed, "net.bindIp", Bson::String(ips));
        }
        if bind_ip_all {
            c.bind_ip_all = true;
            put_path(&mut parsed, "net.bindIpAll", Bson::Boolean(true));
        }
        if let Some(n) = cli.max_conns.or(net.max_incoming_connections) {
            if n == 0 {
                return Err("maxConns: must be at least 1".into());
            }
            c.max_conns = n;
            put_path(
                &mut parsed,
                "net.maxIncomingConnections",
                Bson::Int64(n as i64),
            );
        }
        let compressors = cli
            .network_message_compressors
            .clone()
            .map(|l| (l, "--networkMessageCompressors"))
            .or(net
                .compression
                .and_then(|s| s.compressors)
                .map(|l| (l, "net.compression.compressors")));
        if let Some((list, source)) = compressors {
            c.compressors = parse_compressors(&list, source)?;
            put_path(
                &mut parsed,
                "net.compression.compressors",
                Bson::String(list),
            );
        }
        if let Some(path) = cli.dbpath.clone().or(storage.db_path) {
            put_path(
                &mut parsed,
                "storage.dbPath",
                Bson::String(path.display().to_string()),
            );
            c.dbpath = path;
        }
        match log.destination.as_deref() {
            None | Some("file") => {}
            Some(other) => {
                return Err(format!(
                    "systemLog.destination: '{other}' is not supported (use 'file', or leave it out for standard output)"
                ))
            }
        }
        if let Some(path) = cli.logpath.clone().or(log.path) {
            put_path(
                &mut parsed,
                "systemLog.destination",
                Bson::String("file".into()),
            );
            put_path(
                &mut parsed,
                "systemLog.path",
                Bson::String(path.display().to_string()),
            );
            c.logpath = Some(path);
        } else if log.destination.as_deref() == Some("file") {
            return Err("systemLog.destination is 'file' but systemLog.path is not set".into());
        }
        c.log_append = cli.logappend || log.log_append.unwrap_or(false);
        if let Some(format) = cli.log_format.or(log.log_format) {
            c.log_format = format;
        }
        if cli.quiet || log.quiet.unwrap_or(false) {
            c.quiet = true;
            put_path(&mut parsed, "systemLog.quiet", Bson::Boolean(true));
        }
        c.verbosity = log.verbosity.unwrap_or(0);
        if let Some(ms) = cli.slowms.or(profiling.slow_op_threshold_ms) {
            c.slowms = ms;
            put_path(
                &mut parsed,
                "operationProfiling.slowOpThresholdMs",
                Bson::Int64(ms as i64),
            );
        }

        for (name, value) in file.set_parameter.unwrap_or_default() {
            c.set_parameters.push((name, yaml_to_bson(&value)));
        }
        for entry in &cli.set_parameter {
            let (name, value) = entry
                .split_once('=')
                .ok_or_else(|| format!("--setParameter '{entry}': expected NAME=VALUE"))?;
            c.set_parameters
                .push((name.to_owned(), Bson::String(value.to_owned())));
        }
        if !c.set_parameters.is_empty() {
            let mut params = Document::new();
            for (name, value) in &c.set_parameters {
                params.insert(name.clone(), value.clone());
            }
            parsed.insert("setParameter", params);
        }

        match security.authorization.as_deref() {
            None | Some("disabled") => {}
            Some("enabled") => c.auth = true,
            Some(other) => {
                return Err(format!(
                    "security.authorization: '{other}' is not 'enabled' or 'disabled'"
                ))
            }
        }
        if cli.auth {
            c.auth = true;
        }
        if let Some(path) = cli.key_file.clone().or(security.key_file) {
            put_path(
                &mut parsed,
                "security.keyFile",
                Bson::String(path.display().to_string()),
            );
            c.key_file = Some(path);
            c.auth = true;
        }
        if c.auth {
            put_path(
                &mut parsed,
                "security.authorization",
                Bson::String("enabled".into()),
            );
        }
        if let Some(name) = cli.repl_set.clone().or(replication.repl_set_name) {
            if name.is_empty() || name.contains('/') {
                return Err(format!("replSet: '{name}' is not a valid replica set name"));
            }
            put_path(
                &mut parsed,
                "replication.replSet",
                Bson::String(name.clone()),
            );
            c.repl_set = Some(name);
        }
        let initial = match (&cli.initial_members, &replication.initial_members) {
            (Some(list), _) => Some(split_hosts(list)),
            (None, Some(value)) => Some(yaml_hosts(value)?),
            (None, None) => None,
        };
        if let Some(hosts) = initial {
            c.initial_members = check_initial_members(hosts, c.repl_set.is_some())?;
            put_path(
                &mut parsed,
                "replication.initialMembers",
                Bson::Array(
                    c.initial_members
                        .iter()
                        .cloned()
                        .map(Bson::String)
                        .collect(),
                ),
            );
        }
        c.tls = tls_settings(&cli, net.tls.unwrap_or_default(), &mut parsed)?;
        c.config_file = cli.config;
        c.parsed = parsed;
        Ok(c)
    }

    /// The reply body of getCmdLineOpts.
    pub fn cmd_line_opts(&self) -> Document {
        doc! {
            "argv": self.argv.iter().map(|a| Bson::String(a.clone())).collect::<Vec<_>>(),
            "parsed": self.parsed.clone(),
        }
    }
}

/// Merges `--tls*` over `net.tls.*` and checks the combinations mongod refuses at startup.
fn tls_settings(cli: &Cli, file: TlsSection, parsed: &mut Document) -> Result<TlsSettings, String> {
    let mut t = TlsSettings::default();
    if let Some(mode) = cli.tls_mode.clone().or(file.mode) {
        t.mode = TlsMode::parse(&mode).ok_or_else(|| {
            format!("tlsMode: '{mode}' is not one of disabled, allowTLS, preferTLS, requireTLS")
        })?;
        put_path(parsed, "net.tls.mode", Bson::String(mode));
    }
    let mut path = |flag: &Option<PathBuf>, key: Option<PathBuf>, name: &str| {
        let value = flag.clone().or(key);
        if let Some(p) = &value {
            put_path(
                parsed,
                &format!("net.tls.{name}"),
                Bson::String(p.display().to_string()),
            );
        }
        value
    };
    t.certificate_key_file = path(
        &cli.tls_certificate_key_file,
        file.certificate_key_file,
        "certificateKeyFile",
    );
    t.ca_file = path(&cli.tls_ca_file, file.ca_file, "CAFile");
    t.cluster_file = path(&cli.tls_cluster_file, file.cluster_file, "clusterFile");
    t.cluster_ca_file = path(
        &cli.tls_cluster_ca_file,
        file.cluster_ca_file,
        "clusterCAFile",
    );
    t.crl_file = path(&cli.tls_crl_file, file.crl_file, "CRLFile");
    t.certificate_key_file_password = cli
        .tls_certificate_key_file_password
        .clone()
        .or(file.certificate_key_file_password);
    if t.certificate_key_file_password.is_some() {
        // As mongod, the password itself is redacted from getCmdLineOpts.
        put_path(
            parsed,
            "net.tls.certificateKeyFilePassword",
            Bson::String("<password>".into()),
        );
    }
    let mut flag = |cli_flag: bool, key: Option<bool>, name: &str| {
        let on = cli_flag || key.unwrap_or(false);
        if on {
            put_path(parsed, &format!("net.tls.{name}"), Bson::Boolean(true));
        }
        on
    };
    t.allow_connections_without_certificates = flag(
        cli.tls_allow_connections_without_certificates,
        file.allow_connections_without_certificates,
        "allowConnectionsWithoutCertificates",
    );
    t.allow_invalid_certificates = flag(
        cli.tls_allow_invalid_certificates,
        file.allow_invalid_certificates,
        "allowInvalidCertificates",
    );
    t.allow_invalid_hostnames = flag(
        cli.tls_allow_invalid_hostnames,
        file.allow_invalid_hostnames,
        "allowInvalidHostnames",
    );
    t.versions = vec![TlsVersion::Tls12, TlsVersion::Tls13];
    if let Some(list) = cli
        .tls_disabled_protocols
        .clone()
        .or(file.disabled_protocols)
    {
        t.versions = parse_disabled_protocols(&list)?;
        put_path(parsed, "net.tls.disabledProtocols", Bson::String(list));
    }
    if t.enabled() && t.certificate_key_file.is_none() {
        // mongod's words (ssl_options_server.cpp).
        return Err("need tlsCertificateKeyFile or certificateSelector when TLS is enabled".into());
    }
    Ok(t)
}

fn read_config_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_norway::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

fn split_hosts(list: &str) -> Vec<String> {
    list.split(',').map(|h| h.trim().to_owned()).collect()
}

/// `replication.initialMembers` as a YAML list or one comma-separated string.
fn yaml_hosts(value: &serde_norway::Value) -> Result<Vec<String>, String> {
    let bad = || {
        "replication.initialMembers must be a list of host:port or a comma-separated string"
            .to_owned()
    };
    match value {
        serde_norway::Value::String(s) => Ok(split_hosts(s)),
        serde_norway::Value::Sequence(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

/// Each member a `host:port` with a valid port, none twice, and only with a set name.
fn check_initial_members(hosts: Vec<String>, has_set: bool) -> Result<Vec<String>, String> {
    if !has_set {
        return Err(
            "initialMembers requires replSet (--replSet or replication.replSetName)".into(),
        );
    }
    if hosts.is_empty() || hosts.iter().any(|h| h.is_empty()) {
        return Err("initialMembers: empty member in the list".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for host in &hosts {
        // mongod's host:port rules, and the port may not be left to its default.
        let Ok(Parsed::Full(parsed)) = HostAndPort::parse(host) else {
            return Err(format!("initialMembers: '{host}' is not host:port"));
        };
        if !seen.insert(parsed) {
            return Err(format!("initialMembers: '{host}' is listed twice"));
        }
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        Config::from_args(std::iter::once("ferrod").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_mongods() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.port, 27017);
        assert_eq!(c.bind_ip, vec!["127.0.0.1"]);
        assert_eq!(c.compressors, default_compressors());
    }

    #[test]
    fn command_line_beats_file() {
        let dir = std::env::temp_dir().join(format!("ferrod-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.yaml");
        std::fs::write(
            &file,
            "net:\n  port: 1234\n  bindIp: 127.0.0.2\nstorage:\n  dbPath: /tmp/x\n",
        )
        .unwrap();
        let c = parse(&["-f", file.to_str().unwrap(), "--port", "5678"]).unwrap();
        assert_eq!(c.port, 5678);
        assert_eq!(c.bind_ip, vec!["127.0.0.2"]);
        assert_eq!(c.dbpath, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn unknown_config_key_is_named() {
        let dir = std::env::temp_dir().join(format!("ferrod-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.yaml");
        std::fs::write(&file, "net:\n  prot: 1234\n").unwrap();
        let err = parse(&["-f", file.to_str().unwrap()]).unwrap_err();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn bind_ip_and_bind_ip_all_exclude_each_other() {
        let err = parse(&["--bind_ip", "127.0.0.1", "--bind_ip_all"]).unwrap_err();
        assert!(err.contains("mutually exclusive"), "{err}");
        assert!(parse(&["--bind_ip", "*"]).unwrap().bind_ip_all);
    }

    #[test]
    fn tls_flags_and_file_keys() {
        let c = parse(&[
            "--tlsMode",
            "requireTLS",
            "--tlsCertificateKeyFile",
            "s.pem",
            "--tlsCAFile",
            "ca.pem",
            "--tlsDisabledProtocols",
            "TLS1_0,TLS1_2",
        ])
        .unwrap();
        assert_eq!(c.tls.mode, TlsMode::RequireTls);
        assert_eq!(c.tls.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(c.tls.versions, vec![TlsVersion::Tls13]);
        assert_eq!(
            c.parsed
                .get_document("net")
                .unwrap()
                .get_document("tls")
                .unwrap()
                .get_str("mode")
                .unwrap(),
            "requireTLS"
        );

        let dir = tempfile_dir("tls");
        let file = dir.join("c.yaml");
        std::fs::write(
            &file,
            "net:\n  tls:\n    mode: preferTLS\n    certificateKeyFile: s.pem\n    CAFile: ca.pem\n    CRLFile: crl.pem\n    allowConnectionsWithoutCertificates: true\n",
        )
        .unwrap();
        let c = parse(&["-f", file.to_str().unwrap()]).unwrap();
        assert_eq!(c.tls.mode, TlsMode::PreferTls);
        assert_eq!(c.tls.crl_file, Some(PathBuf::from("crl.pem")));
        assert!(c.tls.allow_connections_without_certificates);
    }

    #[test]
    fn tls_combinations_mongod_refuses() {
        let err = parse(&["--tlsMode", "requireTLS"]).unwrap_err();
        assert!(err.contains("need tlsCertificateKeyFile"), "{err}");
        let err = parse(&["--tlsMode", "sslOnly"]).unwrap_err();
        assert!(err.contains("sslOnly"), "{err}");
        let err = parse(&["--tlsDisabledProtocols", "TLS1_2,TLS1_3"]).unwrap_err();
        assert!(err.contains("cannot both be disabled"), "{err}");
        let err = parse(&["--tlsDisabledProtocols", "SSL3"]).unwrap_err();
        assert!(err.contains("SSL3"), "{err}");
        assert_eq!(parse(&[]).unwrap().tls.mode, TlsMode::Disabled);
    }

    fn tempfile_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ferrod-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn bad_compressor_is_named() {
        let err = parse(&["--networkMessageCompressors", "snappy,lz4"]).unwrap_err();
        assert!(err.contains("lz4"), "{err}");
    }
}
