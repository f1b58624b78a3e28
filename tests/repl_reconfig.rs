//! A reconfig that makes the current primary unelectable, against three real ferrod
//! processes: as mongod, the primary accepts the config, steps down, and an electable
//! member takes over so writes go on.

mod common;

use bson::{doc, Bson, Document};
use common::{admin, eventually, ok, Ferrod};
use std::time::Duration;

const SET: &str = "rs0";

/// The index of the node every node agrees is primary.
fn agreed_primary(nodes: &[Ferrod]) -> Option<usize> {
    let hellos: Vec<Document> = nodes.iter().map(|n| admin(n, doc! {"hello": 1})).collect();
    let primaries: Vec<usize> = (0..nodes.len())
        .filter(|&i| hellos[i].get_bool("isWritablePrimary") == Ok(true))
        .collect();
    let [p] = primaries[..] else { return None };
    let host = nodes[p].addr();
    hellos
        .iter()
        .all(|h| h.get_str("primary") == Ok(host.as_str()))
        .then_some(p)
}

fn start_three() -> (Vec<Ferrod>, usize) {
    let nodes: Vec<Ferrod> = (0..3).map(|_| Ferrod::start(&["--replSet", SET])).collect();
    let members: Vec<Bson> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Bson::Document(doc! {"_id": i as i32, "host": n.addr()}))
        .collect();
    let config = doc! {
        "_id": SET, "version": 1, "members": members,
        "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000},
    };
    let reply = admin(&nodes[0], doc! {"replSetInitiate": config});
    assert!(ok(&reply), "initiate failed: {reply}");
    let p = eventually(Duration::from_secs(10), "a primary all agree on", || {
        agreed_primary(&nodes)
    });
    (nodes, p)
}

/// Reconfigures the primary's own member entry with `change`, then checks that it steps
/// down, another member becomes primary, and a majority write succeeds there.
fn reconfig_primary_to(change: Document) {
    let (nodes, p) = start_three();
    let mut config = admin(&nodes[p], doc! {"replSetGetConfig": 1})
        .get_document("config")
        .unwrap()
        .clone();
    let version = config.get_i32("version").unwrap();
    config.insert("version", version + 1);
    let members = config.get_array_mut("members").unwrap();
    for m in members.iter_mut().filter_map(Bson::as_document_mut) {
        if m.get_str("host") == Ok(nodes[p].addr().as_str()) {
            m.extend(change.clone());
        }
    }
    let reply = admin(&nodes[p], doc! {"replSetReconfig": config});
    assert!(ok(&reply), "reconfig failed: {reply}");
    // No longer primary by the time the reconfig has answered.
    let hello = admin(&nodes[p], doc! {"hello": 1});
    assert_eq!(hello.get_bool("isWritablePrimary"), Ok(false), "{hello}");
    nodes[p].wait_for_log(
        "Stepping down from primary, because we received a new config",
        Duration::from_secs(5),
    );
    let new_p = eventually(Duration::from_secs(10), "a new primary", || {
        agreed_primary(&nodes).filter(|&n| n != p)
    });
    let write = admin(
        &nodes[new_p],
        doc! {
            "createUser": "after-reconfig", "pwd": "pw", "roles": [],
            "writeConcern": {"w": "majority", "wtimeout": 10000},
        },
    );
    assert!(ok(&write), "write on the new primary failed: {write}");
    // The unelectable member stays secondary.
    assert_eq!(
        admin(&nodes[p], doc! {"hello": 1}).get_bool("secondary"),
        Ok(true)
    );
}

#[test]
fn reconfig_to_priority_zero_steps_the_primary_down() {
    reconfig_primary_to(doc! {"priority": 0});
}

#[test]
fn reconfig_to_hidden_steps_the_primary_down() {
    reconfig_primary_to(doc! {"priority": 0, "hidden": true});
}

#[test]
fn reconfig_to_no_vote_steps_the_primary_down() {
    reconfig_primary_to(doc! {"priority": 0, "votes": 0});
}
