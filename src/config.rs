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
    fn bad_compressor_is_named() {
        let err = parse(&["--networkMessageCompressors", "snappy,lz4"]).unwrap_err();
        assert!(err.contains("lz4"), "{err}");
    }
}
