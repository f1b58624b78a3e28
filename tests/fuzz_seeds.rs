//! Keeps the fuzz target's seed corpus (fuzz/seeds/decode) meaningful.
//!
//! Seed files are named by what they must do:
//! - `valid-*` decode, and round-trip through encode and decode;
//! - `invalid-*` fail to decode;
//! - anything else (crashers the fuzzer found, edge cases) must merely not panic and keep
//!   the round-trip contract for what decodes.
//!
//! The valid and invalid seeds are built here. `FERROD_WRITE_SEEDS=1 cargo test --test
//! fuzz_seeds the_built_seeds_are_in_the_corpus` (re)writes them; without it the test
//! checks that the files are there and decode to what this file builds.

use bson::{doc, Document};
use ferrod::wire::codec::{check_roundtrip, decode_message, encode_message};
use ferrod::wire::op_msg::{CHECKSUM_PRESENT, MORE_TO_COME};
use ferrod::wire::{Body, Compressor, Message, OpMsg, OpQuery, Section};
use std::path::{Path, PathBuf};

fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/decode")
}

fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(msg, &mut out);
    out
}

fn message(compressor: Option<Compressor>, body: Body) -> Message {
    Message {
        request_id: 1,
        response_to: 0,
        compressor,
        body,
    }
}

fn ping() -> Document {
    doc! {"ping": 1, "$db": "admin"}
}

fn insert_with_sequence(flags: u32) -> OpMsg {
    OpMsg {
        flags,
        sections: vec![
            Section::Body(doc! {"insert": "coll", "$db": "test", "ordered": true}),
            Section::Sequence {
                identifier: "documents".into(),
                documents: vec![doc! {"_id": 1, "a": "x"}, doc! {"_id": 2, "b": [1, 2.5]}],
            },
        ],
    }
}

/// The seeds that must decode, by file name.
fn valid_seeds() -> Vec<(String, Message)> {
    let hello = Body::Query(OpQuery {
        flags: 0,
        full_collection_name: "admin.$cmd".into(),
        number_to_skip: 0,
        number_to_return: -1,
        query: doc! {"ismaster": 1, "helloOk": true, "client": {"driver": {"name": "seed"}},
        "compression": ["zstd", "zlib", "snappy"]},
        return_fields_selector: None,
    });
    let mut seeds = vec![
        ("valid-op-query-hello".to_string(), message(None, hello)),
        (
            "valid-op-msg-ping".into(),
            message(None, Body::Msg(OpMsg::from_body(ping()))),
        ),
        (
            "valid-op-msg-sequence".into(),
            message(None, Body::Msg(insert_with_sequence(0))),
        ),
        (
            "valid-op-msg-checksum-sequence".into(),
            message(None, Body::Msg(insert_with_sequence(CHECKSUM_PRESENT))),
        ),
        (
            "valid-op-msg-more-to-come".into(),
            message(
                None,
                Body::Msg(OpMsg {
                    flags: MORE_TO_COME,
                    sections: vec![Section::Body(ping())],
                }),
            ),
        ),
        (
            "valid-op-reply".into(),
            message(
                None,
                Body::Reply(ferrod::wire::OpReply::single(doc! {"ok": 1.0})),
            ),
        ),
    ];
    for c in [
        Compressor::Noop,
        Compressor::Snappy,
        Compressor::Zlib,
        Compressor::Zstd,
    ] {
        seeds.push((
            format!("valid-compressed-{}-ping", c.name()),
            message(Some(c), Body::Msg(OpMsg::from_body(ping()))),
        ));
        seeds.push((
            format!("valid-compressed-{}-sequence-checksum", c.name()),
            message(Some(c), Body::Msg(insert_with_sequence(CHECKSUM_PRESENT))),
        ));
    }
    seeds
}

/// Seeds that must not decode: each a valid frame broken in one way.
fn invalid_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let ping_frame = encode(&message(None, Body::Msg(OpMsg::from_body(ping()))));
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = ping_frame.clone();
        f(&mut bytes);
        bytes
    };
    let zlib_ping = encode(&message(
        Some(Compressor::Zlib),
        Body::Msg(OpMsg::from_body(ping())),
    ));
    vec![
        ("invalid-unknown-section-kind", with(&|b| b[20] = 7)),
        ("invalid-required-flag", with(&|b| b[16] = 4)),
        ("invalid-bson-type", with(&|b| b[25] = 0x55)),
        ("invalid-bson-length", with(&|b| b[21] = 0xff)),
        (
            "invalid-bad-checksum",
            encode(&message(
                None,
                Body::Msg(insert_with_sequence(CHECKSUM_PRESENT)),
            ))
            .into_iter()
            .rev()
            .enumerate()
            .map(|(i, b)| if i == 0 { b ^ 1 } else { b })
            .rev()
            .collect(),
        ),
        ("invalid-unknown-opcode", with(&|b| b[12] = 0x99)),
        ("invalid-compressed-wrong-size", {
            let mut b = zlib_ping.clone();
            b[20] = b[20].wrapping_add(3);
            b
        }),
        ("invalid-compressed-unknown-compressor", {
            let mut b = zlib_ping.clone();
            b[24] = 9;
            b
        }),
        ("invalid-compressed-garbage", {
            let mut b = zlib_ping.clone();
            let n = b.len();
            b[25..n].fill(0xa5);
            b
        }),
    ]
}

#[test]
fn every_seed_decodes_without_panic_and_keeps_the_round_trip_contract() {
    let mut count = 0;
    for entry in std::fs::read_dir(seed_dir()).expect("fuzz/seeds/decode exists") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let decoded = check_roundtrip(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        if name.starts_with("valid-") {
            assert!(decoded, "{name} must decode: {:?}", decode_message(&bytes));
        }
        if name.starts_with("invalid-") {
            assert!(!decoded, "{name} must not decode");
        }
        count += 1;
    }
    assert!(
        count >= valid_seeds().len() + invalid_seeds().len(),
        "the seed corpus has only {count} files"
    );
}

#[test]
fn the_built_seeds_are_in_the_corpus() {
    let write = std::env::var_os("FERROD_WRITE_SEEDS").is_some();
    let dir = seed_dir();
    for (name, msg) in valid_seeds() {
        let path = dir.join(&name);
        if write {
            std::fs::write(&path, encode(&msg)).unwrap();
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decode_message(&bytes).as_ref(), Ok(&msg), "{name}");
    }
    for (name, bytes) in invalid_seeds() {
        let path = dir.join(name);
        if write {
            std::fs::write(&path, &bytes).unwrap();
        }
        let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(decode_message(&stored).is_err(), "{name} must not decode");
    }
}

/// The `request` target's checks, on every seed: the fast lane and the server's request
/// decoder take whatever frames the bytes hold without panicking, and the fast lane's
/// replies are well-formed answers to their requests.
#[test]
fn every_seed_goes_through_the_fast_lane_and_the_request_decoder() {
    use ferrod::server::fast_lane;
    use tokio_util::codec::Decoder as _;
    let log = ferrod::log::LogSink::new(ferrod::log::LogFormat::Text, None, false, true).unwrap();
    let server = ferrod::state::ServerState::new(ferrod::config::Config::default(), log);
    let mut answered = 0;
    for entry in std::fs::read_dir(seed_dir()).expect("fuzz/seeds/decode exists") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let mut rest = bytes.as_slice();
        while let Some(len) = fast_lane::whole_frame(rest) {
            let mut out = Vec::new();
            if fast_lane::answer(&server, &rest[..len], &mut out) {
                let reply = decode_message(&out).expect("the fast lane's reply decodes");
                assert_eq!(
                    reply.response_to,
                    i32::from_le_bytes(rest[4..8].try_into().unwrap())
                );
                answered += 1;
            }
            rest = &rest[len..];
        }
        let mut buf = bytes::BytesMut::from(bytes.as_slice());
        let mut codec = ferrod::wire::WireCodec;
        while let Ok(Some(_)) = codec.decode_request(&mut buf) {}
        // The trait's decode is the same path.
        let _ = codec.decode(&mut bytes::BytesMut::from(bytes.as_slice()));
    }
    assert!(answered > 0, "no seed is a ping the fast lane answers");
}
