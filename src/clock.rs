//! The logical clock behind every reply's `$clusterTime` and `operationTime`.

use bson::{doc, spec::BinarySubtype, Binary, Document, Timestamp};
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonic BSON Timestamp (seconds, increment), packed into one atomic.
#[derive(Debug)]
pub struct LogicalClock {
    packed: AtomicU64,
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
        }
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

    /// `$clusterTime` for a reply. Unsigned: a zero hash and keyId 0 until keys exist.
    pub fn cluster_time_document(&self, ts: Timestamp) -> Document {
        doc! {
            "clusterTime": ts,
            "signature": {
                "hash": Binary { subtype: BinarySubtype::Generic, bytes: vec![0; 20] },
                "keyId": 0_i64,
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
