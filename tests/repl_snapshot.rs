//! Snapshots of the replicated catalog, with real processes: with a snapshot every few
//! entries the log is purged behind them; a member added after the entries it would need
//! were purged is caught up by installing a snapshot; and a member whose log was purged
//! restarts after kill -9 with every user.

mod common;

use bson::{doc, Bson, Document};
use common::{admin, eventually, ok, Ferrod};
use std::time::Duration;

const SET: &str = "rs0";
const USERS: usize = 120;

/// A snapshot every 20 entries (the default is far larger), so that a few dozen writes
/// purge the log.
const ARGS: &[&str] = &[
    "--replSet",
    SET,
    "--setParameter",
    "replLogEntriesPerSnapshot=20",
    "--setParameter",
    "scramIterationCount=5000",
    "--setParameter",
    "scramSHA256IterationCount=5000",
];

fn config(version: i32, nodes: &[&Ferrod]) -> Document {
    let members: Vec<Bson> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Bson::Document(doc! {"_id": i as i32, "host": n.addr()}))
        .collect();
    doc! {
        "_id": SET, "version": version, "members": members,
        "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000},
    }
}

fn is_primary(node: &Ferrod) -> bool {
    admin(node, doc! {"hello": 1}).get_bool("isWritablePrimary") == Ok(true)
}

fn initiate_alone(node: &Ferrod) {
    let reply = admin(node, doc! {"replSetInitiate": config(1, &[node])});
    assert!(ok(&reply), "{reply}");
    eventually(Duration::from_secs(10), "a primary", || {
        is_primary(node).then_some(())
    });
}

fn create_users(node: &Ferrod, range: std::ops::Range<usize>) {
    for i in range {
        let reply = admin(
            node,
            doc! {"createUser": format!("u{i}"), "pwd": "x", "roles": []},
        );
        assert!(ok(&reply), "{reply}");
    }
}

fn user_count(node: &Ferrod) -> usize {
    admin(node, doc! {"usersInfo": 1})
        .get_array("users")
        .map_or(0, |u| u.len())
}

/// The highest index the log was purged up to, from the log lines.
fn purged_up_to(node: &Ferrod) -> u64 {
    node.log_lines()
        .iter()
        .filter(|l| l.contains("\"Purged the replication log\""))
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["attr"]["upToIndex"].as_u64()
        })
        .max()
        .unwrap_or(0)
}

/// Waits until the log of `node` is purged past half the users written.
fn wait_for_purge(node: &Ferrod) -> u64 {
    eventually(
        Duration::from_secs(20),
        "the log purged behind a snapshot",
        || {
            let purged = purged_up_to(node);
            (purged >= USERS as u64 / 2).then_some(purged)
        },
    )
}

#[test]
fn a_new_member_is_caught_up_by_a_snapshot() {
    let nodes: Vec<Ferrod> = (0..2).map(|_| Ferrod::start(ARGS)).collect();
    initiate_alone(&nodes[0]);
    create_users(&nodes[0], 0..USERS);
    let purged = wait_for_purge(&nodes[0]);

    let refs: Vec<&Ferrod> = nodes.iter().collect();
    let reply = admin(&nodes[0], doc! {"replSetReconfig": config(2, &refs)});
    assert!(ok(&reply), "{reply}");
    // The entries it lacks are gone from the primary's log: only a snapshot brings it up.
    let line = nodes[1].wait_for_log(
        "\"Installed a snapshot of the replicated catalog\"",
        Duration::from_secs(20),
    );
    // It holds what the purged entries wrote (or more: a snapshot built later).
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let last = v["attr"]["lastIndex"].as_u64().unwrap();
    assert!(last >= purged, "purged up to {purged}: {line}");
    assert!(
        v["attr"]["documents"].as_u64().unwrap() >= purged / 2,
        "{line}"
    );
    eventually(
        Duration::from_secs(20),
        "every user on the new member",
        || {
            let hello = admin(&nodes[1], doc! {"hello": 1});
            (hello.get_bool("secondary") == Ok(true) && user_count(&nodes[1]) == USERS)
                .then_some(())
        },
    );
    // And it follows the log from there.
    create_users(&nodes[0], USERS..USERS + 1);
    eventually(
        Duration::from_secs(10),
        "the next user on the new member",
        || (user_count(&nodes[1]) == USERS + 1).then_some(()),
    );
}

#[test]
fn a_member_with_a_purged_log_restarts_with_every_user() {
    let node = Ferrod::start(ARGS);
    initiate_alone(&node);
    create_users(&node, 0..USERS);
    wait_for_purge(&node);
    let port = node.port;
    // kill -9, then the same data on the same port.
    let dir = node.into_dbpath();
    let node = Ferrod::start_on_port(dir, port, ARGS);
    eventually(
        Duration::from_secs(10),
        "a primary after the restart",
        || is_primary(&node).then_some(()),
    );
    assert_eq!(user_count(&node), USERS);
    create_users(&node, USERS..USERS + 1);
    assert_eq!(user_count(&node), USERS + 1);
}
