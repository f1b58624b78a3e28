//! The connection loop gives its buffers back while idle and keeps client metadata as raw
//! BSON; these pin that the behaviour around those savings is unchanged.

mod common;

use bson::doc;
use common::{op_msg, parse_op_msg_reply, read_frame, Ferrod};
use std::io::Write;
use std::time::Duration;

#[test]
fn frame_split_across_idle_pauses_is_answered() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    let frame = op_msg(5, 0, &doc! {"ping": 1, "$db": "admin"});
    // The server sees part of a frame, finds nothing more to read, then the rest.
    for chunk in frame.chunks(7) {
        s.write_all(chunk).unwrap();
        s.flush().unwrap();
        // The idle pause between pieces is the behaviour under test, not a wait.
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, response_to, _, body) = read_frame(&mut s).expect("a reply");
    assert_eq!(response_to, 5);
    assert_eq!(parse_op_msg_reply(&body).get_f64("ok").unwrap(), 1.0);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    let mut batch = Vec::new();
    for id in 1..=200 {
        batch.extend(op_msg(id, 0, &doc! {"ping": 1, "$db": "admin"}));
    }
    s.write_all(&batch).unwrap();
    for id in 1..=200 {
        let (_, response_to, _, body) = read_frame(&mut s).expect("a reply");
        assert_eq!(response_to, id);
        assert_eq!(parse_op_msg_reply(&body).get_f64("ok").unwrap(), 1.0);
    }
}

#[test]
fn app_name_from_the_first_hello_shows_in_current_op() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    let hello = doc! {
        "hello": 1,
        "client": {
            "application": {"name": "buffers-test-app"},
            "driver": {"name": "raw", "version": "1"},
            "os": {"type": "Linux"},
        },
        "$db": "admin",
    };
    s.write_all(&op_msg(1, 0, &hello)).unwrap();
    let (_, _, _, body) = read_frame(&mut s).unwrap();
    assert_eq!(parse_op_msg_reply(&body).get_f64("ok").unwrap(), 1.0);

    s.write_all(&op_msg(2, 0, &doc! {"currentOp": 1, "$db": "admin"}))
        .unwrap();
    let (_, _, _, body) = read_frame(&mut s).unwrap();
    let reply = parse_op_msg_reply(&body);
    let inprog = reply.get_array("inprog").unwrap();
    let own = inprog
        .iter()
        .filter_map(|op| op.as_document())
        .find(|op| {
            op.get_document("command")
                .is_ok_and(|c| c.contains_key("currentOp"))
        })
        .expect("currentOp lists itself");
    assert_eq!(own.get_str("appName").unwrap(), "buffers-test-app");
    assert!(own.get_str("client").unwrap().starts_with("127.0.0.1:"));
}
