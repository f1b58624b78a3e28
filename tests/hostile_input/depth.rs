//! Hostile input: BSON nested past `maxBSONDepth`, in requests and in the store.

use super::common::*;
use bson::{doc, Bson, Document};
use std::io::Write as _;
use std::net::TcpStream;
use std::time::Duration;

const OVERFLOW: i32 = 15;

/// The bytes of `{a: {a: ... {}}}`: `levels` documents, the outermost included. Written
/// by hand, since a Document this deep could not be serialized (or dropped) recursively.
fn deep_document(levels: usize) -> Vec<u8> {
    let mut raw = Vec::with_capacity(levels * 8 + 5);
    for _ in 1..levels {
        raw.extend_from_slice(&[0, 0, 0, 0, 0x03, b'a', 0]);
    }
    raw.extend_from_slice(&[5, 0, 0, 0, 0]);
    let mut end = raw.len();
    for level in (0..levels - 1).rev() {
        raw.push(0);
        end += 1;
        let start = level * 7;
        raw[start..start + 4].copy_from_slice(&((end - start) as i32).to_le_bytes());
    }
    raw
}

/// `{<name>: 1, x: <deep_document(levels)>, $db: "admin"}` as bytes: `levels` levels
/// below the command document.
fn deep_command(name: &str, levels: usize) -> Vec<u8> {
    let mut body = vec![0, 0, 0, 0];
    body.push(0x10);
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    body.extend_from_slice(&1i32.to_le_bytes());
    body.push(0x03);
    body.extend_from_slice(b"x\0");
    body.extend_from_slice(&deep_document(levels));
    body.push(0x02);
    body.extend_from_slice(b"$db\0");
    body.extend_from_slice(&6i32.to_le_bytes());
    body.extend_from_slice(b"admin\0");
    body.push(0);
    let len = body.len() as i32;
    body[..4].copy_from_slice(&len.to_le_bytes());
    body
}

fn op_msg_bytes(request_id: i32, body: &[u8]) -> Vec<u8> {
    let mut payload = 0u32.to_le_bytes().to_vec();
    payload.push(0);
    payload.extend_from_slice(body);
    frame(request_id, OP_MSG, &payload)
}

/// Sends `body` as an OP_MSG and returns the reply document.
fn send(s: &mut TcpStream, body: &[u8]) -> Document {
    s.write_all(&op_msg_bytes(5, body)).unwrap();
    let (_, response_to, op, reply) = read_frame(s).expect("a reply");
    assert_eq!((response_to, op), (5, OP_MSG));
    parse_op_msg_reply(&reply)
}

fn assert_overflow(reply: &Document, what: &str) {
    assert_eq!(reply.get_f64("ok").ok(), Some(0.0), "{what}: {reply}");
    assert_eq!(
        reply.get_i32("code").ok(),
        Some(OVERFLOW),
        "{what}: {reply}"
    );
    assert_eq!(reply.get_str("codeName").ok(), Some("Overflow"), "{what}");
    assert_eq!(
        reply.get_str("errmsg").ok(),
        Some("BSONObj exceeds maximum nested object depth"),
        "{what}"
    );
}

fn assert_ok(reply: &Document, what: &str) {
    assert_eq!(reply.get_f64("ok").ok(), Some(1.0), "{what}: {reply}");
}

#[test]
fn commands_nested_past_max_bson_depth_get_overflow_and_everyone_is_still_served() {
    for args in [&[][..], &["--auth"][..]] {
        let mut server = Ferrod::start(args);
        let mut bystander = server.raw();
        assert_ok(&op_msg_roundtrip(&mut bystander, &ping_doc()), "bystander");
        let mut attacker = server.raw();
        for name in ["ping", "hello", "isMaster"] {
            // 200 levels is mongod's default limit: accepted, and every walk over it
            // (decoding, the fast lane, logging) stays within the stack.
            assert_ok(&send(&mut attacker, &deep_command(name, 200)), name);
            for levels in [201, 2_500, 100_000] {
                let what = format!("{name} nested {levels} levels, args {args:?}");
                assert_overflow(&send(&mut attacker, &deep_command(name, levels)), &what);
                // The same connection goes on.
                assert_ok(&op_msg_roundtrip(&mut attacker, &ping_doc()), &what);
            }
        }
        // A document sequence is held to the same limit.
        let mut seq = vec![1u8];
        let deep = deep_document(300);
        seq.extend_from_slice(&((4 + 2 + deep.len()) as i32).to_le_bytes());
        seq.extend_from_slice(b"d\0");
        seq.extend_from_slice(&deep);
        let mut payload = 0u32.to_le_bytes().to_vec();
        payload.push(0);
        payload.extend_from_slice(&bson_bytes(&doc! {"ping": 1, "$db": "admin"}));
        payload.extend_from_slice(&seq);
        attacker.write_all(&frame(6, OP_MSG, &payload)).unwrap();
        let (_, _, _, reply) = read_frame(&mut attacker).unwrap();
        assert_overflow(&parse_op_msg_reply(&reply), "a deep document sequence");
        assert_ok(&op_msg_roundtrip(&mut bystander, &ping_doc()), "bystander");
        assert!(server.alive(), "ferrod {args:?} died");
    }
}

#[test]
fn max_bson_depth_is_a_startup_parameter_that_moves_the_limit() {
    for (limit, args) in [
        (21, ["--setParameter", "maxBSONDepth=21"]),
        (250, ["--setParameter", "maxBSONDepth=250"]),
    ] {
        let server = Ferrod::start(&args);
        let mut s = server.raw();
        assert_ok(&send(&mut s, &deep_command("ping", limit)), "at the limit");
        assert_overflow(&send(&mut s, &deep_command("ping", limit + 1)), "past it");
        let reply = server.command(doc! {"getParameter": 1, "maxBSONDepth": 1, "$db": "admin"});
        assert_eq!(
            reply.get_i32("maxBSONDepth").ok(),
            Some(limit as i32),
            "{reply}"
        );
        // Like mongod's, the parameter is fixed once the server runs.
        let reply = server.command(doc! {"setParameter": 1, "maxBSONDepth": 100, "$db": "admin"});
        assert_eq!(reply.get_f64("ok").ok(), Some(0.0), "{reply}");
    }
    let server = Ferrod::start(&[]);
    let reply = server.command(doc! {"getParameter": 1, "maxBSONDepth": 1, "$db": "admin"});
    assert_eq!(reply.get_i32("maxBSONDepth").ok(), Some(200), "{reply}");
}

#[test]
fn max_bson_depth_outside_mongods_range_stops_startup() {
    for value in ["20", "251", "-4", "deep"] {
        let dbpath = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new(FERROD);
        cmd.args(["--port", "0", "--dbpath"])
            .arg(dbpath.path())
            .args(["--setParameter", &format!("maxBSONDepth={value}")]);
        let out = run(cmd, Duration::from_secs(20));
        assert!(
            !out.success,
            "maxBSONDepth={value} was accepted: {}",
            out.text
        );
        assert!(
            out.text.contains("maxBSONDepth"),
            "maxBSONDepth={value}: the error names the parameter: {}",
            out.text
        );
    }
}

/// `{a: {a: ... {a: 1}}}` with `documents` documents, built without recursion.
fn nested_value(documents: usize) -> Bson {
    let mut value = Bson::Int32(1);
    for _ in 0..documents {
        value = Bson::Document(doc! {"a": value});
    }
    value
}

fn reply_code(reply: &Document) -> Option<i32> {
    reply.get_i32("code").ok()
}

/// The nesting of a customData value read back: how many documents deep it goes.
fn documents_deep(mut value: &Bson) -> usize {
    let mut n = 0;
    while let Bson::Document(d) = value {
        n += 1;
        match d.get("a") {
            Some(inner) => value = inner,
            None => break,
        }
    }
    n
}

/// Runs `body` on a thread whose stack holds the test's own recursive serialization of
/// documents hundreds of levels deep (a test thread's 2 MiB does not, in debug builds).
fn on_a_big_stack(body: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(body)
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

#[test]
fn stored_documents_keep_to_mongods_storage_depth_and_survive_a_restart() {
    on_a_big_stack(stored_documents_keep_to_the_storage_depth);
}

fn stored_documents_keep_to_the_storage_depth() {
    let mut server = Ferrod::start(&[]);
    // A user document's customData is one of its top-level fields (level 1): 179 documents
    // put the innermost field at level 180, the storage limit; one more is refused.
    let create = |name: &str, documents: usize| {
        server.command(doc! {
            "createUser": name, "pwd": "pw", "roles": [],
            "customData": nested_value(documents), "$db": "admin",
        })
    };
    assert_ok(&create("deepest", 179), "179 documents");
    let refused = create("too_deep", 180);
    assert_eq!(reply_code(&refused), Some(OVERFLOW), "{refused}");
    assert_eq!(
        refused.get_str("errmsg").ok(),
        Some("Document exceeds maximum nesting depth of 180")
    );
    // Past maxBSONDepth, the request itself is refused.
    assert_eq!(reply_code(&create("far_too_deep", 1_000)), Some(OVERFLOW));
    let update = server.command(doc! {
        "updateUser": "deepest", "customData": nested_value(180), "$db": "admin",
    });
    assert_eq!(reply_code(&update), Some(OVERFLOW), "{update}");

    server.terminate();
    let server = Ferrod::start_in(server.into_dbpath(), &[]);
    let info = server.command(doc! {"usersInfo": 1, "showCustomData": true, "$db": "admin"});
    let users = info.get_array("users").expect("users");
    let names: Vec<_> = users
        .iter()
        .filter_map(|u| u.as_document()?.get_str("user").ok())
        .collect();
    assert_eq!(names, ["deepest"], "{info}");
    let custom = users[0].as_document().unwrap().get("customData").unwrap();
    assert_eq!(documents_deep(custom), 179);
    // The stored user logs in.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = driver(&server.uri(), Some(("deepest", "pw")), None).await;
        client
            .database("admin")
            .run_command(doc! {"connectionStatus": 1})
            .await
            .expect("deepest logs in");
    });
}

#[test]
fn a_store_holding_a_document_nested_past_the_limit_still_opens_and_serves() {
    // What an older build could store: a user whose customData nests 1,000 levels.
    let mut server = Ferrod::start(&[]);
    assert_ok(
        &server.command(doc! {"createUser": "old", "pwd": "pw", "roles": [], "$db": "admin"}),
        "createUser",
    );
    server.terminate();
    let dbpath = server.into_dbpath();
    let path = dbpath.path().to_owned();
    on_a_big_stack(move || {
        use ferrod::catalog::{Catalog, Collection, RedbCatalog, Write};
        let catalog = RedbCatalog::open(&path).expect("open the store");
        let mut user = catalog
            .get(Collection::Users, "admin.old")
            .unwrap()
            .expect("the user is stored");
        user.insert("customData", nested_value(1_000));
        catalog
            .apply(vec![Write::Replace {
                collection: Collection::Users,
                id: "admin.old".into(),
                doc: user,
            }])
            .unwrap();
    });
    let mut server = Ferrod::start_in(dbpath, &["--auth"]);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        // The localhost exception is gone (a user exists), so log in as that user.
        let client = driver(&server.uri(), Some(("old", "pw")), None).await;
        let status = client
            .database("admin")
            .run_command(doc! {"connectionStatus": 1})
            .await
            .expect("old logs in");
        let users = status.get_document("authInfo").unwrap();
        assert_eq!(users.get_array("authenticatedUsers").unwrap().len(), 1);
    });
    server.wait_for_log("read without them", Duration::from_secs(10));
    assert!(server.alive());
    // An admin who can list users sees the user, without the field that cannot be read.
    server.terminate();
    let mut open = Ferrod::start_in(server.into_dbpath(), &[]);
    for cmd in [
        doc! {"usersInfo": 1, "$db": "admin"},
        doc! {"usersInfo": 1, "showCustomData": false, "$db": "admin"},
        doc! {"usersInfo": {"forAllDBs": true}, "$db": "admin"},
        doc! {"usersInfo": "old", "showCustomData": true, "$db": "admin"},
    ] {
        let reply = open.command(cmd.clone());
        assert_ok(&reply, &format!("{cmd}"));
        let users = reply.get_array("users").unwrap();
        assert_eq!(users.len(), 1, "{reply}");
        assert!(!users[0].as_document().unwrap().contains_key("customData"));
    }
    assert!(open.alive());
}
