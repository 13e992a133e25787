//! gadgetd's own log, as a systemd service's should be:
//!
//! * to journald (native protocol) when stderr is the journal
//!   (`JOURNAL_STREAM` names it, as systemd sets for services) or with
//!   `--log-target journald`: levels become priorities (error 3, warn 4,
//!   info 6, debug and trace 7), the event's fields become journal fields
//!   (`error` → `ERROR`, `run` → `RUN`), with `SYSLOG_IDENTIFIER=gadgetd`;
//!   the journal namespace is `--journal-namespace`'s;
//! * else text on stderr, coloured only when stderr is a terminal; or JSON
//!   lines with `--log-json`.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Where the log goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// journald when stderr is connected to the journal, else stderr.
    Auto,
    Stderr,
    Journald,
}

/// The filter: `GADGETD_LOG` (default `info`), the chatty gRPC/HTTP stack
/// of the container watchers kept at info.
fn filter() -> tracing_subscriber::EnvFilter {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GADGETD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    [
        "h2=info",
        "tower=info",
        "hyper=info",
        "hyper_util=info",
        "tonic=info",
    ]
    .iter()
    .fold(filter, |f, d| {
        f.add_directive(d.parse().expect("static directive"))
    })
}

/// Whether stderr is the journal stream systemd gave this service.
fn stderr_is_journal() -> bool {
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
        v.split_once(':')
            .map(|(d, i)| (d.to_string(), i.to_string()))
    }) else {
        return false;
    };
    // SAFETY: fstat fills the stat buffer for fd 2.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(libc::STDERR_FILENO, &mut st) } != 0 {
        return false;
    }
    dev == st.st_dev.to_string() && ino == st.st_ino.to_string()
}

/// Installs the global subscriber. Returns a note to log once it is set up
/// (why journald was not used, when it was asked for).
pub fn init(target: Target, json: bool, namespace: Option<&str>) -> Option<String> {
    let journal = match target {
        Target::Stderr => false,
        Target::Journald => true,
        Target::Auto => stderr_is_journal(),
    };
    let mut note = None;
    if journal {
        let path = match namespace {
            Some(ns) => std::path::PathBuf::from(format!("/run/systemd/journal.{ns}/socket")),
            None => std::path::PathBuf::from("/run/systemd/journal/socket"),
        };
        match Journald::connect(&path) {
            Ok(layer) => {
                tracing_subscriber::registry()
                    .with(filter())
                    .with(layer)
                    .init();
                return None;
            }
            Err(e) => {
                note = Some(format!(
                    "cannot log to journald at {}: {e}; logging to stderr",
                    path.display()
                ))
            }
        }
    }
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // A log that cannot be written (full disk) must not panic the agent:
        // tracing-subscriber would report that with eprintln!, which panics.
        .log_internal_errors(false);
    if json {
        fmt.json().init();
    } else {
        fmt.init();
    }
    note
}

/// A tracing layer writing one journal entry per event.
struct Journald {
    socket: UnixDatagram,
}

impl Journald {
    fn connect(path: &Path) -> std::io::Result<Journald> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        // A stuck journald must not stall the agent for long.
        socket.set_write_timeout(Some(std::time::Duration::from_millis(100)))?;
        Ok(Journald { socket })
    }
}

/// journald's priority (syslog level) of a tracing level.
fn priority(level: tracing::Level) -> &'static str {
    match level {
        tracing::Level::ERROR => "3",
        tracing::Level::WARN => "4",
        tracing::Level::INFO => "6",
        tracing::Level::DEBUG | tracing::Level::TRACE => "7",
    }
}

/// A journal field name for a tracing field: upper case, `[A-Z0-9_]`,
/// starting with a letter (journald drops other names).
fn field_name(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            'A'..='Z' | '0'..='9' => c,
            _ => '_',
        })
        .collect();
    if upper.starts_with(|c: char| c.is_ascii_uppercase()) {
        upper
    } else {
        format!("F{upper}")
    }
}

/// The message and the other fields of an event, as text.
#[derive(Default)]
struct Fields {
    message: String,
    /// (tracing's field name, value).
    others: Vec<(&'static str, String)>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.others.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.others.push((field.name(), format!("{value:?}")));
        }
    }
}

/// Appends `KEY=value\n`, or the binary form when the value has a newline.
fn put(entry: &mut Vec<u8>, key: &str, value: &[u8]) {
    entry.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        entry.push(b'\n');
        entry.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        entry.push(b'=');
    }
    entry.extend_from_slice(value);
    entry.push(b'\n');
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Journald {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        // The fields in MESSAGE too, for `journalctl` readers, as on stderr.
        let mut message = fields.message;
        for (k, v) in &fields.others {
            let _ = write!(message, " {k}={v}");
        }
        let mut entry = Vec::with_capacity(256);
        put(&mut entry, "MESSAGE", message.as_bytes());
        put(&mut entry, "PRIORITY", priority(*meta.level()).as_bytes());
        put(&mut entry, "SYSLOG_IDENTIFIER", b"gadgetd");
        put(&mut entry, "TARGET", meta.target().as_bytes());
        for (k, v) in &fields.others {
            put(&mut entry, &field_name(k), v.as_bytes());
        }
        // A lost log line is not worth failing or blocking for.
        let _ = self.socket.send(&entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_priorities_follow_journald() {
        assert_eq!(field_name("error"), "ERROR");
        assert_eq!(field_name("run.id"), "RUN_ID");
        assert_eq!(field_name("_secret"), "F_SECRET");
        assert_eq!(field_name("9lives"), "F9LIVES");
        assert_eq!(priority(tracing::Level::WARN), "4");
        assert_eq!(priority(tracing::Level::INFO), "6");
    }
}
