//! The binary form of Raft log entries and snapshot metadata: BSON throughout, on the
//! wire (AppendEntries, InstallSnapshot) and in the log store. openraft keys a
//! membership's nodes by number, which a BSON key cannot be, so a membership travels as
//! lists ([`MembershipOut`]) rather than as openraft's own serde form.

use super::raft::{ReplEntry, TypeConfig};
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub type CodecResult<T> = Result<T, String>;

fn bson_error(e: impl std::fmt::Display) -> String {
    format!("cannot encode a Raft message as BSON: {e}")
}

/// A membership as BSON can hold it: its (joint) voter sets and its nodes.
#[derive(Debug, Serialize, Deserialize)]
pub struct MembershipOut {
    configs: Vec<Vec<u64>>,
    nodes: Vec<NodeOut>,
}

#[derive(Debug, Serialize, Deserialize)]
struct NodeOut {
    id: u64,
    addr: String,
}

impl From<&Membership<u64, BasicNode>> for MembershipOut {
    fn from(m: &Membership<u64, BasicNode>) -> Self {
        MembershipOut {
            configs: m
                .get_joint_config()
                .iter()
                .map(|c| c.iter().copied().collect())
                .collect(),
            nodes: m
                .nodes()
                .map(|(id, n)| NodeOut {
                    id: *id,
                    addr: n.addr.clone(),
                })
                .collect(),
        }
    }
}

impl From<MembershipOut> for Membership<u64, BasicNode> {
    fn from(m: MembershipOut) -> Self {
        let configs: Vec<BTreeSet<u64>> = m
            .configs
            .into_iter()
            .map(|c| c.into_iter().collect())
            .collect();
        let nodes: BTreeMap<u64, BasicNode> = m
            .nodes
            .into_iter()
            .map(|n| (n.id, BasicNode::new(n.addr)))
            .collect();
        Membership::new(configs, nodes)
    }
}

/// An entry as it travels, is stored and is measured.
#[derive(Serialize)]
struct EntryOut<'a> {
    log_id: &'a LogId<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    normal: Option<&'a ReplEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    membership: Option<MembershipOut>,
}

#[derive(Deserialize)]
struct EntryIn {
    log_id: LogId<u64>,
    normal: Option<ReplEntry>,
    /// A document ([`MembershipOut`]); an older build sent JSON bytes.
    membership: Option<bson::Bson>,
}

/// `entry` as one BSON document.
pub fn encode_entry(entry: &Entry<TypeConfig>) -> CodecResult<Vec<u8>> {
    let (normal, membership) = match &entry.payload {
        EntryPayload::Blank => (None, None),
        EntryPayload::Normal(e) => (Some(e), None),
        EntryPayload::Membership(m) => (None, Some(MembershipOut::from(m))),
    };
    bson::to_vec(&EntryOut {
        log_id: &entry.log_id,
        normal,
        membership,
    })
    .map_err(bson_error)
}

/// An entry from its BSON document.
pub fn decode_entry(bytes: &[u8]) -> CodecResult<Entry<TypeConfig>> {
    let e: EntryIn = bson::from_slice(bytes).map_err(|e| e.to_string())?;
    entry_from(e)
}

fn entry_from(e: EntryIn) -> CodecResult<Entry<TypeConfig>> {
    let membership = |m: bson::Bson| -> CodecResult<Membership<u64, BasicNode>> {
        match m {
            bson::Bson::Document(d) => Ok(bson::from_document::<MembershipOut>(d)
                .map_err(|e| e.to_string())?
                .into()),
            bson::Bson::Binary(b) => serde_json::from_slice(&b.bytes).map_err(|e| e.to_string()),
            _ => Err("a membership that is neither a document nor bytes".into()),
        }
    };
    let payload = match (e.normal, e.membership) {
        (Some(normal), None) => EntryPayload::Normal(normal),
        (None, Some(m)) => EntryPayload::Membership(membership(m)?),
        (None, None) => EntryPayload::Blank,
        (Some(_), Some(_)) => return Err("an entry with two payloads".into()),
    };
    Ok(Entry {
        log_id: e.log_id,
        payload,
    })
}

/// The encoded size of `entry` once proposed (with the largest log id it could get).
/// An entry that cannot be encoded at all is reported as too large: it could never be
/// sent either.
pub fn entry_size(entry: &ReplEntry) -> usize {
    let max = u64::MAX >> 1;
    let probe = EntryOut {
        log_id: &LogId::new(CommittedLeaderId::new(max, max), max),
        normal: Some(entry),
        membership: None,
    };
    bson::to_vec(&probe).map_or(usize::MAX, |b| b.len())
}

/// Snapshot metadata as BSON can hold it.
#[derive(Serialize, Deserialize)]
pub struct SnapshotMetaOut {
    last_log_id: Option<LogId<u64>>,
    membership_log_id: Option<LogId<u64>>,
    membership: MembershipOut,
    snapshot_id: String,
}

impl From<&SnapshotMeta<u64, BasicNode>> for SnapshotMetaOut {
    fn from(m: &SnapshotMeta<u64, BasicNode>) -> Self {
        SnapshotMetaOut {
            last_log_id: m.last_log_id,
            membership_log_id: *m.last_membership.log_id(),
            membership: m.last_membership.membership().into(),
            snapshot_id: m.snapshot_id.clone(),
        }
    }
}

impl From<SnapshotMetaOut> for SnapshotMeta<u64, BasicNode> {
    fn from(m: SnapshotMetaOut) -> Self {
        SnapshotMeta {
            last_log_id: m.last_log_id,
            last_membership: StoredMembership::new(m.membership_log_id, m.membership.into()),
            snapshot_id: m.snapshot_id,
        }
    }
}

/// How an entry is kept in the log store: a format byte, then the encoding. An older
/// build kept entries as JSON, which always starts with `{`.
const STORED_BSON: u8 = 1;

pub fn encode_stored(entry: &Entry<TypeConfig>) -> CodecResult<Vec<u8>> {
    let mut out = vec![STORED_BSON];
    out.extend(encode_entry(entry)?);
    Ok(out)
}

pub fn decode_stored(bytes: &[u8]) -> CodecResult<Entry<TypeConfig>> {
    match bytes.first() {
        Some(&STORED_BSON) => decode_entry(&bytes[1..]),
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        _ => Err("a log entry in an unknown format".into()),
    }
}

/// Reads a stream of BSON documents (what a snapshot holds), one at a time.
pub fn documents(mut bytes: &[u8]) -> impl Iterator<Item = CodecResult<&[u8]>> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        let len = bytes
            .get(..4)
            .map(|b| i32::from_le_bytes(b.try_into().expect("four bytes")));
        match len {
            Some(len) if len >= 5 && len as usize <= bytes.len() => {
                let (doc, rest) = bytes.split_at(len as usize);
                bytes = rest;
                Some(Ok(doc))
            }
            _ => {
                bytes = &[];
                Some(Err("a truncated document in a snapshot".into()))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repl::raft::ReplOp;

    fn log_id(index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(3, 1), index)
    }

    #[test]
    fn an_entry_an_older_build_stored_as_json_is_read() {
        let nodes: BTreeMap<u64, BasicNode> = [(1, BasicNode::new("a:1"))].into();
        let entries = [
            Entry {
                log_id: log_id(1),
                payload: EntryPayload::Membership(Membership::new(vec![[1].into()], nodes)),
            },
            Entry {
                log_id: log_id(2),
                payload: EntryPayload::Normal(ReplEntry {
                    time_hint: 7,
                    op: ReplOp::Noop,
                }),
            },
            Entry {
                log_id: log_id(3),
                payload: EntryPayload::Blank,
            },
        ];
        for entry in entries {
            let old = serde_json::to_vec(&entry).unwrap();
            assert_eq!(decode_stored(&old).unwrap(), entry);
            let new = encode_stored(&entry).unwrap();
            assert_eq!(decode_stored(&new).unwrap(), entry);
        }
        assert!(decode_stored(b"").is_err());
        assert!(decode_stored(&[9, 9]).is_err());
    }

    #[test]
    fn a_document_travels_as_its_bytes_not_as_text() {
        let doc = bson::doc! {"_id": "admin.u", "b": bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic, bytes: vec![7; 3000] }};
        let entry = Entry {
            log_id: log_id(4),
            payload: EntryPayload::Normal(ReplEntry {
                time_hint: 1,
                op: ReplOp::Catalog(vec![crate::catalog::Write::Upsert {
                    collection: crate::catalog::Collection::Users,
                    id: "admin.u".into(),
                    doc,
                }]),
            }),
        };
        let json = serde_json::to_vec(&entry).unwrap().len();
        let bson = encode_stored(&entry).unwrap().len();
        assert!(bson < 3300 && json > 4000, "bson {bson}, json {json}");
    }

    #[test]
    fn a_membership_an_older_build_sent_as_json_bytes_is_read() {
        let nodes: BTreeMap<u64, BasicNode> =
            [(1, BasicNode::new("a:1")), (2, BasicNode::new("b:2"))].into();
        let membership = Membership::new(vec![[1, 2].into()], nodes);
        let old = bson::doc! {
            "log_id": bson::to_bson(&log_id(5)).unwrap(),
            "membership": bson::Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes: serde_json::to_vec(&membership).unwrap(),
            },
        };
        let entry = decode_entry(&bson::to_vec(&old).unwrap()).unwrap();
        assert_eq!(entry.payload, EntryPayload::Membership(membership));
    }

    #[test]
    fn a_truncated_document_stream_is_an_error() {
        let doc = bson::to_vec(&bson::doc! {"a": 1}).unwrap();
        let mut two = doc.clone();
        two.extend(&doc);
        assert_eq!(documents(&two).filter(|d| d.is_ok()).count(), 2);
        assert!(documents(&two[..doc.len() + 3]).any(|d| d.is_err()));
        assert!(documents(&[1, 0, 0, 0]).any(|d| d.is_err()));
    }
}
