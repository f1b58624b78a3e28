//! Replica-set membership against real ferrod processes on 127.0.0.1: initiate, election,
//! status, reconfig, heartbeats, stepdown, failover, and the exact errors for bad configs.

mod common;

use bson::{doc, Bson, Document};
use common::Ferrod;
use std::time::{Duration, Instant};

const SET: &str = "rs0";

fn start_set(n: usize) -> Vec<Ferrod> {
    (0..n).map(|_| Ferrod::start(&["--replSet", SET])).collect()
}

fn admin(node: &Ferrod, mut cmd: Document) -> Document {
    cmd.insert("$db", "admin");
    node.command(cmd)
}

fn ok(reply: &Document) -> bool {
    reply.get_f64("ok").unwrap_or(0.0) == 1.0
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

/// Polls until `f` returns Some, or panics with `what` after `timeout`.
fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
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
