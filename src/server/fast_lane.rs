//! The fast lane: a request for a command that only answers `{ok: 1}` (ping, whose
//! handler is [`Handler::ReplyOk`]) is answered straight from its bytes when it carries
//! nothing the dispatcher would act on.
//!
//! Drivers and monitors ping constantly, and for such a request the general path (a
//! parsed `Document`, an operation registered for currentOp, a reply `Document`) costs
//! several times the command. Everything the fast lane does not accept with certainty
//! goes to the general path, which then gives the same answer or the right error: another
//! opcode or flag, a checksum, more than one section, malformed BSON, a repeated field,
//! or any argument besides `$db`, `lsid`, `$readPreference` and an unsigned
//! `$clusterTime` (so `comment`, `maxTimeMS`, API versions and signed gossip all take
//! the general path). It is never taken with `slowms` 0, where every command is logged.
//!
//! What a fast-lane request skips is not observable: it never waits, so no currentOp or
//! killOp could have seen it; the reply is byte for byte the general path's
//! (the tests below compare both). Nor is `connections.active`, which counts a
//! connection only while its command runs, counted for it.

use crate::commands::{self, Command, Handler};
use crate::state::{ServerState, Stats};
use crate::wire::raw::{finish_document, start_document, write_element};
use crate::wire::{check_value, depth, le_i32, Header, HEADER_LEN, OP_MSG};
use bson::{Bson, RawBsonRef, RawDocument};

/// Larger frames are never a bare instant command; they take the general path.
const MAX_FRAME: usize = 4096;
/// Where the body document starts: after the header, the flags and the section kind.
const BODY_AT: usize = HEADER_LEN + 5;
/// The generic arguments the dispatcher only keeps for currentOp and logs. `$db` first:
/// it must be present.
const PASSIVE_ARGUMENTS: [&str; 4] = ["$db", "lsid", "$readPreference", "$clusterTime"];

/// The length of the whole frame at the front of `buf`, when it is all there and small
/// enough for the fast lane.
pub fn whole_frame(buf: &[u8]) -> Option<usize> {
    let len = usize::try_from(le_i32(buf.get(..4)?, 0)).ok()?;
    (BODY_AT < len && len <= MAX_FRAME && len <= buf.len()).then_some(len)
}

/// Writes the reply to `frame` into `out` and returns true, or returns false (writing
/// nothing) when the request is for the general path.
pub fn answer(server: &ServerState, frame: &[u8], out: &mut Vec<u8>) -> bool {
    if !takes_fast_lane(server, frame) {
        return false;
    }
    Stats::add(&server.stats.op_command, 1);
    server.stats.commands.count_fast_ping();
    let start = out.len();
    Header {
        message_length: 0,
        request_id: super::connection::next_response_id(),
        response_to: le_i32(frame, 4),
        op_code: OP_MSG,
    }
    .write(out);
    out.extend_from_slice(&0u32.to_le_bytes()); // flags
    out.push(0); // section kind: body
    let body = start_document(out);
    write_element(b"ok", &Bson::Double(1.0), out).expect("a double");
    server.clock.write_reply_times(out);
    finish_document(body, out);
    let len = (out.len() - start) as i32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    true
}

fn takes_fast_lane(server: &ServerState, frame: &[u8]) -> bool {
    // An uncompressed OP_MSG, no flag bits, one body section and nothing after it (a
    // body whose length is not the rest of the frame does not read as a document).
    if le_i32(frame, 12) != OP_MSG || le_i32(frame, HEADER_LEN) != 0 || frame[BODY_AT - 1] != 0 {
        return false;
    }
    if server.config.slowms == 0 || !commands::may_bypass_dispatcher(server) {
        return false;
    }
    let body_bytes = &frame[BODY_AT..];
    let Ok(body) = RawDocument::from_bytes(body_bytes) else {
        return false;
    };
    // The command first: most requests are for another command, and they leave here
    // without a walk of their body.
    let mut elements = body.iter();
    let Some(Ok((name, value))) = elements.next() else {
        return false;
    };
    match commands::lookup(name) {
        Some(command) if is_instant(server, command) => {}
        _ => return false,
    }
    // The walks below recurse: anything nested past maxBSONDepth takes the general path,
    // which refuses it.
    if depth::check_raw(body_bytes, depth::max_bson_depth()) != depth::RawDepth::Within {
        return false;
    }
    if check_value(value).is_none() {
        return false;
    }
    let mut seen = [false; PASSIVE_ARGUMENTS.len()];
    for element in elements {
        let Ok((key, value)) = element else {
            return false;
        };
        let Some(i) = PASSIVE_ARGUMENTS.iter().position(|k| *k == key) else {
            return false;
        };
        if std::mem::replace(&mut seen[i], true) {
            return false;
        }
        let plain = match (key, value) {
            ("$db", RawBsonRef::String(db)) => !db.is_empty(),
            ("$db", _) => false,
            // With keys, a client's cluster time is checked and may move the clock.
            ("$clusterTime", _) if server.clock.keys().is_some() => false,
            (_, value) => check_value(value).is_some(),
        };
        if !plain {
            return false;
        }
    }
    seen[0]
}

/// A command the fast lane may answer: it only says ok, and no one is refused it.
fn is_instant(server: &ServerState, command: &Command) -> bool {
    matches!(command.handler, Handler::ReplyOk)
        && commands::is_available(server, command)
        && command.allowed_before_auth
        && command.privileges.is_empty()
        && !command.admin_only
        && command.validate.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, RedbCatalog};
    use crate::client::Client;
    use crate::clock::SigningKeys;
    use crate::cluster_time::ClusterKeys;
    use crate::config::Config;
    use crate::log::{LogFormat, LogSink};
    use crate::server::connection::{handle, Answer};
    use crate::wire::codec::encode_message;
    use crate::wire::WireCodec;
    use bson::{doc, spec::BinarySubtype, Binary, Document, Timestamp};
    use bytes::BytesMut;
    use std::sync::Arc;

    fn server_with(slowms: u64) -> Arc<ServerState> {
        let log = LogSink::new(LogFormat::Text, None, false, true).expect("a stdout log");
        ServerState::new(
            Config {
                slowms,
                ..Config::default()
            },
            log,
        )
    }

    fn server() -> Arc<ServerState> {
        server_with(100)
    }

    /// An OP_MSG frame: header, `flags`, the body section, then `after` (more sections
    /// or a checksum), with the length patched in.
    fn frame_with(op_code: i32, flags: u32, body: &[u8], after: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(&77i32.to_le_bytes());
        frame.extend_from_slice(&0i32.to_le_bytes());
        frame.extend_from_slice(&op_code.to_le_bytes());
        frame.extend_from_slice(&flags.to_le_bytes());
        frame.push(0);
        frame.extend_from_slice(body);
        frame.extend_from_slice(after);
        let len = frame.len() as i32;
        frame[..4].copy_from_slice(&len.to_le_bytes());
        frame
    }

    fn frame(body: &Document) -> Vec<u8> {
        frame_with(OP_MSG, 0, &bson::to_vec(body).unwrap(), &[])
    }

    /// The reply the general path (decode, dispatcher, encoder) gives to `frame`.
    fn general_reply(server: &Arc<ServerState>, frame: &[u8]) -> Vec<u8> {
        let addr = "127.0.0.1:40000".parse().unwrap();
        let client = Arc::new(Client::new(1, addr, addr));
        let mut buf = BytesMut::from(frame);
        let incoming = WireCodec
            .decode_request(&mut buf)
            .expect("decodes")
            .expect("a whole frame");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let Answer::Reply(reply) = runtime.block_on(handle(server, &client, incoming)) else {
            panic!("the general path gave no reply");
        };
        let mut out = Vec::new();
        encode_message(&reply, &mut out);
        out
    }

    fn driver_ping() -> Document {
        doc! {
            "ping": 1,
            "lsid": {"id": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] }},
            "$clusterTime": {
                "clusterTime": Timestamp { time: 1, increment: 1 },
                "signature": {"hash": Binary { subtype: BinarySubtype::Generic, bytes: vec![0; 20] }, "keyId": 0i64},
            },
            "$readPreference": {"mode": "primaryPreferred"},
            "$db": "admin",
        }
    }

    #[test]
    fn driver_shaped_pings_get_the_general_paths_reply_byte_for_byte() {
        let server = server();
        for body in [
            doc! {"ping": 1, "$db": "admin"},
            doc! {"ping": 1.0, "$db": "test"},
            doc! {"ping": true, "$db": "x"},
            driver_ping(),
        ] {
            let frame = frame(&body);
            let mut fast = Vec::new();
            assert!(
                answer(&server, &frame, &mut fast),
                "{body} took the general path"
            );
            let general = general_reply(&server, &frame);
            // Everything but the reply's own requestID (bytes 4..8) is the same.
            assert_eq!(fast[..4], general[..4], "{body}");
            assert_eq!(fast[8..], general[8..], "{body}");
            let reply = bson::RawDocument::from_bytes(&fast[BODY_AT..]).unwrap();
            assert_eq!(reply.get_f64("ok").unwrap(), 1.0);
        }
    }

    #[test]
    fn the_reply_carries_a_signed_cluster_time_once_there_are_keys() {
        let server = server();
        let keys = ClusterKeys::default();
        let catalog = RedbCatalog::in_memory();
        let key = keys
            .next_key(server.clock.now(), 3600)
            .expect("a first key");
        catalog.apply(vec![key]).unwrap();
        keys.load(&catalog);
        server.clock.enable_signing(Arc::new(keys));
        let frame = frame(&doc! {"ping": 1, "$db": "admin"});
        let mut fast = Vec::new();
        assert!(answer(&server, &frame, &mut fast));
        assert_eq!(fast[8..], general_reply(&server, &frame)[8..]);
        let reply = bson::RawDocument::from_bytes(&fast[BODY_AT..]).unwrap();
        let signature = reply
            .get_document("$clusterTime")
            .and_then(|t| t.get_document("signature"))
            .unwrap();
        assert_ne!(signature.get_i64("keyId").unwrap(), 0);
        assert_ne!(signature.get_binary("hash").unwrap().bytes, [0; 20]);
    }

    #[test]
    fn anything_the_dispatcher_would_act_on_takes_the_general_path() {
        let ping = bson::to_vec(&doc! {"ping": 1, "$db": "admin"}).unwrap();
        let with = |extra: Document| {
            let mut body = doc! {"ping": 1};
            body.extend(extra);
            frame(&body)
        };
        let kind1 = {
            let mut section = vec![1u8];
            let docs = bson::to_vec(&doc! {"a": 1}).unwrap();
            section.extend_from_slice(&((4 + 2 + docs.len()) as i32).to_le_bytes());
            section.extend_from_slice(b"d\0");
            section.extend_from_slice(&docs);
            section
        };
        // lsid whose inner document names a BSON type that does not exist.
        let mut bad_lsid =
            bson::to_vec(&doc! {"ping": 1, "lsid": {"id": 1}, "$db": "admin"}).unwrap();
        let at = bad_lsid.windows(3).position(|w| w == b"id\0").unwrap() - 1;
        bad_lsid[at] = 0x99;
        let mut bad_utf8 = bson::to_vec(&doc! {"ping": 1, "$db": "admin"}).unwrap();
        let at = bad_utf8.windows(5).position(|w| w == b"admin").unwrap();
        bad_utf8[at] = 0xff;
        let signing = server();
        signing
            .clock
            .enable_signing(Arc::new(ClusterKeys::default()));
        let cases: Vec<(&str, Vec<u8>, Arc<ServerState>)> = vec![
            (
                "checksum present",
                frame_with(OP_MSG, 1, &ping, &[0; 4]),
                server(),
            ),
            ("moreToCome", frame_with(OP_MSG, 2, &ping, &[]), server()),
            (
                "exhaustAllowed",
                frame_with(OP_MSG, 1 << 16, &ping, &[]),
                server(),
            ),
            (
                "a document sequence",
                frame_with(OP_MSG, 0, &ping, &kind1),
                server(),
            ),
            (
                "a byte after the body",
                frame_with(OP_MSG, 0, &ping, &[0]),
                server(),
            ),
            ("OP_QUERY", frame_with(2004, 0, &ping, &[]), server()),
            ("OP_COMPRESSED", frame_with(2012, 0, &ping, &[]), server()),
            (
                "comment",
                with(doc! {"comment": "x", "$db": "admin"}),
                server(),
            ),
            (
                "maxTimeMS",
                with(doc! {"maxTimeMS": 5, "$db": "admin"}),
                server(),
            ),
            (
                "apiVersion",
                with(doc! {"apiVersion": "1", "$db": "admin"}),
                server(),
            ),
            (
                "an unknown argument",
                with(doc! {"x": 1, "$db": "admin"}),
                server(),
            ),
            ("no $db", frame(&doc! {"ping": 1}), server()),
            ("$db of another type", with(doc! {"$db": 5}), server()),
            ("empty $db", with(doc! {"$db": ""}), server()),
            (
                "$db first",
                frame(&doc! {"$db": "admin", "ping": 1}),
                server(),
            ),
            (
                "another command",
                frame(&doc! {"hello": 1, "$db": "admin"}),
                server(),
            ),
            (
                "an unknown command",
                frame(&doc! {"pingx": 1, "$db": "admin"}),
                server(),
            ),
            ("an empty body", frame(&doc! {}), server()),
            (
                "a malformed lsid",
                frame_with(OP_MSG, 0, &bad_lsid, &[]),
                server(),
            ),
            (
                "$db not UTF-8",
                frame_with(OP_MSG, 0, &bad_utf8, &[]),
                server(),
            ),
            (
                "slowms 0 logs every command",
                frame(&doc! {"ping": 1, "$db": "admin"}),
                server_with(0),
            ),
            ("a $clusterTime to check", frame(&driver_ping()), signing),
        ];
        for (what, frame, server) in cases {
            let mut out = Vec::new();
            assert!(
                !answer(&server, &frame, &mut out),
                "{what} took the fast lane"
            );
            assert!(out.is_empty(), "{what}: the fast lane wrote a reply");
        }
        // A repeated field: the general path reads the last one.
        let mut twice = bson::to_vec(&doc! {"ping": 1, "$db": "admin", "$dc": "x"}).unwrap();
        let at = twice.windows(4).position(|w| w == b"$dc\0").unwrap();
        twice[at + 2] = b'b';
        assert!(!answer(
            &server(),
            &frame_with(OP_MSG, 0, &twice, &[]),
            &mut Vec::new()
        ));
    }

    proptest::proptest! {
        /// A driver's ping with a few bytes changed: the fast lane never panics, and
        /// whatever it answers, the general path answers with the same bytes.
        #[test]
        fn a_mangled_ping_gets_the_general_paths_reply_or_goes_there(
            changes in proptest::collection::vec((0usize..512, proptest::num::u8::ANY), 1..4)
        ) {
            let server = server();
            let mut frame = frame(&driver_ping());
            for (at, byte) in changes {
                let at = at % frame.len();
                frame[at] = byte;
            }
            let Some(len) = whole_frame(&frame) else {
                return Ok(());
            };
            let frame = &frame[..len];
            let mut fast = Vec::new();
            if answer(&server, frame, &mut fast) {
                let general = general_reply(&server, frame);
                proptest::prop_assert_eq!(&fast[8..], &general[8..]);
            } else {
                proptest::prop_assert!(fast.is_empty());
            }
        }
    }

    #[test]
    fn whole_frame_waits_for_every_byte_and_leaves_big_frames_alone() {
        let frame = frame(&doc! {"ping": 1, "$db": "admin"});
        assert_eq!(whole_frame(&frame), Some(frame.len()));
        assert_eq!(whole_frame(&frame[..frame.len() - 1]), None);
        assert_eq!(whole_frame(&frame[..3]), None);
        let mut big = frame.clone();
        big[..4].copy_from_slice(&(MAX_FRAME as i32 + 1).to_le_bytes());
        assert_eq!(whole_frame(&big), None);
        big[..4].copy_from_slice(&(-1i32).to_le_bytes());
        assert_eq!(whole_frame(&big), None);
    }
}
