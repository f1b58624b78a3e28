//! ferrod-repl-bench: checks the replication log's goals (issue 12) from the outside, so
//! that it runs the same against any build of the store: only the `ferrod` binary, its
//! flags, commands over the wire, the files in `--dbpath` and /proc are used.
//!
//! One subcommand per goal; each prints the command that reproduces it, the date, medians
//! and its ratio to a baseline measured in the same run. Every member runs on 127.0.0.1,
//! on a port the OS picks, in a temporary directory removed at the end.
//!
//! - `latency`: per-write latency of createUser / updateUser early and late in the log.
//! - `disk`: size of the log file and of the dbpath as entries are written.
//! - `restart`: SIGTERM / SIGKILL and restart of a member with many entries.
//! - `join`: a new member added to a set with many entries, until it is caught up.
//! - `kill9`: kill -9 of the primary during w:majority writes; acknowledged writes lost.
//! - `memory`: resident memory and CPU time of three members under a steady workload.

// The modules live in ferrod-repl-bench/ beside this file.
#[path = "ferrod-repl-bench/client.rs"]
mod client;
#[path = "ferrod-repl-bench/load.rs"]
mod load;
#[path = "ferrod-repl-bench/member.rs"]
mod member;
#[path = "ferrod-repl-bench/modes/mod.rs"]
mod modes;
#[path = "shared/proc_stats.rs"]
mod proc_stats;

use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, String>;

#[derive(Parser)]
#[command(
    name = "ferrod-repl-bench",
    about = "Benchmarks of ferrod's replication log"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Per-write latency after 1,000 and after N entries (w:1 on one member, w:majority on three).
    Latency(modes::latency::Opts),
    /// Log file and dbpath size after each of several entry counts.
    Disk(modes::disk::Opts),
    /// Restart time of a member with N entries, against one with none.
    Restart(modes::restart::Opts),
    /// Time for a new member to catch up with a set holding N entries.
    Join(modes::join::Opts),
    /// kill -9 of the primary during w:majority writes: acknowledged writes lost.
    Kill9(modes::kill9::Opts),
    /// Resident memory and CPU time of three members under steady writes and stepdowns.
    Memory(modes::memory::Opts),
}

/// Options every mode takes.
#[derive(Args, Clone)]
pub struct Common {
    /// The ferrod binary (default: the one next to this tool).
    #[arg(long)]
    ferrod: Option<PathBuf>,
    /// A server parameter for every member, as NAME=VALUE (repeatable), e.g.
    /// replLogEntriesPerSnapshot=1000.
    #[arg(long = "set-parameter", value_name = "NAME=VALUE")]
    set_parameter: Vec<String>,
}

impl Common {
    /// The ferrod binary; also records the `--set-parameter`s that every member gets.
    pub fn binary(&self) -> Result<PathBuf> {
        member::set_parameters(&self.set_parameter)?;
        let path = match &self.ferrod {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|e| e.to_string())?
                .with_file_name("ferrod"),
        };
        if !Path::new(&path).is_file() {
            return Err(format!(
                "no ferrod binary at {}; build it with `cargo build --release --bins` or pass --ferrod",
                path.display()
            ));
        }
        Ok(path)
    }
}

fn main() {
    let cli = Cli::parse();
    println!(
        "reproduce: cargo build --release --bins && target/release/ferrod-repl-bench {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    println!("date: {}", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"));
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("load average at start: {}", load.join(" "));
    }
    let result = match cli.mode {
        Mode::Latency(o) => modes::latency::run(o),
        Mode::Disk(o) => modes::disk::run(o),
        Mode::Restart(o) => modes::restart::run(o),
        Mode::Join(o) => modes::join::run(o),
        Mode::Kill9(o) => modes::kill9::run(o),
        Mode::Memory(o) => modes::memory::run(o),
    };
    if let Err(e) = result {
        eprintln!("ferrod-repl-bench: {e}");
        std::process::exit(1);
    }
}
