//! Concurrent catalog writes on a replica-set primary never wedge the server. A write
//! waiting for replication used to hold a read borrow of openraft's metrics while asking
//! for the member's state, which borrowed them again: once openraft queued a metrics update
//! between the two, both async workers blocked for good and the server stopped answering
//! even `hello` (found by `ferrod-repl-bench`, 8 writers on a one-member set).

mod common;

use bson::doc;
use common::{ok, op_msg_roundtrip, Ferrod};
use std::time::Duration;

#[test]
fn concurrent_writes_on_a_one_member_set_all_complete() {
    let node = Ferrod::start(&[
        "--replSet",
        "rs0",
        "--setParameter",
        "scramIterationCount=5000",
        "--setParameter",
        "scramSHA256IterationCount=5000",
    ]);
    let config = doc! {"_id": "rs0", "version": 1, "members": [{"_id": 0, "host": node.addr()}]};
    let reply = node.command(doc! {"replSetInitiate": config, "$db": "admin"});
    assert!(ok(&reply), "{reply}");
    common::eventually(Duration::from_secs(20), "a primary", || {
        let hello = node.command(doc! {"hello": 1, "$db": "admin"});
        (hello.get_bool("isWritablePrimary") == Ok(true)).then_some(())
    });
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let mut s = node.raw();
            // A guard: a wedged server makes the read fail instead of hanging the test.
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            std::thread::spawn(move || {
                let user = format!("w{t}");
                let create = doc! {"createUser": &user, "pwd": "x", "roles": [], "$db": "admin"};
                assert!(ok(&op_msg_roundtrip(&mut s, &create)));
                for n in 0..500 {
                    let update = doc! {
                        "updateUser": &user, "customData": {"n": n},
                        "writeConcern": {"w": 1}, "$db": "admin",
                    };
                    let reply = op_msg_roundtrip(&mut s, &update);
                    assert!(ok(&reply), "{reply}");
                }
            })
        })
        .collect();
    for w in writers {
        assert!(w.join().is_ok(), "a writer got no reply (server wedged?)");
    }
    let hello = node.command(doc! {"hello": 1, "$db": "admin"});
    assert_eq!(hello.get_bool("isWritablePrimary"), Ok(true), "{hello}");
}
