//! Goal: a new member joining a set with N entries is caught up, by snapshot, in under 5 s.

use crate::load::{self, verdict, Writer};
use crate::member::{Member, Set};
use crate::{client, Common, Result};
use bson::{doc, Bson};
use clap::Args;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct Opts {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 100_000)]
    entries: u64,
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Give up waiting for the new member after this many seconds.
    #[arg(long, default_value_t = 300)]
    limit_secs: u64,
}

/// ferrod's log id for "Installed a snapshot of the replicated catalog".
const SNAPSHOT_INSTALLED: i64 = 7_000_062;

struct Joined {
    millis: f64,
    /// Until replSetReconfig was acknowledged, and how many times it answered 262 first.
    reconfig_millis: f64,
    timed_out: usize,
    snapshot_lines: Vec<String>,
}

/// Starts an empty member, adds it by replSetReconfig, and times from the reconfig to its
/// applied optime reaching the primary's.
fn join(set: &mut Set, binary: &std::path::Path, limit: Duration) -> Result<Joined> {
    let p = set.wait_primary(Duration::from_secs(30))?;
    let primary = set.members[p].port;
    let mut new = Member::new(binary)?;
    new.start()?;
    let config = client::checked(
        client::once(primary, doc! {"replSetGetConfig": 1})?,
        "replSetGetConfig",
    )?;
    let mut config = config
        .get_document("config")
        .map_err(|e| e.to_string())?
        .clone();
    let version = config.get_i32("version").map_err(|e| e.to_string())?;
    let mut members = config
        .get_array("members")
        .map_err(|e| e.to_string())?
        .clone();
    let id = members
        .iter()
        .filter_map(Bson::as_document)
        .filter_map(|m| m.get_i32("_id").ok())
        .max()
        .unwrap_or(0)
        + 1;
    members.push(Bson::Document(doc! {"_id": id, "host": new.addr()}));
    config.insert("members", members);
    config.insert("version", version + 1);
    let started = Instant::now();
    let deadline = started + limit;
    // ferrod answers 262 (ExceededTimeLimit) when the new member has not caught up
    // within its wait; it keeps replicating to it, so the same reconfig is sent again.
    let mut timed_out = 0;
    loop {
        let reply = client::once(primary, doc! {"replSetReconfig": config.clone()})?;
        if client::ok(&reply) {
            break;
        }
        if reply.get_i32("code") != Ok(262) || Instant::now() > deadline {
            return Err(format!("replSetReconfig failed: {reply}"));
        }
        timed_out += 1;
        println!(
            "  replSetReconfig answered 262 ExceededTimeLimit after {:.1} s ({}); sent again",
            started.elapsed().as_secs_f64(),
            reply.get_str("errmsg").unwrap_or("")
        );
    }
    let reconfigured = started.elapsed().as_secs_f64() * 1e3;
    loop {
        let target = client::own_optime(primary);
        let got = client::own_optime(new.port);
        if let (Some(target), Some(got)) = (target, got) {
            if got >= target {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err(format!("the new member did not catch up within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let millis = started.elapsed().as_secs_f64() * 1e3;
    let snapshot_lines = new.log_lines_with_id(SNAPSHOT_INSTALLED);
    set.members.push(new);
    Ok(Joined {
        millis,
        reconfig_millis: reconfigured,
        timed_out,
        snapshot_lines,
    })
}

pub fn run(o: Opts) -> Result<()> {
    let binary = o.common.binary()?;
    let limit = Duration::from_secs(o.limit_secs);
    println!(
        "join: three-member set with {} entries (updateUser, w:majority, {} connections) against one just initiated; \
         a fourth member started empty and added by replSetReconfig; time from the reconfig until its own optime \
         (replSetGetStatus) reaches the primary's",
        o.entries, o.connections
    );
    let mut empty = Set::start(&binary, 3)?;
    let base = join(&mut empty, &binary, limit)?;
    drop(empty);
    let mut full = Set::start(&binary, 3)?;
    let p = full.wait_primary(Duration::from_secs(30))?;
    let mut writer = Writer::new(full.members[p].port, load::majority(), o.connections)?;
    writer.fill_to(o.entries)?;
    let measured = join(&mut full, &binary, limit)?;
    println!(
        "  ~0 entries: caught up in {:.0} ms | {} entries: caught up in {:.0} ms (reconfig acknowledged after {:.0} ms, \
         {} times 262 before) | ratio {:.1}x",
        base.millis,
        writer.entries,
        measured.millis,
        measured.reconfig_millis,
        measured.timed_out,
        measured.millis / base.millis
    );
    match measured.snapshot_lines.first() {
        Some(line) => println!(
            "  by snapshot: yes ({} snapshot installs in the new member's log (id {SNAPSHOT_INSTALLED}); first: {line})",
            measured.snapshot_lines.len()
        ),
        None => println!(
            "  by snapshot: no (no line with id {SNAPSHOT_INSTALLED}, a snapshot install, in the new member's log)"
        ),
    }
    println!(
        "join goal (caught up by snapshot in < 5 s): {}",
        verdict(measured.millis < 5000.0 && !measured.snapshot_lines.is_empty())
    );
    Ok(())
}
