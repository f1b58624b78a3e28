//! ferrod processes in temporary directories, started, signalled and restarted.

use super::client::{self, Conn};
use super::Result;
use bson::{doc, Bson, Document};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const SET: &str = "rs0";

/// Cheaper SCRAM hashing (the minimum ferrod accepts) so that createUser measures the log, not PBKDF2.
const SERVER_ARGS: &[&str] = &[
    "--setParameter",
    "scramIterationCount=5000",
    "--setParameter",
    "scramSHA256IterationCount=5000",
];

/// `--setParameter`s given on the tool's command line, for every member it starts.
static EXTRA_PARAMETERS: OnceLock<Vec<String>> = OnceLock::new();

pub fn set_parameters(params: &[String]) -> Result<()> {
    if let Some(bad) = params.iter().find(|p| !p.contains('=')) {
        return Err(format!("--set-parameter {bad}: expected NAME=VALUE"));
    }
    let _ = EXTRA_PARAMETERS.set(params.to_vec());
    Ok(())
}

/// A directory removed on drop: `db/` is the member's dbpath, `ferrod.log` its log.
pub struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ferrod-repl-bench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(path.join("db")).map_err(|e| e.to_string())?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub enum Stop {
    Term,
    Kill,
}

impl Stop {
    pub fn name(&self) -> &'static str {
        match self {
            Stop::Term => "SIGTERM",
            Stop::Kill => "SIGKILL",
        }
    }
}

/// One ferrod: a replica-set member on a port the OS picked at its first start and that
/// it keeps across restarts.
pub struct Member {
    binary: PathBuf,
    dir: TempDir,
    pub port: u16,
    child: Option<Child>,
    /// When the current process was spawned.
    pub spawned: Instant,
}

impl Member {
    pub fn new(binary: &Path) -> Result<Member> {
        Ok(Member {
            binary: binary.to_path_buf(),
            dir: TempDir::new()?,
            port: 0,
            child: None,
            spawned: Instant::now(),
        })
    }

    pub fn dbpath(&self) -> PathBuf {
        self.dir.0.join("db")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.0.join("ferrod.log")
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Spawns the process and returns at once. The first start listens on port 0;
    /// `wait_listening` learns the port from the log.
    pub fn spawn(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Err("member already running".into());
        }
        let stderr =
            std::fs::File::create(self.dir.0.join("stderr.txt")).map_err(|e| e.to_string())?;
        self.spawned = Instant::now();
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind_ip", "127.0.0.1"])
            .args(["--replSet", SET, "--logFormat", "json", "--logappend"])
            .arg("--logpath")
            .arg(self.log_path())
            .arg("--dbpath")
            .arg(self.dbpath())
            .args(SERVER_ARGS)
            .args(
                EXTRA_PARAMETERS
                    .get()
                    .into_iter()
                    .flatten()
                    .flat_map(|p| ["--setParameter", p.as_str()]),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Spawns and waits until the member answers a hello.
    pub fn start(&mut self) -> Result<()> {
        self.spawn()?;
        self.wait_listening(Duration::from_secs(20))?;
        self.wait_hello(Duration::from_secs(20), |_| true)?;
        Ok(())
    }

    /// Learns the port of a member started on port 0 from its "Waiting for connections" line.
    pub fn wait_listening(&mut self, limit: Duration) -> Result<()> {
        if self.port != 0 {
            return Ok(());
        }
        let deadline = Instant::now() + limit;
        loop {
            let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let port = text
                .lines()
                .filter(|l| l.contains("\"Waiting for connections\""))
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find_map(|v| v["attr"]["port"].as_u64());
            if let Some(port) = port {
                self.port = port as u16;
                return Ok(());
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(format!(
                    "no listening port in {}",
                    self.log_path().display()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Polls hello until `accept` takes a reply; returns the time since spawn.
    pub fn wait_hello(
        &mut self,
        limit: Duration,
        accept: impl Fn(&Document) -> bool,
    ) -> Result<Duration> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(mut conn) = Conn::connect(self.port, Duration::from_secs(5)) {
                while let Ok(reply) = conn.command(doc! {"hello": 1}) {
                    if accept(&reply) {
                        return Ok(self.spawned.elapsed());
                    }
                    if Instant::now() > deadline {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(format!(
                    "member {} gave no accepted hello within {limit:?}",
                    self.addr()
                ));
            }
            // A refused connect returns at once; a short pause leaves the CPU to ferrod.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!(
                    "ferrod exited early ({status}): {}",
                    self.log_tail()
                ));
            }
        }
        Ok(())
    }

    /// Stops the process with SIGTERM (waiting up to 30 s for it to exit) or SIGKILL.
    pub fn stop(&mut self, how: Stop) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        match how {
            Stop::Kill => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Stop::Term => {
                // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err("ferrod did not exit within 30 s of SIGTERM".into());
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        Ok(())
    }

    pub fn hello(&self) -> Option<Document> {
        client::once(self.port, doc! {"hello": 1}).ok()
    }

    pub fn is_primary(&self) -> bool {
        self.child.is_some()
            && self
                .hello()
                .is_some_and(|h| h.get_bool("isWritablePrimary") == Ok(true))
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// The member's log lines with this log id (its `--logFormat json` lines).
    pub fn log_lines_with_id(&self, id: i64) -> Vec<String> {
        lines_with_id(
            &std::fs::read_to_string(self.log_path()).unwrap_or_default(),
            id,
        )
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let err = std::fs::read_to_string(self.dir.0.join("stderr.txt")).unwrap_or_default();
        let text = format!("{log}{err}");
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// The lines of a `--logFormat json` log whose `id` is `id`.
fn lines_with_id(log: &str, id: i64) -> Vec<String> {
    log.lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|v| v.get("id").and_then(serde_json::Value::as_i64) == Some(id))
        })
        .map(str::to_string)
        .collect()
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.stop(Stop::Kill);
    }
}

/// Settings of the three-member sets: fast heartbeats and elections, as the tests use.
pub fn fast_settings() -> Document {
    doc! {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000}
}

/// A replica set of `n` members started on OS-chosen ports and initiated.
pub struct Set {
    pub members: Vec<Member>,
}

impl Set {
    pub fn start(binary: &Path, n: usize) -> Result<Set> {
        let mut members = Vec::new();
        for _ in 0..n {
            let mut m = Member::new(binary)?;
            m.start()?;
            members.push(m);
        }
        let config = doc! {
            "_id": SET, "version": 1,
            "members": members.iter().enumerate()
                .map(|(i, m)| Bson::Document(doc! {"_id": i as i32, "host": m.addr()}))
                .collect::<Vec<_>>(),
            "settings": fast_settings(),
        };
        client::checked(
            client::once(members[0].port, doc! {"replSetInitiate": config})?,
            "replSetInitiate",
        )?;
        let set = Set { members };
        set.wait_primary(Duration::from_secs(30))?;
        Ok(set)
    }

    /// The member every running member names as primary, once it says it is writable.
    pub fn primary(&self) -> Option<usize> {
        let mut named = None;
        for m in self.members.iter().filter(|m| m.running()) {
            let hello = m.hello()?;
            let p = hello.get_str("primary").ok()?.to_string();
            if named.get_or_insert_with(|| p.clone()) != &p {
                return None;
            }
        }
        let p = named?;
        let i = self.members.iter().position(|m| m.addr() == p)?;
        self.members[i].is_primary().then_some(i)
    }

    pub fn wait_primary(&self, limit: Duration) -> Result<usize> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(p) = self.primary() {
                return Ok(p);
            }
            if Instant::now() > deadline {
                return Err(format!("no agreed primary within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lines_with_id;

    /// A member that built a snapshot of its own (7000061) or whose message merely mentions
    /// one did not install one: only the install's id counts.
    #[test]
    fn only_lines_with_the_id_count() {
        let log = concat!(
            r#"{"t":{},"s":"I","c":"REPL","id":7000061,"msg":"Built a snapshot of the replicated catalog"}"#,
            "\n",
            r#"{"t":{},"s":"I","c":"REPL","id":21,"msg":"snapshot","attr":{"id":7000062}}"#,
            "\n",
            "not json, id 7000062\n",
            r#"{"t":{},"s":"I","c":"REPL","id":7000062,"msg":"Installed a snapshot of the replicated catalog"}"#,
            "\n",
        );
        let found = lines_with_id(log, 7_000_062);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("Installed"));
    }
}
