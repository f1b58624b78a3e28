//! Goal: the log's size on disk bounded by the snapshot policy, not growing with every
//! entry ever written.

use crate::load::{self, Writer};
use crate::member::Set;
use crate::{Common, Result};
use clap::Args;
use std::path::Path;

#[derive(Args)]
pub struct Opts {
    #[command(flatten)]
    common: Common,
    /// Entry counts after which sizes are taken.
    #[arg(long, value_delimiter = ',', default_value = "10000,50000,100000")]
    sizes: Vec<u64>,
    #[arg(long, default_value_t = 8)]
    connections: usize,
}

/// The log store's file, as named by the redb store.
const LOG_FILE: &str = "ferrod-repl-log.redb";

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn file_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

pub fn run(o: Opts) -> Result<()> {
    let binary = o.common.binary()?;
    let mut sizes = o.sizes.clone();
    sizes.sort_unstable();
    println!(
        "disk: one-member set, updateUser with w:1 on {} connections; sizes of {LOG_FILE} and of the whole dbpath after {:?} entries",
        o.connections, sizes
    );
    let set = Set::start(&binary, 1)?;
    let member = &set.members[0];
    let dbpath = member.dbpath();
    let (log0, all0) = (file_bytes(&dbpath.join(LOG_FILE)), dir_bytes(&dbpath));
    println!("  baseline, just initiated: log file {log0} bytes, dbpath {all0} bytes");
    let mut writer = Writer::new(member.port, load::w1(), o.connections)?;
    let mut rows = Vec::new();
    for &n in &sizes {
        writer.fill_to(n)?;
        let (log, all) = (file_bytes(&dbpath.join(LOG_FILE)), dir_bytes(&dbpath));
        println!(
            "  after {n:>7} entries: log file {log:>11} bytes ({:>6.0} per entry), dbpath {all:>11} bytes ({:>6.0} per entry)",
            log as f64 / n as f64,
            all as f64 / n as f64
        );
        rows.push((n, log, all));
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        if last.0 > first.0 {
            let entries = last.0 as f64 / first.0 as f64;
            let log = last.1 as f64 / first.1.max(1) as f64;
            let all = last.2 as f64 / first.2.max(1) as f64;
            println!(
                "  from {} to {} entries ({entries:.1}x): log file {log:.2}x, dbpath {all:.2}x (goal: bounded, well under {entries:.1}x: {})",
                first.0,
                last.0,
                load::verdict(all < entries / 2.0)
            );
        }
    }
    Ok(())
}
