//! Per-command counters for serverStatus `metrics.commands`, kept as mongod keeps them:
//! every command that reaches the dispatcher counts in `total`, those that fail also in
//! `failed`; names that are no command count in `<UNKNOWN>`.

use super::{is_available, Command, TABLE};
use crate::state::{ServerState, Stats};
use bson::{doc, Document};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

/// Each command's place in [`TABLE`], which is its place in the counters.
static INDEX: LazyLock<HashMap<&'static str, usize>> =
    LazyLock::new(|| TABLE.iter().enumerate().map(|(i, c)| (c.name, i)).collect());

pub use crate::state::CommandCounters;

impl CommandCounters {
    /// `[total, failed]` per command, in [`TABLE`]'s order.
    fn slots(&self) -> &[[AtomicU64; 2]] {
        self.counts
            .get_or_init(|| TABLE.iter().map(|_| Default::default()).collect())
    }

    /// Counts one run of `command` (None: a name that is no command, always failed).
    pub fn count(&self, command: Option<&Command>, failed: bool) {
        match command.and_then(|c| INDEX.get(c.name)) {
            Some(&i) => {
                Stats::add(&self.slots()[i][0], 1);
                if failed {
                    Stats::add(&self.slots()[i][1], 1);
                }
            }
            None => Stats::add(&self.unknown, 1),
        }
        if failed {
            Stats::add(&self.failed, 1);
        }
    }

    /// Counts a `ping` the connection's fast lane answered.
    pub fn count_fast_ping(&self) {
        static PING: LazyLock<Option<usize>> = LazyLock::new(|| INDEX.get("ping").copied());
        if let Some(i) = *PING {
            Stats::add(&self.slots()[i][0], 1);
        }
    }

    /// Failed commands so far (serverStatus `asserts.user`).
    pub fn failed(&self) -> u64 {
        Stats::get(&self.failed)
    }

    /// `metrics.commands`: `<UNKNOWN>`, then every command this server serves by name.
    pub fn to_document(&self, server: &ServerState) -> Document {
        let mut commands: Vec<(&Command, usize)> = TABLE
            .iter()
            .enumerate()
            .filter(|(_, c)| is_available(server, c))
            .map(|(i, c)| (*c, i))
            .collect();
        commands.sort_by_key(|(c, _)| c.name);
        let mut out = doc! {"<UNKNOWN>": Stats::get(&self.unknown) as i64};
        for (c, i) in commands {
            out.insert(
                c.name,
                doc! {
                    "failed": Stats::get(&self.slots()[i][1]) as i64,
                    "total": Stats::get(&self.slots()[i][0]) as i64,
                },
            );
        }
        out
    }
}
