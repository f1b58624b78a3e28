//! Goal: per-write latency of catalog writes flat (within 1.5x) from 1,000 to N entries.

use crate::load::{self, median, percentile, verdict, Writer};
use crate::member::Set;
use crate::{Common, Result};
use clap::Args;

#[derive(Args)]
pub struct Opts {
    #[command(flatten)]
    common: Common,
    /// Entries written before the late window.
    #[arg(long, default_value_t = 100_000)]
    entries: u64,
    /// Entries written before the early window (the baseline).
    #[arg(long, default_value_t = 1_000)]
    early: u64,
    /// Writes of each kind (createUser, updateUser) per window.
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// Connections that write in a closed loop between the windows.
    #[arg(long, default_value_t = 8)]
    connections: usize,
}

pub fn run(o: Opts) -> Result<()> {
    let binary = o.common.binary()?;
    if o.entries <= o.early {
        return Err("--entries must exceed --early".into());
    }
    println!(
        "latency: {} createUser and {} updateUser, alternating on one connection, after {} and after {} entries; \
         between the windows updateUser in a closed loop on {} connections",
        o.window, o.window, o.early, o.entries, o.connections
    );
    let mut all_met = true;
    for (members, wc, label) in [
        (1, load::w1(), "one member, w:1"),
        (3, load::majority(), "three members, w:majority"),
    ] {
        println!("{label}:");
        let set = Set::start(&binary, members)?;
        let p = set.wait_primary(std::time::Duration::from_secs(30))?;
        let mut writer = Writer::new(set.members[p].port, wc, o.connections)?;
        writer.fill_to(o.early)?;
        let at_early = writer.entries;
        let early = writer.window(o.window)?;
        writer.fill_to(o.entries)?;
        let at_late = writer.entries;
        let late = writer.window(o.window)?;
        for (kind, e, l) in [
            ("createUser", &early.0, &late.0),
            ("updateUser", &early.1, &late.1),
        ] {
            let ratio = median(l) / median(e);
            let met = ratio <= 1.5;
            all_met &= met;
            println!(
                "  {kind:<10} after {at_early:>7} entries: median {:>7.2} ms  p90 {:>7.2} ms | after {at_late:>7}: median {:>7.2} ms  p90 {:>7.2} ms | late/early {ratio:.2}x (goal <= 1.5x: {})",
                median(e),
                percentile(e, 0.9),
                median(l),
                percentile(l, 0.9),
                verdict(met)
            );
        }
    }
    println!("latency goal: {}", verdict(all_met));
    Ok(())
}
