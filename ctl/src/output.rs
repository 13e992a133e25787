//! Printing an event stream: columns aligned from the header's field
//! attributes, JSON lines passed through as the agent wrote them, or pretty JSON.

use std::borrow::Cow;
use std::io::Write;

use gadgetd_dbus::stream::{Alignment, DATASOURCE_KEY, Field, Header};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Columns,
    Json,
    Jsonpretty,
    /// One YAML document per event (a table per document for toppers and snapshots).
    Yaml,
    /// A seccomp profile of the syscalls seen, when the run ends.
    Seccomp,
}

/// What is printed of one data source: its shaping, columns and state.
struct View {
    /// The data source's name (empty for agents that predate data sources).
    name: String,
    /// `--fields` and `--filter` as they apply to this source.
    shape: crate::shape::Shape,
    /// Visible fields in display order, with their widths.
    columns: Vec<Field>,
    /// Profilers: events are histograms, printed as text.
    histograms: bool,
}

pub struct Printer {
    format: Format,
    /// `--fields` and `--filter`, as given.
    shape: crate::shape::Shape,
    /// A flag that only tables take (`--sort`, `--max-rows`), to refuse on
    /// a gadget that streams single events.
    table_flag: Option<&'static str>,
    /// One per data source, in the header's order.
    views: Vec<View>,
    /// Several sources: events name theirs (`"datasource"`), and each
    /// source's output is labelled.
    multi: bool,
    /// The view whose column titles were printed last: titles come again
    /// when the source changes (tracers) and before every table.
    titled: Option<usize>,
    /// A `[SOURCE]` label was printed: the next one comes after a blank line.
    labelled: bool,
    tables_printed: u64,
    /// Tables refresh in place on a terminal.
    tty: bool,
    /// Lines fit this many cells (the terminal's width, or `COLUMNS`).
    limit: Option<usize>,
    /// Hide the container enrichment columns unless `--fields` names them
    /// (a host without containers: they would stay empty).
    hide_enrichment: bool,
    seccomp: crate::seccomp::Profile,
    /// The only members of an event the output uses (columns, `--fields`,
    /// `--filter`, the source's name), set at the header; `None`: all.
    keys: Option<Vec<String>>,
}

/// What a single-source gadget without tables prints, for [`no_tables`].
const IS_A_TRACER: &str = "this gadget is a tracer: it prints each event as it comes";
const PRINTS_HISTOGRAMS: &str = "this gadget prints histograms";

/// The error for `--sort`/`--max-rows` (`flag`) on a gadget whose sources
/// print no table; `what` says what it prints instead.
fn no_tables(flag: &str, what: &str) -> std::io::Error {
    std::io::Error::other(format!(
        "{flag} applies to toppers and snapshotters (tables); {what} (leave {flag} out; \
         --filter and --fields work on every gadget)"
    ))
}

impl Printer {
    #[cfg(test)]
    pub fn new(format: Format) -> Printer {
        Printer::shaped(format, crate::shape::Shape::default(), None)
    }

    /// A printer applying `shape`; `table_flag` names a flag given that only
    /// toppers and snapshotters take.
    pub fn shaped(
        format: Format,
        shape: crate::shape::Shape,
        table_flag: Option<&'static str>,
    ) -> Printer {
        use std::io::IsTerminal;
        Printer {
            format,
            shape,
            table_flag,
            views: Vec::new(),
            multi: false,
            titled: None,
            labelled: false,
            tables_printed: 0,
            tty: std::io::stdout().is_terminal(),
            limit: crate::columns::line_limit(),
            hide_enrichment: false,
            seccomp: Default::default(),
            keys: None,
        }
    }

    /// Hides the container columns (`runtime.*`, `k8s.*`) unless `--fields`
    /// names them: for a host where the agent sees no containers.
    pub fn hide_enrichment(&mut self) {
        self.hide_enrichment = true;
    }

    /// Output that needs the whole run (`-o seccomp`); call at the end line.
    pub fn finish(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.format == Format::Seccomp {
            if !self.seccomp.has_syscall_fields() {
                return Err(std::io::Error::other(
                    "-o seccomp needs a gadget with a syscall field (gadget_syscall), such as advise_seccomp",
                ));
            }
            serde_json::to_writer_pretty(&mut *out, &self.seccomp.render())?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// `[SOURCE]` before a source's output (several sources only), after a
    /// blank line when something came before.
    fn label(&mut self, view: usize, out: &mut impl Write) -> std::io::Result<()> {
        if !self.multi {
            return Ok(());
        }
        if self.labelled {
            out.write_all(b"\n")?;
        }
        self.labelled = true;
        writeln!(out, "[{}]", crate::escape::terminal(&self.views[view].name))
    }

    /// A source's label and its column titles.
    fn titles(&mut self, view: usize, out: &mut impl Write) -> std::io::Result<()> {
        self.label(view, out)?;
        self.titled = Some(view);
        let v = &self.views[view];
        let names: Vec<String> = v.columns.iter().map(|c| c.name.to_uppercase()).collect();
        self.row(view, &names, out)
    }

    /// One table (a topper interval, a snapshot): refreshed in place on a
    /// terminal when it is the gadget's only source.
    fn table(
        &mut self,
        view: usize,
        rows: &[serde_json::Value],
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        if self.tables_printed > 0 && !self.multi {
            if self.tty {
                out.write_all(b"\x1b[H\x1b[2J")?;
            } else {
                out.write_all(b"\n")?;
            }
        }
        self.tables_printed += 1;
        self.titles(view, out)?;
        let v = &self.views[view];
        for r in rows.iter().filter(|r| v.shape.matches(r)) {
            let cells: Vec<Cow<str>> = v
                .columns
                .iter()
                .map(|c| cell_text(r.get(&c.name)))
                .collect();
            self.row(view, &cells, out)?;
            // Histogram fields (gadget_histogram_slot__* arrays) are drawn
            // under their row, named by their column.
            for c in &v.columns {
                if let Some(h) = r.get(&c.name).filter(|h| is_histogram(h)) {
                    let mut named = h.clone();
                    named["histogram"] = serde_json::Value::from(c.name.clone());
                    out.write_all(crate::histogram::render(&named).as_bytes())?;
                }
            }
        }
        // Tracer events after a table get their titles again.
        self.titled = None;
        Ok(())
    }

    pub fn header(&mut self, header: &Header, out: &mut impl Write) -> std::io::Result<()> {
        let sources = header.sources();
        self.multi = header.tagged();
        let listed: Vec<(&str, &[Field])> = sources
            .iter()
            .map(|s| (s.name.as_str(), s.fields.as_slice()))
            .collect();
        self.shape
            .check_sources(&listed)
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        // Known from the header: a gadget that prints no table fails here,
        // not at its first event (which may never come).
        let known_kinds = !sources.is_empty() && sources.iter().all(|s| !s.kind.is_empty());
        let is_table = |kind: &str| kind == "topper" || kind == "snapshotter";
        if let (Some(flag), true) = (self.table_flag, known_kinds)
            && !sources.iter().any(|s| is_table(&s.kind))
        {
            let what = match (self.multi, sources[0].kind.as_str()) {
                (true, _) => "no data source of this gadget prints tables",
                (false, "profiler") => PRINTS_HISTOGRAMS,
                (false, _) => IS_A_TRACER,
            };
            return Err(no_tables(flag, what));
        }
        self.views.clear();
        for s in &sources {
            let mut shape = self.shape.for_source(&s.name, &s.fields, !self.multi);
            let columns = shape.columns(&s.fields).map_err(|e| {
                std::io::Error::other(if self.multi {
                    format!("data source `{}`: {e:#}", crate::escape::terminal(&s.name))
                } else {
                    format!("{e:#}")
                })
            })?;
            let mut view = View {
                name: s.name.clone(),
                shape,
                columns,
                histograms: s.fields.iter().any(|f| f.kind == "histogram"),
            };
            self.fit(&mut view);
            self.views.push(view);
        }
        self.seccomp.header(&sources);
        self.keys = self.used_keys();
        let _ = out;
        Ok(())
    }

    /// The members of an event the output uses, when it uses only some:
    /// columns, and JSON with `--fields` on every source. Histograms are
    /// drawn from the whole event.
    fn used_keys(&self) -> Option<Vec<String>> {
        let some = match self.format {
            Format::Columns => true,
            Format::Json => self.views.iter().all(|v| v.shape.has_fields()),
            _ => false,
        };
        if !some || self.views.is_empty() || self.views.iter().any(|v| v.histograms) {
            return None;
        }
        let mut keys = vec![DATASOURCE_KEY.to_string()];
        for v in &self.views {
            let names = v.columns.iter().map(|c| c.name.as_str());
            for name in names.chain(v.shape.filter_fields()) {
                if !keys.iter().any(|k| k == name) {
                    keys.push(name.to_string());
                }
            }
        }
        Some(keys)
    }

    /// Hides what `--hide-enrichment` hides and fits the columns' widths.
    fn fit(&self, view: &mut View) {
        let columns = &mut view.columns;
        if self.hide_enrichment {
            columns.retain(|c| {
                view.shape.named(&c.name)
                    || !crate::columns::ENRICHMENT_PREFIXES
                        .iter()
                        .any(|p| c.name.starts_with(p))
            });
        }
        for c in columns.iter_mut() {
            let name_len = c.name.len() as u32;
            c.width = c
                .width
                .max(c.min_width.unwrap_or(0))
                .max(name_len.min(c.max_width.unwrap_or(u32::MAX)));
            if let Some(max) = c.max_width {
                c.width = c.width.min(max);
            }
        }
        if let Some(limit) = self.limit {
            crate::columns::fit_to(columns, limit);
        }
    }

    /// The view of an event or table: the one its `"datasource"` names
    /// (a table's rows all name the same), else the first.
    fn view_of(&self, v: &serde_json::Value) -> usize {
        if !self.multi {
            return 0;
        }
        let obj = match v {
            serde_json::Value::Array(rows) => rows.first(),
            other => Some(other),
        };
        let name = obj
            .and_then(|o| o.get(DATASOURCE_KEY))
            .and_then(|n| n.as_str());
        name.and_then(|n| self.views.iter().position(|w| w.name == n))
            .unwrap_or(0)
    }

    /// Prints a run of event lines, each ending with a newline (the last
    /// one's may be missing at the end of a stream).
    pub fn events(&mut self, run: &[u8], out: &mut impl Write) -> std::io::Result<()> {
        if self.passes_through() {
            // The fast path: the agent's lines as they are (no parsing),
            // escaped where a line holds a character escape.rs escapes.
            crate::escape::write_json_lines(run, out)?;
            if !run.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
            return Ok(());
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', run) {
            self.event(&run[start..end], out)?;
            start = end + 1;
        }
        if start < run.len() {
            self.event(&run[start..], out)?;
        }
        Ok(())
    }

    /// `-o json` without `--fields`, `--filter` or a table flag: events are
    /// printed as the agent wrote them.
    pub fn passes_through(&self) -> bool {
        self.format == Format::Json
            && !self.shape.filters()
            && !self.shape.has_fields()
            && self.table_flag.is_none()
    }

    /// Prints one event line (no newline): parsed, shaped, formatted.
    fn event(&mut self, line: &[u8], out: &mut impl Write) -> std::io::Result<()> {
        let mut v: serde_json::Value = match &self.keys {
            Some(keys) if line.first() == Some(&b'{') => {
                crate::sparse::object(line, keys).map(serde_json::Value::Object)
            }
            _ => serde_json::from_slice(line),
        }
        .map_err(std::io::Error::other)?;
        let table = v.is_array();
        if self.views.is_empty() {
            // A stream without a header (never from gadgetd): show everything.
            self.views.push(View {
                name: String::new(),
                shape: self.shape.clone(),
                columns: Vec::new(),
                histograms: false,
            });
        }
        let at = self.view_of(&v);
        let view = &self.views[at];
        if let Some(flag) = self.table_flag.filter(|_| !table && !self.multi) {
            let what = if view.histograms {
                PRINTS_HISTOGRAMS
            } else {
                IS_A_TRACER
            };
            return Err(no_tables(flag, what));
        }
        if let serde_json::Value::Array(rows) = &mut v {
            if view.shape.filters() && self.format != Format::Columns {
                rows.retain(|r| view.shape.matches(r));
            }
        } else if !view.histograms && !view.shape.matches(&v) {
            return Ok(());
        }
        if view.shape.has_fields() && !view.histograms && self.format != Format::Columns {
            project(view, &mut v);
        }
        match self.format {
            Format::Json => {
                let text = serde_json::to_vec(&v).map_err(std::io::Error::other)?;
                out.write_all(&crate::escape::json(&text))?;
                out.write_all(b"\n")
            }
            Format::Seccomp => {
                self.seccomp.add(&v);
                Ok(())
            }
            Format::Jsonpretty => {
                let text = serde_json::to_vec_pretty(&v).map_err(std::io::Error::other)?;
                out.write_all(&crate::escape::json(&text))?;
                out.write_all(b"\n")
            }
            Format::Yaml => {
                let doc = crate::escape::yaml(&v).map_err(std::io::Error::other)?;
                out.write_all(b"---\n")?;
                out.write_all(&doc)
            }
            Format::Columns => {
                if let serde_json::Value::Array(rows) = &v {
                    return self.table(at, rows, out);
                }
                if view.histograms {
                    self.titled = None;
                    self.label(at, out)?;
                    return out.write_all(crate::histogram::render(&v).as_bytes());
                }
                if self.titled != Some(at) {
                    self.titles(at, out)?;
                }
                let view = &self.views[at];
                let cells: Vec<Cow<str>> = view
                    .columns
                    .iter()
                    .map(|c| cell_text(v.get(&c.name)))
                    .collect();
                self.row(at, &cells, out)
            }
        }
    }

    fn row(
        &self,
        view: usize,
        cells: &[impl AsRef<str>],
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        let columns = &self.views[view].columns;
        let mut line = String::with_capacity(256);
        let mut used = 0;
        for (i, (c, text)) in columns.iter().zip(cells).enumerate() {
            let last = i + 1 == columns.len();
            if i > 0 {
                line.push(' ');
                used += 1;
            }
            // The last column takes the rest of the line: all of it without
            // a terminal width, else what is left up to the edge.
            let width = match (last, self.limit) {
                (false, _) => c.width as usize,
                (true, None) => usize::MAX,
                (true, Some(limit)) => limit.saturating_sub(used),
            };
            // Untrusted text (file names, comms...) is escaped before it is fitted.
            let text = crate::escape::terminal(text.as_ref());
            let fitted = crate::columns::fit(&text, width, c.ellipsis);
            let pad = (c.width as usize).saturating_sub(crate::columns::cells(&fitted));
            used += c.width as usize;
            match c.alignment {
                Alignment::Right => {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(&fitted);
                }
                Alignment::Left => {
                    line.push_str(&fitted);
                    if !last {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
        }
        out.write_all(line.trim_end().as_bytes())?;
        out.write_all(b"\n")
    }
}

/// Keeps only the `--fields` columns of an event or of each table row (and
/// the `"datasource"` key that names its source).
fn project(view: &View, v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Array(rows) => rows.iter_mut().for_each(|r| project(view, r)),
        serde_json::Value::Object(map) => {
            let mut kept = serde_json::Map::with_capacity(view.columns.len() + 1);
            if let Some(x) = map.remove(DATASOURCE_KEY) {
                kept.insert(DATASOURCE_KEY.into(), x);
            }
            for c in &view.columns {
                if let Some(x) = map.remove(&c.name) {
                    kept.insert(c.name.clone(), x);
                }
            }
            *map = kept;
        }
        _ => {}
    }
}

/// A histogram field's value: `{"scale":..,"total":..,"buckets":[..]}`.
fn is_histogram(v: &serde_json::Value) -> bool {
    v.get("buckets").is_some_and(serde_json::Value::is_array) && v.get("total").is_some()
}

/// The text of a cell: strings as they are (borrowed), other values as JSON.
fn cell_text(v: Option<&serde_json::Value>) -> Cow<'_, str> {
    match v {
        None | Some(serde_json::Value::Null) => Cow::Borrowed(""),
        // Drawn under the row; the cell says how many it counts.
        Some(h) if is_histogram(h) => Cow::Owned(format!("total {}", h["total"])),
        Some(serde_json::Value::String(s)) => Cow::Borrowed(s),
        Some(serde_json::Value::Array(items)) => Cow::Owned(
            items
                .iter()
                .map(|i| cell_text(Some(i)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Some(other) => Cow::Owned(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gadgetd_dbus::stream::Ellipsis;

    fn field(name: &str, width: u32, alignment: Alignment) -> Field {
        Field {
            name: name.into(),
            kind: "u32".into(),
            width,
            min_width: None,
            max_width: None,
            alignment,
            visible: true,
            order: 0,
            ellipsis: Ellipsis::End,
            description: String::new(),
        }
    }

    #[test]
    fn columns_align_and_truncate() {
        let header = Header {
            fields: vec![
                field("pid", 5, Alignment::Right),
                field("comm", 4, Alignment::Left),
                field("fname", 3, Alignment::Left),
            ],
            ..Header::default()
        };
        let mut p = Printer::new(Format::Columns);
        let mut out = Vec::new();
        p.header(&header, &mut out).unwrap();
        p.event(
            br#"{"pid":42,"comm":"bash-long","fname":"/etc/passwd"}"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "  PID COMM FNAME\n   42 bas… /etc/passwd\n"
        );
    }

    #[test]
    fn histogram_fields_of_a_row_are_drawn_under_it() {
        let header = Header {
            fields: vec![
                field("kind", 4, Alignment::Right),
                field("latency", 10, Alignment::Left),
            ],
            ..Header::default()
        };
        let mut p = Printer::new(Format::Columns);
        p.limit = None;
        p.tty = false;
        let mut out = Vec::new();
        p.header(&header, &mut out).unwrap();
        p.event(
            br#"[{"kind":1,"latency":{"scale":"log2","total":3,"buckets":[{"start":0,"end":1,"count":1},{"start":2,"end":3,"count":2}]}}]"#,
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..3],
            ["KIND LATENCY", "   1 total 3", "latency:"],
            "{text}"
        );
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>(),
            ["value", ":", "count", "distribution"]
        );
        assert!(
            lines[4].ends_with(&format!(
                ": 1        |{}{}|",
                "*".repeat(20),
                " ".repeat(20)
            )),
            "{text}"
        );
        assert!(
            lines[5].ends_with(&format!(": 2        |{}|", "*".repeat(40))),
            "{text}"
        );
        assert_eq!(lines.len(), 6, "{text}");
    }

    /// Columns and `--fields` parse only what they use: a filter on a
    /// field that is not shown still applies, and the other members (here
    /// nested ones) are skipped.
    #[test]
    fn shaped_output_reads_the_columns_and_the_filtered_fields() {
        let header = Header {
            fields: vec![
                field("pid", 3, Alignment::Right),
                field("comm", 4, Alignment::Left),
                field("fname", 5, Alignment::Left),
            ],
            ..Header::default()
        };
        let events = b"{\"pid\":1,\"comm\":\"a\",\"fname\":\"x\"}\n\
            {\"pid\":2,\"extra\":{\"deep\":[1,\"\\u001b\"]},\"comm\":\"b\",\"fname\":\"y\"}\n";
        let printed = |format: Format, fields: &str| {
            let mut p = shaped(format, Some(fields), &["pid>1"]);
            let mut out = Vec::new();
            p.header(&header, &mut out).unwrap();
            p.events(events, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            printed(Format::Columns, "comm,fname"),
            "COMM FNAME\nb    y\n"
        );
        assert_eq!(printed(Format::Json, "fname"), "{\"fname\":\"y\"}\n");
        // A line that is not JSON is the same error as with a full parse.
        let mut p = shaped(Format::Columns, Some("pid"), &[]);
        p.header(&header, &mut Vec::new()).unwrap();
        let err = p.events(b"{\"pid\":1,\n", &mut Vec::new()).unwrap_err();
        let full = serde_json::from_slice::<serde_json::Value>(b"{\"pid\":1,").unwrap_err();
        assert_eq!(err.to_string(), full.to_string());
    }

    #[test]
    fn json_passes_lines_through() {
        let mut p = Printer::new(Format::Json);
        let mut out = Vec::new();
        p.events(b"{\"b\":1,\"a\":2}\n{\"f\":\"\x7f\"}\n{}", &mut out)
            .unwrap();
        assert_eq!(out, b"{\"b\":1,\"a\":2}\n{\"f\":\"\\u007f\"}\n{}\n");
    }

    fn two_sources() -> Header {
        use gadgetd_dbus::stream::DataSourceInfo;
        let calls = vec![
            field("pid", 5, Alignment::Right),
            field("who", 3, Alignment::Left),
        ];
        let totals = vec![
            field("who", 3, Alignment::Left),
            field("calls", 5, Alignment::Right),
        ];
        Header {
            fields: calls.clone(),
            datasources: vec![
                DataSourceInfo {
                    name: "calls".into(),
                    kind: "tracer".into(),
                    fields: calls,
                },
                DataSourceInfo {
                    name: "totals".into(),
                    kind: "topper".into(),
                    fields: totals,
                },
            ],
            ..Header::default()
        }
    }

    fn shaped(format: Format, fields: Option<&str>, filter: &[&str]) -> Printer {
        let shape = crate::shape::Shape::new(&crate::shape::ShapeArgs {
            fields: fields.map(str::to_string),
            filter: filter.iter().map(|f| f.to_string()).collect(),
        })
        .unwrap();
        let mut p = Printer::shaped(format, shape, None);
        p.limit = None;
        p.tty = false;
        p
    }

    /// A header of one source of `kind`.
    fn one_source(kind: &str) -> Header {
        use gadgetd_dbus::stream::DataSourceInfo;
        let fields = vec![field("pid", 5, Alignment::Right)];
        Header {
            fields: fields.clone(),
            datasources: vec![DataSourceInfo {
                name: "events".into(),
                kind: kind.into(),
                fields,
            }],
            ..Header::default()
        }
    }

    #[test]
    fn a_table_flag_on_a_gadget_without_tables_fails_at_the_header() {
        let no_shape = crate::shape::Shape::new(&crate::shape::ShapeArgs::default()).unwrap();
        for (kind, flag, says) in [
            (
                "tracer",
                "--sort",
                "this gadget is a tracer: it prints each event as it comes",
            ),
            ("profiler", "--max-rows", "this gadget prints histograms"),
        ] {
            let mut p = Printer::shaped(Format::Json, no_shape.clone(), Some(flag));
            let err = p.header(&one_source(kind), &mut Vec::new()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "{flag} applies to toppers and snapshotters (tables); {says} (leave {flag} \
                     out; --filter and --fields work on every gadget)"
                )
            );
        }
        for kind in ["topper", "snapshotter"] {
            let mut p = Printer::shaped(Format::Json, no_shape.clone(), Some("--sort"));
            p.header(&one_source(kind), &mut Vec::new())
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
        }
        // A header that does not say its kind: left to the first event.
        let mut p = Printer::shaped(Format::Json, no_shape, Some("--sort"));
        p.header(&one_source(""), &mut Vec::new()).unwrap();
    }

    const CALL: &[u8] = br#"{"datasource":"calls","pid":7,"who":"a"}"#;
    const TABLE: &[u8] =
        br#"[{"datasource":"totals","who":"a","calls":3},{"datasource":"totals","who":"b","calls":1}]"#;

    #[test]
    fn each_source_gets_a_labelled_table_of_its_own_columns() {
        let mut p = shaped(Format::Columns, None, &[]);
        let mut out = Vec::new();
        p.header(&two_sources(), &mut out).unwrap();
        for line in [CALL, CALL, TABLE, CALL] {
            p.event(line, &mut out).unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[calls]\n  PID WHO\n    7 a\n    7 a\n\n[totals]\nWHO CALLS\na       3\nb       1\n\n[calls]\n  PID WHO\n    7 a\n"
        );
    }

    #[test]
    fn fields_and_filters_take_a_source_prefix_and_json_keeps_the_source() {
        let mut p = shaped(Format::Json, Some("totals:calls"), &["calls>1"]);
        let mut out = Vec::new();
        p.header(&two_sources(), &mut out).unwrap();
        p.event(CALL, &mut out).unwrap();
        p.event(TABLE, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"datasource\":\"calls\",\"pid\":7,\"who\":\"a\"}\n[{\"calls\":3,\"datasource\":\"totals\"}]\n"
        );
    }

    #[test]
    fn unknown_sources_and_fields_name_the_valid_ones() {
        let err = |fields: Option<&str>, filter: &[&str]| {
            let mut p = shaped(Format::Columns, fields, filter);
            p.header(&two_sources(), &mut Vec::new())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(Some("other:x"), &[]),
            "--fields `other:x`: no data source `other` in this gadget; its data sources: calls, totals"
        );
        assert_eq!(
            err(None, &["nope==1"]),
            "--filter: no field `nope` in any data source of this gadget; name one as SOURCE:FIELD (calls: pid, who; totals: who, calls)"
        );
        assert_eq!(
            err(Some("totals:pid"), &[]),
            "data source `totals`: --fields: no field `pid` in this gadget; its fields: who, calls"
        );
    }
}
