//! Property tests of the wire codec: it never panics on arbitrary bytes or arbitrary splits
//! of a byte stream, and valid messages survive encode/decode in both directions.

use bson::{Binary, Bson, Document};
use bytes::BytesMut;
use ferrod::wire::codec::{check_roundtrip, decode_message, encode_message};
use ferrod::wire::op_msg::{CHECKSUM_PRESENT, EXHAUST_ALLOWED, MORE_TO_COME};
use ferrod::wire::{Body, Compressor, Message, OpMsg, OpQuery, OpReply, Section, WireCodec};
use proptest::collection::vec;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

// ---- generators -------------------------------------------------------------

fn scalar() -> impl Strategy<Value = Bson> {
    prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        // NaN is not equal to itself, which would defeat the equality checks.
        any::<f64>()
            .prop_filter("not NaN", |f| !f.is_nan())
            .prop_map(Bson::Double),
        "\\PC{0,12}".prop_map(Bson::String),
        any::<bool>().prop_map(Bson::Boolean),
        Just(Bson::Null),
        vec(any::<u8>(), 0..16).prop_map(|bytes| Bson::Binary(Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes
        })),
        any::<u32>().prop_map(|t| Bson::Timestamp(bson::Timestamp {
            time: t,
            increment: t / 3
        })),
    ]
}

/// Keys of nested documents, including the `$` names of extended JSON, which a decoder
/// must not mistake for typed values.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,6}",
        1 => prop_oneof![Just("$oid"), Just("$date"), Just("$numberLong"), Just("$binary")]
            .prop_map(String::from),
    ]
}

fn value() -> impl Strategy<Value = Bson> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Bson::Array),
            vec((key(), inner), 0..4)
                .prop_map(|fields| Bson::Document(fields.into_iter().collect())),
        ]
    })
}

/// A document whose keys start with `prefix` (so sequences never shadow body fields).
fn document(prefix: &'static str) -> impl Strategy<Value = Document> {
    vec(("[a-z]{1,6}", value()), 0..5).prop_map(move |fields| {
        fields
            .into_iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v))
            .collect()
    })
}

fn op_msg() -> impl Strategy<Value = OpMsg> {
    let known = prop_oneof![
        Just(0),
        Just(CHECKSUM_PRESENT),
        Just(MORE_TO_COME),
        Just(EXHAUST_ALLOWED),
        Just(CHECKSUM_PRESENT | MORE_TO_COME | EXHAUST_ALLOWED),
    ];
    // Bits 17..31 are optional: a receiver ignores them, so they must round-trip too.
    let optional = prop_oneof![Just(0u32), (17u32..32).prop_map(|bit| 1 << bit)];
    let sequences = vec(vec(document("d"), 0..4), 0..=2);
    (known, optional, document("k"), sequences, any::<usize>()).prop_map(
        |(known, optional, body, sequences, body_at)| {
            let mut sections: Vec<Section> = sequences
                .into_iter()
                .enumerate()
                .map(|(i, documents)| Section::Sequence {
                    identifier: format!("seq{i}"),
                    documents,
                })
                .collect();
            // The body may come anywhere among the sections.
            let at = body_at % (sections.len() + 1);
            sections.insert(at, Section::Body(body));
            OpMsg {
                flags: known | optional,
                sections,
            }
        },
    )
}

fn op_query() -> impl Strategy<Value = OpQuery> {
    (
        any::<i32>(),
        "[a-z]{1,8}\\.[$a-z]{1,8}",
        any::<i32>(),
        any::<i32>(),
        document("q"),
        proptest::option::of(document("f")),
    )
        .prop_map(|(flags, ns, skip, ret, query, fields)| OpQuery {
            flags,
            full_collection_name: ns,
            number_to_skip: skip,
            number_to_return: ret,
            query,
            return_fields_selector: fields,
        })
}

fn op_reply() -> impl Strategy<Value = OpReply> {
    (
        any::<i32>(),
        any::<i64>(),
        any::<i32>(),
        vec(document("r"), 0..3),
    )
        .prop_map(|(flags, cursor, from, documents)| OpReply {
            response_flags: flags,
            cursor_id: cursor,
            starting_from: from,
            documents,
        })
}

fn compressor() -> impl Strategy<Value = Option<Compressor>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(Compressor::Noop)),
        1 => Just(Some(Compressor::Snappy)),
        1 => Just(Some(Compressor::Zlib)),
        1 => Just(Some(Compressor::Zstd)),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let body = prop_oneof![
        3 => op_msg().prop_map(Body::Msg),
        1 => op_query().prop_map(Body::Query),
        1 => op_reply().prop_map(Body::Reply),
    ];
    (any::<i32>(), any::<i32>(), compressor(), body).prop_map(|(id, to, compressor, body)| {
        Message {
            request_id: id,
            response_to: to,
            compressor,
            body,
        }
    })
}

fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(msg, &mut out);
    out
}

/// Feeds `stream` to the codec in pieces cut at `cuts`, collecting what it yields, until
/// it reports a fatal error. Panics propagate: the property is that there are none.
fn decode_in_pieces(stream: &[u8], cuts: &[usize]) -> Vec<Result<Message, String>> {
    let mut codec = WireCodec;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.push(stream.len());
    points.sort_unstable();
    let mut from = 0;
    for to in points {
        buf.extend_from_slice(&stream[from..to]);
        from = to;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(incoming)) => out.push(incoming.message.map_err(|e| e.to_string())),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(format!("fatal: {e}")));
                    return out;
                }
            }
        }
    }
    out
}

// ---- properties -------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decode_message_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..512)) {
        let _ = decode_message(&bytes);
        check_roundtrip(&bytes).map_err(TestCaseError::fail)?;
    }

    /// Arbitrary bytes behind a plausible header reach the section and BSON parsers.
    #[test]
    fn decode_never_panics_on_arbitrary_bodies(
        op in prop_oneof![Just(2013), Just(2004), Just(1), Just(2012), any::<i32>()],
        body in vec(any::<u8>(), 0..512),
    ) {
        let mut frame = ((body.len() + 16) as i32).to_le_bytes().to_vec();
        frame.extend_from_slice(&[0; 8]);
        frame.extend_from_slice(&op.to_le_bytes());
        frame.extend_from_slice(&body);
        check_roundtrip(&frame).map_err(TestCaseError::fail)?;
        decode_in_pieces(&frame, &[3, 17]);
    }

    /// A valid message with some bytes overwritten: mostly well-formed, wrong in one place.
    #[test]
    fn decode_never_panics_on_corrupted_messages(
        msg in message(),
        edits in vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = encode(&msg);
        for (at, byte) in edits {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        check_roundtrip(&bytes).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn codec_never_panics_on_arbitrary_streams_and_splits(
        stream in vec(any::<u8>(), 0..2048),
        cuts in vec(any::<usize>(), 0..8),
    ) {
        decode_in_pieces(&stream, &cuts);
    }

    #[test]
    fn valid_messages_round_trip_both_ways(msg in message()) {
        let bytes = encode(&msg);
        let decoded = decode_message(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&decoded, &msg);
        prop_assert_eq!(encode(&decoded), bytes);
    }

    /// Any split of a stream of valid messages yields exactly those messages, in order.
    #[test]
    fn valid_streams_decode_the_same_under_any_split(
        msgs in vec(message(), 1..5),
        cuts in vec(any::<usize>(), 0..10),
    ) {
        let stream: Vec<u8> = msgs.iter().flat_map(encode).collect();
        let decoded = decode_in_pieces(&stream, &cuts);
        let expected: Vec<Result<Message, String>> = msgs.into_iter().map(Ok).collect();
        prop_assert_eq!(decoded, expected);
    }
}
