//! `ferrod admin drop-connections --uri mongodb://h1,h2/ --host old:27017 [--host ...]`:
//! runs dropConnections on every member of a set instead of member by member, as mongod's
//! documentation asks operators to (issue 14). The members are the URI's seed list plus
//! every host the reachable ones list in `hello.hosts`/`passives`/`arbiters`. For each
//! member it counts the pooled connections to the hosts (connPoolStats), drops them, and
//! counts again; it prints one line per member and exits 0 only if every member dropped.
//!
//! main.rs hands `admin` to this module before the server's own flags are parsed.

use crate::auth::key_file::scram_log_in;
use crate::auth::scram::{Mechanism, ScramClient};
use crate::pool::host_and_port::{HostAndPort, Parsed};
use crate::pool::{Connection, ConnectionSetup, PoolError, SetupFuture};
use bson::{doc, Bson, Document};
use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "usage: ferrod admin drop-connections --uri mongodb://[user:pass@]host:port[,host:port...]/[?authSource=db] \
    --host HOST:PORT [--host HOST:PORT ...] [--timeout-ms MS]\n\
    Runs dropConnections for the hosts on every member of the set and prints a report;\n\
    exits 0 only if every member dropped them.";

/// User, password and authentication database from the URI.
pub type Login = (String, String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub seeds: Vec<HostAndPort>,
    pub login: Option<Login>,
    pub hosts: Vec<HostAndPort>,
    pub timeout: Duration,
}

fn parse_host(text: &str) -> Result<HostAndPort, String> {
    HostAndPort::parse_or_default(text, 27017).map_err(|e| format!("{text}: {e}"))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in {text}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("not UTF-8 once decoded: {text}"))
}

/// The seed list and credentials of a `mongodb://` URI (no SRV, no TLS options).
fn parse_uri(uri: &str) -> Result<(Vec<HostAndPort>, Option<Login>), String> {
    let rest = uri
        .strip_prefix("mongodb://")
        .ok_or_else(|| format!("--uri must start with mongodb://: {uri}"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let seeds = hosts
        .split(',')
        .map(parse_host)
        .collect::<Result<Vec<_>, _>>()?;
    let (db, query) = path.split_once('?').unwrap_or((path, ""));
    let auth_source = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("authSource="))
        .map(percent_decode)
        .transpose()?
        .or_else(|| (!db.is_empty()).then(|| db.to_owned()))
        .unwrap_or_else(|| "admin".to_owned());
    let login = match userinfo {
        None => None,
        Some(u) => {
            let (user, pass) = u
                .split_once(':')
                .ok_or_else(|| "--uri: a user name needs a password".to_owned())?;
            Some((percent_decode(user)?, percent_decode(pass)?, auth_source))
        }
    };
    Ok((seeds, login))
}

/// Parses the arguments after `admin`. `Ok(None)` is `--help`.
pub fn parse_args(args: &[String]) -> Result<Option<Args>, String> {
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("drop-connections") => {}
        Some("-h" | "--help") | None => return Ok(None),
        Some(other) => return Err(format!("unknown admin command {other}")),
    }
    let (mut uri, mut hosts, mut timeout) = (None, Vec::new(), Duration::from_secs(10));
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        if name == "-h" || name == "--help" {
            return Ok(None);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name {
            "--uri" => uri = Some(value()?),
            "--host" => hosts.push(parse_host(&value()?)?),
            "--timeout-ms" => {
                let v = value()?;
                let ms: u64 = v
                    .parse()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| format!("--timeout-ms: not a positive number: {v}"))?;
                timeout = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let uri = uri.ok_or("--uri is required")?;
    if hosts.is_empty() {
        return Err("at least one --host is required".into());
    }
    let (seeds, login) = parse_uri(&uri)?;
    Ok(Some(Args {
        seeds,
        login,
        hosts,
        timeout,
    }))
}

/// Logs in with the URI's user by SCRAM-SHA-256 after the handshake.
struct UserLogin {
    user: String,
    password: String,
    db: String,
}

impl ConnectionSetup for UserLogin {
    fn after_hello<'a>(&'a self, conn: &'a mut Connection, _: &'a Document) -> SetupFuture<'a> {
        Box::pin(async move {
            let client = ScramClient::new(Mechanism::ScramSha256, &self.user, &self.password)
                .map_err(|e| PoolError::AuthenticationFailed(e.to_string()))?;
            scram_log_in(conn, client, &self.db).await
        })
    }
}

/// What one member did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Dropped { before: i64, after: i64 },
    Unreachable(String),
}

fn count(d: &Document, key: &str) -> i64 {
    match d.get(key) {
        Some(Bson::Int32(n)) => *n as i64,
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(f)) => *f as i64,
        _ => 0,
    }
}

/// Connections to `hosts` in every named pool of a connPoolStats reply.
fn pooled_to(stats: &Document, hosts: &[HostAndPort]) -> i64 {
    let Ok(pools) = stats.get_document("pools") else {
        return 0;
    };
    let mut total = 0;
    for (_, pool) in pools {
        let Some(pool) = pool.as_document() else {
            continue;
        };
        for host in hosts {
            if let Ok(entry) = pool.get_document(host.to_string()) {
                total +=
                    count(entry, "inUse") + count(entry, "available") + count(entry, "refreshing");
            }
        }
    }
    total
}

async fn command(
    conn: &mut Connection,
    cmd: Document,
    timeout: Duration,
) -> Result<Document, String> {
    let reply = conn
        .run_command(cmd, timeout)
        .await
        .map_err(|e| e.to_string())?;
    if reply.get_f64("ok").ok() == Some(1.0) {
        Ok(reply)
    } else {
        Err(format!(
            "{} (code {})",
            reply.get_str("errmsg").unwrap_or("command failed"),
            count(&reply, "code")
        ))
    }
}

struct Runner {
    args: Args,
    setup: Option<Arc<dyn ConnectionSetup>>,
}

impl Runner {
    async fn connect(&self, member: &HostAndPort) -> Result<Connection, String> {
        Connection::connect(
            member,
            "ferrod-admin",
            self.args.timeout,
            self.setup.clone(),
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// The seeds plus every host a reachable seed names.
    async fn members(&self) -> BTreeSet<HostAndPort> {
        let mut members: BTreeSet<HostAndPort> = self.args.seeds.iter().cloned().collect();
        for seed in &self.args.seeds {
            let Ok(mut conn) = self.connect(seed).await else {
                continue;
            };
            let Ok(hello) = command(
                &mut conn,
                doc! {"hello": 1, "$db": "admin"},
                self.args.timeout,
            )
            .await
            else {
                continue;
            };
            for key in ["hosts", "passives", "arbiters"] {
                for h in hello.get_array(key).into_iter().flatten() {
                    if let Some(Ok(Parsed::Full(host))) = h.as_str().map(HostAndPort::parse) {
                        members.insert(host);
                    }
                }
            }
        }
        members
    }

    async fn drop_on(&self, member: &HostAndPort) -> Outcome {
        let result = async {
            let mut conn = self.connect(member).await?;
            let t = self.args.timeout;
            let stats = doc! {"connPoolStats": 1, "$db": "admin"};
            let before = pooled_to(
                &command(&mut conn, stats.clone(), t).await?,
                &self.args.hosts,
            );
            let list: Vec<String> = self.args.hosts.iter().map(ToString::to_string).collect();
            command(
                &mut conn,
                doc! {"dropConnections": 1, "hostAndPort": list, "$db": "admin"},
                t,
            )
            .await?;
            let after = pooled_to(&command(&mut conn, stats, t).await?, &self.args.hosts);
            Ok::<_, String>(Outcome::Dropped { before, after })
        };
        result.await.unwrap_or_else(Outcome::Unreachable)
    }
}

/// Runs the drop on every member; the report, one entry per member.
pub async fn drop_everywhere(args: Args) -> Vec<(HostAndPort, Outcome)> {
    let setup: Option<Arc<dyn ConnectionSetup>> = args.login.clone().map(|(user, password, db)| {
        Arc::new(UserLogin { user, password, db }) as Arc<dyn ConnectionSetup>
    });
    let runner = Runner { args, setup };
    let mut report = Vec::new();
    for member in runner.members().await {
        let outcome = runner.drop_on(&member).await;
        report.push((member, outcome));
    }
    report
}

pub fn main(args: &[String]) -> ExitCode {
    let args = match parse_args(args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ferrod admin: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let hosts: Vec<String> = args.hosts.iter().map(ToString::to_string).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = runtime.block_on(drop_everywhere(args));
    println!("dropConnections {}", hosts.join(","));
    let mut all_dropped = true;
    for (member, outcome) in &report {
        match outcome {
            Outcome::Dropped { before, after } => {
                println!("{member}\tdropped\tbefore: {before}\tafter: {after}")
            }
            Outcome::Unreachable(why) => {
                all_dropped = false;
                println!("{member}\tunreachable: {why}");
            }
        }
    }
    let dropped = report
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Dropped { .. }))
        .count();
    println!("{dropped} of {} members dropped", report.len());
    if all_dropped && !report.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Option<Args>, String> {
        parse_args(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_the_uri_and_hosts() {
        let a = args(&[
            "drop-connections",
            "--uri",
            "mongodb://us%40r:p%3Aw@a:1,b/?replicaSet=rs0&authSource=x",
            "--host=old:27017",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            a.seeds,
            vec![HostAndPort::new("a", 1), HostAndPort::new("b", 27017)]
        );
        assert_eq!(a.login, Some(("us@r".into(), "p:w".into(), "x".into())));
        assert_eq!(a.hosts, vec![HostAndPort::new("old", 27017)]);
        assert!(args(&["drop-connections", "--uri", "mongodb://a:1"]).is_err());
        assert!(args(&["drop-connections", "--host", "a:1"]).is_err());
        assert!(args(&["nope"]).is_err());
        assert_eq!(args(&["--help"]), Ok(None));
    }
}
