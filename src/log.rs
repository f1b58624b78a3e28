//! Logging: a tracing layer that writes mongod-style lines (structured JSON or text) and
//! keeps the recent ones in memory for `getLog`.
//!
//! Events name their component with the tracing target (`NETWORK`, `COMMAND`, ...), and
//! may carry `id` (mongod's log id), `ctx` (the thread or connection, e.g. `conn12`) and
//! `tags = "startupWarnings"`; every other field becomes an entry of `attr`.

use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// How many recent lines `getLog: "global"` keeps, as mongod's in-memory log does.
const GLOBAL_RING_LINES: usize = 1024;

/// mongod's ids for connection chatter, which `--quiet` suppresses.
const QUIET_IDS: &[i64] = &[22943, 22944, 51800];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

enum Output {
    Stdout,
    File { path: PathBuf, file: File },
}

/// Where log lines go, plus the in-memory rings `getLog` reads.
pub struct LogSink {
    format: LogFormat,
    output: Mutex<Output>,
    global: Mutex<VecDeque<String>>,
    /// Every line ever written, including those the ring has dropped (getLog's total).
    global_total: AtomicU64,
    startup_warnings: Mutex<Vec<String>>,
    quiet: AtomicBool,
    /// mongod's `logLevel`: 0 prints info and above, 1..5 add debug levels.
    verbosity: AtomicI32,
    /// Levels of components set apart from the default (`logComponentVerbosity`), by
    /// the component's name in log lines.
    component_levels: parking_lot::RwLock<Vec<(&'static str, i32)>>,
    /// mongod's `maxLogSizeKB` in bytes: a larger attribute is truncated.
    max_attribute_bytes: AtomicU64,
}

impl LogSink {
    pub fn new(
        format: LogFormat,
        path: Option<PathBuf>,
        append: bool,
        quiet: bool,
    ) -> io::Result<Arc<Self>> {
        let output = match path {
            None => Output::Stdout,
            Some(path) => {
                // Without --logappend mongod keeps the previous run's log under a
                // rotated name instead of overwriting it.
                if !append && path.exists() {
                    move_aside(&path)?;
                }
                let file = open_log(&path, append)?;
                Output::File { path, file }
            }
        };
        Ok(Arc::new(LogSink {
            format,
            output: Mutex::new(output),
            global: Mutex::new(VecDeque::with_capacity(64)),
            global_total: AtomicU64::new(0),
            startup_warnings: Mutex::new(Vec::new()),
            quiet: AtomicBool::new(quiet),
            verbosity: AtomicI32::new(0),
            component_levels: parking_lot::RwLock::new(Vec::new()),
            max_attribute_bytes: AtomicU64::new(10 * 1024),
        }))
    }

    /// Installs the sink as the process's tracing subscriber.
    pub fn install(self: &Arc<Self>) {
        let layer = LogLayer { sink: self.clone() };
        let _ = tracing_subscriber::registry().with(layer).try_init();
    }

    pub fn set_verbosity(&self, level: i32) {
        self.verbosity.store(level, Ordering::Relaxed);
    }

    pub fn verbosity(&self) -> i32 {
        self.verbosity.load(Ordering::Relaxed)
    }

    /// Sets the components' levels (those equal to the default are not kept).
    pub fn set_component_levels(&self, levels: Vec<(&'static str, i32)>) {
        let default = self.verbosity();
        *self.component_levels.write() =
            levels.into_iter().filter(|(_, l)| *l != default).collect();
    }

    /// The level a debug event of the component `target` is checked against.
    fn verbosity_of(&self, target: &str) -> i32 {
        let levels = self.component_levels.read();
        levels
            .iter()
            .find(|(name, _)| *name == target)
            .map_or_else(|| self.verbosity(), |(_, level)| *level)
    }

    /// Sets `maxLogSizeKB`.
    pub fn set_max_attribute_kb(&self, kb: u64) {
        self.max_attribute_bytes
            .store(kb.saturating_mul(1024), Ordering::Relaxed);
    }

    pub fn set_quiet(&self, quiet: bool) {
        self.quiet.store(quiet, Ordering::Relaxed);
    }

    pub fn quiet(&self) -> bool {
        self.quiet.load(Ordering::Relaxed)
    }

    /// The recent log lines, oldest first, as JSON strings (what `getLog` returns).
    pub fn global_lines(&self) -> Vec<String> {
        self.global.lock().iter().cloned().collect()
    }

    /// How many lines `global` has seen since startup (mongod's `totalLinesWritten`).
    pub fn global_total(&self) -> u64 {
        self.global_total.load(Ordering::Relaxed)
    }

    pub fn startup_warnings(&self) -> Vec<String> {
        self.startup_warnings.lock().clone()
    }

    /// Renames the log file to `<path>.<timestamp>` and opens a fresh one, as mongod's
    /// default `logRotate` does. Returns false when logging to standard output.
    pub fn rotate(&self) -> io::Result<bool> {
        let mut output = self.output.lock();
        let Output::File { path, file } = &mut *output else {
            return Ok(false);
        };
        file.flush()?;
        move_aside(path)?;
        *file = open_log(path, false)?;
        Ok(true)
    }

    fn write_line(&self, record: &Record) {
        let json_line = record.to_json().to_string();
        if record.startup_warning {
            self.startup_warnings.lock().push(json_line.clone());
        }
        let text = match self.format {
            LogFormat::Json => json_line.clone(),
            LogFormat::Text => record.to_text(),
        };
        {
            let mut global = self.global.lock();
            if global.len() == GLOBAL_RING_LINES {
                global.pop_front();
            }
            global.push_back(json_line);
            self.global_total.fetch_add(1, Ordering::Relaxed);
        }
        let mut output = self.output.lock();
        let _ = match &mut *output {
            Output::Stdout => {
                let mut out = io::stdout().lock();
                writeln!(out, "{text}").and_then(|_| out.flush())
            }
            Output::File { file, .. } => writeln!(file, "{text}"),
        };
    }
}

/// Renames the log file to `<path>.<UTC timestamp>` (mongod's rotated name), adding
/// `.1`, `.2`, ... when that name is taken (two rotations within a second).
fn move_aside(path: &PathBuf) -> io::Result<()> {
    let stamp = chrono::Utc::now().format("%Y-%m-%dT%H-%M-%S");
    let mut rotated = path.clone().into_os_string();
    rotated.push(format!(".{stamp}"));
    let mut candidate = PathBuf::from(&rotated);
    let mut n = 1;
    while candidate.exists() {
        let mut numbered = rotated.clone();
        numbered.push(format!(".{n}"));
        candidate = PathBuf::from(numbered);
        n += 1;
    }
    std::fs::rename(path, &candidate)
}

fn open_log(path: &PathBuf, append: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).write(true);
    if append {
        options.append(true);
    } else {
        options.truncate(true);
    }
    options.open(path)
}

struct Record {
    time: chrono::DateTime<chrono::Utc>,
    severity: &'static str,
    component: String,
    id: i64,
    ctx: String,
    msg: String,
    attr: Map<String, Value>,
    /// Where attributes were cut, and their sizes before it (mongod's `truncated`, `size`).
    truncated: Option<(Map<String, Value>, Map<String, Value>)>,
    startup_warning: bool,
}

impl Record {
    fn to_json(&self) -> Value {
        let mut line = json!({
            "t": {"$date": self.time.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string()},
            "s": self.severity,
            "c": self.component,
            "id": self.id,
            "ctx": self.ctx,
            "msg": self.msg,
        });
        if !self.attr.is_empty() {
            line["attr"] = Value::Object(self.attr.clone());
        }
        if let Some((truncated, size)) = &self.truncated {
            line["truncated"] = Value::Object(truncated.clone());
            line["size"] = Value::Object(size.clone());
        }
        if self.startup_warning {
            line["tags"] = json!(["startupWarnings"]);
        }
        line
    }

    fn to_text(&self) -> String {
        let mut text = format!(
            "{} {:<2} {:<8} [{}] {}",
            self.time.format("%Y-%m-%dT%H:%M:%S%.3f+00:00"),
            self.severity,
            self.component,
            self.ctx,
            self.msg
        );
        if !self.attr.is_empty() {
            text.push(' ');
            text.push_str(&Value::Object(self.attr.clone()).to_string());
        }
        if let Some((truncated, size)) = &self.truncated {
            text.push_str(&format!(
                " truncated: {} size: {}",
                Value::Object(truncated.clone()),
                Value::Object(size.clone())
            ));
        }
        text
    }
}

#[derive(Default)]
struct FieldVisitor {
    msg: String,
    id: i64,
    ctx: Option<String>,
    startup_warning: bool,
    attr: Map<String, Value>,
}

impl FieldVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => {
                self.msg = value
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| value.to_string())
            }
            "id" => self.id = value.as_i64().unwrap_or_default(),
            "ctx" => {
                self.ctx = Some(
                    value
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| value.to_string()),
                )
            }
            "tags" => self.startup_warning = value.as_str() == Some("startupWarnings"),
            // tracing keeps `message` for the line's text; an attribute of that name
            // (mongod's rotateCertificates line has one) is written as `attr.message`.
            "attr.message" => {
                self.attr.insert("message".to_owned(), value);
            }
            name => {
                self.attr.insert(name.to_owned(), value);
            }
        }
    }
}

impl Visit for FieldVisitor {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, json!(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, json!(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, json!(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, json!(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, json!(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        // Attributes logged with `%` or `?` that hold JSON (documents) stay structured.
        let value = match serde_json::from_str::<Value>(&text) {
            Ok(v @ (Value::Object(_) | Value::Array(_))) => v,
            _ => Value::String(text),
        };
        self.put(field, value);
    }
}

struct LogLayer {
    sink: Arc<LogSink>,
}

impl<S: Subscriber> Layer<S> for LogLayer {
    /// Debug callsites are asked again at each event, so that a verbosity set at run time
    /// (setParameter logLevel) takes effect; the default would cache the first answer.
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if logged_level(metadata) <= Level::INFO {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::sometimes()
        }
    }

    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        let level = logged_level(metadata);
        level <= Level::INFO
            || (level == Level::DEBUG && self.sink.verbosity_of(metadata.target()) >= 1)
            || (level == Level::TRACE && self.sink.verbosity_of(metadata.target()) >= 2)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = FieldVisitor::default();
        event.record(&mut fields);
        if self.sink.quiet() && QUIET_IDS.contains(&fields.id) {
            return;
        }
        let meta = event.metadata();
        let component = if is_own(meta) {
            meta.target().to_owned()
        } else {
            "-".to_owned()
        };
        let severity = match logged_level(meta) {
            Level::ERROR => "E",
            Level::WARN => "W",
            Level::INFO => "I",
            Level::DEBUG => "D1",
            Level::TRACE => "D2",
        };
        let mut attr = fields.attr;
        let limit = self.sink.max_attribute_bytes.load(Ordering::Relaxed) as usize;
        let truncated = truncate_attributes(&mut attr, limit);
        self.sink.write_line(&Record {
            time: chrono::Utc::now(),
            severity,
            component,
            id: fields.id,
            ctx: fields.ctx.unwrap_or_else(|| "-".to_owned()),
            msg: fields.msg,
            attr,
            truncated,
            startup_warning: fields.startup_warning,
        });
    }
}

/// Our own events name a mongod component as their target; anything else comes from a
/// dependency.
fn is_own(meta: &tracing::Metadata<'_>) -> bool {
    meta.target()
        .chars()
        .all(|c| c.is_ascii_uppercase() || c == '_')
}

/// The level an event is logged at. A dependency's info lines (openraft's progress of a
/// membership change, for one) are internals, not the server's story: they are debug
/// lines here, shown from verbosity 1 as mongod shows its own internals.
fn logged_level(meta: &tracing::Metadata<'_>) -> Level {
    match *meta.level() {
        Level::INFO if !is_own(meta) => Level::DEBUG,
        Level::DEBUG if !is_own(meta) => Level::TRACE,
        level => level,
    }
}

/// Cuts every attribute whose JSON is longer than `limit` bytes down to about `limit`, as
/// mongod does past `maxLogSizeKB`; returns where each was cut and its size before, or None
/// when nothing was cut.
fn truncate_attributes(
    attr: &mut Map<String, Value>,
    limit: usize,
) -> Option<(Map<String, Value>, Map<String, Value>)> {
    let mut truncated = Map::new();
    let mut sizes = Map::new();
    for (name, value) in attr.iter_mut() {
        // Most attributes are scalars and short strings: no need to serialize them to know.
        let surely_small = match value {
            // An escaped character takes at most six bytes (\u00XX).
            Value::String(s) => s.len() * 6 + 2 <= limit,
            Value::Object(_) | Value::Array(_) => false,
            _ => true,
        };
        if surely_small {
            continue;
        }
        let size = json_len(value);
        if size <= limit {
            continue;
        }
        let (cut, info) = truncate_value(value, limit);
        *value = cut;
        truncated.insert(name.clone(), info);
        sizes.insert(name.clone(), json!(size));
    }
    (!truncated.is_empty()).then_some((truncated, sizes))
}

fn json_len(value: &Value) -> usize {
    serde_json::to_string(value).map_or(0, |s| s.len())
}

/// `value` cut to at most `budget` bytes of JSON (strings shortened, trailing fields and
/// elements left out), and mongod's description of the cut: `{type, size}` for a value
/// cut short, `{truncated: {field: ...}, omitted: n}` for a document or array.
fn truncate_value(value: &Value, budget: usize) -> (Value, Value) {
    match value {
        Value::Object(map) => {
            let (kept, info) =
                truncate_entries(map.iter().map(|(k, v)| (k.clone(), v)), budget, |k| {
                    k.len() + 4
                });
            (Value::Object(kept.into_iter().collect()), info)
        }
        Value::Array(items) => {
            let (kept, info) = truncate_entries(
                items.iter().enumerate().map(|(i, v)| (i.to_string(), v)),
                budget,
                |_| 1,
            );
            (
                Value::Array(kept.into_iter().map(|(_, v)| v).collect()),
                info,
            )
        }
        Value::String(s) => {
            let mut end = budget.min(s.len());
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            (
                Value::String(s[..end].to_owned()),
                json!({"type": "string", "size": s.len()}),
            )
        }
        other => (
            Value::Null,
            json!({"type": type_name(other), "size": json_len(other)}),
        ),
    }
}

/// Keeps entries while they fit `budget` (each costing its JSON plus `overhead(key)`),
/// cuts the first that does not, and counts the rest as omitted.
fn truncate_entries<'a>(
    entries: impl Iterator<Item = (String, &'a Value)>,
    mut budget: usize,
    overhead: impl Fn(&str) -> usize,
) -> (Vec<(String, Value)>, Value) {
    let mut kept = Vec::new();
    let mut cut = Map::new();
    let mut omitted = 0;
    for (key, value) in entries {
        if !cut.is_empty() {
            omitted += 1;
            continue;
        }
        let cost = json_len(value) + overhead(&key);
        if cost <= budget {
            budget -= cost;
            kept.push((key, value.clone()));
            continue;
        }
        let (partial, info) = truncate_value(value, budget.saturating_sub(overhead(&key)));
        budget = 0;
        kept.push((key.clone(), partial));
        cut.insert(key, info);
    }
    let mut info = json!({"truncated": cut});
    if omitted > 0 {
        info["omitted"] = json!(omitted);
    }
    (kept, info)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_attribute_is_cut_to_the_limit_and_the_cut_described() {
        let big = "x".repeat(50_000);
        let mut attr = Map::new();
        attr.insert(
            "command".into(),
            json!({"createUser": "u", "customData": {"blob": big, "after": 1}, "$db": "admin"}),
        );
        attr.insert("durationMillis".into(), json!(3));
        let (truncated, size) = truncate_attributes(&mut attr, 10 * 1024).expect("cut");
        let cut = &attr["command"];
        assert!(json_len(cut) <= 10 * 1024 + 64, "{}", json_len(cut));
        assert_eq!(cut["createUser"], "u");
        assert_eq!(attr["durationMillis"], 3, "small attributes stay whole");
        assert_eq!(
            truncated["command"],
            json!({"truncated": {"customData": {"truncated": {"blob": {"type": "string", "size": 50_000}}, "omitted": 1}}, "omitted": 1})
        );
        assert!(size["command"].as_u64().unwrap() > 50_000);
        assert!(!truncated.contains_key("durationMillis"));
    }

    #[test]
    fn attributes_within_the_limit_are_untouched() {
        let mut attr = Map::new();
        attr.insert("command".into(), json!({"ping": 1}));
        let before = attr.clone();
        assert!(truncate_attributes(&mut attr, 10 * 1024).is_none());
        assert_eq!(attr, before);
    }
}
