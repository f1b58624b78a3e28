//! Goal: resident memory flat under sustained writes (each member's at the end within
//! 1.5x of what it was after 30 s), and where the CPU time goes.

use crate::load::{self, verdict};
use crate::member::Set;
use crate::proc_stats::rss_kib;
use crate::{client, Common, Result};
use bson::doc;
use clap::Args;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct Opts {
    #[command(flatten)]
    common: Common,
    /// Length of the run.
    #[arg(long, default_value_t = 4.0)]
    minutes: f64,
    /// When the baseline memory is read.
    #[arg(long, default_value_t = 30)]
    baseline_secs: u64,
    /// Seconds between replSetStepDown commands to the primary.
    #[arg(long, default_value_t = 20)]
    stepdown_secs: u64,
}

/// User and system CPU seconds of a process (utime, stime of /proc/PID/stat).
fn cpu_secs(pid: u32) -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // "pid (comm) state ...": the name may hold spaces, so split at the last ')'.
    let rest = stat.rsplit_once(')').ok_or("bad /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are the 14th and 15th fields of the whole line.
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((field(11) as f64 / ticks, field(12) as f64 / ticks))
}

/// A member's live tokio tasks (`_ferrodRuntimeStats`, with
/// `--set-parameter enableTestCommands=1`) and its threads; "-" where not readable.
fn tasks_and_threads(port: u16, pid: u32) -> (String, String) {
    let tasks = client::once(port, doc! {"_ferrodRuntimeStats": 1})
        .ok()
        .and_then(|r| r.get("aliveTasks").map(|t| t.to_string()))
        .unwrap_or_else(|| "-".into());
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count().to_string())
        .unwrap_or_else(|_| "-".into());
    (tasks, threads)
}

pub fn run(o: Opts) -> Result<()> {
    let binary = o.common.binary()?;
    let total = Duration::from_secs_f64(o.minutes * 60.0);
    let baseline_at = Duration::from_secs(o.baseline_secs);
    if baseline_at >= total {
        return Err("--baseline-secs must be shorter than the run".into());
    }
    println!(
        "memory: three-member set, updateUser with w:majority every 0.2 s, a ping to every member every 0.2 s, \
         replSetStepDown every {} s, for {:.1} min; VmRSS after {} s (baseline) and at the end",
        o.stepdown_secs, o.minutes, o.baseline_secs
    );
    let set = Set::start(&binary, 3)?;
    let pids: Vec<u32> = set.members.iter().filter_map(|m| m.pid()).collect();
    let ports: Vec<u16> = set.members.iter().map(|m| m.port).collect();
    let p = set.wait_primary(Duration::from_secs(30))?;
    client::checked(
        client::once(ports[p], client::create_user("mem", &load::majority()))?,
        "createUser",
    )?;
    let started = Instant::now();
    let (mut writes, mut failed, mut stepdowns) = (0u64, 0u64, 0u64);
    let mut primary = Some(p);
    let mut next_stepdown = started + Duration::from_secs(o.stepdown_secs);
    let mut baseline: Option<Vec<u64>> = None;
    let mut baseline_counts = Vec::new();
    let mut tick = started;
    while started.elapsed() < total {
        tick += Duration::from_millis(200);
        if baseline.is_none() && started.elapsed() >= baseline_at {
            baseline = Some(
                pids.iter()
                    .map(|&pid| rss_kib(pid))
                    .collect::<Result<_>>()?,
            );
            baseline_counts = pids
                .iter()
                .zip(&ports)
                .map(|(&pid, &port)| tasks_and_threads(port, pid))
                .collect();
        }
        for &port in &ports {
            let _ = client::once(port, doc! {"ping": 1});
        }
        if primary.is_none() {
            primary = set.primary();
        }
        let written = primary.and_then(|p| {
            let cmd = client::update_user("mem", writes, &load::majority());
            client::once(ports[p], cmd).ok().filter(client::ok)
        });
        match written {
            Some(_) => writes += 1,
            None => {
                failed += 1;
                primary = None;
            }
        }
        if Instant::now() >= next_stepdown {
            next_stepdown += Duration::from_secs(o.stepdown_secs);
            if let Some(p) = primary.take() {
                let cmd = doc! {"replSetStepDown": 10, "secondaryCatchUpPeriodSecs": 5};
                if client::once(ports[p], cmd).is_ok_and(|r| client::ok(&r)) {
                    stepdowns += 1;
                }
            }
        }
        if let Some(wait) = tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let baseline = baseline.ok_or("no baseline sample")?;
    println!(
        "  {writes} majority writes acknowledged, {failed} not (elections), {stepdowns} stepdowns"
    );
    let mut met = true;
    for (i, &pid) in pids.iter().enumerate() {
        let end = rss_kib(pid)?;
        let (user, sys) = cpu_secs(pid)?;
        let ratio = end as f64 / baseline[i] as f64;
        met &= ratio <= 1.5;
        let (tasks, threads) = tasks_and_threads(ports[i], pid);
        let (tasks0, threads0) = &baseline_counts[i];
        println!(
            "  member {i}: VmRSS {} KiB after {} s, {end} KiB at the end: {ratio:.2}x | CPU user {user:.2} s, system {sys:.2} s ({:.0}% system) | tasks {tasks0} -> {tasks}, threads {threads0} -> {threads}",
            baseline[i],
            o.baseline_secs,
            100.0 * sys / (user + sys).max(1e-9)
        );
    }
    println!(
        "memory goal (end within 1.5x of the baseline): {}",
        verdict(met)
    );
    Ok(())
}
