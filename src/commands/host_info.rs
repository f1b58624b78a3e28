//! hostInfo: facts about the machine, read from the kernel.

use super::{cluster, Command, Handler, Invocation};
use crate::error::CommandResult;
use bson::{doc, Document};

pub const HOST_INFO: Command = Command {
    privileges: &[cluster("hostInfo")],
    ..Command::new(
        "hostInfo",
        "returns information about the daemon's host",
        Handler::Sync(host_info),
    )
};

fn mem_total_mb() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<i64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

fn os_pretty_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned())
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn host_info(inv: &Invocation, _: &Document) -> CommandResult {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as i32)
        .unwrap_or(1);
    let mem = mem_total_mb();
    Ok(doc! {
        "system": {
            "currentTime": bson::DateTime::now(),
            "hostname": inv.server.host_name.clone(),
            "cpuAddrSize": 64,
            "memSizeMB": mem,
            "memLimitMB": mem,
            "numCores": cores,
            "numCoresAvailable": cores as f64,
            "cpuArch": std::env::consts::ARCH,
            "numaEnabled": false,
        },
        "os": {
            "type": "Linux",
            "name": os_pretty_name(),
            "version": kernel_release(),
        },
        "extra": {"pageSize": 4096_i64},
    })
}
