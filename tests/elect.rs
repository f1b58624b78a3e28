//! Elections that do not wait for the election timer, on three real ferrod processes: the
//! member that initiates a set becomes its first primary at once, and a member raised to
//! a priority above the primary's takes over (mongod's priority takeover).

mod common;

use bson::{doc, Bson, Document};
use common::{admin, eventually, ok, Ferrod};
use std::time::Duration;

const SET: &str = "rs0";

fn start_set(n: usize) -> Vec<Ferrod> {
    (0..n).map(|_| Ferrod::start(&["--replSet", SET])).collect()
}

fn members(nodes: &[Ferrod]) -> Vec<Bson> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Bson::Document(doc! {"_id": i as i32, "host": n.addr()}))
        .collect()
}

fn writable(node: &Ferrod) -> bool {
    admin(node, doc! {"hello": 1})
        .get_bool("isWritablePrimary")
        .unwrap_or(false)
}

/// The index of the node every node agrees is primary.
fn agreed_primary(nodes: &[Ferrod]) -> Option<usize> {
    let hellos: Vec<Document> = nodes.iter().map(|n| admin(n, doc! {"hello": 1})).collect();
    let p = hellos
        .iter()
        .position(|h| h.get_bool("isWritablePrimary").unwrap_or(false))?;
    let host = nodes[p].addr();
    hellos
        .iter()
        .all(|h| h.get_str("primary").ok() == Some(host.as_str()))
        .then_some(p)
}

fn create_user(node: &Ferrod, name: &str) -> Document {
    admin(
        node,
        doc! {"createUser": name, "pwd": "x", "roles": [],
        "writeConcern": {"w": "majority", "wtimeout": 10000}},
    )
}

/// The log line of this node becoming primary, as JSON.
fn primary_transition(node: &Ferrod) -> Option<serde_json::Value> {
    node.log_lines().iter().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["id"] == 21358 && v["attr"]["newState"] == "PRIMARY").then_some(v)
    })
}

/// With electionTimeoutMillis 30000 openraft's election timer runs 15 s or more, so only
/// an election run at once after initiation makes a primary within the wait below.
#[test]
fn initiating_member_is_primary_in_term_1_without_waiting_for_the_election_timer() {
    let nodes = start_set(3);
    let config = doc! {
        "_id": SET, "version": 1, "members": members(&nodes),
        "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 30000},
    };
    let reply = admin(&nodes[0], doc! {"replSetInitiate": config});
    assert!(ok(&reply), "initiate failed: {reply}");
    nodes[0].wait_for_log(
        "Standing for election at once after initiating the set",
        Duration::from_secs(5),
    );
    let primary = eventually(
        Duration::from_secs(10),
        "the initiating member's PRIMARY transition",
        || primary_transition(&nodes[0]),
    );
    assert_eq!(primary["attr"]["term"], 1, "{primary}");
    assert!(writable(&nodes[0]));
    let created = create_user(&nodes[0], "first");
    assert!(ok(&created), "{created}");
    // Nobody ran a second campaign, and the others follow the initiating member.
    assert!(nodes.iter().all(|n| !n
        .log_lines()
        .iter()
        .any(|l| l.contains("standing again at once"))));
    assert_eq!(
        eventually(Duration::from_secs(10), "all agree on the primary", || {
            agreed_primary(&nodes)
        }),
        0
    );
}

#[test]
fn a_secondary_raised_to_priority_3_takes_over_and_writes_go_on() {
    let nodes = start_set(3);
    let config = doc! {
        "_id": SET, "version": 1, "members": members(&nodes),
        "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000},
    };
    let reply = admin(&nodes[0], doc! {"replSetInitiate": config});
    assert!(ok(&reply), "initiate failed: {reply}");
    let p = eventually(Duration::from_secs(10), "a primary", || {
        agreed_primary(&nodes)
    });
    let taker = (p + 1) % 3;
    let mut config = admin(&nodes[p], doc! {"replSetGetConfig": 1})
        .get_document("config")
        .unwrap()
        .clone();
    let version = config.get_i32("version").unwrap();
    config.insert("version", version + 1);
    let mut raised = members(&nodes);
    raised[taker]
        .as_document_mut()
        .unwrap()
        .insert("priority", 3.0);
    config.insert("members", raised);
    let reply = admin(&nodes[p], doc! {"replSetReconfig": config});
    assert!(ok(&reply), "reconfig failed: {reply}");

    nodes[taker].wait_for_log(
        "Starting an election for a priority takeover",
        Duration::from_secs(20),
    );
    let takeover_line = nodes[taker]
        .log_lines()
        .into_iter()
        .find(|l| l.contains("Starting an election for a priority takeover"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&takeover_line).unwrap();
    assert_eq!(
        (v["id"].as_i64(), v["c"].as_str()),
        (Some(4615660), Some("ELECTION"))
    );
    let new_p = eventually(Duration::from_secs(20), "the taker as primary", || {
        agreed_primary(&nodes).filter(|&i| i == taker)
    });
    assert_eq!(new_p, taker);
    let created = create_user(&nodes[taker], "after_takeover");
    assert!(ok(&created), "{created}");
    // The old primary of lower priority does not take it back.
    let old = admin(&nodes[p], doc! {"hello": 1});
    assert_eq!(old.get_bool("isWritablePrimary"), Ok(false), "{old}");
    assert_eq!(old.get_str("primary"), Ok(nodes[taker].addr().as_str()));
}
