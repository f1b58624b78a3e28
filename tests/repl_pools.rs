//! Replica-set traffic over the outgoing pool `NetworkInterfaceTL-ReplNetwork`, with real
//! processes: the primary's pool holds a connection to each member; a member removed by
//! reconfig keeps its pooled connections until dropConnections, is not heartbeated (so its
//! pool does not come back) and comes back when re-added. The same with a shared keyFile
//! (members log in to each other as __system); a member with another key cannot join,
//! and a key file others may read is refused at startup.

mod common;

use bson::{doc, Bson, Document};
use common::Ferrod;
use std::time::{Duration, Instant};

const SET: &str = "rs0";
const REPL_POOL: &str = "NetworkInterfaceTL-ReplNetwork";
const HEARTBEAT_MS: u64 = 200;
const FAST_SCRAM: &[&str] = &[
    "--setParameter",
    "scramIterationCount=5000",
    "--setParameter",
    "scramSHA256IterationCount=5000",
];

/// One running member and a driver client logged in to it (when auth is on).
struct Member {
    node: Ferrod,
    client: mongodb::Client,
}

impl Member {
    fn addr(&self) -> String {
        self.node.addr()
    }

    /// Runs an admin command; Err is (code, errmsg) of an `ok: 0` reply.
    async fn admin(&self, cmd: Document) -> Result<Document, (i32, String)> {
        match self.client.database("admin").run_command(cmd).await {
            Ok(reply) => Ok(reply),
            Err(e) => match *e.kind {
                mongodb::error::ErrorKind::Command(ref c) => Err((c.code, c.message.clone())),
                ref other => panic!("command did not reach the server: {other:?}"),
            },
        }
    }

    async fn pool_stats(&self) -> Document {
        self.admin(doc! {"connPoolStats": 1})
            .await
            .expect("connPoolStats")
    }
}

async fn driver(node: &Ferrod, login: Option<(&str, &str)>) -> mongodb::Client {
    common::driver(&node.uri(), login, None).await
}

async fn start_plain(n: usize) -> Vec<Member> {
    start_members(n, &[]).await
}

/// `n` members of the set with `extra` arguments, not yet initiated.
async fn start_members(n: usize, extra: &[&str]) -> Vec<Member> {
    let mut args = vec!["--replSet", SET];
    args.extend_from_slice(extra);
    let mut members = Vec::new();
    for _ in 0..n {
        let node = Ferrod::start(&args);
        let client = driver(&node, None).await;
        members.push(Member { node, client });
    }
    members
}

/// Three members with `extra` arguments, initiated; returns them and the primary's index.
async fn start_initiated(extra: &[&str]) -> (Vec<Member>, usize) {
    let all = start_members(3, extra).await;
    all[0]
        .admin(doc! {"replSetInitiate": config(1, &all, &[0, 1, 2])})
        .await
        .expect("initiate");
    let p = eventually(Duration::from_secs(15), "a primary", || {
        primary_index(&all, &[0, 1, 2])
    })
    .await;
    (all, p)
}

/// Starts members sharing `key`, not yet initiated; their clients are anonymous, which
/// the localhost exception lets initiate the set and create the first user.
async fn start_with_key(keys: &[&std::path::Path]) -> Vec<Member> {
    let mut members = Vec::new();
    for key in keys {
        let mut args = vec!["--replSet", SET, "--keyFile", key.to_str().unwrap()];
        args.extend_from_slice(FAST_SCRAM);
        let node = Ferrod::start(&args);
        let client = driver(&node, None).await;
        members.push(Member { node, client });
    }
    members
}

/// Creates the first user (root) on the primary through the localhost exception, then
/// logs every member in `ids` in as it, once the replicated catalog has reached it.
async fn create_root_and_log_in(all: &mut [Member], primary: usize, ids: &[usize]) {
    all[primary]
        .admin(doc! {"createUser": "admin", "pwd": "adminpw", "roles": ["root"]})
        .await
        .expect("createUser on the primary through the localhost exception");
    for &i in ids {
        let node = &all[i].node;
        let client = eventually(
            Duration::from_secs(15),
            "the user on every member",
            || async {
                let client = driver(node, Some(("admin", "adminpw"))).await;
                let ping = client.database("admin").run_command(doc! {"ping": 1}).await;
                ping.is_ok().then_some(client)
            },
        )
        .await;
        all[i].client = client;
    }
}

/// A key file with owner-only permissions, as mongod requires.
fn key_file(dir: &std::path::Path, name: &str, secret: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, secret).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Members with fixed `_id`s (their index in `all`), fast heartbeats and elections.
fn config(version: i32, all: &[Member], ids: &[usize]) -> Document {
    let members: Vec<Bson> = ids
        .iter()
        .map(|&i| Bson::Document(doc! {"_id": i as i32, "host": all[i].addr()}))
        .collect();
    doc! {
        "_id": SET, "version": version, "members": members,
        "settings": {"heartbeatIntervalMillis": HEARTBEAT_MS as i32, "electionTimeoutMillis": 1000},
    }
}

async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn primary_index(all: &[Member], ids: &[usize]) -> Option<usize> {
    let mut primaries = Vec::new();
    for &i in ids {
        let hello = all[i].admin(doc! {"hello": 1}).await.ok()?;
        if hello.get_bool("isWritablePrimary").unwrap_or(false) {
            primaries.push(i);
        }
    }
    (primaries.len() == 1).then(|| primaries[0])
}

fn int(d: &Document, key: &str) -> i64 {
    match d.get(key) {
        Some(Bson::Int32(n)) => *n as i64,
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(f)) => *f as i64,
        other => panic!("{key} is {other:?} in {d}"),
    }
}

/// `{inUse, available, refreshing}` of `host` in the replication pool, if it is listed.
fn repl_pool_host(stats: &Document, host: &str) -> Option<(i64, i64, i64)> {
    let entry = stats
        .get_document("pools")
        .ok()?
        .get_document(REPL_POOL)
        .ok()?
        .get_document(host)
        .ok()?;
    Some((
        int(entry, "inUse"),
        int(entry, "available"),
        int(entry, "refreshing"),
    ))
}

/// `inUse + available + refreshing` for `host` in every named pool and in `hosts`.
fn live_connections_anywhere(stats: &Document, host: &str) -> i64 {
    let count = |d: &Document| int(d, "inUse") + int(d, "available") + int(d, "refreshing");
    let mut total = 0;
    for (_, pool) in stats.get_document("pools").unwrap() {
        if let Some(entry) = pool.as_document().and_then(|p| p.get_document(host).ok()) {
            total += count(entry);
        }
    }
    if let Ok(entry) = stats.get_document("hosts").unwrap().get_document(host) {
        total += count(entry);
    }
    total
}

async fn wait_for_idle_pool(primary: &Member, host: &str, what: &str) {
    eventually(Duration::from_secs(10), what, || async {
        let stats = primary.pool_stats().await;
        let (_, available, _) = repl_pool_host(&stats, host)?;
        (available >= 1).then_some(())
    })
    .await
}

/// Waits for `n` more heartbeats from `node` to the member `of` (its lastHeartbeat in
/// `node`'s replSetGetStatus moving): windows of "nothing happened" are measured in the
/// set's own heartbeats, not on a clock.
async fn heartbeats(node: &Member, of: &str, n: u64) {
    let last = || async {
        let status = node.admin(doc! {"replSetGetStatus": 1}).await.ok()?;
        status
            .get_array("members")
            .ok()?
            .iter()
            .filter_map(Bson::as_document)
            .find(|m| m.get_str("name") == Ok(of))?
            .get_datetime("lastHeartbeat")
            .ok()
            .copied()
    };
    for _ in 0..n {
        let seen = last().await;
        let timeout = Duration::from_millis(HEARTBEAT_MS * 20);
        eventually(timeout, "a heartbeat", || async {
            let now = last().await?;
            (Some(now) > seen).then_some(())
        })
        .await;
    }
}

/// issue 4's central flow on a three-member set.
/// `keyed`: the members share a keyFile; the first user is created once there is a
/// primary, and the drivers log in as it.
async fn removed_member_pool_lingers_until_dropped_and_returns_when_re_added(
    mut all: Vec<Member>,
    keyed: bool,
) {
    let reply = all[0]
        .admin(doc! {"replSetInitiate": config(1, &all, &[0, 1, 2])})
        .await;
    assert!(reply.is_ok(), "initiate failed: {reply:?}");
    let p = eventually(Duration::from_secs(15), "a primary", || {
        primary_index(&all, &[0, 1, 2])
    })
    .await;
    if keyed {
        create_root_and_log_in(&mut all, p, &[0, 1, 2]).await;
        // Member traffic needs the `internal` action, which only __system has (not root).
        let heartbeat = all[(p + 1) % 3]
            .admin(doc! {"replSetHeartbeat": SET, "configVersion": 1, "from": "x:1", "fromId": 9})
            .await;
        assert_eq!(
            heartbeat.as_ref().err().map(|e| e.0),
            Some(13),
            "{heartbeat:?}"
        );
    }
    let primary = &all[p];
    let (gone, stay) = ((p + 1) % 3, (p + 2) % 3);
    for other in [gone, stay] {
        wait_for_idle_pool(
            primary,
            &all[other].addr(),
            "a pooled connection to each member",
        )
        .await;
    }
    let stats = primary.pool_stats().await;
    assert!(
        int(&stats, "totalInUse") + int(&stats, "totalAvailable") <= int(&stats, "totalCreated"),
        "{stats}"
    );
    let view = eventually(
        Duration::from_secs(10),
        "the set in replicaSets",
        || async {
            let stats = primary.pool_stats().await;
            let hosts = stats
                .get_document("replicaSets")
                .ok()?
                .get_document(SET)
                .ok()?
                .get_array("hosts")
                .ok()?
                .clone();
            let all_ok = hosts
                .iter()
                .all(|h| h.as_document().unwrap().get_bool("ok") == Ok(true));
            all_ok.then_some(hosts)
        },
    )
    .await;
    assert_eq!(view.len(), 3, "{view:?}");
    let masters: Vec<&str> = view
        .iter()
        .map(|h| h.as_document().unwrap())
        .filter(|h| h.get_bool("ismaster") == Ok(true))
        .map(|h| h.get_str("addr").unwrap())
        .collect();
    assert_eq!(masters, vec![all[p].addr()], "{view:?}");
    for h in &view {
        let h = h.as_document().unwrap();
        for field in ["hidden", "secondary"] {
            assert!(h.get_bool(field).is_ok(), "{field} in {h}");
        }
        assert!(h.get_i32("pingTimeMillis").is_ok(), "{h}");
    }

    // Reconfig it away: no more heartbeats, but its pooled connections stay.
    let mut remaining = vec![p, stay];
    remaining.sort();
    primary
        .admin(doc! {"replSetReconfig": config(2, &all, &remaining)})
        .await
        .expect("reconfig removing a member");
    heartbeats(primary, &all[stay].addr(), 5).await;
    let stats = primary.pool_stats().await;
    let (in_use, available, _) = repl_pool_host(&stats, &all[gone].addr())
        .unwrap_or_else(|| panic!("the removed member's pool went away: {stats}"));
    assert!(in_use + available >= 1, "{stats}");

    // dropConnections for it: nothing left for that host, the other member untouched.
    let reply = primary
        .admin(doc! {"dropConnections": 1, "hostAndPort": [all[gone].addr()]})
        .await
        .expect("dropConnections");
    assert_eq!(reply.get_f64("ok"), Ok(1.0));
    let stats = primary.pool_stats().await;
    assert_eq!(
        live_connections_anywhere(&stats, &all[gone].addr()),
        0,
        "{stats}"
    );
    let (in_use, available, _) = repl_pool_host(&stats, &all[stay].addr())
        .unwrap_or_else(|| panic!("the remaining member's pool is gone: {stats}"));
    assert!(in_use + available >= 1, "{stats}");

    // Nobody heartbeats the removed member, so its pool does not come back.
    heartbeats(primary, &all[stay].addr(), 5).await;
    let stats = primary.pool_stats().await;
    assert_eq!(
        live_connections_anywhere(&stats, &all[gone].addr()),
        0,
        "{stats}"
    );
    let (in_use, available, _) = repl_pool_host(&stats, &all[stay].addr()).unwrap();
    assert!(in_use + available >= 1, "{stats}");

    if keyed {
        // The whole-set drop logs in with the URI's user; a wrong password is reported.
        let host = all[gone].addr();
        let out = admin_drop(
            &format!("mongodb://admin:adminpw@{}/", primary.addr()),
            &host,
        );
        assert!(out.success, "{}", out.text);
        assert!(
            out.stdout.contains("2 of 2 members dropped"),
            "{}",
            out.text
        );
        let out = admin_drop(&format!("mongodb://admin:wrong@{}/", primary.addr()), &host);
        assert!(!out.success, "{}", out.text);
        assert!(out.stdout.contains("unreachable: "), "{}", out.text);
        assert!(out.stdout.contains("Authentication failed"), "{}", out.text);
    }

    // Re-added, it is heartbeated again over a fresh pooled connection.
    primary
        .admin(doc! {"replSetReconfig": config(3, &all, &[0, 1, 2])})
        .await
        .expect("reconfig re-adding the member");
    wait_for_idle_pool(
        primary,
        &all[gone].addr(),
        "the re-added member's pool to come back",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_member_keeps_pooled_connections_until_drop_connections() {
    removed_member_pool_lingers_until_dropped_and_returns_when_re_added(
        start_plain(3).await,
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_flow_with_authorization_and_a_shared_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "key", "c2hhcmVkLXNlY3JldC1mb3ItdGhlLXNldA==\n");
    let members = start_with_key(&[&key, &key, &key]).await;
    removed_member_pool_lingers_until_dropped_and_returns_when_re_added(members, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_member_pool_ends_after_host_timeout() {
    // Without dropConnections, the removed member's pool lasts until it has been unused
    // for ShardingTaskExecutorPoolHostTimeoutMS; the heartbeated member's never ends.
    let (all, p) = start_initiated(&[
        "--setParameter",
        "ShardingTaskExecutorPoolRefreshRequirementMS=600",
        "--setParameter",
        "ShardingTaskExecutorPoolRefreshTimeoutMS=500",
        "--setParameter",
        "ShardingTaskExecutorPoolHostTimeoutMS=2000",
    ])
    .await;
    let (gone, stay) = ((p + 1) % 3, (p + 2) % 3);
    wait_for_idle_pool(&all[p], &all[gone].addr(), "a pooled connection").await;
    let mut remaining = vec![p, stay];
    remaining.sort();
    all[p]
        .admin(doc! {"replSetReconfig": config(2, &all, &remaining)})
        .await
        .expect("reconfig removing a member");
    let removed_at = Instant::now();
    heartbeats(&all[p], &all[stay].addr(), 2).await;
    let stats = all[p].pool_stats().await;
    assert!(
        repl_pool_host(&stats, &all[gone].addr()).is_some(),
        "gone before the host timeout: {stats}"
    );
    eventually(
        Duration::from_secs(10),
        "the host timeout to end the pool",
        || async {
            let stats = all[p].pool_stats().await;
            repl_pool_host(&stats, &all[gone].addr())
                .is_none()
                .then_some(())
        },
    )
    .await;
    // The timeout counts from the pool's last use, the last heartbeat before the reconfig:
    // up to one heartbeat interval (200 ms) before `removed_at`.
    assert!(removed_at.elapsed() >= Duration::from_millis(1700));
    let stats = all[p].pool_stats().await;
    let (in_use, available, _) = repl_pool_host(&stats, &all[stay].addr())
        .unwrap_or_else(|| panic!("the heartbeated member's pool ended: {stats}"));
    assert!(in_use + available >= 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_raft_rpcs_share_connections_within_max_size() {
    // With MaxSize 1, heartbeats and Raft RPCs to a member queue for one connection:
    // the set still forms and stays healthy, and no second connection is ever opened.
    let (all, p) = start_initiated(&["--setParameter", "ShardingTaskExecutorPoolMaxSize=1"]).await;
    let others = [(p + 1) % 3, (p + 2) % 3];
    for &o in &others {
        wait_for_idle_pool(&all[p], &all[o].addr(), "a pooled connection").await;
    }
    for _ in 0..10 {
        heartbeats(&all[p], &all[others[0]].addr(), 1).await;
        let stats = all[p].pool_stats().await;
        for &o in &others {
            let host = all[o].addr();
            let (in_use, available, refreshing) = repl_pool_host(&stats, &host).unwrap();
            assert!(in_use + available + refreshing <= 1, "{stats}");
            let entry = stats
                .get_document("pools")
                .unwrap()
                .get_document(REPL_POOL)
                .unwrap()
                .get_document(&host)
                .unwrap();
            assert_eq!(int(entry, "created"), 1, "{stats}");
        }
    }
    let status = all[p].admin(doc! {"replSetGetStatus": 1}).await.unwrap();
    for m in status.get_array("members").unwrap() {
        assert_eq!(
            m.as_document().unwrap().get_f64("health"),
            Ok(1.0),
            "{status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_peer_gets_13_for_member_commands() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "key", "c2hhcmVkLXNlY3JldC1mb3ItdGhlLXNldA==");
    let mut args = vec!["--replSet", SET, "--keyFile", key.to_str().unwrap()];
    args.extend_from_slice(FAST_SCRAM);
    let node = Ferrod::start(&args);
    for cmd in [
        doc! {"replSetHeartbeat": SET, "configVersion": 1, "from": "x:1", "$db": "admin"},
        doc! {"_ferrodRaftVote": 1, "target": 0i64, "$db": "admin"},
        doc! {"_ferrodRaftAppend": 1, "target": 0i64, "$db": "admin"},
    ] {
        let reply = node.command(cmd.clone());
        assert_eq!(reply.get_i32("code"), Ok(13), "{cmd}: {reply}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_with_another_key_cannot_join_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let good = key_file(dir.path(), "good", "dGhlLXJpZ2h0LWtleQ==");
    let bad = key_file(dir.path(), "bad", "YS1kaWZmZXJlbnQta2V5");
    let mut all = start_with_key(&[&good, &good, &bad]).await;

    // Initiate with it: the quorum check cannot log in to it.
    let err = all[0]
        .admin(doc! {"replSetInitiate": config(1, &all, &[0, 1, 2])})
        .await
        .expect_err("initiate including a member with another key");
    assert_eq!(err.0, 74, "{err:?}");
    assert!(err.1.contains(&all[2].addr()), "{err:?}");
    assert!(err.1.contains("Authentication failed"), "{err:?}");
    // Each side says why: the caller could not log in, the other refused the login.
    let line = all[0].node.wait_for_log(
        "Failed to authenticate to a cluster member",
        Duration::from_secs(5),
    );
    assert!(line.contains(&all[2].addr()), "{line}");
    assert!(line.contains("AuthenticationFailed"), "{line}");
    all[2]
        .node
        .wait_for_log("\"Failed to authenticate\"", Duration::from_secs(5));

    // Without it the set forms. A reconfig adding it is accepted, as by mongod (a
    // majority of the new config answered), but it never joins: it stays unhealthy, with
    // the reason in its heartbeat message, and never receives the config.
    all[0]
        .admin(doc! {"replSetInitiate": config(1, &all, &[0, 1])})
        .await
        .expect("initiate with the two members sharing a key");
    let p = eventually(Duration::from_secs(15), "a primary", || {
        primary_index(&all, &[0, 1])
    })
    .await;
    create_root_and_log_in(&mut all, p, &[0, 1]).await;
    all[p]
        .admin(doc! {"replSetReconfig": config(2, &all, &[0, 1, 2])})
        .await
        .expect("reconfig with a majority of the new config reachable");
    for _ in 0..5 {
        // Heartbeats to the member that shares the key (those to the outsider fail).
        heartbeats(&all[p], &all[1 - p].addr(), 2).await;
        let status = all[p].admin(doc! {"replSetGetStatus": 1}).await.unwrap();
        let outsider = status
            .get_array("members")
            .unwrap()
            .iter()
            .filter_map(Bson::as_document)
            .find(|m| m.get_str("name") == Ok(all[2].addr().as_str()))
            .unwrap_or_else(|| panic!("the added member is not listed: {status}"))
            .clone();
        assert_eq!(outsider.get_f64("health"), Ok(0.0), "{outsider}");
        assert_eq!(outsider.get_i32("state"), Ok(8), "{outsider}");
        assert_eq!(
            outsider.get_str("stateStr"),
            Ok("(not reachable/healthy)"),
            "{outsider}"
        );
        let message = outsider.get_str("lastHeartbeatMessage").unwrap_or("");
        assert!(message.contains("Authentication failed"), "{outsider}");
        let hello = all[2].admin(doc! {"hello": 1}).await.unwrap();
        assert!(hello.get("setName").is_none(), "{hello}");
        let stats = all[p].pool_stats().await;
        let (in_use, available, _) = repl_pool_host(&stats, &all[2].addr()).unwrap_or((0, 0, 0));
        assert_eq!(
            in_use + available,
            0,
            "no authenticated connection: {stats}"
        );
    }
    // The set itself is unharmed.
    assert_eq!(primary_index(&all, &[0, 1]).await, Some(p));
}

#[test]
fn key_file_readable_by_others_is_refused_at_startup() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "c2VjcmV0a2V5").unwrap();
    let run = |mode: u32| {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let db = tempfile::tempdir().unwrap();
        std::process::Command::new(common::FERROD)
            .args(["--port", "0", "--replSet", SET, "--keyFile"])
            .arg(&key)
            .arg("--dbpath")
            .arg(db.path())
            .output()
            .unwrap()
    };
    for mode in [0o644, 0o640, 0o604] {
        let out = run(mode);
        assert_eq!(out.status.code(), Some(1), "mode {mode:o}");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!("permissions on {} are too open", key.display())),
            "mode {mode:o}: {text}"
        );
        assert!(text.contains("Unable to acquire security key[s]"), "{text}");
    }
}

#[test]
fn key_file_content_rules_are_mongods() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("abc", "must be at least 6 characters"),
        ("abc d\n e", "must be at least 6 characters"),
        ("secret!key", "invalid char in key file"),
        (&"a".repeat(1025), "must be at most 1024 characters"),
    ];
    for (i, (content, expected)) in cases.iter().enumerate() {
        let key = key_file(dir.path(), &format!("k{i}"), content);
        let db = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(common::FERROD)
            .args(["--port", "0", "--keyFile"])
            .arg(&key)
            .arg("--dbpath")
            .arg(db.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{content:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{content:?}: {stderr}");
    }
    // Whitespace anywhere is ignored; 1024 base64 characters are fine.
    for (i, content) in ["c2Vj\n cmV0\t\n", &"A".repeat(1024)].iter().enumerate() {
        let key = key_file(dir.path(), &format!("ok{i}"), content);
        let mut args = vec!["--keyFile", key.to_str().unwrap()];
        args.extend_from_slice(FAST_SCRAM);
        let node = Ferrod::start(&args);
        assert_eq!(node.command(common::ping_doc()).get_f64("ok"), Ok(1.0));
    }
}

/// issue 14: with `dropConnectionsToRemovedMembers` on (here set at runtime on one member
/// and at startup on the others), every remaining member drops its pooled connections to
/// a member as soon as the committed reconfig removes it, logging the audit line a manual
/// dropConnections logs; the remaining member's pools are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_member_is_dropped_by_every_member_when_opted_in() {
    let all = start_members(
        3,
        &["--setParameter", "dropConnectionsToRemovedMembers=true"],
    )
    .await;
    all[0]
        .admin(doc! {"replSetInitiate": config(1, &all, &[0, 1, 2])})
        .await
        .expect("initiate");
    let p = eventually(Duration::from_secs(15), "a primary", || {
        primary_index(&all, &[0, 1, 2])
    })
    .await;
    let (gone, stay) = ((p + 1) % 3, (p + 2) % 3);
    let gone_host = all[gone].addr();
    // Off then on again at runtime on the primary: setParameter is honoured.
    for value in [false, true] {
        all[p]
            .admin(doc! {"setParameter": 1, "dropConnectionsToRemovedMembers": value})
            .await
            .expect("setParameter");
    }
    for i in [p, stay] {
        wait_for_idle_pool(&all[i], &gone_host, "pooled connections to the member").await;
    }
    let mut remaining = vec![p, stay];
    remaining.sort();
    all[p]
        .admin(doc! {"replSetReconfig": config(2, &all, &remaining)})
        .await
        .expect("reconfig removing a member");
    for i in [p, stay] {
        let line = all[i]
            .node
            .wait_for_log("Dropping all pooled connections", Duration::from_secs(10));
        assert!(line.contains(&gone_host), "{line}");
        assert!(line.contains("ReplCoord"), "{line}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stats = all[i].pool_stats().await;
            if live_connections_anywhere(&stats, &gone_host) == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "member {i} (primary {p}): {stats}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Nothing else was dropped: the remaining members still pool to each other.
    heartbeats(&all[p], &all[stay].addr(), 2).await;
    let stats = all[p].pool_stats().await;
    let (in_use, available, _) = repl_pool_host(&stats, &all[stay].addr()).unwrap();
    assert!(in_use + available >= 1, "{stats}");
    assert_eq!(live_connections_anywhere(&stats, &gone_host), 0, "{stats}");
}

/// The default stays mongod's: off, nothing is dropped by a reconfig and no audit line is
/// logged (the lingering pool itself is shown by the flow above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_member_is_not_dropped_by_default() {
    let (all, p) = start_initiated(&[]).await;
    let reply = all[p]
        .admin(doc! {"getParameter": 1, "dropConnectionsToRemovedMembers": 1})
        .await
        .expect("getParameter");
    assert_eq!(
        reply.get_bool("dropConnectionsToRemovedMembers"),
        Ok(false),
        "{reply}"
    );
    let (gone, stay) = ((p + 1) % 3, (p + 2) % 3);
    wait_for_idle_pool(&all[p], &all[gone].addr(), "a pooled connection").await;
    let mut remaining = vec![p, stay];
    remaining.sort();
    all[p]
        .admin(doc! {"replSetReconfig": config(2, &all, &remaining)})
        .await
        .expect("reconfig removing a member");
    heartbeats(&all[p], &all[stay].addr(), 5).await;
    let stats = all[p].pool_stats().await;
    let (in_use, available, _) = repl_pool_host(&stats, &all[gone].addr())
        .unwrap_or_else(|| panic!("dropped although the parameter is off: {stats}"));
    assert!(in_use + available >= 1, "{stats}");
    assert!(
        !all[p]
            .node
            .log_lines()
            .iter()
            .any(|l| l.contains("Dropping all pooled connections")),
        "an automatic drop with the parameter off"
    );
}

/// Runs `ferrod admin drop-connections --uri <uri> --host <host>`.
fn admin_drop(uri: &str, host: &str) -> common::Outcome {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferrod"));
    cmd.args([
        "admin",
        "drop-connections",
        "--uri",
        uri,
        "--host",
        host,
        "--timeout-ms",
        "3000",
    ]);
    common::run(cmd, Duration::from_secs(60))
}

/// issue 14: one command for the whole set. From one seed it finds every member through
/// hello, drops the host's pooled connections on each and reports before/after; with a
/// member down it names it as unreachable and exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_drop_connections_runs_on_every_member_and_reports_a_down_one() {
    let (mut all, p) = start_initiated(&[]).await;
    let (target, down) = ((p + 1) % 3, (p + 2) % 3);
    let host = all[target].addr();
    let uri = format!("mongodb://{}/?replicaSet={SET}", all[p].addr());
    wait_for_idle_pool(&all[p], &host, "a pooled connection to the member").await;

    let out = admin_drop(&uri, &host);
    assert!(out.success, "{}", out.text);
    assert!(
        out.stdout.contains("3 of 3 members dropped"),
        "{}",
        out.text
    );
    let primary_line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{}\t", all[p].addr())))
        .unwrap_or_else(|| panic!("no line for the primary: {}", out.text));
    assert!(primary_line.contains("\tdropped\tbefore: "), "{}", out.text);
    assert!(!primary_line.contains("before: 0\t"), "{}", out.text);
    // Each member logged the audit line of a manual dropConnections.
    for m in &all {
        let line = m
            .node
            .wait_for_log("Dropping all pooled connections", Duration::from_secs(5));
        assert!(line.contains(&host), "{line}");
    }

    let down_addr = all[down].addr();
    all[down].node.terminate();
    let out = admin_drop(&uri, &host);
    assert!(!out.success, "{}", out.text);
    assert!(
        out.stdout.contains(&format!("{down_addr}\tunreachable: ")),
        "{}",
        out.text
    );
    assert!(
        out.stdout.contains("2 of 3 members dropped"),
        "{}",
        out.text
    );
    for i in [p, target] {
        let addr = all[i].addr();
        assert!(
            out.stdout.contains(&format!("{addr}\tdropped\tbefore: ")),
            "{}",
            out.text
        );
    }
}
