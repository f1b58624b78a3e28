//! The logical clock behind every reply's `$clusterTime` and `operationTime`.

use crate::cluster_time::ClusterKeys;
use bson::spec::{BinarySubtype, ElementType};
use bson::{doc, Binary, Document, Timestamp};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// A monotonic BSON Timestamp (seconds, increment), packed into one atomic.
#[derive(Debug)]
pub struct LogicalClock {
    packed: AtomicU64,
    /// Set with a keyFile: the keys that sign `$clusterTime`.
    keys: OnceLock<Arc<ClusterKeys>>,
}

/// A Timestamp as one ordered integer: seconds high, increment low.
pub fn pack(ts: Timestamp) -> u64 {
    ((ts.time as u64) << 32) | ts.increment as u64
}

pub fn unpack(v: u64) -> Timestamp {
    Timestamp {
        time: (v >> 32) as u32,
        increment: v as u32,
    }
}

pub fn wall_seconds() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

impl Default for LogicalClock {
    fn default() -> Self {
        Self::new()
    }
}

impl LogicalClock {
    pub fn new() -> Self {
        LogicalClock {
            packed: AtomicU64::new(pack(Timestamp {
                time: wall_seconds(),
                increment: 1,
            })),
            keys: OnceLock::new(),
        }
    }

    /// Signs `$clusterTime` from now on with `keys`.
    pub fn enable_signing(&self, keys: Arc<ClusterKeys>) {
        let _ = self.keys.set(keys);
    }

    pub fn keys(&self) -> Option<&Arc<ClusterKeys>> {
        self.keys.get()
    }

    pub fn now(&self) -> Timestamp {
        unpack(self.packed.load(Ordering::Acquire))
    }

    /// Reserves a new, strictly later time: wall-clock seconds when they have moved on,
    /// otherwise the next increment.
    pub fn tick(&self) -> Timestamp {
        let wall = pack(Timestamp {
            time: wall_seconds(),
            increment: 1,
        });
        let prev = self
            .packed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some(wall.max(cur + 1))
            })
            .expect("the closure always returns Some");
        unpack(wall.max(prev + 1))
    }

    /// Moves the clock forward to `ts` if it is later (never backwards).
    pub fn advance_to(&self, ts: Timestamp) {
        self.packed.fetch_max(pack(ts), Ordering::AcqRel);
    }

    /// Adds `$clusterTime` and `operationTime` to a reply (every reply, errors included).
    pub fn stamp_reply(&self, body: &mut Document) {
        let now = self.now();
        body.insert("$clusterTime", self.cluster_time_document(now));
        body.insert("operationTime", now);
    }

    /// [`Self::stamp_reply`] for a reply already encoded: the same two fields appended.
    pub fn stamp_encoded_reply(&self, body: &mut bson::RawDocumentBuf) {
        let now = self.now();
        let cluster_time = bson::RawDocumentBuf::from_document(&self.cluster_time_document(now))
            .expect("a cluster time document encodes");
        body.append("$clusterTime", cluster_time);
        body.append("operationTime", now);
    }

    /// [`Self::stamp_reply`] written as BSON elements at the end of a document being
    /// encoded, for replies made without a `Document` (the fast lane).
    pub fn write_reply_times(&self, out: &mut Vec<u8>) {
        let now = self.now();
        let (key_id, hash) = self
            .keys
            .get()
            .and_then(|k| k.sign(now))
            .unwrap_or((0, [0; 20]));
        let element = |out: &mut Vec<u8>, kind: ElementType, name: &[u8]| {
            out.push(kind as u8);
            out.extend_from_slice(name);
            out.push(0);
        };
        let timestamp = |out: &mut Vec<u8>| {
            out.extend_from_slice(&now.increment.to_le_bytes());
            out.extend_from_slice(&now.time.to_le_bytes());
        };
        // A subdocument's length is patched in when it ends.
        let open = |out: &mut Vec<u8>, name: &[u8]| {
            element(out, ElementType::EmbeddedDocument, name);
            out.extend_from_slice(&[0; 4]);
            out.len() - 4
        };
        let close = |out: &mut Vec<u8>, start: usize| {
            out.push(0);
            let len = (out.len() - start) as i32;
            out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        };
        let cluster_time = open(out, b"$clusterTime");
        element(out, ElementType::Timestamp, b"clusterTime");
        timestamp(out);
        let signature = open(out, b"signature");
        element(out, ElementType::Binary, b"hash");
        out.extend_from_slice(&(hash.len() as i32).to_le_bytes());
        out.push(u8::from(BinarySubtype::Generic));
        out.extend_from_slice(&hash);
        element(out, ElementType::Int64, b"keyId");
        out.extend_from_slice(&key_id.to_le_bytes());
        close(out, signature);
        close(out, cluster_time);
        element(out, ElementType::Timestamp, b"operationTime");
        timestamp(out);
    }

    /// `$clusterTime` for a reply: signed when there are keys (with a keyFile, once the
    /// primary has made them), else a zero hash and keyId 0 as mongod sends then.
    pub fn cluster_time_document(&self, ts: Timestamp) -> Document {
        let (key_id, hash) = self
            .keys
            .get()
            .and_then(|k| k.sign(ts))
            .map(|(id, proof)| (id, proof.to_vec()))
            .unwrap_or((0, vec![0; 20]));
        doc! {
            "clusterTime": ts,
            "signature": {
                "hash": Binary { subtype: BinarySubtype::Generic, bytes: hash },
                "keyId": key_id,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_and_never_go_back() {
        let clock = LogicalClock::new();
        let mut last = clock.now();
        for _ in 0..10_000 {
            let t = clock.tick();
            assert!(pack(t) > pack(last));
            last = t;
        }
        clock.advance_to(Timestamp {
            time: 1,
            increment: 0,
        });
        assert_eq!(clock.now(), last);
    }
}
