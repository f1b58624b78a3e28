//! Per-host pool counters that connPoolStats reads without asking the pool task.
//!
//! inUse, available and refreshing live in one atomic word so a reader always sees the
//! three from the same moment; `created` only grows and is bumped before a connection
//! enters any state, so `inUse + available <= created` holds for every snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

const FIELD_BITS: u32 = 21;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;

/// One host pool's counters, written by its task only.
#[derive(Debug, Default)]
pub struct HostCounters {
    /// in_use | available << 21 | refreshing << 42
    gauges: AtomicU64,
    created: AtomicU64,
    refreshed: AtomicU64,
    /// Checkouts queued for a connection. Not a connPoolStats field (mongod 7.0 has
    /// none); a test command reads it so tests can wait for a checkout to queue.
    queued: AtomicU64,
}

/// The counters of one host pool (or a sum of several) at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub in_use: u64,
    pub available: u64,
    pub refreshing: u64,
    pub created: u64,
    pub refreshed: u64,
}

impl std::ops::AddAssign for Snapshot {
    fn add_assign(&mut self, o: Snapshot) {
        self.in_use += o.in_use;
        self.available += o.available;
        self.refreshing += o.refreshing;
        self.created += o.created;
        self.refreshed += o.refreshed;
    }
}

fn unpack(word: u64) -> (u64, u64, u64) {
    (
        word & FIELD_MASK,
        (word >> FIELD_BITS) & FIELD_MASK,
        (word >> (2 * FIELD_BITS)) & FIELD_MASK,
    )
}

fn pack(in_use: u64, available: u64, refreshing: u64) -> u64 {
    in_use.min(FIELD_MASK)
        | available.min(FIELD_MASK) << FIELD_BITS
        | refreshing.min(FIELD_MASK) << (2 * FIELD_BITS)
}

impl HostCounters {
    /// Sets the three gauges at once (the pool task knows the true values).
    pub fn set(&self, in_use: usize, available: usize, refreshing: usize) {
        self.gauges.store(
            pack(in_use as u64, available as u64, refreshing as u64),
            Ordering::Release,
        );
    }

    pub fn set_queued(&self, queued: usize) {
        self.queued.store(queued as u64, Ordering::Release);
    }

    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Acquire)
    }

    pub fn add_created(&self) {
        self.created.fetch_add(1, Ordering::AcqRel);
    }

    pub fn add_refreshed(&self) {
        self.refreshed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let (in_use, available, refreshing) = unpack(self.gauges.load(Ordering::Acquire));
        // Read after the gauges: anything they count was created before this load.
        let created = self.created.load(Ordering::Acquire);
        Snapshot {
            in_use,
            available,
            refreshing,
            created,
            refreshed: self.refreshed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_round_trip() {
        let c = HostCounters::default();
        c.add_created();
        c.add_created();
        c.set(1, 1, 3);
        let s = c.snapshot();
        assert_eq!(
            (s.in_use, s.available, s.refreshing, s.created),
            (1, 1, 3, 2)
        );
    }
}
