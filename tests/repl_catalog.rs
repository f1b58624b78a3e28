//! The replicated catalog, with real processes on fixed ports (so that they can be killed
//! and restarted as the same members): a set that initiates itself from
//! `--initialMembers` and creates its first user from the environment; users created on
//! the primary log in on every member; writes on a secondary are refused; a killed
//! primary is replaced, rejoins as a secondary and catches up; and no write acknowledged
//! with `w: "majority"` is lost across 20 rounds of killing the primary while a client
//! keeps creating users.

mod common;

use common::{eventually, free_port};

use bson::{doc, Bson, Document};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SET: &str = "rs0";
const FAST_SCRAM: &[&str] = &[
    "--setParameter",
    "scramIterationCount=5000",
    "--setParameter",
    "scramSHA256IterationCount=5000",
];

/// A member on a fixed port and data directory, which can be killed and started again.
struct Node {
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Node {
    fn new(args: &[&str], env: &[(&str, &str)]) -> Node {
        Node {
            // Known before start: members name each other in configs and initialMembers,
            // and a restarted member must come back on the same port.
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> std::path::PathBuf {
        self.dir.path().join("ferrod.log")
    }

    fn start(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(common::FERROD)
            .args(["--port", &self.port.to_string(), "--logappend", "--logpath"])
            .arg(self.log())
            .arg("--dbpath")
            .arg(self.dir.path())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("stderr.txt")).unwrap())
            .spawn()
            .expect("spawn ferrod");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "ferrod on {} did not listen:\n{}",
                self.port,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let stderr =
            std::fs::read_to_string(self.dir.path().join("stderr.txt")).unwrap_or_default();
        let text = format!("{text}{stderr}");
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    /// One command over a fresh connection; None if the member cannot be reached.
    fn command(&self, mut cmd: Document) -> Option<Document> {
        if !cmd.contains_key("$db") {
            cmd.insert("$db", "admin");
        }
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        try_roundtrip(&mut s, 7, &cmd)
    }

    fn is_primary(&self) -> bool {
        self.command(doc! {"hello": 1})
            .is_some_and(|h| h.get_bool("isWritablePrimary") == Ok(true))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of the log of {}\n{}",
                self.addr(),
                self.log_tail()
            );
        }
    }
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

/// Sends `cmd` as OP_MSG with `request_id` and parses the reply; None if the connection
/// fails.
fn try_roundtrip(s: &mut TcpStream, request_id: i32, cmd: &Document) -> Option<Document> {
    use std::io::Write;
    s.write_all(&common::op_msg(request_id, 0, cmd)).ok()?;
    let (_, _, _, body) = common::read_frame(s).ok()?;
    Some(common::parse_op_msg_reply(&body))
}

fn ok(reply: &Document) -> bool {
    matches!(reply.get("ok"), Some(Bson::Double(v)) if *v == 1.0)
}

/// Creates `name` (password "x", no roles) on `node`, asserting it succeeded.
fn create_user(node: &Node, name: &str) -> Document {
    let reply = node
        .command(doc! {"createUser": name, "pwd": "x", "roles": []})
        .unwrap();
    assert!(ok(&reply), "{reply}");
    reply
}

fn user_names(node: &Node) -> Option<Vec<String>> {
    let reply = node.command(doc! {"usersInfo": 1})?;
    Some(
        reply
            .get_array("users")
            .ok()?
            .iter()
            .filter_map(|u| u.as_document()?.get_str("user").ok().map(str::to_owned))
            .collect(),
    )
}

async fn login(node: &Node, user: &str, pwd: &str) -> Result<mongodb::Client, String> {
    let uri = format!("mongodb://{}/?directConnection=true", node.addr());
    let client = common::driver(&uri, Some((user, pwd)), None).await;
    match client.database("admin").run_command(doc! {"ping": 1}).await {
        Ok(_) => Ok(client),
        Err(e) => Err(e.to_string()),
    }
}

async fn login_eventually(node: &Node, user: &str, pwd: &str) -> mongodb::Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match login(node, user, pwd).await {
            Ok(client) => return client,
            Err(e) => assert!(
                Instant::now() < deadline,
                "{user} cannot log in on {}: {e}\n{}",
                node.addr(),
                node.log_tail()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn command_error(e: &mongodb::error::Error) -> Option<i32> {
    match *e.kind {
        mongodb::error::ErrorKind::Command(ref c) => Some(c.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_initiated_set_replicates_users_to_every_member_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "c2VsZi1pbml0aWF0ZWQtc2V0LWtleQ==\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
    let env = [
        ("MONGO_INITDB_ROOT_USERNAME", "root"),
        ("MONGO_INITDB_ROOT_PASSWORD", "rootpw"),
    ];
    let mut nodes: Vec<Node> = (0..3).map(|_| Node::new(&[], &env)).collect();
    let hosts: Vec<String> = nodes.iter().map(Node::addr).collect();
    let list = hosts.join(",");
    for node in &mut nodes {
        let mut args = vec!["--replSet", SET, "--keyFile", key.to_str().unwrap()];
        args.extend_from_slice(&["--initialMembers", &list]);
        args.extend_from_slice(FAST_SCRAM);
        // Short-lived signing keys, to see them rotate.
        args.extend_from_slice(&["--setParameter", "KeysRotationIntervalSec=3"]);
        args.extend_from_slice(&["--setParameter", "periodicNoopIntervalSecs=1"]);
        node.args = args.iter().map(|a| a.to_string()).collect();
    }
    // All at the same moment, as docker compose starts them.
    for node in &mut nodes {
        node.start();
    }
    let p = eventually(Duration::from_secs(30), "a self-initiated primary", || {
        agreed_primary(&nodes, &[0, 1, 2])
    });
    assert_eq!(p, 0, "the first of initialMembers initiates and is elected");

    // The first user came from the environment; every member knows it.
    let root = login_eventually(&nodes[p], "root", "rootpw").await;
    let config = root
        .database("admin")
        .run_command(doc! {"replSetGetConfig": 1})
        .await
        .unwrap();
    let config = config.get_document("config").unwrap().clone();
    assert_eq!(config.get_i32("version"), Ok(1), "{config}");
    let members: Vec<String> = config
        .get_array("members")
        .unwrap()
        .iter()
        .map(|m| m.as_document().unwrap().get_str("host").unwrap().to_owned())
        .collect();
    assert_eq!(members, hosts);
    let set_id = config
        .get_document("settings")
        .unwrap()
        .get_object_id("replicaSetId")
        .unwrap();

    // A user created on the primary logs in on both secondaries.
    let created = root
        .database("admin")
        .run_command(doc! {"createUser": "alice", "pwd": "alicepw", "roles": ["clusterMonitor"], "writeConcern": {"w": "majority", "wtimeout": 10000}})
        .await
        .expect("createUser on the primary");
    assert!(created.get_timestamp("operationTime").is_ok(), "{created}");
    for (i, node) in nodes.iter().enumerate() {
        let alice = login_eventually(node, "alice", "alicepw").await;
        let status = alice
            .database("admin")
            .run_command(doc! {"replSetGetStatus": 1})
            .await
            .expect("clusterMonitor may read the status");
        let expected = if i == p { 1 } else { 2 };
        assert_eq!(status.get_i32("myState"), Ok(expected), "{status}");
    }

    // Writes on a secondary are refused, and change nothing.
    let secondary = login_eventually(&nodes[(p + 1) % 3], "root", "rootpw").await;
    let refused = secondary
        .database("admin")
        .run_command(doc! {"createUser": "bob", "pwd": "bobpw", "roles": []})
        .await
        .expect_err("createUser on a secondary");
    assert_eq!(command_error(&refused), Some(10107), "{refused}");
    // w greater than the set's size: the write happens, the reply says it cannot wait.
    let wide = root
        .database("admin")
        .run_command(
            doc! {"createUser": "carol", "pwd": "carolpw", "roles": [], "writeConcern": {"w": 5}},
        )
        .await
        .expect("createUser with w: 5");
    assert_eq!(
        wide.get_document("writeConcernError")
            .and_then(|e| e.get_i32("code")),
        Ok(100),
        "{wide}"
    );
    drop((root, secondary));
    signed_cluster_time_is_checked(&nodes, p);

    // kill -9 every member and start them again: the set is not initiated a second
    // time, and the users are all still there.
    for node in &mut nodes {
        node.kill();
    }
    for node in &mut nodes {
        node.start();
    }
    let p2 = eventually(Duration::from_secs(30), "a primary after restart", || {
        agreed_primary(&nodes, &[0, 1, 2])
    });
    let root = login_eventually(&nodes[p2], "root", "rootpw").await;
    let config = root
        .database("admin")
        .run_command(doc! {"replSetGetConfig": 1})
        .await
        .unwrap();
    let config = config.get_document("config").unwrap();
    assert_eq!(config.get_i32("version"), Ok(1), "{config}");
    assert_eq!(
        config
            .get_document("settings")
            .unwrap()
            .get_object_id("replicaSetId"),
        Ok(set_id),
        "initiated twice: {config}"
    );
    let users = root
        .database("admin")
        .run_command(doc! {"usersInfo": 1})
        .await
        .unwrap();
    let after: Vec<&str> = users
        .get_array("users")
        .unwrap()
        .iter()
        .map(|u| u.as_document().unwrap().get_str("user").unwrap())
        .collect();
    for user in ["root", "alice", "carol"] {
        assert!(after.contains(&user), "{user} lost: {after:?}");
    }
    assert!(!after.contains(&"bob"), "{after:?}");
    let initiations = std::fs::read_to_string(nodes[0].log())
        .unwrap()
        .matches("Initiated the replica set from initialMembers")
        .count();
    assert_eq!(initiations, 1, "the set was initiated {initiations} times");
}

fn signature(reply: &Document) -> (bson::Timestamp, i64, Vec<u8>) {
    let ct = reply.get_document("$clusterTime").unwrap();
    let sig = ct.get_document("signature").unwrap();
    let hash = match sig.get("hash") {
        Some(Bson::Binary(b)) => b.bytes.clone(),
        other => panic!("hash is {other:?}"),
    };
    (
        ct.get_timestamp("clusterTime").unwrap(),
        sig.get_i64("keyId").unwrap(),
        hash,
    )
}

fn cluster_time(time: bson::Timestamp, key_id: i64, hash: Vec<u8>) -> Document {
    doc! {
        "clusterTime": time,
        "signature": {
            "hash": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: hash },
            "keyId": key_id,
        },
    }
}

/// Every member signs `$clusterTime` with the primary's replicated keys, which rotate;
/// a member accepts another's signed time; a forged later time is refused as mongod
/// refuses it (211 for an unknown key, 284 for a bad proof); an earlier one is not checked.
fn signed_cluster_time_is_checked(nodes: &[Node], p: usize) {
    let signed = |i: usize| {
        eventually(Duration::from_secs(15), "a signed $clusterTime", || {
            let (t, id, hash) = signature(&nodes[i].command(doc! {"hello": 1})?);
            (id != 0 && hash != vec![0; 20]).then_some((t, id, hash))
        })
    };
    let first_key = signed(p).1;
    for i in 0..3 {
        signed(i);
    }
    eventually(Duration::from_secs(15), "the signing key to rotate", || {
        (signed(p).1 != first_key).then_some(())
    });
    let s = (p + 1) % 3;
    // A secondary's signed time is good on the primary, and the other way round.
    let (t, id, hash) = signed(s);
    let reply = nodes[p]
        .command(doc! {"hello": 1, "$clusterTime": cluster_time(t, id, hash.clone())})
        .unwrap();
    assert!(ok(&reply), "{reply}");
    // Later than any member has seen, under the same key: the proof must hold (a proof
    // covers 2^16 increments, so this one is outside the proof it was copied from).
    // Retried if a no-op moved the primary past it meanwhile (then it is not checked).
    let refused = |key: Option<i64>| {
        eventually(Duration::from_secs(10), "a refused $clusterTime", || {
            let (t, id, hash) = signed(p);
            let later = bson::Timestamp {
                time: t.time,
                increment: t.increment + 0x1_0000,
            };
            let forged = cluster_time(later, key.unwrap_or(id), hash);
            let reply = nodes[p].command(doc! {"hello": 1, "$clusterTime": forged})?;
            (!ok(&reply)).then_some((reply, later))
        })
    };
    let (forged, later) = refused(None);
    assert_eq!(forged.get_i32("code"), Ok(284), "{forged}");
    assert_eq!(
        forged.get_str("codeName"),
        Ok("TimeProofMismatch"),
        "{forged}"
    );
    let (unknown, _) = refused(Some(12345));
    assert_eq!(unknown.get_i32("code"), Ok(211), "{unknown}");
    let malformed = nodes[p]
        .command(doc! {"hello": 1, "$clusterTime": {"clusterTime": later}})
        .unwrap();
    assert_eq!(malformed.get_i32("code"), Ok(4), "{malformed}");
    // The refused times did not move the clock (its increments stay small otherwise).
    let after = signature(&nodes[p].command(doc! {"hello": 1}).unwrap()).0;
    assert!(
        after.increment < 0x1_0000,
        "{after:?} after refusing {later:?}"
    );
    // No later than this member's time: accepted without a check, as by mongod.
    let earlier = nodes[p]
        .command(doc! {"hello": 1, "$clusterTime": cluster_time(bson::Timestamp { time: 1, increment: 1 }, 0, vec![0; 20])})
        .unwrap();
    assert!(ok(&earlier), "{earlier}");
}

/// Three members on fixed ports, no auth, fast heartbeats and elections, initiated.
fn fast_set() -> (Vec<Node>, usize) {
    set_with_election_timeout(1000)
}

/// Three members on fixed ports, no auth, heartbeats every 200 ms, initiated.
fn set_with_election_timeout(millis: i32) -> (Vec<Node>, usize) {
    let mut nodes: Vec<Node> = (0..3)
        .map(|_| Node::new(&["--replSet", SET], &[]))
        .collect();
    for node in &mut nodes {
        node.start();
    }
    let config = doc! {
        "_id": SET, "version": 1,
        "members": nodes.iter().enumerate()
            .map(|(i, n)| Bson::Document(doc! {"_id": i as i32, "host": n.addr()}))
            .collect::<Vec<_>>(),
        "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": millis},
    };
    let reply = nodes[0].command(doc! {"replSetInitiate": config}).unwrap();
    assert!(ok(&reply), "{reply}");
    let p = eventually(Duration::from_secs(20), "a primary", || {
        agreed_primary(&nodes, &[0, 1, 2])
    });
    (nodes, p)
}

#[test]
fn killed_primary_is_replaced_and_rejoins_caught_up() {
    let (mut nodes, p) = fast_set();
    let reply = create_user(&nodes[p], "before");
    let t_before = reply.get_timestamp("operationTime").unwrap();
    nodes[p].kill();
    let others: Vec<usize> = (0..3).filter(|&i| i != p).collect();
    let q = eventually(Duration::from_secs(20), "a new primary", || {
        agreed_primary(&nodes, &others)
    });
    // Written while the old primary is down.
    for i in 0..5 {
        let reply = create_user(&nodes[q], &format!("while{i}"));
        let t = reply.get_timestamp("operationTime").unwrap();
        assert!(
            (t.time, t.increment) > (t_before.time, t_before.increment),
            "cluster time went back across the election: {t:?} after {t_before:?}"
        );
    }
    nodes[p].start();
    eventually(
        Duration::from_secs(20),
        "the old primary back as a caught-up secondary",
        || {
            let hello = nodes[p].command(doc! {"hello": 1})?;
            let names = user_names(&nodes[p])?;
            (hello.get_bool("secondary") == Ok(true)
                && (0..5).all(|i| names.contains(&format!("while{i}"))))
            .then_some(())
        },
    );
    // The new primary's heartbeats see it as a secondary too.
    eventually(
        Duration::from_secs(10),
        "the primary to see it as SECONDARY",
        || {
            let status = nodes[q].command(doc! {"replSetGetStatus": 1})?;
            let back = status
                .get_array("members")
                .ok()?
                .iter()
                .filter_map(Bson::as_document)
                .find(|m| m.get_str("name") == Ok(nodes[p].addr().as_str()))?
                .clone();
            (back.get_str("stateStr") == Ok("SECONDARY")).then_some(())
        },
    );
}

#[test]
fn no_majority_acknowledged_user_is_lost_across_20_primary_kills() {
    let (nodes, _) = fast_set();
    let nodes = Arc::new(Mutex::new(nodes));
    let ports: Vec<u16> = nodes.lock().unwrap().iter().map(|n| n.port).collect();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    // The client: creates users one after another on whichever member is primary,
    // remembering each one acknowledged with w: majority.
    let writer = {
        let acknowledged = acknowledged.clone();
        let stop = stop.clone();
        let ports = ports.clone();
        std::thread::spawn(move || {
            let mut next = 0;
            let mut attempts = 0;
            while !stop.load(Ordering::Acquire) {
                attempts += 1;
                let name = format!("u{next}");
                let cmd = doc! {
                    "createUser": &name, "pwd": "x", "roles": [],
                    "writeConcern": {"w": "majority", "wtimeout": 5000}, "$db": "admin",
                };
                let reply = ports.iter().find_map(|port| {
                    let mut s = TcpStream::connect(("127.0.0.1", *port)).ok()?;
                    s.set_read_timeout(Some(Duration::from_secs(8))).ok()?;
                    let hello = doc! {"hello": 1, "$db": "admin"};
                    if try_roundtrip(&mut s, 1, &hello)?.get_bool("isWritablePrimary") != Ok(true) {
                        return None;
                    }
                    try_roundtrip(&mut s, 2, &cmd)
                });
                match reply {
                    Some(r) if ok(&r) && !r.contains_key("writeConcernError") => {
                        acknowledged.lock().unwrap().push(name);
                        next += 1;
                    }
                    // Committed by an attempt whose reply was lost: not acknowledged,
                    // so go on with the next name.
                    Some(r) if r.get_i32("code") == Ok(51003) => next += 1,
                    // Paces retries while there is no primary: a retry rate, not a wait.
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            attempts
        })
    };
    for round in 0..20 {
        let p = eventually(Duration::from_secs(30), "a primary", || {
            agreed_primary(&nodes.lock().unwrap(), &[0, 1, 2])
        });
        // Let the client write a little under this primary.
        let seen = acknowledged.lock().unwrap().len();
        eventually(
            Duration::from_secs(20),
            "writes under the new primary",
            || (acknowledged.lock().unwrap().len() >= seen + 2).then_some(()),
        );
        nodes.lock().unwrap()[p].kill();
        let others: Vec<usize> = (0..3).filter(|&i| i != p).collect();
        eventually(
            Duration::from_secs(30),
            &format!("a new primary in round {round}"),
            || agreed_primary(&nodes.lock().unwrap(), &others),
        );
        nodes.lock().unwrap()[p].start();
    }
    stop.store(true, Ordering::Release);
    let attempts = writer.join().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 40, "{acknowledged:?}");
    let nodes = nodes.lock().unwrap();
    for node in nodes.iter() {
        eventually(
            Duration::from_secs(30),
            "every acknowledged user on every member",
            || {
                let names = user_names(node)?;
                let missing: Vec<&String> =
                    acknowledged.iter().filter(|u| !names.contains(u)).collect();
                missing.is_empty().then_some(())
            },
        );
    }
    println!(
        "{} users acknowledged in {attempts} attempts, all on every member",
        acknowledged.len()
    );
}

fn signal(node: &Node, sig: &str) {
    let pid = node.child.as_ref().expect("running").id();
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn primary_cut_off_from_the_majority_stops_being_primary() {
    let (nodes, p) = fast_set();
    let others: Vec<usize> = (0..3).filter(|&i| i != p).collect();
    // Freeze both secondaries: the primary hears from nobody.
    for &i in &others {
        signal(&nodes[i], "-STOP");
    }
    let cut_at = Instant::now();
    eventually(
        Duration::from_secs(10),
        "the cut-off primary to step down",
        || (!nodes[p].is_primary()).then_some(()),
    );
    let took = cut_at.elapsed();
    let refused = nodes[p]
        .command(doc! {"createUser": "lonely", "pwd": "x", "roles": []})
        .unwrap();
    assert_eq!(refused.get_i32("code"), Ok(10107), "{refused}");
    for &i in &others {
        signal(&nodes[i], "-CONT");
    }
    // The resumed members' timers have run out while they were frozen, so an election
    // may follow: write to whichever member is primary until one acknowledges.
    eventually(
        Duration::from_secs(20),
        "a primary that takes writes again",
        || {
            let q = agreed_primary(&nodes, &[0, 1, 2])?;
            let reply =
                nodes[q].command(doc! {"createUser": "together", "pwd": "x", "roles": []})?;
            (ok(&reply) || reply.get_i32("code") == Ok(51003)).then_some(())
        },
    );
    println!("the cut-off primary stepped down after {took:?} (electionTimeoutMillis 1000)");
}

#[test]
fn reconfig_of_election_timeout_takes_effect_without_a_restart() {
    let (mut nodes, p) = fast_set();
    let mut config = nodes[p]
        .command(doc! {"replSetGetConfig": 1})
        .unwrap()
        .get_document("config")
        .unwrap()
        .clone();
    let version = config.get_i32("version").unwrap();
    config.insert("version", version + 1);
    config.insert(
        "settings",
        doc! {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 4000},
    );
    let reply = nodes[p].command(doc! {"replSetReconfig": config}).unwrap();
    assert!(ok(&reply), "{reply}");
    let others: Vec<usize> = (0..3).filter(|&i| i != p).collect();
    // Every member runs with the new timing once it has the new config.
    for node in &nodes {
        eventually(Duration::from_secs(10), "the new config everywhere", || {
            let c = node.command(doc! {"replSetGetConfig": 1})?;
            (c.get_document("config").ok()?.get_i32("version") == Ok(version + 1)).then_some(())
        });
    }
    // ... and each secondary has heard from the primary since it had the new config
    // (its lastHeartbeatRecv passes the time its status was read then).
    let q = eventually(Duration::from_secs(10), "a primary", || {
        agreed_primary(&nodes, &[0, 1, 2])
    });
    for i in (0..3).filter(|&i| i != q) {
        let heard_from_primary = |s: &Document| -> Option<bson::DateTime> {
            s.get_array("members")
                .ok()?
                .iter()
                .filter_map(Bson::as_document)
                .find(|m| m.get_str("name") == Ok(nodes[q].addr().as_str()))?
                .get_datetime("lastHeartbeatRecv")
                .ok()
                .copied()
        };
        let since = *nodes[i]
            .command(doc! {"replSetGetStatus": 1})
            .unwrap()
            .get_datetime("date")
            .unwrap();
        eventually(
            Duration::from_secs(10),
            "a heartbeat after the reconfig",
            || {
                let s = nodes[i].command(doc! {"replSetGetStatus": 1})?;
                (heard_from_primary(&s)? > since).then_some(())
            },
        );
    }
    nodes[q].kill();
    let killed_at = Instant::now();
    let rest: Vec<usize> = (0..3).filter(|&i| i != q).collect();
    eventually(Duration::from_secs(20), "a new primary", || {
        agreed_primary(&nodes, &rest)
    });
    let took = killed_at.elapsed();
    // With the old 1 s timeout this takes about 1 to 2 s.
    assert!(
        took >= Duration::from_millis(3500),
        "elected after {took:?}: the 4 s election timeout is not in force"
    );
    println!("new primary {took:?} after kill -9 with electionTimeoutMillis 4000 ({others:?})");
}

#[test]
fn forced_reconfig_on_a_lone_secondary_makes_it_primary() {
    let (mut nodes, p) = fast_set();
    create_user(&nodes[p], "kept");
    let s = (p + 1) % 3;
    eventually(Duration::from_secs(10), "the user on the survivor", || {
        user_names(&nodes[s])?
            .contains(&"kept".to_owned())
            .then_some(())
    });
    // The majority is gone for good: the primary and the other secondary die.
    nodes[p].kill();
    nodes[(p + 2) % 3].kill();
    // Once the survivor sees both down (its heartbeats to them failed, which takes
    // longer than its 1 s election timeout), it still is no primary.
    eventually(
        Duration::from_secs(20),
        "the survivor to see both down",
        || {
            let status = nodes[s].command(doc! {"replSetGetStatus": 1})?;
            let down = status
                .get_array("members")
                .ok()?
                .iter()
                .filter_map(Bson::as_document)
                .filter(|m| m.get_str("stateStr") == Ok("(not reachable/healthy)"))
                .count();
            (down == 2).then_some(())
        },
    );
    assert!(!nodes[s].is_primary(), "a lone member cannot be elected");
    let old = nodes[s]
        .command(doc! {"replSetGetConfig": 1})
        .unwrap()
        .get_document("config")
        .unwrap()
        .clone();
    let version = old.get_i32("version").unwrap();
    let mut config = old.clone();
    let me: Vec<Bson> = old
        .get_array("members")
        .unwrap()
        .iter()
        .filter(|m| m.as_document().unwrap().get_str("host") == Ok(nodes[s].addr().as_str()))
        .cloned()
        .collect();
    config.insert("members", me);
    // Without force the secondary refuses, as mongod does.
    let refused = nodes[s]
        .command(doc! {"replSetReconfig": config.clone()})
        .unwrap();
    assert_eq!(refused.get_i32("code"), Ok(10107), "{refused}");
    let forced = nodes[s]
        .command(doc! {"replSetReconfig": config, "force": true})
        .unwrap();
    assert!(ok(&forced), "{forced}");
    let now = eventually(
        Duration::from_secs(15),
        "the survivor as primary of the forced config",
        || {
            let config = nodes[s]
                .command(doc! {"replSetGetConfig": 1})?
                .get_document("config")
                .ok()?
                .clone();
            (nodes[s].is_primary() && config.get_i32("version").ok()? > version).then_some(config)
        },
    );
    assert!(now.get_i32("version").unwrap() >= version + 10_000, "{now}");
    assert_eq!(now.get_array("members").unwrap().len(), 1, "{now}");
    create_user(&nodes[s], "after");
    let names = user_names(&nodes[s]).unwrap();
    assert!(
        names.contains(&"kept".to_owned()) && names.contains(&"after".to_owned()),
        "{names:?}"
    );
    // The forced config survives a restart.
    nodes[s].kill();
    nodes[s].start();
    eventually(
        Duration::from_secs(15),
        "the survivor as primary again",
        || nodes[s].is_primary().then_some(()),
    );
    let again = nodes[s].command(doc! {"replSetGetConfig": 1}).unwrap();
    assert_eq!(
        again.get_document("config").unwrap().get_i32("version"),
        now.get_i32("version"),
        "{again}"
    );
}

#[test]
fn sigterm_on_the_primary_hands_over_well_before_the_election_timeout() {
    // A 10 s election timeout: without a hand-over a new primary takes that long.
    let (mut nodes, p) = set_with_election_timeout(10_000);
    let others: Vec<usize> = (0..3).filter(|&i| i != p).collect();
    // The hand-over needs this primary's vote for its successor, which openraft grants
    // once its leader lease (0.575 x the timeout) has passed since it was elected; a
    // primary that has just been elected hands over only when that has run out. The
    // lease is a span of time, not an event: wait it out from the election date the
    // primary reports.
    let elected = *nodes[p]
        .command(doc! {"replSetGetStatus": 1})
        .unwrap()
        .get_document("electionCandidateMetrics")
        .unwrap()
        .get_datetime("lastElectionDate")
        .unwrap();
    let lease_ends = elected.timestamp_millis() + 5_750 + 250;
    let now = bson::DateTime::now().timestamp_millis();
    std::thread::sleep(Duration::from_millis(
        lease_ends.saturating_sub(now).max(0) as u64
    ));
    signal(&nodes[p], "-TERM");
    let stopped_at = Instant::now();
    let q = eventually(
        Duration::from_secs(10),
        "a new primary after SIGTERM",
        || agreed_primary(&nodes, &others),
    );
    let took = stopped_at.elapsed();
    // Won by the primary's step-up request (mongod's hand-over reason), not by the
    // election timer running out.
    let metrics = nodes[q]
        .command(doc! {"replSetGetStatus": 1})
        .unwrap()
        .get_document("electionCandidateMetrics")
        .unwrap()
        .clone();
    assert_eq!(
        metrics.get_str("lastElectionReason"),
        Ok("stepUpRequestSkipDryRun"),
        "{took:?}: no hand-over: {metrics}"
    );
    let exit = nodes[p].child.take().unwrap().wait().unwrap();
    assert!(exit.success(), "{exit}");
    eventually(
        Duration::from_secs(10),
        "a write on the new primary",
        || {
            let reply = nodes[q].command(doc! {"createUser": "after", "pwd": "x", "roles": []})?;
            ok(&reply).then_some(())
        },
    );
    println!("new primary {took:?} after SIGTERM of the primary (electionTimeoutMillis 10000)");
}
