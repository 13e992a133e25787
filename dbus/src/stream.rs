//! The event stream: newline-delimited JSON over the fd returned by `Run`/`Attach`.
//!
//! ```text
//! {"gadgetd":"header","gadget":{...},"fields":[{"name":"pid","type":"u32",...},...]}
//! {"timestamp":"2026-11-24T10:00:00.123456789Z","pid":42,...}      <- one per event
//! {"gadgetd":"lost","count":12,"total":12,"cause":"kernel"}         <- losses, when they happen
//! {"gadgetd":"end","reason":"timeout","events_seen":1000,"events_lost":12}
//! ```
//!
//! A gadget has one or more named data sources ([`Header::datasources`]).
//! When it has more than one, every event line and every table row starts
//! with the reserved key `"datasource"` naming its source, and loss reports
//! and the end line say which source they count. A single-source gadget's
//! lines are exactly as before (no `"datasource"` key; its one source is
//! `datasources[0]`, and [`Header::fields`] are its fields).
//!
//! Event lines are the gadget's decoded events as plain JSON objects, so
//! `gadgetctl run -o json` can pass them through untouched. Control lines
//! start with the reserved key `"gadgetd"`, which no event field may use
//! (the agent renames such a field), so [`classify`] only looks at a prefix.

use serde::{Deserialize, Serialize};

/// The byte prefix of every control line.
pub const CONTROL_PREFIX: &[u8] = b"{\"gadgetd\":";

/// A non-event line of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "gadgetd", rename_all = "lowercase")]
pub enum Control {
    /// Always the first line.
    Header(Header),
    /// Events were lost since the previous report (`count`), `total` so far
    /// for this cause.
    Lost {
        count: u64,
        total: u64,
        #[serde(default)]
        cause: LostCause,
        /// The data source that lost them (kernel losses of a gadget with
        /// several sources); `None`: the run as a whole.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        datasource: Option<String>,
    },
    /// Always the last line.
    End(End),
}

/// Where events were lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LostCause {
    /// The gadget's buffer in the kernel was full: the agent fell behind the
    /// kernel (or the gadget dropped a malformed record). Counted in the
    /// run's `EventsLost`; every stream sees it.
    #[default]
    Kernel,
    /// This stream's reader fell behind the agent and its queue overflowed;
    /// other streams of the run are unaffected.
    SlowReader,
    /// A detached run's log: events over the agent's `--log-rate`, or
    /// refused by journald (a full journal). Counted in the run's `EventsLost`.
    Log,
    /// A detached run's log: events the agent had received but not yet
    /// logged when it died (`kill -9`, a crash, an OOM kill). The next
    /// agent counts them from the run's ledger when it restores the run and
    /// puts this line first in the log. Counted in the run's `EventsLost`.
    Crash,
}

impl LostCause {
    /// What a user should read about it.
    pub fn explain(self) -> &'static str {
        match self {
            LostCause::Kernel => {
                "the gadget's kernel buffer overflowed (the agent fell behind the kernel)"
            }
            LostCause::SlowReader => {
                "this client read the stream too slowly (its queue in the agent overflowed)"
            }
            LostCause::Log => {
                "the run's log could not take them (gadgetd's --log-rate, or journald refused them)"
            }
            LostCause::Crash => {
                "gadgetd died (crash or kill -9) before it could log them; counted when the run was restored"
            }
        }
    }
}

/// Why a stream ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct End {
    /// `timeout`, `stopped`, `error`, `shutdown`, `done` or `detached`.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub events_seen: u64,
    pub events_lost: u64,
    /// The same counts per data source, in header order (empty from agents
    /// that predate data sources, and from logs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasources: Vec<SourceCount>,
    /// A detached run's log accounting, in the end line of its log only:
    /// `events_seen = logged + dropped + crash` and
    /// `events_lost = kernel_lost + dropped + crash`, exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogAccount>,
}

/// One data source's share of a run's counts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SourceCount {
    pub name: String,
    pub events_seen: u64,
    pub events_lost: u64,
}

/// Where every event of a detached run went, cumulative over restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogAccount {
    /// Events journald accepted into the run's log.
    pub logged: u64,
    /// Events the kernel dropped (not part of `events_seen`).
    pub kernel_lost: u64,
    /// Events the log writer dropped (cause `log` or `slow-reader`).
    pub dropped: u64,
    /// Events the agent died before logging (cause `crash`).
    pub crash: u64,
}

/// End reasons.
pub mod reason {
    pub const TIMEOUT: &str = "timeout";
    pub const STOPPED: &str = "stopped";
    pub const ERROR: &str = "error";
    pub const SHUTDOWN: &str = "shutdown";
    /// The gadget produced all it will (a snapshot).
    pub const DONE: &str = "done";
}

/// Describes the gadget and the fields every event carries.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Header {
    pub run_id: String,
    pub gadget: GadgetInfo,
    /// The fields of the first data source (`datasources[0].fields`), for
    /// clients that predate data sources.
    pub fields: Vec<Field>,
    /// Every data source, in the gadget's order (empty from agents that
    /// predate data sources: then `fields` describe the only one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasources: Vec<DataSourceInfo>,
    /// What became of each of the gadget's programs when the run started
    /// (absent from headers of older agents).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<ProgramState>,
    /// Things about the run a client should tell its user (e.g. image
    /// layers gadgetd does not use). Untrusted text: escape before printing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The reserved event key naming an event's (or table row's) data source.
pub const DATASOURCE_KEY: &str = "datasource";

/// One named data source of a gadget.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DataSourceInfo {
    /// Its name (IG's marker name, or the seed map name without its prefix);
    /// the value of the events' `"datasource"` key.
    pub name: String,
    /// `tracer`, `snapshotter`, `topper` or `profiler`.
    pub kind: String,
    /// The fields of its events or rows.
    pub fields: Vec<Field>,
}

impl Header {
    /// The data sources, also for headers from agents that predate them
    /// (one unnamed source with [`Header::fields`]).
    pub fn sources(&self) -> Vec<DataSourceInfo> {
        if self.datasources.is_empty() {
            return vec![DataSourceInfo {
                name: String::new(),
                kind: String::new(),
                fields: self.fields.clone(),
            }];
        }
        self.datasources.clone()
    }

    /// Whether event lines carry the `"datasource"` key (more than one source).
    pub fn tagged(&self) -> bool {
        self.datasources.len() > 1
    }
}

/// One program of a running gadget: attached, or why not.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProgramState {
    /// The program's (function's) name.
    pub name: String,
    /// Its ELF section.
    pub section: String,
    /// `attached`, `disabled` (`gadget_program_disabled`), `tail-call`
    /// (runs from a program array) or `skipped` (see `reason`).
    pub status: String,
    /// Why a program was skipped (a uprobe's library is not on this host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GadgetInfo {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub image: String,
    #[serde(default)]
    pub digest: String,
}

/// One event field: its JSON key, its type, and how to print it as a column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// JSON key; nested struct members are joined with `.`.
    pub name: String,
    /// `u8`..`u64`, `i8`..`i64`, `bool`, `f32`, `f64`, `string`, `enum`,
    /// `list`, `array`, `timestamp`, `mntns_id`, `netns_id`, `l3endpoint`, `l4endpoint`.
    #[serde(rename = "type")]
    pub kind: String,
    pub width: u32,
    #[serde(default)]
    pub min_width: Option<u32>,
    #[serde(default)]
    pub max_width: Option<u32>,
    pub alignment: Alignment,
    pub visible: bool,
    #[serde(default)]
    pub order: i32,
    #[serde(default)]
    pub ellipsis: Ellipsis,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Alignment {
    #[default]
    Left,
    Right,
}

/// Where a too-long value is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ellipsis {
    #[default]
    End,
    Start,
    Middle,
    None,
}

/// What a line of the stream is.
#[derive(Debug, PartialEq)]
pub enum Line<'a> {
    Event(&'a [u8]),
    Control(Control),
}

/// Classifies one line (without its newline).
pub fn classify(line: &[u8]) -> Result<Line<'_>, serde_json::Error> {
    if line.starts_with(CONTROL_PREFIX) {
        serde_json::from_slice(line).map(Line::Control)
    } else {
        Ok(Line::Event(line))
    }
}

/// Serializes a control line, newline included.
pub fn encode(control: &Control) -> Vec<u8> {
    let mut line = serde_json::to_vec(control).expect("control lines always serialize");
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines_start_with_the_reserved_prefix_and_round_trip() {
        let end = Control::End(End {
            reason: reason::TIMEOUT.into(),
            error: None,
            events_seen: 3,
            events_lost: 1,
            datasources: Vec::new(),
            log: None,
        });
        let line = encode(&end);
        assert!(line.starts_with(CONTROL_PREFIX));
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(
            classify(&line[..line.len() - 1]).unwrap(),
            Line::Control(end)
        );

        let lost = encode(&Control::Lost {
            count: 2,
            total: 5,
            cause: LostCause::SlowReader,
            datasource: None,
        });
        assert_eq!(
            std::str::from_utf8(&lost).unwrap(),
            "{\"gadgetd\":\"lost\",\"count\":2,\"total\":5,\"cause\":\"slow-reader\"}\n"
        );
        let crash = encode(&Control::Lost {
            count: 7,
            total: 9,
            cause: LostCause::Crash,
            datasource: None,
        });
        assert_eq!(
            std::str::from_utf8(&crash).unwrap(),
            "{\"gadgetd\":\"lost\",\"count\":7,\"total\":9,\"cause\":\"crash\"}\n"
        );
        assert_eq!(
            classify(&crash[..crash.len() - 1]).unwrap(),
            Line::Control(Control::Lost {
                count: 7,
                total: 9,
                cause: LostCause::Crash,
                datasource: None,
            })
        );
        // Streams from agents that predate `cause` mean the kernel.
        let old = classify(b"{\"gadgetd\":\"lost\",\"count\":1,\"total\":1}").unwrap();
        assert_eq!(
            old,
            Line::Control(Control::Lost {
                count: 1,
                total: 1,
                cause: LostCause::Kernel,
                datasource: None,
            })
        );
    }

    #[test]
    fn event_lines_pass_through_untouched() {
        let line = br#"{"pid":1,"comm":"x"}"#;
        assert_eq!(classify(line).unwrap(), Line::Event(line));
    }

    #[test]
    fn a_malformed_control_line_is_an_error() {
        assert!(classify(br#"{"gadgetd":"bogus"}"#).is_err());
    }
}
