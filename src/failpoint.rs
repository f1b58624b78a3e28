//! Fail points, as mongod's test builds have them: named switches that tests turn on with
//! `configureFailPoint` (only with `enableTestCommands`) to inject faults.
//!
//! A fail point has a mode (off, always on, the next n times, after skipping n, with a
//! probability) and a data document. Code that hosts one asks [`FailPoint::evaluate`]
//! whether it fires; a firing counts in `timesEntered`, which `configureFailPoint`
//! reports and `waitForFailPoint` waits on. The only fail point ferrod hosts is
//! `failCommand` (the drivers' specifications use it); the dispatcher is the one place
//! that evaluates it.

use crate::error::{type_mismatch, whole_number, Code, CommandError, CommandResult};
use bson::{Bson, Document};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use tokio::sync::Notify;

/// The fail point the drivers' specifications drive: fail, close or delay commands.
pub const FAIL_COMMAND: &str = "failCommand";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Off,
    AlwaysOn,
    /// Fires this many more times, then turns off (mongod's `nTimes`).
    Times(i64),
    /// Skips this many passes, then stays on.
    Skip(i64),
    /// Fires when a random i32 in `0..=i32::MAX` is below this (mongod's `random`).
    Random(i32),
}

#[derive(Debug)]
struct Setting {
    mode: Mode,
    data: Document,
}

#[derive(Debug)]
pub struct FailPoint {
    setting: Mutex<Setting>,
    /// Read without the lock by hot paths that only ask whether anything could fire.
    active: AtomicBool,
    times_entered: AtomicI64,
    entered: Notify,
}

impl Default for FailPoint {
    fn default() -> Self {
        FailPoint {
            setting: Mutex::new(Setting {
                mode: Mode::Off,
                data: Document::new(),
            }),
            active: AtomicBool::new(false),
            times_entered: AtomicI64::new(0),
            entered: Notify::new(),
        }
    }
}

impl FailPoint {
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    pub fn times_entered(&self) -> i64 {
        self.times_entered.load(Ordering::Relaxed)
    }

    /// Sets the mode and data; returns how many times the fail point was entered before.
    pub fn set(&self, mode: Mode, data: Document) -> i64 {
        let mut setting = self.setting.lock();
        setting.mode = mode;
        setting.data = data;
        self.active.store(mode != Mode::Off, Ordering::Relaxed);
        self.times_entered()
    }

    /// `{mode, data, timesEntered}` as mongod logs a fail point.
    pub fn describe(&self) -> Document {
        let setting = self.setting.lock();
        // mongod's Mode enum: off, alwaysOn, random, nTimes, skip.
        let mode = match setting.mode {
            Mode::Off => 0,
            Mode::AlwaysOn => 1,
            Mode::Random(_) => 2,
            Mode::Times(_) => 3,
            Mode::Skip(_) => 4,
        };
        bson::doc! {
            "mode": mode,
            "data": setting.data.clone(),
            "timesEntered": self.times_entered(),
        }
    }

    /// Whether the fail point fires for a caller for which `applies(data)` holds; the
    /// data when it does. As in mongod, a caller `applies` rejects uses up no pass of a
    /// `times` or `skip` mode, and only a firing counts as entered.
    pub fn evaluate(&self, applies: impl FnOnce(&Document) -> bool) -> Option<Document> {
        if !self.is_active() {
            return None;
        }
        let mut setting = self.setting.lock();
        if setting.mode == Mode::Off || !applies(&setting.data) {
            return None;
        }
        let fires = match &mut setting.mode {
            Mode::Off => false,
            Mode::AlwaysOn => true,
            Mode::Random(threshold) => random_i32() < *threshold,
            Mode::Times(left) => {
                // `{times: 0}` fires once too: mongod decrements, then turns off at <= 0.
                *left -= 1;
                if *left <= 0 {
                    setting.mode = Mode::Off;
                    self.active.store(false, Ordering::Relaxed);
                }
                true
            }
            Mode::Skip(left) => {
                if *left <= 0 {
                    true
                } else {
                    *left -= 1;
                    false
                }
            }
        };
        if !fires {
            return None;
        }
        let data = setting.data.clone();
        drop(setting);
        self.times_entered.fetch_add(1, Ordering::Relaxed);
        self.entered.notify_waiters();
        Some(data)
    }

    /// Waits until the fail point has been entered `target` times in all.
    pub async fn wait_for_times_entered(&self, target: i64) {
        loop {
            let entered = self.entered.notified();
            if self.times_entered() >= target {
                return;
            }
            entered.await;
        }
    }
}

fn random_i32() -> i32 {
    let mut buf = [0u8; 4];
    // The OS source never fails on the platforms ferrod runs on; a failure reads as 0.
    let _ = getrandom::fill(&mut buf);
    (u32::from_le_bytes(buf) & 0x7fff_ffff) as i32
}

/// Every fail point ferrod hosts.
#[derive(Debug, Default)]
pub struct FailPoints {
    pub fail_command: FailPoint,
}

impl FailPoints {
    pub fn find(&self, name: &str) -> Option<&FailPoint> {
        (name == FAIL_COMMAND).then_some(&self.fail_command)
    }
}

/// The error for a name no fail point has (mongod's FailPointSetFailed).
pub fn not_found(name: &str) -> CommandError {
    CommandError::new(Code::FailPointSetFailed, format!("{name} not found"))
}

/// Parses `mode` and `data` of a configureFailPoint command, with mongod's checks.
pub fn parse_mode(cmd: &Document) -> CommandResult<(Mode, Document)> {
    let mode = match cmd.get("mode") {
        None => {
            return Err(CommandError::new(
                Code::IllegalOperation,
                "When setting a failpoint, you must supply a 'mode'",
            ))
        }
        Some(Bson::String(s)) if s == "off" => Mode::Off,
        Some(Bson::String(s)) if s == "alwaysOn" => Mode::AlwaysOn,
        Some(Bson::String(s)) => {
            return Err(CommandError::new(
                Code::BadValue,
                format!("unknown mode: {s}"),
            ))
        }
        Some(Bson::Document(m)) => parse_mode_object(m)?,
        Some(_) => {
            return Err(CommandError::new(
                Code::TypeMismatch,
                "'mode' must be a string or JSON object",
            ))
        }
    };
    let data = match cmd.get("data") {
        None => Document::new(),
        Some(Bson::Document(d)) => d.clone(),
        Some(_) => {
            return Err(CommandError::new(
                Code::TypeMismatch,
                "the 'data' option must be a JSON object",
            ))
        }
    };
    Ok((mode, data))
}

fn parse_mode_object(m: &Document) -> CommandResult<Mode> {
    for (field, make) in [
        ("times", Mode::Times as fn(i64) -> Mode),
        ("skip", Mode::Skip as fn(i64) -> Mode),
    ] {
        let Some(value) = m.get(field) else { continue };
        let n = whole_number(value).ok_or_else(|| type_mismatch(field, value, "long"))?;
        if n < 0 {
            return Err(CommandError::new(
                Code::BadValue,
                format!("'{field}' option to 'mode' must be positive"),
            ));
        }
        if n > i32::MAX as i64 {
            return Err(CommandError::new(
                Code::BadValue,
                format!("'{field}' option to 'mode' is too large"),
            ));
        }
        return Ok(make(n));
    }
    if let Some(value) = m.get("activationProbability") {
        let p =
            match value {
                Bson::Double(d) => *d,
                Bson::Int32(n) => *n as f64,
                Bson::Int64(n) => *n as f64,
                _ => return Err(CommandError::new(
                    Code::TypeMismatch,
                    "the 'activationProbability' option to 'mode' must be a double between 0 and 1",
                )),
            };
        if !(0.0..=1.0).contains(&p) {
            return Err(CommandError::new(
                Code::BadValue,
                format!("activationProbability must be between 0.0 and 1.0; found {p}"),
            ));
        }
        return Ok(Mode::Random((i32::MAX as f64 * p) as i32));
    }
    Err(CommandError::new(
        Code::BadValue,
        "'mode' must be one of 'off', 'alwaysOn', '{times:n}', '{skip:n}' or '{activationProbability:p}'",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn times_fires_n_times_then_turns_off() {
        let fp = FailPoint::default();
        fp.set(Mode::Times(2), doc! {});
        assert!(fp.evaluate(|_| true).is_some());
        assert!(
            fp.evaluate(|_| false).is_none(),
            "a rejected caller uses no pass"
        );
        assert!(fp.evaluate(|_| true).is_some());
        assert!(fp.evaluate(|_| true).is_none());
        assert!(!fp.is_active());
        assert_eq!(fp.times_entered(), 2);
    }

    #[test]
    fn skip_skips_then_stays_on() {
        let fp = FailPoint::default();
        fp.set(Mode::Skip(2), doc! {});
        let fired: Vec<bool> = (0..4).map(|_| fp.evaluate(|_| true).is_some()).collect();
        assert_eq!(fired, [false, false, true, true]);
        assert_eq!(fp.times_entered(), 2);
    }

    #[test]
    fn probability_bounds() {
        let fp = FailPoint::default();
        fp.set(
            parse_mode(&doc! {"mode": {"activationProbability": 0.0}})
                .unwrap()
                .0,
            doc! {},
        );
        assert!((0..100).all(|_| fp.evaluate(|_| true).is_none()));
        fp.set(
            parse_mode(&doc! {"mode": {"activationProbability": 1}})
                .unwrap()
                .0,
            doc! {},
        );
        assert!((0..100).all(|_| fp.evaluate(|_| true).is_some()));
    }

    #[test]
    fn mode_errors_are_mongods() {
        let code = |cmd: Document| parse_mode(&cmd).unwrap_err().code;
        assert_eq!(code(doc! {}), Code::IllegalOperation);
        assert_eq!(code(doc! {"mode": "sometimes"}), Code::BadValue);
        assert_eq!(code(doc! {"mode": 1}), Code::TypeMismatch);
        assert_eq!(code(doc! {"mode": {"times": -1}}), Code::BadValue);
        assert_eq!(
            code(doc! {"mode": {"activationProbability": 2.0}}),
            Code::BadValue
        );
        assert_eq!(code(doc! {"mode": {"other": 1}}), Code::BadValue);
        assert_eq!(code(doc! {"mode": "off", "data": 1}), Code::TypeMismatch);
    }
}
