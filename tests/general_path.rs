//! The general path's cost, counted: heap allocations per request from the frame as it
//! arrives to the reply frame, through the real decoder, dispatcher and encoder, for the
//! requests the performance goals name (a monitor's hello, a driver's ping with a
//! `comment`). Allocations are what the path spends besides the kernel's TCP work
//! (docs/performance.md); counting them is exact where timing this machine is not.

use bson::{doc, spec::BinarySubtype, Binary, Document, Timestamp};
use bytes::BytesMut;
use ferrod::client::Client;
use ferrod::commands::{dispatch_now, dispatch_raw_now, Dispatched, ReplyBody};
use ferrod::config::Config;
use ferrod::log::{LogFormat, LogSink};
use ferrod::state::ServerState;
use ferrod::wire::codec::encode_message;
use ferrod::wire::op_msg::plain_body;
use ferrod::wire::{Body, Message, OpMsg, WireCodec};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

/// Counts this thread's allocations (the test runs every request on its own thread).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn frame(body: &Document) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(
        &Message {
            request_id: 7,
            response_to: 0,
            compressor: None,
            body: Body::Msg(OpMsg::from_body(body.clone())),
        },
        &mut out,
    );
    out
}

/// A driver's ping as ferrod-load sends it, with a `comment`: the fast lane leaves it to
/// the dispatcher.
fn ping_with_comment() -> Document {
    doc! {
        "ping": 1,
        "lsid": {"id": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] }},
        "$clusterTime": {
            "clusterTime": Timestamp { time: 1_700_000_000, increment: 1 },
            "signature": {
                "hash": Binary { subtype: BinarySubtype::Generic, bytes: vec![0; 20] },
                "keyId": 0_i64,
            },
        },
        "$db": "admin",
        "comment": "ferrod-load",
    }
}

/// Allocations for one request, decoded, dispatched and encoded as a connection does
/// (the median of several, after a first run that builds lazily made state).
fn allocations_per_request(request: &Document) -> (u64, Document) {
    let log = LogSink::new(LogFormat::Json, None, false, true).expect("a stdout log");
    let server = ServerState::new(Config::default(), log);
    let addr = "127.0.0.1:50000".parse().unwrap();
    let client = Arc::new(Client::new(1, addr, addr));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Handlers run inside a runtime, as on a connection's task.
    let _runtime = runtime.enter();
    let frame = frame(request);
    let mut counts = Vec::new();
    let mut reply = Document::new();
    for _ in 0..9 {
        let mut buf = BytesMut::from(&frame[..]);
        let mut out = Vec::with_capacity(1024);
        let before = allocations();
        // As the connection does: a request whose command reads it as it arrived is
        // dispatched from its bytes, any other one is decoded first.
        let dispatched =
            match plain_body(&buf[..]).and_then(|b| dispatch_raw_now(&server, &client, b)) {
                Some(dispatched) => dispatched,
                None => {
                    let incoming = WireCodec
                        .decode_request(&mut buf)
                        .expect("decodes")
                        .expect("a whole frame");
                    let Ok(Message {
                        body: Body::Msg(msg),
                        ..
                    }) = incoming.message
                    else {
                        panic!("an OP_MSG");
                    };
                    dispatch_now(
                        &server,
                        &client,
                        msg.into_command(),
                        incoming.raw_body,
                        false,
                    )
                }
            };
        // A command that does not wait is answered without a future (the connection
        // would box one per request).
        let answer = match dispatched {
            Dispatched::Ready(answer) => answer,
            Dispatched::Pending(_) => panic!("a command that does not wait built a future"),
        };
        let body = match answer.body {
            ReplyBody::Document(d) => OpMsg::from_body(d),
            ReplyBody::Encoded(raw) => OpMsg::from_encoded_body(raw),
        };
        encode_message(
            &Message {
                request_id: 8,
                response_to: 7,
                compressor: None,
                body: Body::Msg(body),
            },
            &mut out,
        );
        counts.push(allocations() - before);
        reply = ferrod::wire::codec::decode_message(&out)
            .ok()
            .and_then(|m| match m.body {
                Body::Msg(msg) => Some(msg.into_command()),
                _ => None,
            })
            .expect("a reply frame");
    }
    counts.sort_unstable();
    let name = request.keys().next().cloned().unwrap_or_default();
    eprintln!("{name}: allocations per request {counts:?}");
    (counts[counts.len() / 2], reply)
}

/// The allocations the general path may spend on a request (counted here: a hello 5, a
/// ping with a comment 5; 66 and 30 before the first round, 11 and 13 before the fourth).
/// Both commands read the request as it arrived (`Handler::Raw`, `Handler::ReplyOk`), so
/// no `Document` is built for it; what is left is `$db`, the operation entry for
/// currentOp (its `Arc` and its copy of the body), the reply and the reply's section list.
const HELLO_BUDGET: u64 = 5;
const PING_BUDGET: u64 = 5;

#[test]
fn a_monitors_hello_stays_within_its_allocation_budget() {
    let (count, reply) =
        allocations_per_request(&doc! {"hello": 1, "helloOk": true, "$db": "admin"});
    // The reply is whole: the handler's fields, then ok and the cluster time.
    let keys: Vec<&str> = reply.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "helloOk",
            "isWritablePrimary",
            "topologyVersion",
            "maxBsonObjectSize",
            "maxMessageSizeBytes",
            "maxWriteBatchSize",
            "localTime",
            "logicalSessionTimeoutMinutes",
            "connectionId",
            "minWireVersion",
            "maxWireVersion",
            "readOnly",
            "ok",
            "$clusterTime",
            "operationTime",
        ]
    );
    assert!(
        count <= HELLO_BUDGET,
        "a hello took {count} allocations (budget {HELLO_BUDGET})"
    );
}

#[test]
fn a_ping_with_a_comment_stays_within_its_allocation_budget() {
    let (count, reply) = allocations_per_request(&ping_with_comment());
    let keys: Vec<&str> = reply.keys().map(String::as_str).collect();
    assert_eq!(keys, ["ok", "$clusterTime", "operationTime"]);
    assert!(
        count <= PING_BUDGET,
        "a ping with a comment took {count} allocations (budget {PING_BUDGET})"
    );
}
