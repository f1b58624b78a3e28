//! Logical sessions (issue 13): startSession; a cursor belongs to the session it was
//! opened in (getMore from another session: 50738, without one: 50737, in a session on
//! a cursor opened outside one: 50736); endSessions, killSessions, killAllSessions and
//! killAllSessionsByPattern close the cursors of the sessions they end.

mod common;

use bson::{doc, Binary, Bson, Document};
use common::{ok, Ferrod};

fn lsid() -> Document {
    doc! {"id": Binary::from_uuid(bson::Uuid::new())}
}

fn in_session(mut cmd: Document, lsid: Option<&Document>) -> Document {
    if let Some(l) = lsid {
        cmd.insert("lsid", l.clone());
    }
    cmd.insert("$db", "app");
    cmd
}

fn seeded() -> Ferrod {
    let node = Ferrod::start(&[]);
    let docs: Vec<Document> = (0..10).map(|i| doc! {"_id": i}).collect();
    let reply = node.command(doc! {"insert": "c", "documents": docs, "$db": "app"});
    assert!(ok(&reply), "{reply}");
    node
}

/// A find in `lsid` that leaves a cursor open; its id.
fn open_cursor(node: &Ferrod, lsid: Option<&Document>) -> i64 {
    let reply = node.command(in_session(doc! {"find": "c", "batchSize": 2}, lsid));
    let id = reply.get_document("cursor").unwrap().get_i64("id").unwrap();
    assert_ne!(id, 0, "{reply}");
    id
}

fn get_more(node: &Ferrod, id: i64, lsid: Option<&Document>) -> Document {
    node.command(in_session(
        doc! {"getMore": id, "collection": "c", "batchSize": 2},
        lsid,
    ))
}

fn code(reply: &Document) -> Option<i32> {
    reply.get_i32("code").ok()
}

#[test]
fn start_session_returns_an_id_and_the_timeout() {
    let node = Ferrod::start(&[]);
    let reply = node.command(doc! {"startSession": 1, "$db": "admin"});
    assert!(ok(&reply), "{reply}");
    let id = reply.get_document("id").unwrap();
    assert!(
        matches!(id.get("id"), Some(Bson::Binary(b)) if b.to_uuid().is_ok()),
        "{reply}"
    );
    assert_eq!(reply.get_i32("timeoutMinutes"), Ok(30));
}

#[test]
fn a_cursor_is_read_in_the_session_it_was_opened_in() {
    let node = seeded();
    let a = lsid();
    let id = open_cursor(&node, Some(&a));
    let other = get_more(&node, id, Some(&lsid()));
    assert_eq!(code(&other), Some(50738), "{other}");
    assert!(other.get_str("errmsg").unwrap().starts_with(&format!(
        "Cannot run getMore on cursor {id}, which was created in session"
    )));
    let none = get_more(&node, id, None);
    assert_eq!(code(&none), Some(50737), "{none}");
    // The refusals left the cursor open for its own session.
    let mine = get_more(&node, id, Some(&a));
    assert!(ok(&mine), "{mine}");
    assert_eq!(
        mine.get_document("cursor")
            .unwrap()
            .get_array("nextBatch")
            .unwrap()
            .len(),
        2
    );

    let outside = open_cursor(&node, None);
    let reply = get_more(&node, outside, Some(&a));
    assert_eq!(code(&reply), Some(50736), "{reply}");
    assert!(ok(&get_more(&node, outside, None)));
}

#[test]
fn ending_or_killing_a_session_closes_its_cursors() {
    let node = seeded();
    let (a, b) = (lsid(), lsid());
    let in_a = open_cursor(&node, Some(&a));
    let in_b = open_cursor(&node, Some(&b));
    let reply = node.command(doc! {"killSessions": [a.clone()], "$db": "admin"});
    assert!(ok(&reply), "{reply}");
    assert_eq!(code(&get_more(&node, in_a, Some(&a))), Some(43));
    assert!(
        ok(&get_more(&node, in_b, Some(&b))),
        "other sessions live on"
    );

    let reply = node.command(doc! {"endSessions": [b.clone()], "$db": "admin"});
    assert!(ok(&reply), "{reply}");
    assert_eq!(code(&get_more(&node, in_b, Some(&b))), Some(43));

    let (c, e) = (lsid(), lsid());
    let in_c = open_cursor(&node, Some(&c));
    let in_e = open_cursor(&node, Some(&e));
    let reply = node.command(doc! {
        "killAllSessionsByPattern": [{"lsid": c.clone()}], "$db": "admin",
    });
    assert!(ok(&reply), "{reply}");
    assert_eq!(code(&get_more(&node, in_c, Some(&c))), Some(43));
    assert!(ok(&get_more(&node, in_e, Some(&e))));

    let outside = open_cursor(&node, None);
    let reply = node.command(doc! {"killAllSessions": [], "$db": "admin"});
    assert!(ok(&reply), "{reply}");
    assert_eq!(code(&get_more(&node, in_e, Some(&e))), Some(43));
    assert!(
        ok(&get_more(&node, outside, None)),
        "a cursor outside sessions is not a session's"
    );

    let bad = node.command(doc! {"killAllSessions": [1], "$db": "admin"});
    assert_eq!(code(&bad), Some(14), "{bad}");
}

#[test]
fn killing_a_session_interrupts_its_running_operations() {
    let node = Ferrod::start(&["--setParameter", "enableTestCommands=1"]);
    let a = lsid();
    std::thread::scope(|scope| {
        let sleeper = scope.spawn(|| {
            let mut cmd = doc! {"sleep": 1, "secs": 60, "$db": "admin"};
            cmd.insert("lsid", a.clone());
            node.command(cmd)
        });
        common::eventually(
            std::time::Duration::from_secs(10),
            "the sleep in currentOp",
            || {
                let ops = node.command(doc! {"currentOp": 1, "$db": "admin"});
                ops.get_array("inprog")
                    .unwrap()
                    .iter()
                    .any(|op| {
                        op.as_document()
                            .and_then(|o| o.get_document("command").ok())
                            .is_some_and(|c| c.contains_key("sleep"))
                    })
                    .then_some(())
            },
        );
        let reply = node.command(doc! {"killSessions": [a.clone()], "$db": "admin"});
        assert!(ok(&reply), "{reply}");
        let slept = sleeper.join().unwrap();
        assert_eq!(code(&slept), Some(11601), "{slept}");
    });
}
