//! The replication path under hostile or careless load, with three real members on
//! fixed ports: a 13 MB createUser replicates to every member without a panic and later
//! writes go on; a member that was down catches up across several 5 MB entries, and a
//! stepdown meanwhile asks the caught-up member to take over; a `w: 3` wait with a member
//! down ends with PrimarySteppedDown at a stepdown; writes on a secondary get mongod's
//! NotWritablePrimary, never the consensus library's text.

mod common;

use common::{eventually, free_port};

use bson::{doc, Bson, Document};
use std::io::Write as _;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SET: &str = "rs0";
/// mongod's default heartbeatIntervalMillis and electionTimeoutMillis: the sets that
/// carry 5-13 MB entries use them, as a debug build takes longer than a 200 ms heartbeat
/// interval to handle such an entry.
const MONGOD_HEARTBEAT: i32 = 2000;
const MONGOD_ELECTION: i32 = 10000;

/// The two tests that replicate entries of several megabytes run one at a time. openraft
/// 0.9 gives an AppendEntries exactly one heartbeat interval (2 s here, as mongod's
/// default) and then sends it again from the start; with both tests' nine debug-build
/// members sharing two cores, a 13 MB append can miss that window on every try.
static BIG_ENTRIES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn big_entries_one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    BIG_ENTRIES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A member on a fixed port and data directory, which can be killed and started again.
struct Node {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Node {
    fn new() -> Node {
        Node {
            // Known before start: members name each other in the set's config, and a
            // restarted member must come back on the same port.
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> std::path::PathBuf {
        self.dir.path().join("ferrod.log")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.txt")).unwrap_or_default()
    }

    fn start(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(common::FERROD)
            .args(["--port", &self.port.to_string(), "--replSet", SET])
            .args(["--logappend", "--logpath"])
            .arg(self.log())
            .arg("--dbpath")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("stderr.txt")).unwrap())
            .spawn()
            .expect("spawn ferrod");
        self.child = Some(child);
        eventually(Duration::from_secs(10), "ferrod to listen", || {
            TcpStream::connect(("127.0.0.1", self.port)).ok()
        });
    }

    /// kill -9.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let text = format!("{text}{}", self.stderr());
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// One command over a fresh connection, waiting for its reply at most `wait`; None
    /// if the member cannot be reached or does not answer.
    fn command_within(&self, mut cmd: Document, wait: Duration) -> Option<Document> {
        if !cmd.contains_key("$db") {
            cmd.insert("$db", "admin");
        }
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(wait)).ok()?;
        s.write_all(&common::op_msg(7, 0, &cmd)).ok()?;
        let (_, _, _, body) = common::read_frame(&mut s).ok()?;
        Some(common::parse_op_msg_reply(&body))
    }

    fn command(&self, cmd: Document) -> Option<Document> {
        self.command_within(cmd, Duration::from_secs(10))
    }

    fn is_primary(&self) -> bool {
        self.command(doc! {"hello": 1})
            .is_some_and(|h| h.get_bool("isWritablePrimary") == Ok(true))
    }

    /// Whether `user` exists here (its customData left out of the reply).
    fn has_user(&self, user: &str) -> bool {
        self.command(doc! {"usersInfo": user, "showCustomData": false})
            .and_then(|r| r.get_array("users").ok().map(|u| u.len() == 1))
            .unwrap_or(false)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- last lines of {}\n{}", self.addr(), self.log_tail());
        }
    }
}

fn ok(reply: &Document) -> bool {
    matches!(reply.get("ok"), Some(Bson::Double(v)) if *v == 1.0)
}

/// The index of the one member every running member names as primary.
fn agreed_primary(nodes: &[Node], running: &[usize]) -> Option<usize> {
    let mut named = Vec::new();
    for &i in running {
        let hello = nodes[i].command(doc! {"hello": 1})?;
        named.push(hello.get_str("primary").ok()?.to_owned());
    }
    if !named.iter().all(|p| *p == named[0]) {
        return None;
    }
    let p = nodes.iter().position(|n| n.addr() == named[0])?;
    nodes[p].is_primary().then_some(p)
}

/// Three members with these heartbeat and election settings, initiated; returns them
/// and the primary.
fn three_members(heartbeat_millis: i32, election_millis: i32) -> (Vec<Node>, usize) {
    let mut nodes: Vec<Node> = (0..3).map(|_| Node::new()).collect();
    for node in &mut nodes {
        node.start();
    }
    let config = doc! {
        "_id": SET, "version": 1,
        "members": nodes.iter().enumerate()
            .map(|(i, n)| Bson::Document(doc! {"_id": i as i32, "host": n.addr()}))
            .collect::<Vec<_>>(),
        "settings": {"heartbeatIntervalMillis": heartbeat_millis, "electionTimeoutMillis": election_millis},
    };
    let reply = nodes[0].command(doc! {"replSetInitiate": config}).unwrap();
    assert!(ok(&reply), "{reply}");
    let p = eventually(Duration::from_secs(30), "a primary", || {
        agreed_primary(&nodes, &[0, 1, 2])
    });
    (nodes, p)
}

/// createUser with `bytes` of customData, answered within a minute.
fn create_big_user(node: &Node, name: &str, bytes: usize) -> Document {
    let cmd = doc! {
        "createUser": name, "pwd": "x", "roles": [],
        "customData": {"blob": "x".repeat(bytes)},
    };
    node.command_within(cmd, Duration::from_secs(60))
        .expect("a reply to the large createUser")
}

fn assert_no_panic(nodes: &mut [Node]) {
    for node in nodes.iter_mut().filter(|n| n.child.is_some()) {
        assert!(node.alive(), "{} exited", node.addr());
        assert!(
            !node.stderr().contains("panicked"),
            "{} panicked:\n{}",
            node.addr(),
            node.stderr()
        );
    }
}

#[test]
fn a_13_mb_create_user_replicates_to_every_member_and_later_writes_go_on() {
    let _one_at_a_time = big_entries_one_at_a_time();
    let (mut nodes, p) = three_members(MONGOD_HEARTBEAT, MONGOD_ELECTION);
    let reply = create_big_user(&nodes[p], "big", 13_000_000);
    assert!(ok(&reply), "{reply}");
    assert!(reply.get("writeConcernError").is_none(), "{reply}");
    for node in &nodes {
        eventually(
            Duration::from_secs(60),
            "the big user on every member",
            || node.has_user("big").then_some(()),
        );
    }
    let started = Instant::now();
    let reply = nodes[p]
        .command_within(
            doc! {"createUser": "after", "pwd": "x", "roles": [], "writeConcern": {"w": 3}},
            Duration::from_secs(60),
        )
        .unwrap();
    eprintln!(
        "the small write after the big one took {:?}",
        started.elapsed()
    );
    assert!(ok(&reply), "{reply}");
    assert!(reply.get("writeConcernError").is_none(), "{reply}");
    // A write sent to a secondary gets mongod's error, nothing from inside.
    let s = (0..3).find(|&i| i != p).unwrap();
    let refused = nodes[s]
        .command(doc! {"createUser": "nope", "pwd": "x", "roles": []})
        .unwrap();
    assert_eq!(refused.get_i32("code"), Ok(10107), "{refused}");
    assert_eq!(refused.get_str("codeName"), Ok("NotWritablePrimary"));
    assert_eq!(refused.get_str("errmsg"), Ok("not primary"), "{refused}");
    assert_no_panic(&mut nodes);
}

#[test]
fn a_member_down_across_several_5_mb_entries_catches_up_and_stepdown_picks_a_caught_up_member() {
    let _one_at_a_time = big_entries_one_at_a_time();
    let (mut nodes, p) = three_members(MONGOD_HEARTBEAT, MONGOD_ELECTION);
    let down = (p + 1) % 3;
    let other = (p + 2) % 3;
    nodes[down].kill();
    for i in 0..4 {
        let reply = create_big_user(&nodes[p], &format!("five{i}"), 5_000_000);
        assert!(ok(&reply), "{reply}");
        assert!(reply.get("writeConcernError").is_none(), "{reply}");
    }
    nodes[down].start();
    // The returning member answers heartbeats long before it holds 20 MB of users: the
    // stepdown must wait for, and pick, an electable member that holds the whole log.
    eventually(
        Duration::from_secs(20),
        "the member to be heard again",
        || {
            let status = nodes[p].command(doc! {"replSetGetStatus": 1})?;
            let back = status
                .get_array("members")
                .ok()?
                .iter()
                .filter_map(Bson::as_document)
                .find(|m| m.get_str("name") == Ok(nodes[down].addr().as_str()))?
                .clone();
            (back.get_f64("health") == Ok(1.0)).then_some(())
        },
    );
    let reply = nodes[p]
        .command_within(
            doc! {"replSetStepDown": 30, "secondaryCatchUpPeriodSecs": 20},
            Duration::from_secs(40),
        )
        .unwrap();
    assert!(ok(&reply), "{reply}");
    let asked = eventually(Duration::from_secs(10), "the step-up request", || {
        nodes[p]
            .log_lines()
            .into_iter()
            .find(|l| l.contains("Asking the most caught-up electable secondary to step up"))
    });
    assert!(asked.contains(r#""caughtUp":true"#), "{asked}");
    // With mongod's 10 s election timeout the old primary grants its vote once its
    // leader lease (about 5.75 s) has passed.
    let q = eventually(Duration::from_secs(60), "a new primary", || {
        agreed_primary(&nodes, &[0, 1, 2]).filter(|&q| q != p)
    });
    assert!(q == other || q == down);
    for i in 0..4 {
        eventually(Duration::from_secs(60), "the member to catch up", || {
            nodes[down].has_user(&format!("five{i}")).then_some(())
        });
    }
    assert_no_panic(&mut nodes);
}

#[test]
fn a_w3_wait_with_a_member_down_ends_with_primary_stepped_down() {
    let (mut nodes, p) = three_members(200, 1000);
    let down = (p + 1) % 3;
    nodes[down].kill();
    let addr = nodes[p].port;
    let waiter = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", addr)).unwrap();
        // Bounded only so that a hang fails the test instead of stalling it.
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let cmd = doc! {
            "createUser": "waiting", "pwd": "x", "roles": [],
            "writeConcern": {"w": 3}, "$db": "admin",
        };
        s.write_all(&common::op_msg(9, 0, &cmd)).unwrap();
        let (_, _, _, body) = common::read_frame(&mut s).expect("a reply to the w: 3 write");
        common::parse_op_msg_reply(&body)
    });
    // Applied here and waiting for the third member.
    eventually(
        Duration::from_secs(20),
        "the user written on the primary",
        || nodes[p].has_user("waiting").then_some(()),
    );
    let reply = nodes[p]
        .command_within(
            doc! {"replSetStepDown": 30, "secondaryCatchUpPeriodSecs": 10},
            Duration::from_secs(20),
        )
        .unwrap();
    assert!(ok(&reply), "{reply}");
    let reply = waiter.join().unwrap();
    assert!(ok(&reply), "{reply}");
    let wce = reply.get_document("writeConcernError").unwrap();
    assert_eq!(wce.get_i32("code"), Ok(189), "{reply}");
    assert_eq!(wce.get_str("codeName"), Ok("PrimarySteppedDown"));
    assert_eq!(
        wce.get_str("errmsg"),
        Ok("Primary stepped down while waiting for replication")
    );
    // The write itself stays: the new primary has it.
    let others: Vec<usize> = (0..3).filter(|&i| i != down).collect();
    let q = eventually(Duration::from_secs(20), "a primary", || {
        agreed_primary(&nodes, &others)
    });
    assert!(nodes[q].has_user("waiting"));
    assert_no_panic(&mut nodes);
}
