//! Wire-layer and dispatcher benchmarks, each against a baseline measured in the same run.
//!
//! Run: `cargo bench --bench wire` (add a filter such as `-- op_msg_decode` for one group).
//! After criterion's own output, a summary prints every ferrod figure as a ratio to its
//! group's baseline, so a noisy machine still gives a comparable number.

use bson::{doc, spec::BinarySubtype, Binary, Document, Timestamp};
use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
use ferrod::client::Client;
use ferrod::commands::dispatch;
use ferrod::config::Config;
use ferrod::log::{LogFormat, LogSink};
use ferrod::state::ServerState;
use ferrod::wire::codec::{decode_message, encode_message};
use ferrod::wire::{Body, Message, OpMsg, Section};
use std::path::PathBuf;
use std::sync::Arc;

/// The command name and the baseline each group is compared with.
const GROUPS: &[(&str, &str)] = &[
    ("op_msg_decode", "bson_from_reader"),
    ("op_msg_encode", "bson_to_writer"),
    ("hello_reply", "bson_doc_macro"),
];

fn lsid() -> Document {
    doc! {"id": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] }}
}

fn cluster_time() -> Document {
    doc! {
        "clusterTime": Timestamp { time: 1_700_000_000, increment: 3 },
        "signature": {
            "hash": Binary { subtype: BinarySubtype::Generic, bytes: vec![0; 20] },
            "keyId": 0_i64,
        },
    }
}

/// A ping as drivers send it: with a session id, the gossiped cluster time and `$db`.
fn driver_ping() -> Document {
    doc! {"ping": 1, "lsid": lsid(), "$clusterTime": cluster_time(), "$db": "admin"}
}

/// A find as a driver sends it, with a read preference and a small filter.
fn driver_find() -> Document {
    doc! {
        "find": "orders",
        "filter": {"status": "A", "qty": {"$lt": 30}, "tags": {"$in": ["red", "blank"]}},
        "sort": {"created": -1},
        "projection": {"_id": 0, "status": 1, "qty": 1},
        "limit": 20,
        "batchSize": 20,
        "lsid": lsid(),
        "$clusterTime": cluster_time(),
        "$readPreference": {"mode": "primaryPreferred"},
        "$db": "shop",
    }
}

/// An insert of ten documents, the documents in a kind-1 sequence as drivers send them.
fn driver_insert() -> (Document, Vec<Document>) {
    let body = doc! {
        "insert": "orders",
        "ordered": true,
        "lsid": lsid(),
        "txnNumber": 1_i64,
        "$clusterTime": cluster_time(),
        "$db": "shop",
    };
    let documents = (0..10)
        .map(|i| doc! {"_id": i, "status": "A", "qty": i * 3, "item": {"sku": format!("sku-{i}"), "w": 1.5}})
        .collect();
    (body, documents)
}

fn message(body: Document, sequence: Option<Vec<Document>>) -> Message {
    let mut sections = vec![Section::Body(body)];
    if let Some(documents) = sequence {
        sections.push(Section::Sequence {
            identifier: "documents".into(),
            documents,
        });
    }
    Message {
        request_id: 17,
        response_to: 0,
        compressor: None,
        body: Body::Msg(OpMsg { flags: 0, sections }),
    }
}

fn frame_of(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(msg, &mut out);
    out
}

fn bson_bytes(doc: &Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.to_writer(&mut out).unwrap();
    out
}

/// The messages both codec groups use, with every document of the message (for the
/// baseline, which handles the same documents as plain BSON).
fn cases() -> Vec<(&'static str, Message, Vec<Document>)> {
    let (insert, documents) = driver_insert();
    let mut insert_docs = vec![insert.clone()];
    insert_docs.extend(documents.iter().cloned());
    vec![
        ("ping", message(driver_ping(), None), vec![driver_ping()]),
        ("find", message(driver_find(), None), vec![driver_find()]),
        ("insert10", message(insert, Some(documents)), insert_docs),
    ]
}

fn op_msg_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("op_msg_decode");
    for (name, msg, docs) in cases() {
        let frame = frame_of(&msg);
        let raw: Vec<Vec<u8>> = docs.iter().map(bson_bytes).collect();
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("bson_from_reader", name),
            &raw,
            |b, raw| {
                b.iter(|| {
                    for bytes in raw {
                        black_box(Document::from_reader(black_box(bytes.as_slice())).unwrap());
                    }
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("ferrod", name), &frame, |b, frame| {
            b.iter(|| black_box(decode_message(black_box(frame)).unwrap()))
        });
    }
    group.finish();
}

fn op_msg_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("op_msg_encode");
    for (name, msg, docs) in cases() {
        group.throughput(Throughput::Bytes(frame_of(&msg).len() as u64));
        group.bench_with_input(
            BenchmarkId::new("bson_to_writer", name),
            &docs,
            |b, docs| {
                let mut out = Vec::with_capacity(1024);
                b.iter(|| {
                    out.clear();
                    for doc in docs {
                        doc.to_writer(&mut out).unwrap();
                    }
                    black_box(&out);
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("ferrod", name), &msg, |b, msg| {
            let mut out = Vec::with_capacity(1024);
            b.iter(|| {
                out.clear();
                encode_message(black_box(msg), &mut out);
                black_box(&out);
            })
        });
    }
    group.finish();
}

/// The hello reply through the real dispatcher (generic-argument checks, the operation
/// registry, the handler, `$clusterTime`), against building a document of the same
/// fields by hand.
fn hello_reply(c: &mut Criterion) {
    let log = LogSink::new(LogFormat::Json, None, false, true).unwrap();
    let server = ServerState::new(Config::default(), log);
    let addr = "127.0.0.1:50000".parse().unwrap();
    let client = Arc::new(Client::new(1, addr, addr));
    let request = doc! {"hello": 1, "helloOk": true, "lsid": lsid(), "$clusterTime": cluster_time(), "$db": "admin"};
    let mut group = c.benchmark_group("hello_reply");
    group.bench_function(BenchmarkId::new("bson_doc_macro", "hello"), |b| {
        b.iter(|| {
            black_box(doc! {
                "helloOk": true,
                "isWritablePrimary": true,
                "maxBsonObjectSize": 16_777_216,
                "maxMessageSizeBytes": 48_000_000,
                "maxWriteBatchSize": 100_000,
                "localTime": bson::DateTime::now(),
                "logicalSessionTimeoutMinutes": 30,
                "connectionId": 1,
                "minWireVersion": 0,
                "maxWireVersion": 21,
                "readOnly": false,
                "ok": 1.0,
                "$clusterTime": cluster_time(),
                "operationTime": Timestamp { time: 1_700_000_000, increment: 3 },
            })
        })
    });
    group.bench_function(BenchmarkId::new("ferrod", "hello"), |b| {
        b.iter(|| {
            let reply =
                futures::executor::block_on(dispatch(&server, &client, request.clone(), false));
            black_box(reply.body)
        })
    });
    // The whole request path a connection runs: decode the frame, dispatch, encode.
    let frame = frame_of(&message(request.clone(), None));
    group.bench_function(BenchmarkId::new("ferrod", "hello_frame_to_frame"), |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            let Body::Msg(msg) = decode_message(black_box(&frame)).unwrap().body else {
                unreachable!("an OP_MSG")
            };
            let reply =
                futures::executor::block_on(dispatch(&server, &client, msg.into_command(), false));
            out.clear();
            encode_message(&message(reply.body.into_document(), None), &mut out);
            black_box(&out);
        })
    });
    group.finish();
}

/// Where criterion keeps its results; set explicitly so the summary can read them back.
fn output_directory() -> PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("criterion"))
}

fn median_ns(group: &str, function: &str, input: &str) -> Option<f64> {
    let path = output_directory()
        .join(group)
        .join(function)
        .join(input)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// Prints each ferrod figure next to its group's baseline, with the ratio.
fn summary() {
    println!("\nSummary (criterion medians; reproduce with: cargo bench --bench wire)");
    println!(
        "{:<16} {:<22} {:>12} {:>12} {:>8}",
        "group", "case", "ferrod", "baseline", "ratio"
    );
    for (group, baseline) in GROUPS {
        for input in ["ping", "find", "insert10", "hello", "hello_frame_to_frame"] {
            let Some(ours) = median_ns(group, "ferrod", input) else {
                continue;
            };
            let base_input = if input == "hello_frame_to_frame" {
                "hello"
            } else {
                input
            };
            let Some(base) = median_ns(group, baseline, base_input) else {
                continue;
            };
            println!(
                "{group:<16} {input:<22} {:>9.0} ns {:>9.0} ns {:>7.2}x",
                ours,
                base,
                ours / base
            );
        }
    }
    println!(
        "(ratio = ferrod time / baseline time; the baseline is plain bson on the same documents)"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().output_directory(&output_directory());
    targets = op_msg_decode, op_msg_encode, hello_reply
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
