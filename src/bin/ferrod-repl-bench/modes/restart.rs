//! Goal: a member with N entries written restarts (SIGTERM or SIGKILL) in under 1 s.

use crate::load::{self, median, verdict, Writer};
use crate::member::{Set, Stop};
use crate::{client, Common, Result};
use bson::doc;
use clap::Args;
use std::time::Duration;

#[derive(Args)]
pub struct Opts {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 100_000)]
    entries: u64,
    /// Restarts per signal and member; medians are reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    #[arg(long, default_value_t = 8)]
    connections: usize,
}

struct Times {
    hello: Vec<f64>,
    primary: Vec<f64>,
}

/// Stops and restarts the one member of `set` `reps` times; checks after each restart
/// that `fill0` still has its last acknowledged customData.
fn restarts(set: &mut Set, how: fn() -> Stop, reps: usize, fill0: Option<u64>) -> Result<Times> {
    let mut times = Times {
        hello: Vec::new(),
        primary: Vec::new(),
    };
    let m = &mut set.members[0];
    for _ in 0..reps {
        m.stop(how())?;
        m.spawn()?;
        // Its former state: the set's config is back.
        let hello = m.wait_hello(Duration::from_secs(60), |h| h.get_str("setName").is_ok())?;
        let primary = m.wait_hello(Duration::from_secs(60), |h| {
            h.get_bool("isWritablePrimary") == Ok(true)
        })?;
        times.hello.push(hello.as_secs_f64() * 1e3);
        times.primary.push(primary.as_secs_f64() * 1e3);
        if let Some(n) = fill0 {
            let info = client::checked(
                client::once(m.port, doc! {"usersInfo": "fill0"})?,
                "usersInfo",
            )?;
            let got = info.get_array("users").ok().and_then(|u| {
                u.first()?
                    .as_document()?
                    .get_document("customData")
                    .ok()?
                    .get_i64("n")
                    .ok()
            });
            if got != Some(n as i64) {
                return Err(format!(
                    "after restart fill0 has customData.n {got:?}, expected {n}"
                ));
            }
        }
    }
    Ok(times)
}

pub fn run(o: Opts) -> Result<()> {
    let binary = o.common.binary()?;
    println!(
        "restart: one-member set with {} entries (updateUser, w:1, {} connections) against one just initiated; \
         {} restarts per signal; spawn to a hello with setName, and to isWritablePrimary",
        o.entries, o.connections, o.reps
    );
    let mut empty = Set::start(&binary, 1)?;
    let mut full = Set::start(&binary, 1)?;
    let mut writer = Writer::new(full.members[0].port, load::w1(), o.connections)?;
    writer.fill_to(o.entries)?;
    let fill0 = Some(writer.last_fill0).filter(|&n| n > 0);
    let mut met = true;
    for how in [(|| Stop::Term) as fn() -> Stop, || Stop::Kill] {
        let name = how().name();
        let base = restarts(&mut empty, how, o.reps, None)?;
        let measured = restarts(&mut full, how, o.reps, fill0)?;
        let (bh, bp) = (median(&base.hello), median(&base.primary));
        let (mh, mp) = (median(&measured.hello), median(&measured.primary));
        met &= mp < 1000.0;
        println!(
            "  {name}: ~0 entries: hello {bh:.0} ms, primary {bp:.0} ms | {} entries: hello {mh:.0} ms, primary {mp:.0} ms \
             (runs {:?}) | ratio {:.2}x, {:.2}x",
            writer.entries,
            measured.primary.iter().map(|v| v.round()).collect::<Vec<_>>(),
            mh / bh,
            mp / bp
        );
    }
    println!("restart goal (writable primary < 1 s): {}", verdict(met));
    Ok(())
}
