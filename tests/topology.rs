//! The topology a server shows the drivers' monitors, on the wire: `topologyVersion` on
//! hello and on state-change errors, the exhaust stream of awaitable hellos (OP_MSG
//! `exhaustAllowed` answered with `moreToCome`), member tags, and what reaches the log.

mod common;

use bson::{doc, Bson, Document};
use common::{admin, eventually, ok, op_msg, read_frame, Ferrod, OP_MSG};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

const MORE_TO_COME: u32 = 1 << 1;
const EXHAUST_ALLOWED: u32 = 1 << 16;
const SET: &str = "rs0";

fn connect(node: &Ferrod) -> TcpStream {
    let s = TcpStream::connect(node.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// One OP_MSG reply: its requestID, responseTo, flags and body.
struct Frame {
    request_id: i32,
    response_to: i32,
    flags: u32,
    body: Document,
}

fn next_frame(s: &mut TcpStream) -> Frame {
    let (request_id, response_to, op, body) = read_frame(s).expect("a reply");
    assert_eq!(op, OP_MSG);
    let flags = u32::from_le_bytes(body[0..4].try_into().unwrap());
    assert_eq!(body[4], 0, "one kind-0 section");
    Frame {
        request_id,
        response_to,
        flags,
        body: Document::from_reader(&body[5..]).unwrap(),
    }
}

fn topology_version(hello: &Document) -> Document {
    hello
        .get_document("topologyVersion")
        .unwrap_or_else(|_| panic!("no topologyVersion in {hello}"))
        .clone()
}

#[test]
fn a_standalone_hello_has_a_topology_version_fixed_for_the_process() {
    let node = Ferrod::start(&[]);
    let first = admin(&node, doc! {"hello": 1});
    let tv = topology_version(&first);
    assert!(
        matches!(tv.get("processId"), Some(Bson::ObjectId(_))),
        "{tv}"
    );
    assert_eq!(tv.get("counter"), Some(&Bson::Int64(0)), "{tv}");
    // The legacy name and another connection see the same one.
    let legacy = admin(&node, doc! {"isMaster": 1});
    assert_eq!(topology_version(&legacy), tv);
}

#[test]
fn an_exhaust_hello_streams_replies_flagged_more_to_come() {
    let node = Ferrod::start(&[]);
    let tv = topology_version(&admin(&node, doc! {"hello": 1}));
    let mut s = connect(&node);
    let hello =
        doc! {"hello": 1, "topologyVersion": tv.clone(), "maxAwaitTimeMS": 50, "$db": "admin"};
    s.write_all(&op_msg(7, EXHAUST_ALLOWED, &hello)).unwrap();
    // No further request is sent: every reply answers the one before it.
    let mut previous = 7;
    for _ in 0..4 {
        let reply = next_frame(&mut s);
        assert_eq!(reply.response_to, previous);
        assert_eq!(reply.flags, MORE_TO_COME, "{}", reply.body);
        assert!(ok(&reply.body), "{}", reply.body);
        assert_eq!(topology_version(&reply.body), tv);
        previous = reply.request_id;
    }
    // Without the flag, the same request gets one plain reply.
    let mut plain = connect(&node);
    plain.write_all(&op_msg(8, 0, &hello)).unwrap();
    let reply = next_frame(&mut plain);
    assert_eq!((reply.response_to, reply.flags), (8, 0));
}

#[test]
fn exhaust_without_max_await_time_is_an_error_that_ends_the_stream() {
    let node = Ferrod::start(&[]);
    let mut s = connect(&node);
    s.write_all(&op_msg(
        9,
        EXHAUST_ALLOWED,
        &doc! {"hello": 1, "$db": "admin"},
    ))
    .unwrap();
    let reply = next_frame(&mut s);
    assert_eq!(reply.flags, 0);
    assert_eq!(reply.body.get_i32("code"), Ok(51756), "{}", reply.body);
    // The connection serves the next request as usual.
    s.write_all(&op_msg(10, 0, &common::ping_doc())).unwrap();
    let pong = next_frame(&mut s);
    assert_eq!((pong.response_to, pong.flags), (10, 0));
    assert!(ok(&pong.body));
    // exhaustAllowed on a command without exhaust support is ignored, as on mongod.
    s.write_all(&op_msg(11, EXHAUST_ALLOWED, &common::ping_doc()))
        .unwrap();
    let pong = next_frame(&mut s);
    assert_eq!((pong.response_to, pong.flags), (11, 0));
}

fn start_set(n: usize) -> Vec<Ferrod> {
    (0..n).map(|_| Ferrod::start(&["--replSet", SET])).collect()
}

/// Initiates a set of `nodes` (the first with `tags`), returns the primary's index.
fn initiate(nodes: &[Ferrod], tags: Document) -> usize {
    let members: Vec<Bson> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut m = doc! {"_id": i as i32, "host": n.addr()};
            if i == 0 {
                m.insert("tags", tags.clone());
            }
            Bson::Document(m)
        })
        .collect();
    let config = doc! {
        "_id": SET, "version": 1, "members": members,
        "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000},
    };
    let reply = admin(&nodes[0], doc! {"replSetInitiate": config});
    assert!(ok(&reply), "{reply}");
    eventually(Duration::from_secs(15), "a primary all agree on", || {
        let hellos: Vec<Document> = nodes.iter().map(|n| admin(n, doc! {"hello": 1})).collect();
        let p = hellos
            .iter()
            .position(|h| h.get_bool("isWritablePrimary") == Ok(true))?;
        let host = nodes[p].addr();
        hellos
            .iter()
            .all(|h| h.get_str("primary") == Ok(host.as_str()))
            .then_some(p)
    })
}

#[test]
fn a_set_member_reports_its_topology_and_streams_a_stepdown() {
    let nodes = start_set(3);
    let p = initiate(&nodes, doc! {"dc": "west"});
    let secondary = (p + 1) % 3;

    // A write on a secondary: NotWritablePrimary carries the member's topologyVersion.
    let hello = admin(&nodes[secondary], doc! {"hello": 1});
    let refused = admin(
        &nodes[secondary],
        doc! {"createUser": "u", "pwd": "p", "roles": []},
    );
    assert_eq!(refused.get_i32("code"), Ok(10107), "{refused}");
    assert_eq!(topology_version(&refused), topology_version(&hello));

    // Tags are in hello for the member that has them, and only there.
    let tagged = admin(&nodes[0], doc! {"hello": 1});
    assert_eq!(
        tagged.get_document("tags"),
        Ok(&doc! {"dc": "west"}),
        "{tagged}"
    );
    assert!(!admin(&nodes[1], doc! {"hello": 1}).contains_key("tags"));

    // replSetGetStatus: the election each side saw, and the secondaries' sync source.
    let primary_id = p as i32;
    let status = admin(&nodes[p], doc! {"replSetGetStatus": 1});
    let term = status.get_i64("term").unwrap();
    let won = status
        .get_document("electionCandidateMetrics")
        .unwrap_or_else(|_| panic!("{status}"));
    assert_eq!(won.get_i64("electionTerm"), Ok(term), "{won}");
    assert_eq!(won.get_str("lastElectionReason"), Ok("electionTimeout"));
    assert_eq!(won.get_i32("numVotesNeeded"), Ok(2));
    assert_eq!(status.get_str("syncSourceHost"), Ok(""));
    assert_eq!(status.get_i32("syncSourceId"), Ok(-1));
    let status = eventually(Duration::from_secs(10), "a secondary's status", || {
        let s = admin(&nodes[secondary], doc! {"replSetGetStatus": 1});
        // Once its heartbeats have seen every member as primary or secondary.
        let settled = s.get_array("members").ok()?.iter().all(|m| {
            matches!(
                m.as_document().and_then(|m| m.get_i32("state").ok()),
                Some(1 | 2)
            )
        });
        (settled && s.contains_key("electionParticipantMetrics")).then_some(s)
    });
    assert_eq!(
        status.get_str("syncSourceHost"),
        Ok(nodes[p].addr().as_str())
    );
    assert_eq!(status.get_i32("syncSourceId"), Ok(primary_id));
    let saw = status.get_document("electionParticipantMetrics").unwrap();
    assert_eq!(saw.get_i64("electionTerm"), Ok(term), "{saw}");
    assert_eq!(saw.get_i32("electionCandidateMemberId"), Ok(primary_id));
    assert!(!status.contains_key("electionCandidateMetrics"), "{status}");
    assert!(
        matches!(
            status.get("lastStableRecoveryTimestamp"),
            Some(Bson::Timestamp(_))
        ),
        "{status}"
    );
    for m in status.get_array("members").unwrap() {
        let m = m.as_document().unwrap();
        let expected = if m.get_i32("_id") == Ok(primary_id) {
            (String::new(), -1)
        } else {
            (nodes[p].addr(), primary_id)
        };
        assert!(m.contains_key("lastAppliedWallTime"), "{m}");
        assert_eq!(
            (
                m.get_str("syncSourceHost").unwrap().to_string(),
                m.get_i32("syncSourceId").unwrap()
            ),
            expected,
            "{m}"
        );
    }

    // A streaming monitor on the primary sees the stepdown in the next streamed reply.
    let tv = topology_version(&admin(&nodes[p], doc! {"hello": 1}));
    let mut s = connect(&nodes[p]);
    let awaitable =
        doc! {"hello": 1, "topologyVersion": tv.clone(), "maxAwaitTimeMS": 20000, "$db": "admin"};
    s.write_all(&op_msg(21, EXHAUST_ALLOWED, &awaitable))
        .unwrap();
    let stepdown = admin(
        &nodes[p],
        doc! {"replSetStepDown": 10, "secondaryCatchUpPeriodSecs": 5},
    );
    assert!(ok(&stepdown), "{stepdown}");
    // Within maxAwaitTimeMS, so it was the stepdown that sent it.
    let reply = next_frame(&mut s);
    assert_eq!(reply.response_to, 21);
    assert_eq!(reply.flags, MORE_TO_COME);
    assert_eq!(reply.body.get_bool("isWritablePrimary"), Ok(false));
    let counter = topology_version(&reply.body).get_i64("counter").unwrap();
    assert!(counter > tv.get_i64("counter").unwrap(), "{}", reply.body);
    // The stream goes on and reports the new primary, answering the previous reply.
    let mut previous = reply.request_id;
    let new_primary = eventually(Duration::from_secs(20), "the new primary streamed", || {
        let reply = next_frame(&mut s);
        assert_eq!(reply.response_to, previous);
        assert_eq!(reply.flags, MORE_TO_COME);
        previous = reply.request_id;
        reply.body.get_str("primary").ok().map(str::to_owned)
    });
    assert_ne!(new_primary, nodes[p].addr());
    // The stepping-down primary asked its successor to step up, as mongod's does.
    let successor = nodes.iter().find(|n| n.addr() == new_primary).unwrap();
    let won = eventually(Duration::from_secs(10), "the successor's metrics", || {
        admin(successor, doc! {"replSetGetStatus": 1})
            .get_document("electionCandidateMetrics")
            .ok()
            .cloned()
    });
    assert_eq!(
        won.get_str("lastElectionReason"),
        Ok("stepUpRequestSkipDryRun"),
        "{won}"
    );
}

/// openraft's own progress lines (a membership change's "res of second step of
/// do_change_membership") are debug lines: absent at the default verbosity, shown from
/// logLevel 1 with component "-".
#[test]
fn a_dependencys_info_lines_are_debug_lines() {
    let mut nodes = start_set(3);
    let members = |n: usize| -> Vec<Bson> {
        nodes[..n]
            .iter()
            .enumerate()
            .map(|(i, node)| Bson::Document(doc! {"_id": i as i32, "host": node.addr()}))
            .collect()
    };
    let config = |version: i32, members: Vec<Bson>| {
        doc! {
            "_id": SET, "version": version, "members": members,
            "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000},
        }
    };
    let reply = admin(&nodes[0], doc! {"replSetInitiate": config(1, members(1))});
    assert!(ok(&reply), "{reply}");
    eventually(Duration::from_secs(10), "a primary", || {
        (admin(&nodes[0], doc! {"hello": 1}).get_bool("isWritablePrimary") == Ok(true))
            .then_some(())
    });
    // Membership changes at the default verbosity.
    let reply = admin(&nodes[0], doc! {"replSetReconfig": config(2, members(2))});
    assert!(ok(&reply), "{reply}");
    // At logLevel 1 the next one's line shows, as a debug line of no component.
    let level = admin(&nodes[0], doc! {"setParameter": 1, "logLevel": 1});
    assert!(ok(&level), "{level}");
    let reply = eventually(Duration::from_secs(10), "the second reconfig", || {
        let reply = admin(&nodes[0], doc! {"replSetReconfig": config(3, members(3))});
        ok(&reply).then_some(reply)
    });
    assert!(ok(&reply));
    const LINE: &str = "res of second step of do_change_membership";
    let shown = nodes[0].wait_for_log(LINE, Duration::from_secs(10));
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        (shown["s"].as_str(), shown["c"].as_str()),
        (Some("D1"), Some("-"))
    );
    // The first change's line, at the default verbosity, was never an info line.
    nodes[0].terminate();
    nodes[0].wait_for_log("Now exiting", Duration::from_secs(10));
    let info: Vec<String> = nodes[0]
        .log_lines()
        .into_iter()
        .filter(|l| l.contains(LINE) && !l.contains(r#""s":"D1""#))
        .collect();
    assert!(info.is_empty(), "{info:#?}");
}

#[test]
fn initiate_without_a_config_says_it_made_one() {
    let node = Ferrod::start(&["--replSet", SET]);
    let reply = admin(&node, doc! {"replSetInitiate": {}});
    assert!(ok(&reply), "{reply}");
    assert_eq!(
        reply.get_str("info2"),
        Ok("no configuration specified. Using a default configuration for the set")
    );
    let me = reply.get_str("me").unwrap();
    let config = admin(&node, doc! {"replSetGetConfig": 1});
    let host = config
        .get_document("config")
        .and_then(|c| c.get_array("members"))
        .map(|m| {
            m[0].as_document()
                .unwrap()
                .get_str("host")
                .unwrap()
                .to_owned()
        })
        .unwrap();
    assert_eq!(me, host);
}

/// hello's member fields as mongod's: a delayed member is in neither `hosts` nor
/// `passives`, and says of itself `passive`, `buildIndexes: false` and its delay
/// (`slaveDelay` under the legacy name); `arbiterOnly` is for arbiters only.
#[test]
fn hello_describes_a_delayed_member_as_mongod_does() {
    let nodes = start_set(3);
    let members: Vec<Bson> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut m = doc! {"_id": i as i32, "host": n.addr()};
            if i == 2 {
                m.extend(doc! {"priority": 0, "secondaryDelaySecs": 5, "buildIndexes": false});
            }
            Bson::Document(m)
        })
        .collect();
    let config = doc! {
        "_id": SET, "version": 1, "members": members,
        "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000},
    };
    let reply = admin(&nodes[0], doc! {"replSetInitiate": config});
    assert!(ok(&reply), "{reply}");
    let hello = eventually(
        Duration::from_secs(10),
        "the delayed member's config",
        || {
            let h = admin(&nodes[2], doc! {"hello": 1});
            h.contains_key("setName").then_some(h)
        },
    );
    let hosts = hello.get_array("hosts").unwrap();
    assert_eq!(hosts.len(), 2, "{hello}");
    assert!(!hosts.contains(&Bson::String(nodes[2].addr())));
    assert!(!hello.contains_key("passives"), "{hello}");
    assert_eq!(hello.get_bool("passive"), Ok(true));
    assert_eq!(hello.get_bool("buildIndexes"), Ok(false));
    assert_eq!(hello.get_i64("secondaryDelaySecs"), Ok(5), "{hello}");
    assert!(!hello.contains_key("arbiterOnly"), "{hello}");
    let legacy = admin(&nodes[2], doc! {"isMaster": 1});
    assert_eq!(legacy.get_i64("slaveDelay"), Ok(5), "{legacy}");
    assert!(!legacy.contains_key("secondaryDelaySecs"));
}

/// A stream waiting out maxAwaitTimeMS still watches its socket: a client that closes is
/// let go at once, and one that sends a request ends the stream (the reply under way goes
/// out without `moreToCome`) and is answered next.
#[test]
fn an_exhaust_stream_ends_when_the_client_closes_or_speaks() {
    let node = Ferrod::start(&[]);
    let mut s = connect(&node);
    let hello = common::op_msg_roundtrip(&mut s, &doc! {"hello": 1, "$db": "admin"});
    let conn = hello.get_i32("connectionId").unwrap();
    let awaitable = |ms: i64| {
        doc! {
            "hello": 1, "topologyVersion": topology_version(&hello), "maxAwaitTimeMS": ms,
            "$db": "admin",
        }
    };
    s.write_all(&op_msg(30, EXHAUST_ALLOWED, &awaitable(300)))
        .unwrap();
    s.write_all(&op_msg(31, 0, &common::ping_doc())).unwrap();
    let mut previous = 30;
    let last_hello = loop {
        let reply = next_frame(&mut s);
        if reply.response_to == 31 {
            break None;
        }
        assert_eq!(reply.response_to, previous, "{}", reply.body);
        previous = reply.request_id;
        if reply.flags == 0 {
            break Some(reply);
        }
        assert_eq!(reply.flags, MORE_TO_COME);
    };
    assert!(
        last_hello.is_some(),
        "the stream ended with a reply flagged moreToCome"
    );
    let pong = next_frame(&mut s);
    assert_eq!((pong.response_to, pong.flags), (31, 0), "{}", pong.body);
    assert!(ok(&pong.body));
    // A closed client ends its connection long before maxAwaitTimeMS.
    s.write_all(&op_msg(32, EXHAUST_ALLOWED, &awaitable(600_000)))
        .unwrap();
    drop(s);
    let ctx = format!(r#""ctx":"conn{conn}""#);
    eventually(Duration::from_secs(10), "the connection to end", || {
        node.log_lines()
            .into_iter()
            .find(|l| l.contains("Connection ended") && l.contains(&ctx))
    });
}
