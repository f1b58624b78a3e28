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
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        let level = *metadata.level();
        level <= Level::INFO
            || (level == Level::DEBUG && self.sink.verbosity() >= 1)
            || (level == Level::TRACE && self.sink.verbosity() >= 2)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = FieldVisitor::default();
        event.record(&mut fields);
        if self.sink.quiet() && QUIET_IDS.contains(&fields.id) {
            return;
        }
        let meta = event.metadata();
        let target = meta.target();
        // Our own events name a mongod component; anything from a dependency is "-".
        let component = if target.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            target.to_owned()
        } else {
            "-".to_owned()
        };
        let severity = match *meta.level() {
            Level::ERROR => "E",
            Level::WARN => "W",
            Level::INFO => "I",
            Level::DEBUG => "D1",
            Level::TRACE => "D2",
        };
        self.sink.write_line(&Record {
            time: chrono::Utc::now(),
            severity,
            component,
            id: fields.id,
            ctx: fields.ctx.unwrap_or_else(|| "-".to_owned()),
            msg: fields.msg,
            attr: fields.attr,
            startup_warning: fields.startup_warning,
        });
    }
}
