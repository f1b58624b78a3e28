//! The network: Raft RPCs travel as OP_MSG commands through the [`Transport`], their
//! BSON encoding ([`super::codec`]) cut into pieces in a document sequence, and a batch
//! of entries too large for one message sent in part.

use super::codec::{self, SnapshotMetaOut};
use super::positions::{AppliedPositions, APPLIED_FIELD};
use super::raft::TypeConfig;
use super::transport::Transport;
use bson::{doc, Bson, Document};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, LogId, Vote};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The command names Raft RPCs travel under.
pub const VOTE_COMMAND: &str = "_ferrodRaftVote";
pub const APPEND_COMMAND: &str = "_ferrodRaftAppend";
pub const SNAPSHOT_COMMAND: &str = "_ferrodRaftSnapshot";

/// What a receiving member needs to start its own Raft if it has none yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaftSettings {
    pub set_name: String,
    pub heartbeat_interval_millis: i64,
    pub election_timeout_millis: i64,
}

pub struct Network {
    pub transport: Arc<dyn Transport>,
    pub settings: RaftSettings,
    /// Where the followers' applied indexes from AppendEntries replies go.
    pub positions: Arc<AppliedPositions>,
    /// Resolves a member id to its current host (the config may have changed it).
    pub resolve: Arc<dyn Fn(u64) -> Option<String> + Send + Sync>,
}

pub struct NetworkConnection {
    transport: Arc<dyn Transport>,
    settings: RaftSettings,
    positions: Arc<AppliedPositions>,
    target: u64,
    host: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = NetworkConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> NetworkConnection {
        NetworkConnection {
            transport: self.transport.clone(),
            settings: self.settings.clone(),
            positions: self.positions.clone(),
            target,
            host: (self.resolve)(target).unwrap_or_else(|| node.addr.clone()),
        }
    }
}

/// The largest encoded log entry: mongod's BSONObjMaxInternalSize, the room it leaves
/// an internal document (an oplog entry) around a 16 MiB user document. Anything larger
/// could never be sent to a follower, so it is refused before it is proposed.
pub const MAX_ENTRY_SIZE: usize = 16 * 1024 * 1024 + 16 * 1024;
/// At most this many bytes of entries go in one AppendEntries, which keeps the message
/// under the wire's 48,000,000 bytes (the rest of it is a few hundred bytes).
const MAX_BATCH_BYTES: usize = crate::wire::MAX_MESSAGE_SIZE - 1024 * 1024;
/// An RPC's encoding travels in pieces this large, each in its own document of a
/// document sequence: a document may not exceed 16 MiB, an RPC may.
const PIECE: usize = 8 * 1024 * 1024;
/// The document sequence that carries an RPC's encoding.
pub const PAYLOAD: &str = "payload";

type WireResult<T> = Result<T, String>;

fn bson_error(e: impl std::fmt::Display) -> String {
    format!("cannot encode a Raft message as BSON: {e}")
}

#[derive(Serialize)]
struct AppendOut<'a> {
    vote: &'a Vote<u64>,
    prev_log_id: &'a Option<LogId<u64>>,
    leader_commit: &'a Option<LogId<u64>>,
    entries: Vec<bson::RawDocumentBuf>,
}

#[derive(Deserialize)]
struct AppendIn {
    vote: Vote<u64>,
    prev_log_id: Option<LogId<u64>>,
    leader_commit: Option<LogId<u64>>,
    entries: Vec<bson::RawDocumentBuf>,
}

/// The AppendEntries to send: `rpc`, or as many of its first entries as fit in one
/// message (always at least one). Returns the encoding and how many entries it holds.
fn encode_append(rpc: &AppendEntriesRequest<TypeConfig>) -> WireResult<(Vec<u8>, usize)> {
    let mut entries = Vec::new();
    let mut bytes = 0;
    for entry in &rpc.entries {
        let encoded = codec::encode_entry(entry)?;
        if !entries.is_empty() && bytes + encoded.len() > MAX_BATCH_BYTES {
            break;
        }
        bytes += encoded.len();
        entries.push(bson::RawDocumentBuf::from_bytes(encoded).map_err(bson_error)?);
    }
    let sent = entries.len();
    let out = AppendOut {
        vote: &rpc.vote,
        prev_log_id: &rpc.prev_log_id,
        leader_commit: &rpc.leader_commit,
        entries,
    };
    Ok((bson::to_vec(&out).map_err(bson_error)?, sent))
}

fn decode_append(bytes: &[u8]) -> WireResult<AppendEntriesRequest<TypeConfig>> {
    let rpc: AppendIn = bson::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok(AppendEntriesRequest {
        vote: rpc.vote,
        prev_log_id: rpc.prev_log_id,
        leader_commit: rpc.leader_commit,
        entries: rpc
            .entries
            .into_iter()
            .map(|e| codec::decode_entry(e.as_bytes()))
            .collect::<WireResult<_>>()?,
    })
}

/// A snapshot chunk: its metadata, and its data as BSON binary.
#[derive(Serialize, Deserialize)]
struct SnapshotWire {
    vote: Vote<u64>,
    meta: SnapshotMetaOut,
    offset: u64,
    data: bson::Binary,
    done: bool,
}

fn encode_snapshot(rpc: &InstallSnapshotRequest<TypeConfig>) -> WireResult<Vec<u8>> {
    bson::to_vec(&SnapshotWire {
        vote: rpc.vote,
        meta: SnapshotMetaOut::from(&rpc.meta),
        offset: rpc.offset,
        data: bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: rpc.data.clone(),
        },
        done: rpc.done,
    })
    .map_err(bson_error)
}

fn decode_snapshot(bytes: &[u8]) -> WireResult<InstallSnapshotRequest<TypeConfig>> {
    let rpc: SnapshotWire = bson::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok(InstallSnapshotRequest {
        vote: rpc.vote,
        meta: rpc.meta.into(),
        offset: rpc.offset,
        data: rpc.data.bytes,
        done: rpc.done,
    })
}

/// The OP_MSG for a Raft RPC: a small command body, and the RPC's encoding in pieces
/// in the `payload` document sequence.
pub fn rpc_message(
    name: &str,
    target: u64,
    settings: &RaftSettings,
    encoded: &[u8],
) -> crate::wire::OpMsg {
    let body = doc! {
        name: 1,
        "target": target as i64,
        "settings": bson::to_bson(settings).unwrap_or(Bson::Null),
        "$db": "admin",
    };
    let pieces = encoded
        .chunks(PIECE)
        .map(|piece| doc! {"data": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: piece.to_vec() }})
        .collect();
    crate::wire::OpMsg {
        flags: 0,
        sections: vec![
            crate::wire::Section::Body(body),
            crate::wire::Section::Sequence {
                identifier: PAYLOAD.into(),
                documents: pieces,
            },
        ],
    }
}

/// Puts the pieces of an RPC command's `payload` back together.
fn joined_payload(cmd: &Document) -> WireResult<Vec<u8>> {
    let pieces = cmd.get_array(PAYLOAD).map_err(|_| "missing payload")?;
    let mut bytes = Vec::new();
    for piece in pieces {
        match piece.as_document().and_then(|d| d.get("data")) {
            Some(Bson::Binary(b)) => bytes.extend_from_slice(&b.bytes),
            _ => return Err("a payload piece without data".into()),
        }
    }
    Ok(bytes)
}

/// The Raft RPCs as a member receives them.
pub enum IncomingRpc {
    Vote(VoteRequest<u64>),
    Append(AppendEntriesRequest<TypeConfig>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
}

/// Reads the RPC a `name` command carries.
pub fn incoming_rpc(name: &str, cmd: &Document) -> WireResult<IncomingRpc> {
    let bytes = joined_payload(cmd)?;
    match name {
        VOTE_COMMAND => Ok(IncomingRpc::Vote(
            bson::from_slice(&bytes).map_err(|e| e.to_string())?,
        )),
        APPEND_COMMAND => decode_append(&bytes).map(IncomingRpc::Append),
        SNAPSHOT_COMMAND => decode_snapshot(&bytes).map(IncomingRpc::Snapshot),
        _ => Err(format!("{name} is not a Raft RPC")),
    }
}

/// The reply to an RPC: its result, encoded as BSON.
pub fn payload_reply<T: Serialize>(value: &T) -> Result<Document, String> {
    let bytes = bson::to_vec(value).map_err(bson_error)?;
    Ok(
        doc! {"payload": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes })},
    )
}

fn reply_payload<T: DeserializeOwned>(doc: &Document) -> WireResult<T> {
    match doc.get("payload") {
        Some(Bson::Binary(b)) => bson::from_slice(&b.bytes).map_err(|e| e.to_string()),
        _ => Err("missing payload".into()),
    }
}

fn network_error<E: std::error::Error>(e: String) -> RPCError<u64, BasicNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(e)))
}

impl NetworkConnection {
    async fn call<Resp, E>(
        &self,
        name: &str,
        encoded: WireResult<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Resp, RPCError<u64, BasicNode, E>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let reply = self.call_raw(name, encoded, timeout).await?;
        decode_reply(self.target, &reply)
    }

    /// Sends an RPC and returns the reply document as it came.
    async fn call_raw<E: std::error::Error>(
        &self,
        name: &str,
        encoded: WireResult<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Document, RPCError<u64, BasicNode, E>> {
        let message = rpc_message(
            name,
            self.target,
            &self.settings,
            &encoded.map_err(network_error)?,
        );
        self.transport
            .run_message(&self.host, message, timeout)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }
}

/// The result an RPC reply carries.
// openraft's own error type, as `RaftNetwork` returns it.
#[allow(clippy::result_large_err)]
fn decode_reply<Resp, E>(target: u64, reply: &Document) -> Result<Resp, RPCError<u64, BasicNode, E>>
where
    Resp: DeserializeOwned,
    E: std::error::Error + DeserializeOwned,
{
    let result: Result<Resp, E> = reply_payload(reply).map_err(network_error)?;
    result.map_err(|e| RPCError::RemoteError(RemoteError::new(target, e)))
}

impl RaftNetwork<TypeConfig> for NetworkConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let (encoded, sent) = match encode_append(&rpc) {
            Ok(done) => done,
            Err(e) => return Err(network_error(e)),
        };
        let reply = self
            .call_raw(APPEND_COMMAND, Ok(encoded), option.hard_ttl())
            .await?;
        let response: AppendEntriesResponse<u64> = decode_reply(self.target, &reply)?;
        if let Ok(applied) = reply.get_i64(APPLIED_FIELD) {
            self.positions.record(self.target, applied.max(0) as u64);
        }
        // A batch too large for one message went in part: say how far the follower got,
        // and openraft sends the rest next.
        Ok(match response {
            AppendEntriesResponse::Success if sent < rpc.entries.len() => {
                AppendEntriesResponse::PartialSuccess(Some(rpc.entries[sent - 1].log_id))
            }
            other => other,
        })
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(SNAPSHOT_COMMAND, encode_snapshot(&rpc), option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let encoded = bson::to_vec(&rpc).map_err(bson_error);
        self.call(VOTE_COMMAND, encoded, option.hard_ttl()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Collection, Write};
    use crate::repl::raft::{ReplEntry, ReplOp};
    use openraft::{
        CommittedLeaderId, Entry, EntryPayload, Membership, SnapshotMeta, StoredMembership,
    };
    use std::collections::BTreeMap;

    fn log_id(index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(3, 1), index)
    }

    /// A catalog entry holding a user document of about `bytes` bytes.
    fn big_entry(index: u64, bytes: usize) -> Entry<TypeConfig> {
        let doc = doc! {"_id": "admin.u", "customData": {"b": bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic, bytes: vec![7; bytes] }}};
        Entry {
            log_id: log_id(index),
            payload: EntryPayload::Normal(ReplEntry {
                time_hint: 1 << 40,
                op: ReplOp::Catalog(vec![Write::Upsert {
                    collection: Collection::Users,
                    id: "admin.u".into(),
                    doc,
                }]),
            }),
        }
    }

    fn append(entries: Vec<Entry<TypeConfig>>) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(log_id(1)),
            leader_commit: Some(log_id(1)),
            entries,
        }
    }

    #[test]
    fn every_payload_kind_survives_the_wire() {
        let nodes: BTreeMap<u64, BasicNode> =
            [(1, BasicNode::new("a:1")), (2, BasicNode::new("b:2"))].into();
        let membership = Membership::new(vec![[1, 2].into()], nodes);
        let rpc = append(vec![
            Entry {
                log_id: log_id(2),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: log_id(3),
                payload: EntryPayload::Membership(membership.clone()),
            },
            big_entry(4, 100),
        ]);
        let (bytes, sent) = encode_append(&rpc).unwrap();
        assert_eq!(sent, 3);
        let back = decode_append(&bytes).unwrap();
        assert_eq!(back.entries, rpc.entries);
        assert_eq!(back.vote, rpc.vote);
        assert_eq!(back.prev_log_id, rpc.prev_log_id);

        let snapshot = InstallSnapshotRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 1),
            meta: SnapshotMeta {
                last_log_id: Some(log_id(3)),
                last_membership: StoredMembership::new(Some(log_id(3)), membership),
                snapshot_id: "3-1".into(),
            },
            offset: 0,
            data: vec![1, 2, 3],
            done: true,
        };
        let back = decode_snapshot(&encode_snapshot(&snapshot).unwrap()).unwrap();
        assert_eq!(back.meta, snapshot.meta);
        assert_eq!(back.data, snapshot.data);

        let reply: Result<VoteResponse<u64>, RaftError<u64>> = Ok(VoteResponse {
            vote: Vote::new(4, 2),
            vote_granted: true,
            last_log_id: Some(log_id(9)),
        });
        let doc = payload_reply(&reply).unwrap();
        let back: Result<VoteResponse<u64>, RaftError<u64>> = reply_payload(&doc).unwrap();
        assert_eq!(back, reply);
    }

    #[test]
    fn a_batch_larger_than_a_message_is_sent_in_part() {
        // Five 15 MB entries: three would exceed 48,000,000 bytes.
        let rpc = append((2..7).map(|i| big_entry(i, 15_000_000)).collect());
        let (bytes, sent) = encode_append(&rpc).unwrap();
        assert_eq!(sent, 3);
        let message = rpc_message(APPEND_COMMAND, 2, &settings(), &bytes);
        let mut wire = Vec::new();
        let msg = crate::wire::Message {
            request_id: 1,
            response_to: 0,
            compressor: None,
            body: crate::wire::Body::Msg(message),
        };
        crate::wire::codec::encode_message(&msg, &mut wire);
        assert!(
            wire.len() <= crate::wire::MAX_MESSAGE_SIZE,
            "{}",
            wire.len()
        );
        let crate::wire::Body::Msg(message) = msg.body else {
            unreachable!()
        };
        let cmd = message.into_command();
        let IncomingRpc::Append(back) = incoming_rpc(APPEND_COMMAND, &cmd).unwrap() else {
            panic!("not an append");
        };
        assert_eq!(back.entries, rpc.entries[..3]);
    }

    #[test]
    fn an_entry_over_the_internal_object_limit_is_measured_as_such() {
        let Entry {
            payload: EntryPayload::Normal(small),
            ..
        } = big_entry(2, 1000)
        else {
            unreachable!()
        };
        assert!(codec::entry_size(&small) < 2000);
        let Entry {
            payload: EntryPayload::Normal(big),
            ..
        } = big_entry(2, MAX_ENTRY_SIZE)
        else {
            unreachable!()
        };
        assert!(codec::entry_size(&big) > MAX_ENTRY_SIZE);
    }

    fn settings() -> RaftSettings {
        RaftSettings {
            set_name: "rs0".into(),
            heartbeat_interval_millis: 200,
            election_timeout_millis: 1000,
        }
    }
}
