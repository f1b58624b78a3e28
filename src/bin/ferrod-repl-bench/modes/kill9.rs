//! Goal: kill -9 of the primary, again and again during w:majority writes, loses no
//! acknowledged write.

use crate::member::{Set, Stop};
use crate::{client, Common, Result};
use clap::Args;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct Opts {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// Client threads, each creating users one after another.
    #[arg(long, default_value_t = 2)]
    clients: usize,
}

#[derive(Default)]
struct Counts {
    acknowledged: Mutex<Vec<String>>,
    /// Writes that needed more than one attempt.
    retried: AtomicU64,
    /// Attempts that got no acknowledgement (error, no primary, writeConcernError).
    failed_attempts: AtomicU64,
    /// Retries answered "user already exists": an earlier, unacknowledged attempt committed.
    committed_unacknowledged: AtomicU64,
}

/// Creates users `c{client}-{n}` with w:majority on whichever member is primary.
fn client_loop(id: usize, ports: Vec<u16>, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    let wc = bson::doc! {"w": "majority", "wtimeout": 5000};
    let mut next = 0;
    let mut failed_before = false;
    while !stop.load(Ordering::Acquire) {
        let name = format!("c{id}-{next}");
        let reply = ports.iter().find_map(|&port| {
            let mut conn = client::Conn::connect(port, Duration::from_secs(8)).ok()?;
            let hello = conn.command(bson::doc! {"hello": 1}).ok()?;
            if hello.get_bool("isWritablePrimary") != Ok(true) {
                return None;
            }
            conn.command(client::create_user(&name, &wc)).ok()
        });
        match reply {
            Some(r) if client::ok(&r) => {
                counts.acknowledged.lock().unwrap().push(name);
                next += 1;
                failed_before = false;
            }
            // 51003: the user exists, so an earlier attempt whose reply was lost committed.
            Some(r) if r.get_i32("code") == Ok(51003) => {
                counts
                    .committed_unacknowledged
                    .fetch_add(1, Ordering::Relaxed);
                next += 1;
            }
            _ => {
                counts.failed_attempts.fetch_add(1, Ordering::Relaxed);
                if !failed_before {
                    counts.retried.fetch_add(1, Ordering::Relaxed);
                    failed_before = true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn wait_acks(counts: &Counts, more_than: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while counts.acknowledged.lock().unwrap().len() < more_than {
        if Instant::now() > deadline {
            return Err("no acknowledged write within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

pub fn run(o: Opts) -> Result<()> {
    let binary = o.common.binary()?;
    println!(
        "kill9: three-member set (electionTimeoutMillis 1000), {} clients creating users with w:majority; \
         {} times: kill -9 of the primary once it has acknowledged 2 more writes, wait for a new primary, restart it",
        o.clients, o.kills
    );
    let mut set = Set::start(&binary, 3)?;
    let ports: Vec<u16> = set.members.iter().map(|m| m.port).collect();
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..o.clients)
        .map(|id| {
            let (ports, counts, stop) = (ports.clone(), counts.clone(), stop.clone());
            std::thread::spawn(move || client_loop(id, ports, counts, stop))
        })
        .collect();
    let mut failovers = Vec::new();
    let result = (|| -> Result<()> {
        for round in 0..o.kills {
            let p = set.wait_primary(Duration::from_secs(30))?;
            let seen = counts.acknowledged.lock().unwrap().len();
            wait_acks(&counts, seen + 2)?;
            set.members[p].stop(Stop::Kill)?;
            let killed = Instant::now();
            set.wait_primary(Duration::from_secs(30))
                .map_err(|e| format!("round {round}: {e}"))?;
            failovers.push(killed.elapsed().as_secs_f64() * 1e3);
            set.members[p].start()?;
        }
        Ok(())
    })();
    stop.store(true, Ordering::Release);
    for c in clients {
        let _ = c.join();
    }
    result?;
    let acknowledged = counts.acknowledged.lock().unwrap().clone();
    // Every member gets 30 s to apply what the majority acknowledged.
    let mut lost = HashSet::new();
    for m in &set.members {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let names: HashSet<String> = client::user_names(m.port)?.into_iter().collect();
            let missing: Vec<&String> = acknowledged
                .iter()
                .filter(|u| !names.contains(*u))
                .collect();
            if missing.is_empty() || Instant::now() > deadline {
                lost.extend(missing.into_iter().cloned());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    println!(
        "  {} kills; new primary after a median {:.0} ms (baseline: electionTimeoutMillis 1000 ms)",
        failovers.len(),
        crate::load::median(&failovers)
    );
    println!(
        "  acknowledged {}, retried {} (in {} failed attempts), committed but unacknowledged {}, lost {}",
        acknowledged.len(),
        counts.retried.load(Ordering::Relaxed),
        counts.failed_attempts.load(Ordering::Relaxed),
        counts.committed_unacknowledged.load(Ordering::Relaxed),
        lost.len()
    );
    println!(
        "kill9 goal (no acknowledged write lost): {}",
        crate::load::verdict(lost.is_empty())
    );
    if !lost.is_empty() {
        return Err(format!("lost acknowledged writes: {lost:?}"));
    }
    Ok(())
}
