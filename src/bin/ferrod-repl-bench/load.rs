//! Writing log entries: a closed loop of catalog writes over several connections, and
//! sequential windows whose per-write latency is measured.

use super::client::{self, Conn};
use super::Result;
use bson::{doc, Document};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub fn w1() -> Document {
    doc! {"w": 1}
}

/// How long a write may go unanswered before the run is given up: long, because fsync
/// on a disk shared with other work can stall for seconds; the slowest write is printed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(120);

pub fn majority() -> Document {
    doc! {"w": "majority", "wtimeout": 10_000}
}

/// Writes to one primary, counting the entries it has written.
pub struct Writer {
    pub port: u16,
    pub wc: Document,
    pub connections: usize,
    /// Acknowledged writes so far (each one log entry).
    pub entries: u64,
    /// The last `customData.n` acknowledged for `fill0`.
    pub last_fill0: u64,
    windows: u64,
}

impl Writer {
    /// Creates one user per connection, which the fill then updates.
    pub fn new(port: u16, wc: Document, connections: usize) -> Result<Writer> {
        let mut conn = Conn::connect(port, WRITE_TIMEOUT)?;
        for t in 0..connections {
            let reply = conn.command(client::create_user(&format!("fill{t}"), &wc))?;
            client::checked(reply, "createUser")?;
        }
        Ok(Writer {
            port,
            wc,
            connections,
            entries: connections as u64,
            last_fill0: 0,
            windows: 0,
        })
    }

    /// updateUser (a new customData) in a closed loop on every connection until the
    /// total reaches `target` entries; prints the rate.
    pub fn fill_to(&mut self, target: u64) -> Result<()> {
        if target <= self.entries {
            return Ok(());
        }
        let count = target - self.entries;
        let next = Arc::new(AtomicU64::new(0));
        let slowest = Arc::new(Mutex::new(0f64));
        let started = Instant::now();
        let threads: Vec<_> = (0..self.connections)
            .map(|t| {
                let (next, slowest) = (next.clone(), slowest.clone());
                let (port, wc, base) = (self.port, self.wc.clone(), self.entries);
                std::thread::spawn(move || -> Result<u64> {
                    let mut conn = Conn::connect(port, WRITE_TIMEOUT)?;
                    let user = format!("fill{t}");
                    let mut last = 0;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return Ok(last);
                        }
                        last = base + i + 1;
                        let t = Instant::now();
                        let reply = conn.command(client::update_user(&user, last, &wc))?;
                        client::checked(reply, "updateUser")?;
                        let ms = t.elapsed().as_secs_f64() * 1e3;
                        let mut slowest = slowest.lock().unwrap();
                        *slowest = slowest.max(ms);
                    }
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in threads {
            results.push(t.join().map_err(|_| "a fill thread panicked".to_string())?);
        }
        let lasts = results.into_iter().collect::<Result<Vec<u64>>>()?;
        if lasts[0] > 0 {
            self.last_fill0 = lasts[0];
        }
        self.entries = target;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "  wrote {count} entries in {secs:.1} s ({:.0}/s over {} connections, slowest {:.0} ms), {} in all",
            count as f64 / secs,
            self.connections,
            *slowest.lock().unwrap(),
            self.entries
        );
        Ok(())
    }

    /// `per_kind` createUser and as many updateUser, alternating, one at a time on one
    /// connection; the latency of each in milliseconds.
    pub fn window(&mut self, per_kind: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        self.windows += 1;
        let mut conn = Conn::connect(self.port, WRITE_TIMEOUT)?;
        let (mut creates, mut updates) = (Vec::new(), Vec::new());
        for i in 0..per_kind {
            let name = format!("w{}-{i}", self.windows);
            let t = Instant::now();
            client::checked(
                conn.command(client::create_user(&name, &self.wc))?,
                "createUser",
            )?;
            creates.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let cmd = client::update_user(&name, i as u64, &self.wc);
            client::checked(conn.command(cmd)?, "updateUser")?;
            updates.push(t.elapsed().as_secs_f64() * 1e3);
        }
        self.entries += 2 * per_kind as u64;
        Ok((creates, updates))
    }
}

pub fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

/// The value at fraction `q` of the sorted values (nearest rank).
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}
