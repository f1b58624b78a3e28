//! `w: <n>` and `w: "majority"` mean *applied*, as in mongod: once a write is
//! acknowledged, that many members (the primary included) have applied it, so a read on
//! them sees it at once. ferrod used to count a follower once the entry was in its log
//! (openraft's matched index), and an immediate read on a secondary could miss the write.

mod common;

use common::{ok, Ferrod};
use mongodb::bson::{doc, Bson, Document};

/// Rounds of write-then-read: the window between append and apply is short, so a single
/// round seldom shows it.
const ROUNDS: i32 = 50;

/// The `_id`s a member holds in `app.c`, read with a secondary read preference.
fn has(node: &Ferrod, id: i32) -> bool {
    let reply = node.command(doc! {
        "find": "c", "filter": {"_id": id}, "$db": "app",
        "$readPreference": {"mode": "secondaryPreferred"},
    });
    assert!(ok(&reply), "{reply}");
    let batch = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .cloned()
        .unwrap_or_default();
    batch.len() == 1
}

fn insert(primary: &Ferrod, id: i32, w: Bson) -> Document {
    let reply = primary.command(doc! {
        "insert": "c", "documents": [{"_id": id, "pad": "x".repeat(200)}],
        "writeConcern": {"w": w}, "$db": "app",
    });
    assert!(ok(&reply) && reply.get_i32("n") == Ok(1), "{reply}");
    reply
}

#[test]
fn a_write_acknowledged_with_w_3_is_read_at_once_on_every_secondary() {
    let (nodes, p) = common::three_member_set();
    for id in 0..ROUNDS {
        insert(&nodes[p], id, Bson::Int32(3));
        for (i, node) in nodes.iter().enumerate() {
            assert!(has(node, id), "round {id}: member {i} lacks a w: 3 write");
        }
    }
}

#[test]
fn a_write_acknowledged_with_w_majority_is_read_at_once_on_a_majority() {
    let (nodes, p) = common::three_member_set();
    for id in 0..ROUNDS {
        insert(&nodes[p], id, Bson::String("majority".into()));
        let holding = nodes.iter().filter(|n| has(n, id)).count();
        assert!(
            holding >= 2,
            "round {id}: only {holding} members applied it"
        );
    }
}
