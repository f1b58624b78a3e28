//! replSetGetStatus: this member's view of the set (`rs.status()`).

use super::{cluster, Command, Handler, Invocation};
use crate::error::CommandResult;
use crate::repl::{no_replication, MemberState, StatusView};
use bson::{doc, Bson, Document};

pub const REPL_SET_GET_STATUS: Command = Command {
    admin_only: true,
    privileges: &[cluster("replSetGetStatus")],
    ..Command::new(
        "replSetGetStatus",
        "Report status of a replica set from the POV of this server\n{ replSetGetStatus : 1 }\nhttp://dochub.mongodb.org/core/replicasetcommands",
        Handler::Sync(run),
    )
};

fn run(inv: &Invocation, _cmd: &Document) -> CommandResult {
    let view = inv
        .server
        .repl
        .as_ref()
        .ok_or_else(no_replication)?
        .status_view(&inv.server)?;
    Ok(reply(&view))
}

/// replSetGetStatus as mongod shapes it.
fn reply(view: &StatusView) -> Document {
    let StatusView {
        config,
        me,
        my_state,
        optime,
        optime_date,
        term,
        health,
        heartbeat_received: received,
        primary,
        ..
    } = view;
    let (my_state, optime_date, term) = (*my_state, *optime_date, *term as i64);
    let hb_ms = config.settings.heartbeat_interval_millis;
    let epoch = bson::DateTime::from_millis(0);
    // Raft's leader sends its log to every member: a secondary's sync source is the
    // primary, whose own is none.
    let sync_source = |secondary: bool| match (primary, secondary) {
        (Some(p), true) => (p.host.clone(), p.id as i32),
        _ => (String::new(), -1),
    };
    let (my_source_host, my_source_id) = sync_source(my_state == MemberState::Secondary);
    let members: Vec<Bson> = config
        .members
        .iter()
        .map(|m| {
            if m.id == me.id {
                let mut d = doc! {
                    "_id": m.id as i32, "name": m.host.clone(), "health": 1.0,
                    "state": my_state.code(), "stateStr": my_state.name(),
                    "uptime": view.uptime.as_secs() as i32,
                    "optime": optime.clone(), "optimeDate": optime_date,
                    "lastAppliedWallTime": optime_date, "lastDurableWallTime": optime_date,
                    "syncSourceHost": my_source_host.clone(), "syncSourceId": my_source_id, "infoMessage": "",
                    "configVersion": config.version as i32, "configTerm": config.term,
                    "self": true, "lastHeartbeatMessage": "",
                };
                if my_state == MemberState::Primary {
                    d.insert("electionTime", bson::Timestamp { time: (optime_date.timestamp_millis() / 1000) as u32, increment: 1 });
                    d.insert("electionDate", optime_date);
                }
                return Bson::Document(d);
            }
            let h = health.get(&m.id).cloned().unwrap_or_default();
            let state = if h.healthy { MemberState::from_code(h.state) } else { MemberState::Down };
            let (state_code, state_str) = if h.healthy { (h.state, state.name()) } else { (8, MemberState::Down.name()) };
            let (source_host, source_id) = sync_source(h.healthy && state == MemberState::Secondary);
            Bson::Document(doc! {
                "_id": m.id as i32, "name": m.host.clone(),
                "health": if h.healthy { 1.0 } else { 0.0 },
                "state": state_code, "stateStr": state_str,
                "uptime": h.up_since.map(|t| t.elapsed().as_secs() as i32).unwrap_or(0),
                "optime": h.optime.clone().unwrap_or(doc! {"ts": bson::Timestamp{time:0, increment:0}, "t": -1i64}),
                "optimeDurable": h.optime.clone().unwrap_or(doc! {"ts": bson::Timestamp{time:0, increment:0}, "t": -1i64}),
                "optimeDate": h.optime_date.unwrap_or(epoch),
                "optimeDurableDate": h.optime_date.unwrap_or(epoch),
                "lastAppliedWallTime": h.optime_date.unwrap_or(epoch),
                "lastDurableWallTime": h.optime_date.unwrap_or(epoch),
                "lastHeartbeat": h.last_heartbeat.unwrap_or(epoch),
                "lastHeartbeatRecv": received.get(&m.host.to_ascii_lowercase()).copied().unwrap_or(epoch),
                "pingMs": h.ping_ms,
                "lastHeartbeatMessage": h.message.clone(),
                "syncSourceHost": source_host, "syncSourceId": source_id, "infoMessage": "",
                "configVersion": h.config_version as i32, "configTerm": h.config_term,
            })
        })
        .collect();
    let voters = config.voter_ids().len() as i32;
    let majority = voters / 2 + 1;
    let mut reply = doc! {
        "set": config.set_name.clone(),
        "date": bson::DateTime::now(),
        "myState": my_state.code(),
        "term": term,
        "syncSourceHost": my_source_host, "syncSourceId": my_source_id,
        "heartbeatIntervalMillis": hb_ms,
        "majorityVoteCount": majority,
        "writeMajorityCount": majority,
        "votingMembersCount": voters,
        "writableVotingMembersCount": voters,
        "optimes": {
            "lastCommittedOpTime": optime.clone(),
            "lastCommittedWallTime": optime_date,
            "readConcernMajorityOpTime": optime.clone(),
            "appliedOpTime": optime.clone(),
            "durableOpTime": optime.clone(),
            "lastAppliedWallTime": optime_date,
            "lastDurableWallTime": optime_date,
        },
    };
    // Entries are applied as they commit: the stable point is the last applied one.
    if let Ok(ts) = optime.get_timestamp("ts") {
        reply.insert("lastStableRecoveryTimestamp", ts);
    }
    if my_state == MemberState::Primary {
        if let Some(metrics) = view.candidate_metrics.clone() {
            reply.insert("electionCandidateMetrics", metrics);
        }
    }
    if let Some(metrics) = view.participant_metrics.clone() {
        reply.insert("electionParticipantMetrics", metrics);
    }
    reply.insert("members", members);
    reply
}
