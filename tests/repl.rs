//! Replica-set membership against real ferrod processes on 127.0.0.1: initiate, election,
//! status, reconfig, heartbeats, stepdown, failover, and the exact errors for bad configs.

mod common;

use common::{admin, eventually, ok};

use bson::{doc, Bson, Document};
use common::Ferrod;
use std::time::{Duration, Instant};

const SET: &str = "rs0";

fn start_set(n: usize) -> Vec<Ferrod> {
    (0..n).map(|_| Ferrod::start(&["--replSet", SET])).collect()
}

fn member_docs(nodes: &[&Ferrod]) -> Vec<Bson> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Bson::Document(doc! {"_id": i as i32, "host": n.addr()}))
        .collect()
}

/// A config with fast heartbeats and elections so the tests stay short.
fn fast_config(version: i32, members: Vec<Bson>) -> Document {
    doc! {
        "_id": SET, "version": version, "members": members,
        "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000},
    }
}

/// The index of the node every live node agrees is primary.
fn agreed_primary(nodes: &[&Ferrod]) -> Option<usize> {
    let hellos: Vec<Document> = nodes.iter().map(|n| admin(n, doc! {"hello": 1})).collect();
    let primaries: Vec<usize> = hellos
        .iter()
        .enumerate()
        .filter(|(_, h)| h.get_bool("isWritablePrimary").unwrap_or(false))
        .map(|(i, _)| i)
        .collect();
    if primaries.len() != 1 {
        return None;
    }
    let p = primaries[0];
    let host = nodes[p].addr();
    hellos
        .iter()
        .all(|h| h.get_str("primary").ok() == Some(host.as_str()))
        .then_some(p)
}

fn initiate_three(nodes: &[Ferrod]) -> usize {
    let refs: Vec<&Ferrod> = nodes.iter().collect();
    let reply = admin(
        &nodes[0],
        doc! {"replSetInitiate": fast_config(1, member_docs(&refs))},
    );
    assert!(ok(&reply), "initiate failed: {reply}");
    eventually(Duration::from_secs(10), "a primary all agree on", || {
        agreed_primary(&refs)
    })
}

fn status(node: &Ferrod) -> Document {
    let s = admin(node, doc! {"replSetGetStatus": 1});
    assert!(ok(&s), "replSetGetStatus failed: {s}");
    s
}

fn member<'a>(status: &'a Document, host: &str) -> Option<&'a Document> {
    status
        .get_array("members")
        .unwrap()
        .iter()
        .filter_map(Bson::as_document)
        .find(|m| m.get_str("name") == Ok(host))
}

#[test]
fn uninitialized_member_reports_no_config() {
    let node = Ferrod::start(&["--replSet", SET]);
    let hello = admin(&node, doc! {"hello": 1});
    assert_eq!(hello.get_bool("isWritablePrimary"), Ok(false), "{hello}");
    assert_eq!(hello.get_bool("secondary"), Ok(false));
    assert_eq!(hello.get_bool("isreplicaset"), Ok(true));
    assert!(hello.get_document("topologyVersion").is_ok());
    let s = admin(&node, doc! {"replSetGetStatus": 1});
    assert_eq!(s.get_i32("code"), Ok(94), "{s}");
    assert_eq!(s.get_str("codeName"), Ok("NotYetInitialized"));
    let c = admin(&node, doc! {"replSetGetConfig": 1});
    assert_eq!(c.get_i32("code"), Ok(94), "{c}");
    let r = admin(
        &node,
        doc! {"replSetReconfig": fast_config(2, member_docs(&[&node]))},
    );
    assert_eq!(r.get_i32("code"), Ok(94), "{r}");
}

#[test]
fn standalone_refuses_replication_commands() {
    let node = Ferrod::start(&[]);
    let s = admin(&node, doc! {"replSetGetStatus": 1});
    assert_eq!(s.get_i32("code"), Ok(76), "{s}");
    assert_eq!(s.get_str("errmsg"), Ok("not running with --replSet"));
    let hello = admin(&node, doc! {"hello": 1});
    assert_eq!(hello.get_bool("isWritablePrimary"), Ok(true));
    assert!(hello.get("setName").is_none());
}

#[test]
fn initiate_without_config_uses_defaults() {
    let node = Ferrod::start(&["--replSet", SET]);
    let reply = admin(&node, doc! {"replSetInitiate": {}});
    assert!(ok(&reply), "{reply}");
    let config = admin(&node, doc! {"replSetGetConfig": 1});
    let config = config.get_document("config").unwrap();
    assert_eq!(config.get_str("_id"), Ok(SET));
    let settings = config.get_document("settings").unwrap();
    assert_eq!(settings.get_i32("heartbeatIntervalMillis"), Ok(2000));
    assert_eq!(settings.get_i32("electionTimeoutMillis"), Ok(10000));
    assert_eq!(settings.get_i32("heartbeatTimeoutSecs"), Ok(10));
    let members = config.get_array("members").unwrap();
    assert_eq!(members.len(), 1);
    // A single member elects itself without waiting for an election timeout.
    eventually(
        Duration::from_secs(5),
        "the single member to be primary",
        || {
            admin(&node, doc! {"hello": 1})
                .get_bool("isWritablePrimary")
                .ok()
                .filter(|p| *p)
        },
    );
    let again = admin(&node, doc! {"replSetInitiate": {}});
    assert_eq!(again.get_i32("code"), Ok(23), "{again}");
}

#[test]
fn initiate_config_without_version_is_version_1() {
    let node = Ferrod::start(&["--replSet", SET]);
    let reply = admin(
        &node,
        doc! {"replSetInitiate": {"_id": SET, "members": [{"_id": 0, "host": node.addr()}]}},
    );
    assert!(ok(&reply), "{reply}");
    let config = admin(&node, doc! {"replSetGetConfig": 1});
    let config = config.get_document("config").unwrap();
    assert_eq!(config.get_i32("version"), Ok(1), "{config}");
}

#[test]
fn bad_configs_get_mongods_codes() {
    let node = Ferrod::start(&["--replSet", SET]);
    let me = node.addr();
    let cases: Vec<(Document, i32)> = vec![
        // Wrong set name.
        (
            doc! {"_id": "other", "version": 1, "members": [{"_id": 0, "host": &me}]},
            93,
        ),
        // This node is not in the config.
        (
            doc! {"_id": SET, "version": 1, "members": [{"_id": 0, "host": "127.0.0.1:1"}]},
            93,
        ),
        // Duplicate ids and hosts.
        (
            doc! {"_id": SET, "version": 1, "members": [{"_id": 0, "host": &me}, {"_id": 0, "host": "127.0.0.1:2"}]},
            2,
        ),
        (
            doc! {"_id": SET, "version": 1, "members": [{"_id": 0, "host": &me}, {"_id": 1, "host": &me}]},
            2,
        ),
        // Unknown member field.
        (
            doc! {"_id": SET, "version": 1, "members": [{"_id": 0, "host": &me, "colour": "red"}]},
            40415,
        ),
        // Arbiters are refused.
        (
            doc! {"_id": SET, "version": 1, "members": [{"_id": 0, "host": &me}, {"_id": 1, "host": "127.0.0.1:2", "arbiterOnly": true}]},
            2,
        ),
        // Hidden members must have priority 0.
        (
            doc! {"_id": SET, "version": 1, "members": [{"_id": 0, "host": &me}, {"_id": 1, "host": "127.0.0.1:2", "hidden": true}]},
            2,
        ),
        // Wrong types.
        (
            doc! {"_id": SET, "version": "1", "members": [{"_id": 0, "host": &me}]},
            14,
        ),
        (
            doc! {"_id": SET, "version": 1, "members": [{"_id": 0, "host": 5}]},
            14,
        ),
        (doc! {"_id": SET, "version": 1}, 40414),
        (
            doc! {"_id": SET, "version": 1, "members": [{"_id": 0, "host": "127.0.0.1:99999"}]},
            9,
        ),
    ];
    for (config, code) in cases {
        let reply = admin(&node, doc! {"replSetInitiate": config.clone()});
        assert_eq!(
            reply.get_i32("code"),
            Ok(code),
            "config {config} gave {reply}"
        );
    }
    // Eight voters, 51 members.
    let voters: Vec<Bson> = (0..8)
        .map(|i| Bson::Document(doc! {"_id": i, "host": if i == 0 { me.clone() } else { format!("127.0.0.1:{}", 1000 + i) }}))
        .collect();
    let reply = admin(
        &node,
        doc! {"replSetInitiate": {"_id": SET, "version": 1, "members": voters}},
    );
    assert_eq!(reply.get_i32("code"), Ok(2), "{reply}");
    assert!(reply
        .get_str("errmsg")
        .unwrap()
        .contains("8 voting members"));
    let many: Vec<Bson> = (0..51)
        .map(|i| Bson::Document(doc! {"_id": i, "host": format!("127.0.0.1:{}", 1000 + i), "votes": 0, "priority": 0}))
        .collect();
    let reply = admin(
        &node,
        doc! {"replSetInitiate": {"_id": SET, "version": 1, "members": many}},
    );
    assert_eq!(reply.get_i32("code"), Ok(2), "{reply}");
    // A member that does not answer fails the quorum check.
    let reply = admin(
        &node,
        doc! {"replSetInitiate": fast_config(1, vec![
            Bson::Document(doc! {"_id": 0, "host": &me}),
            Bson::Document(doc! {"_id": 1, "host": "127.0.0.1:1"}),
        ])},
    );
    assert_eq!(reply.get_i32("code"), Ok(74), "{reply}");
    // Nothing above initiated the set.
    assert_eq!(
        admin(&node, doc! {"replSetGetStatus": 1}).get_i32("code"),
        Ok(94)
    );
}

#[test]
fn three_members_elect_one_primary_and_agree_on_status() {
    let nodes = start_set(3);
    let p = initiate_three(&nodes);
    let refs: Vec<&Ferrod> = nodes.iter().collect();
    eventually(
        Duration::from_secs(10),
        "status to agree on all members",
        || {
            let statuses: Vec<Document> = refs.iter().map(|n| status(n)).collect();
            let all_agree = statuses.iter().all(|s| {
                refs.iter().enumerate().all(|(i, n)| {
                    let m = member(s, &n.addr()).unwrap();
                    let want = if i == p { "PRIMARY" } else { "SECONDARY" };
                    m.get_str("stateStr") == Ok(want) && m.get_f64("health") == Ok(1.0)
                })
            });
            all_agree.then_some(())
        },
    );
    let s = status(&nodes[p]);
    assert_eq!(s.get_str("set"), Ok(SET));
    assert_eq!(s.get_i32("myState"), Ok(1));
    assert!(s.get_i64("term").unwrap() >= 1);
    for n in &nodes {
        let m = member(&s, &n.addr()).unwrap();
        for field in [
            "_id",
            "name",
            "health",
            "state",
            "stateStr",
            "uptime",
            "optime",
            "optimeDate",
            "configVersion",
        ] {
            assert!(m.contains_key(field), "{field} missing from {m}");
        }
        if n.port == nodes[p].port {
            assert_eq!(m.get_bool("self"), Ok(true));
        } else {
            for field in ["lastHeartbeat", "lastHeartbeatRecv", "pingMs"] {
                assert!(m.contains_key(field), "{field} missing from {m}");
            }
            assert!(m.get_datetime("lastHeartbeat").unwrap().timestamp_millis() > 0);
        }
    }
    // hello on a secondary names the set and the primary.
    let s_idx = (p + 1) % 3;
    let hello = admin(&nodes[s_idx], doc! {"hello": 1});
    assert_eq!(hello.get_str("setName"), Ok(SET));
    assert_eq!(hello.get_bool("secondary"), Ok(true));
    assert_eq!(hello.get_str("me"), Ok(nodes[s_idx].addr().as_str()));
    assert_eq!(hello.get_array("hosts").unwrap().len(), 3);
    let hello = admin(&nodes[p], doc! {"hello": 1});
    let election_id = hello.get_object_id("electionId").unwrap();
    assert_eq!(&election_id.bytes()[..4], &[0x7f, 0xff, 0xff, 0xff]);
    assert!(hello
        .get_document("lastWrite")
        .unwrap()
        .contains_key("majorityOpTime"));
    // Reconfig on a secondary: 10107.
    let reconfig = admin(
        &nodes[s_idx],
        doc! {"replSetReconfig": fast_config(2, member_docs(&refs))},
    );
    assert_eq!(reconfig.get_i32("code"), Ok(10107), "{reconfig}");
    // Version must increase.
    let reconfig = admin(
        &nodes[p],
        doc! {"replSetReconfig": fast_config(1, member_docs(&refs))},
    );
    assert_eq!(reconfig.get_i32("code"), Ok(103), "{reconfig}");
}

fn command_count(node: &Ferrod) -> i64 {
    let s = admin(node, doc! {"serverStatus": 1});
    let ops = s.get_document("opcounters").unwrap();
    match ops.get("command") {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => *n as i64,
        other => panic!("opcounters.command is {other:?}"),
    }
}

fn config_version(node: &Ferrod) -> i32 {
    let c = admin(node, doc! {"replSetGetConfig": 1});
    c.get_document("config")
        .unwrap()
        .get_i32("version")
        .unwrap()
}

#[test]
fn reconfig_removes_a_member_which_stops_being_heartbeated_then_re_adds_it() {
    let nodes = start_set(3);
    let p = initiate_three(&nodes);
    let gone = (p + 1) % 3;
    let stay = (p + 2) % 3;
    let version = config_version(&nodes[p]);
    let two: Vec<&Ferrod> = vec![&nodes[p], &nodes[stay]];
    let mut members = member_docs(&two);
    // Keep the member ids stable: give each the id it had.
    for (m, n) in members.iter_mut().zip([p, stay]) {
        m.as_document_mut().unwrap().insert("_id", n as i32);
    }
    let reply = admin(
        &nodes[p],
        doc! {"replSetReconfig": fast_config(version + 1, members.clone())},
    );
    assert!(ok(&reply), "reconfig failed: {reply}");
    let s = status(&nodes[p]);
    assert!(
        member(&s, &nodes[gone].addr()).is_none(),
        "removed member still listed: {s}"
    );
    assert_eq!(s.get_array("members").unwrap().len(), 2);
    // The removed member learns it was removed.
    eventually(
        Duration::from_secs(5),
        "the removed member to report REMOVED",
        || {
            let s = admin(&nodes[gone], doc! {"replSetGetStatus": 1});
            (s.get_i32("code") == Ok(93)).then_some(())
        },
    );
    // Nobody heartbeats it any more, while the remaining member still is: measured
    // over heartbeats of the remaining member (its lastHeartbeat moving), not a clock.
    let hb = |s: &Document| {
        member(s, &nodes[stay].addr())
            .unwrap()
            .get_datetime("lastHeartbeat")
            .unwrap()
            .timestamp_millis()
    };
    let heartbeats_of_stay = |n: usize| {
        for _ in 0..n {
            let seen = hb(&status(&nodes[p]));
            eventually(
                Duration::from_secs(5),
                "the remaining member to be heartbeated",
                || (hb(&status(&nodes[p])) > seen).then_some(()),
            );
        }
    };
    // A heartbeat round that began before the reconfig has ended after one more.
    heartbeats_of_stay(1);
    let before = command_count(&nodes[gone]);
    heartbeats_of_stay(3);
    let after = command_count(&nodes[gone]);
    assert!(
        after - before <= 2,
        "{} commands reached the removed member over 3 heartbeats of the other",
        after - before
    );

    // Re-add it.
    let refs: Vec<&Ferrod> = nodes.iter().collect();
    let reply = admin(
        &nodes[p],
        doc! {"replSetReconfig": fast_config(version + 2, member_docs(&refs))},
    );
    assert!(ok(&reply), "re-add failed: {reply}");
    eventually(
        Duration::from_secs(10),
        "the re-added member to be a healthy secondary",
        || {
            let s = status(&nodes[p]);
            let m = member(&s, &nodes[gone].addr())?;
            (m.get_str("stateStr") == Ok("SECONDARY")
                && m.get_i32("configVersion") == Ok(version + 2))
            .then_some(())
        },
    );
    let before = command_count(&nodes[gone]);
    eventually(
        Duration::from_secs(5),
        "the re-added member to be heartbeated",
        || (command_count(&nodes[gone]) - before >= 4).then_some(()),
    );
}

#[test]
fn reconfig_that_loses_the_majority_is_refused() {
    let nodes = start_set(3);
    let p = initiate_three(&nodes);
    let refs: Vec<&Ferrod> = nodes.iter().collect();
    let version = config_version(&nodes[p]);
    // Two new voters at once: more than one voting member changes.
    let mut members = member_docs(&refs);
    members.push(Bson::Document(doc! {"_id": 3, "host": "127.0.0.1:1"}));
    members.push(Bson::Document(doc! {"_id": 4, "host": "127.0.0.1:2"}));
    let reply = admin(
        &nodes[p],
        doc! {"replSetReconfig": fast_config(version + 1, members)},
    );
    assert_eq!(reply.get_i32("code"), Ok(103), "{reply}");
    // Kill both secondaries: a reconfig can no longer reach a majority.
    let mut nodes = nodes;
    let primary = nodes.remove(p);
    drop(nodes);
    let reply = admin(
        &primary,
        doc! {"replSetReconfig": fast_config(version + 1, member_docs(&refs_of(&primary)))},
    );
    assert!(
        !ok(&reply),
        "reconfig without a majority succeeded: {reply}"
    );
}

fn refs_of(node: &Ferrod) -> Vec<&Ferrod> {
    vec![node]
}

#[test]
fn stepdown_elects_another_primary_and_the_old_one_waits() {
    let nodes = start_set(3);
    let p = initiate_three(&nodes);
    let refs: Vec<&Ferrod> = nodes.iter().collect();
    let term_before = status(&nodes[p]).get_i64("term").unwrap();
    let s = admin(&nodes[(p + 1) % 3], doc! {"replSetStepDown": 60});
    assert_eq!(s.get_i32("code"), Ok(10107), "{s}");
    let bad = admin(
        &nodes[p],
        doc! {"replSetStepDown": 5, "secondaryCatchUpPeriodSecs": 10},
    );
    assert_eq!(bad.get_i32("code"), Ok(2), "{bad}");
    let reply = admin(
        &nodes[p],
        doc! {"replSetStepDown": 5, "secondaryCatchUpPeriodSecs": 2},
    );
    assert!(ok(&reply), "stepdown failed: {reply}");
    let hello = admin(&nodes[p], doc! {"hello": 1});
    assert_eq!(hello.get_bool("isWritablePrimary"), Ok(false), "{hello}");
    let new_p = eventually(Duration::from_secs(10), "a new primary", || {
        agreed_primary(&refs)
    });
    assert_ne!(
        new_p, p,
        "the stepped-down member was re-elected within stepDownSecs"
    );
    assert!(status(&nodes[new_p]).get_i64("term").unwrap() > term_before);
    // Frozen members may not run; a primary cannot be frozen.
    let f = admin(&nodes[new_p], doc! {"replSetFreeze": 10});
    assert_eq!(f.get_i32("code"), Ok(95), "{f}");
    let f = admin(&nodes[p], doc! {"replSetFreeze": 0});
    assert!(ok(&f), "{f}");
    assert_eq!(f.get_str("info"), Ok("unfreezing"));
}

#[test]
fn killing_the_primary_elects_a_new_one() {
    let mut nodes = start_set(3);
    let p = initiate_three(&nodes);
    let old = nodes.remove(p);
    let old_addr = old.addr();
    drop(old); // SIGKILL
    let refs: Vec<&Ferrod> = nodes.iter().collect();
    let new_p = eventually(
        Duration::from_secs(10),
        "a new primary after kill -9",
        || agreed_primary(&refs),
    );
    let s = status(&nodes[new_p]);
    let dead = member(&s, &old_addr).unwrap();
    eventually(
        Duration::from_secs(5),
        "the killed member to be reported down",
        || {
            let s = status(&nodes[new_p]);
            let dead = member(&s, &old_addr).unwrap().clone();
            (dead.get_f64("health") == Ok(0.0)).then_some(())
        },
    );
    assert!(dead.contains_key("lastHeartbeat"));
}

#[test]
fn priority_zero_and_hidden_members_never_become_primary() {
    let nodes = start_set(3);
    let members = vec![
        Bson::Document(doc! {"_id": 0, "host": nodes[0].addr()}),
        Bson::Document(doc! {"_id": 1, "host": nodes[1].addr(), "priority": 0}),
        Bson::Document(doc! {"_id": 2, "host": nodes[2].addr(), "priority": 0, "hidden": true}),
    ];
    let reply = admin(&nodes[0], doc! {"replSetInitiate": fast_config(1, members)});
    assert!(ok(&reply), "{reply}");
    let refs: Vec<&Ferrod> = nodes.iter().collect();
    assert_eq!(
        eventually(Duration::from_secs(10), "a primary", || agreed_primary(
            &refs
        )),
        0
    );
    let hello = admin(&nodes[0], doc! {"hello": 1});
    let hosts: Vec<&str> = hello
        .get_array("hosts")
        .unwrap()
        .iter()
        .filter_map(Bson::as_str)
        .collect();
    assert_eq!(hosts, vec![nodes[0].addr().as_str()]);
    let passives: Vec<&str> = hello
        .get_array("passives")
        .unwrap()
        .iter()
        .filter_map(Bson::as_str)
        .collect();
    assert_eq!(passives, vec![nodes[1].addr().as_str()]);
    assert_eq!(
        admin(&nodes[2], doc! {"hello": 1}).get_bool("hidden"),
        Ok(true)
    );
    // With the only electable member stepped down, nobody else takes over.
    let reply = admin(
        &nodes[0],
        doc! {"replSetStepDown": 3, "secondaryCatchUpPeriodSecs": 1, "force": true},
    );
    assert!(ok(&reply), "{reply}");
    // After stepDownSecs the electable member runs again, and meanwhile nobody else
    // took over: no other member ever logged a transition to PRIMARY.
    eventually(
        Duration::from_secs(10),
        "member 0 to be primary again",
        || (agreed_primary(&refs) == Some(0)).then_some(()),
    );
    for n in &nodes[1..] {
        let became_primary = n
            .log_lines()
            .into_iter()
            .filter(|l| l.contains("\"Replica set state transition\""))
            .any(|l| l.contains("\"newState\":\"PRIMARY\""));
        assert!(!became_primary, "{} became primary", n.addr());
    }
}

/// An awaitable hello (maxAwaitTimeMS 10000) for `tv` over a fresh connection to `addr`:
/// the reply and how long it took.
fn awaitable_hello(addr: &str, tv: Document) -> (Document, Duration) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let reply = common::op_msg_roundtrip(
        &mut s,
        &doc! {"hello": 1, "topologyVersion": tv, "maxAwaitTimeMS": 10000, "$db": "admin"},
    );
    (reply, started.elapsed())
}

/// Waits until `node`'s currentOp shows an awaitable hello (one with a topologyVersion)
/// in flight.
fn wait_for_awaitable_hello(node: &Ferrod) {
    eventually(
        Duration::from_secs(10),
        "the awaitable hello in currentOp",
        || {
            let ops = admin(node, doc! {"currentOp": 1});
            let inprog = ops.get_array("inprog").ok()?;
            inprog
                .iter()
                .filter_map(Bson::as_document)
                .filter_map(|op| op.get_document("command").ok())
                .any(|c| c.contains_key("hello") && c.contains_key("topologyVersion"))
                .then_some(())
        },
    );
}

#[test]
fn awaitable_hello_waits_for_a_topology_change() {
    let nodes = start_set(3);
    let p = initiate_three(&nodes);
    let hello = admin(&nodes[p], doc! {"hello": 1});
    let tv = hello.get_document("topologyVersion").unwrap().clone();
    assert!(matches!(tv.get("counter"), Some(Bson::Int64(_))), "{tv}");
    // Nothing changes: the reply comes after maxAwaitTimeMS.
    let started = Instant::now();
    let same = admin(
        &nodes[p],
        doc! {"hello": 1, "topologyVersion": tv.clone(), "maxAwaitTimeMS": 500},
    );
    let waited = started.elapsed();
    let transitions: Vec<String> = nodes[p]
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("state transition"))
        .collect();
    assert!(
        waited >= Duration::from_millis(450),
        "returned after {waited:?}: {tv} -> {same}\n{}",
        transitions.join("\n")
    );
    assert_eq!(same.get_document("topologyVersion").unwrap(), &tv);
    // A stepdown during the wait answers at once with a higher counter.
    let addr = nodes[p].addr();
    let waiter = std::thread::spawn({
        let tv = tv.clone();
        move || awaitable_hello(&addr, tv)
    });
    wait_for_awaitable_hello(&nodes[p]);
    assert!(ok(&admin(
        &nodes[p],
        doc! {"replSetStepDown": 10, "secondaryCatchUpPeriodSecs": 2}
    )));
    let (reply, waited) = waiter.join().unwrap();
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    let counter = reply
        .get_document("topologyVersion")
        .unwrap()
        .get_i64("counter")
        .unwrap();
    assert!(counter > tv.get_i64("counter").unwrap());
    assert_eq!(reply.get_bool("isWritablePrimary"), Ok(false));
    // maxAwaitTimeMS without topologyVersion is refused as mongod does.
    let bad = admin(&nodes[p], doc! {"hello": 1, "maxAwaitTimeMS": 10});
    assert_eq!(bad.get_i32("code"), Ok(31368), "{bad}");
}

#[test]
fn rust_driver_finds_the_primary_and_follows_a_stepdown() {
    use mongodb::options::{ReadPreference, SelectionCriteria};
    let nodes = start_set(3);
    let p = initiate_three(&nodes);
    let uri = format!(
        "mongodb://{}/?replicaSet={SET}&serverSelectionTimeoutMS=15000&heartbeatFrequencyMS=500",
        nodes.iter().map(|n| n.addr()).collect::<Vec<_>>().join(",")
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
        let db = client.database("admin");
        let primary = || async {
            db.run_command(doc! {"hello": 1})
                .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
                .await
                .unwrap()
        };
        db.run_command(doc! {"ping": 1}).await.unwrap();
        let first = primary().await;
        assert_eq!(first.get_str("me"), Ok(nodes[p].addr().as_str()), "{first}");
        assert_eq!(first.get_bool("isWritablePrimary"), Ok(true));
        db.run_command(doc! {"replSetStepDown": 30, "secondaryCatchUpPeriodSecs": 2})
            .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let reply = primary().await;
            let me = reply.get_str("me").unwrap().to_owned();
            if me != nodes[p].addr() && reply.get_bool("isWritablePrimary") == Ok(true) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the driver never followed the stepdown"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        db.run_command(doc! {"ping": 1}).await.unwrap();
    });
}

#[test]
fn the_whole_set_survives_kill_9_and_restart() {
    let nodes = start_set(3);
    let p = initiate_three(&nodes);
    let version = config_version(&nodes[p]);
    let term = status(&nodes[p]).get_i64("term").unwrap();
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    // kill -9 all three, then start them again on the same ports and data.
    let dirs: Vec<tempfile::TempDir> = nodes.into_iter().map(Ferrod::into_dbpath).collect();
    let restarted: Vec<Ferrod> = dirs
        .into_iter()
        .zip(&ports)
        .map(|(dir, port)| Ferrod::start_on_port(dir, *port, &["--replSet", SET]))
        .collect();
    let primary = eventually(
        Duration::from_secs(15),
        "a primary after the restart",
        || {
            let hellos: Vec<Document> = restarted
                .iter()
                .map(|n| admin(n, doc! {"hello": 1}))
                .collect();
            let primaries: Vec<&Document> = hellos
                .iter()
                .filter(|h| h.get_bool("isWritablePrimary") == Ok(true))
                .collect();
            (primaries.len() == 1 && hellos.iter().all(|h| h.get_str("primary").is_ok()))
                .then(|| primaries[0].get_str("me").unwrap().to_owned())
        },
    );
    let primary = restarted
        .iter()
        .find(|n| primary.ends_with(&format!(":{}", n.port)))
        .unwrap();
    let config = admin(primary, doc! {"replSetGetConfig": 1});
    assert_eq!(
        config.get_document("config").unwrap().get_i32("version"),
        Ok(version),
        "{config}"
    );
    let s = admin(primary, doc! {"replSetGetStatus": 1});
    // Raft may let the old leader carry on in its term (it still holds the votes).
    assert!(
        s.get_i64("term").unwrap() >= term,
        "the term went back: {s}"
    );
    // Initiating again is refused: the set is already initialized.
    let again = admin(primary, doc! {"replSetInitiate": {}});
    assert_eq!(again.get_i32("code"), Ok(23), "{again}");
}

#[test]
fn reconfig_adds_a_fresh_member_to_a_single_member_set() {
    let nodes = start_set(2);
    let reply = admin(
        &nodes[0],
        doc! {"replSetInitiate": fast_config(1, member_docs(&[&nodes[0]]))},
    );
    assert!(ok(&reply), "{reply}");
    eventually(
        Duration::from_secs(5),
        "the single member to be primary",
        || (agreed_primary(&[&nodes[0]]) == Some(0)).then_some(()),
    );
    let refs: Vec<&Ferrod> = nodes.iter().collect();
    let reply = admin(
        &nodes[0],
        doc! {"replSetReconfig": fast_config(2, member_docs(&refs))},
    );
    assert!(ok(&reply), "{reply}");
    eventually(
        Duration::from_secs(10),
        "the new member to be a secondary",
        || {
            let hello = admin(&nodes[1], doc! {"hello": 1});
            (hello.get_bool("secondary") == Ok(true) && hello.get_i32("setVersion") == Ok(2))
                .then_some(())
        },
    );
    let s = status(&nodes[1]);
    assert_eq!(s.get_i32("myState"), Ok(2), "{s}");
    assert_eq!(agreed_primary(&refs), Some(0));
}

/// SIGTERM ends an awaitable hello at once, so neither the driver's monitor nor the
/// shutdown waits out maxAwaitTimeMS (the grace period is 15 s; a monitor's
/// maxAwaitTimeMS is 10 s): on the primary, the hand-over's stepdown is a topology
/// change that answers it; on a secondary, ShutdownInProgress does (mongod's quiesce
/// mode).
#[test]
fn awaitable_hello_ends_at_shutdown() {
    let mut nodes = start_set(3);
    let primary = initiate_three(&nodes);
    let p = (primary + 1) % 3;
    let tv = admin(&nodes[p], doc! {"hello": 1})
        .get_document("topologyVersion")
        .unwrap()
        .clone();
    let addr = nodes[p].addr();
    let waiter = std::thread::spawn(move || awaitable_hello(&addr, tv));
    wait_for_awaitable_hello(&nodes[p]);
    let started = Instant::now();
    let status = nodes[p].terminate();
    let exited_after = started.elapsed();
    let (reply, waited) = waiter.join().unwrap();
    assert_eq!(reply.get_i32("code"), Ok(91), "{reply}");
    assert_eq!(
        reply.get_str("codeName"),
        Ok("ShutdownInProgress"),
        "{reply}"
    );
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert!(status.success(), "{status}");
    assert!(
        exited_after < Duration::from_secs(5),
        "exited {exited_after:?} after SIGTERM"
    );
}
