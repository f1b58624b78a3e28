//! The logical clock behind every reply's `$clusterTime` and `operationTime`.

use crate::catalog::{Catalog, Write};
use crate::error::CommandResult;
use crate::wire;
use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, Document, Timestamp};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The keys that sign `$clusterTime` (with a keyFile): `cluster_time::ClusterKeys`. The
/// clock signs through this trait so that it stands on nothing above it.
pub trait SigningKeys: Send + Sync + std::fmt::Debug {
    /// `(keyId, proof)` for `time`, or None while no key covers it.
    fn sign(&self, time: Timestamp) -> Option<(i64, [u8; 20])>;
    /// The check of a received time: the key must exist and cover it, the proof match.
    fn validate(&self, time: Timestamp, key_id: i64, hash: &[u8]) -> CommandResult<()>;
    /// Replaces what is cached with the catalog's keys.
    fn load(&self, catalog: &dyn Catalog);
    /// The write that adds a key when one is due.
    fn next_key(&self, now: Timestamp, interval_secs: u32) -> Option<Write>;
}

/// A monotonic BSON Timestamp (seconds, increment), packed into one atomic.
#[derive(Debug)]
pub struct LogicalClock {
    packed: AtomicU64,
    /// Set with a keyFile: the keys that sign `$clusterTime`.
    keys: OnceLock<Arc<dyn SigningKeys>>,
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

/// The wall clock's current second, at its first increment, packed.
fn wall_time() -> u64 {
    pack(Timestamp {
        time: wall_seconds(),
        increment: 1,
    })
}

impl Default for LogicalClock {
    fn default() -> Self {
        Self::new()
    }
}

impl LogicalClock {
    pub fn new() -> Self {
        LogicalClock {
            packed: AtomicU64::new(wall_time()),
            keys: OnceLock::new(),
        }
    }

    /// Signs `$clusterTime` from now on with `keys`.
    pub fn enable_signing(&self, keys: Arc<dyn SigningKeys>) {
        let _ = self.keys.set(keys);
    }

    pub fn keys(&self) -> Option<&Arc<dyn SigningKeys>> {
        self.keys.get()
    }

    pub fn now(&self) -> Timestamp {
        unpack(self.packed.load(Ordering::Acquire))
    }

    /// Reserves a new, strictly later time: wall-clock seconds when they have moved on,
    /// otherwise the next increment.
    pub fn tick(&self) -> Timestamp {
        let wall = wall_time();
        let prev = self
            .packed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some(wall.max(cur + 1))
            })
            .expect("the closure always returns Some");
        unpack(wall.max(prev + 1))
    }

    /// The time [`Self::tick`] would give now, without taking it.
    pub fn next(&self) -> Timestamp {
        unpack(wall_time().max(self.packed.load(Ordering::Acquire) + 1))
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
    pub fn stamp_encoded_reply(&self, body: bson::RawDocumentBuf) -> bson::RawDocumentBuf {
        // Taken by value: swapping a placeholder in would allocate one per reply.
        let mut bytes = body.into_bytes();
        bytes.pop(); // the terminating NUL, written again by finish_document
        self.write_reply_times(&mut bytes);
        wire::raw::finish_document(0, &mut bytes);
        bson::RawDocumentBuf::from_bytes(bytes).expect("a document with two more fields")
    }

    /// [`Self::stamp_reply`] written as BSON elements at the end of a document being
    /// encoded, for replies made without a `Document`.
    pub fn write_reply_times(&self, out: &mut Vec<u8>) {
        let now = self.now();
        let (key_id, hash) = self.signature(now);
        let plain = "plain elements with plain keys";
        let cluster_time = wire::raw::open_document(b"$clusterTime", out);
        wire::raw::write_element(b"clusterTime", &Bson::Timestamp(now), out).expect(plain);
        let signature = wire::raw::open_document(b"signature", out);
        wire::raw::write_generic_binary(b"hash", &hash, out);
        wire::raw::write_int64(b"keyId", key_id, out);
        wire::raw::finish_document(signature, out);
        wire::raw::finish_document(cluster_time, out);
        wire::raw::write_element(b"operationTime", &Bson::Timestamp(now), out).expect(plain);
    }

    /// `$clusterTime` for a reply.
    pub fn cluster_time_document(&self, ts: Timestamp) -> Document {
        let (key_id, hash) = self.signature(ts);
        doc! {
            "clusterTime": ts,
            "signature": {
                "hash": Binary { subtype: BinarySubtype::Generic, bytes: hash.to_vec() },
                "keyId": key_id,
            },
        }
    }

    /// The keyId and proof that sign `ts`: from the keys when there are some (with a
    /// keyFile, once the primary has made them), else keyId 0 and a zero hash, as mongod
    /// sends then.
    fn signature(&self, ts: Timestamp) -> (i64, [u8; 20]) {
        self.keys
            .get()
            .and_then(|k| k.sign(ts))
            .unwrap_or((0, [0; 20]))
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
