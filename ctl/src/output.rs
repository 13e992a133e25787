//! Printing an event stream: columns aligned from the header's field
//! attributes, JSON lines passed through as the agent wrote them, or pretty JSON.

use std::io::Write;

use gadgetd_dbus::stream::{Alignment, Field, Header};

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

pub struct Printer {
    format: Format,
    /// `--fields` and `--filter`.
    shape: crate::shape::Shape,
    /// A flag that only tables take (`--sort`, `--max-rows`), to refuse on
    /// a gadget that streams single events.
    table_flag: Option<&'static str>,
    /// Visible fields in display order, with their widths.
    columns: Vec<Field>,
    /// The column titles are printed before the first event (tracers) or
    /// before every table (toppers, snapshots).
    titles_printed: bool,
    tables_printed: u64,
    /// Profilers: events are histograms, printed as text.
    histograms: bool,
    /// Tables refresh in place on a terminal.
    tty: bool,
    /// Lines fit this many cells (the terminal's width, or `COLUMNS`).
    limit: Option<usize>,
    /// Hide the container enrichment columns unless `--fields` names them
    /// (a host without containers: they would stay empty).
    hide_enrichment: bool,
    seccomp: crate::seccomp::Profile,
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
            columns: Vec::new(),
            titles_printed: false,
            tables_printed: 0,
            histograms: false,
            tty: std::io::stdout().is_terminal(),
            limit: crate::columns::line_limit(),
            hide_enrichment: false,
            seccomp: Default::default(),
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

    fn titles(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        let names: Vec<String> = self.columns.iter().map(|c| c.name.to_uppercase()).collect();
        let cells: Vec<&str> = names.iter().map(String::as_str).collect();
        self.titles_printed = true;
        self.row(&cells, out)
    }

    /// One table (a topper interval, a snapshot): refreshed in place on a terminal.
    fn table(&mut self, rows: &[serde_json::Value], out: &mut impl Write) -> std::io::Result<()> {
        if self.tables_printed > 0 {
            if self.tty {
                out.write_all(b"\x1b[H\x1b[2J")?;
            } else {
                out.write_all(b"\n")?;
            }
        }
        self.tables_printed += 1;
        self.titles(out)?;
        for v in rows.iter().filter(|r| self.shape.matches(r)) {
            let cells: Vec<String> = self
                .columns
                .iter()
                .map(|c| cell_text(v.get(&c.name)))
                .collect();
            let refs: Vec<&str> = cells.iter().map(String::as_str).collect();
            self.row(&refs, out)?;
        }
        Ok(())
    }

    pub fn header(&mut self, header: &Header, out: &mut impl Write) -> std::io::Result<()> {
        let mut columns = self
            .shape
            .columns(&header.fields)
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        if self.hide_enrichment {
            columns.retain(|c| {
                self.shape.named(&c.name)
                    || !crate::columns::ENRICHMENT_PREFIXES
                        .iter()
                        .any(|p| c.name.starts_with(p))
            });
        }
        for c in &mut columns {
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
            crate::columns::fit_to(&mut columns, limit);
        }
        self.columns = columns;
        self.histograms = header.fields.iter().any(|f| f.kind == "histogram");
        self.seccomp.header(&header.fields);
        let _ = out;
        Ok(())
    }

    pub fn event(&mut self, line: &[u8], out: &mut impl Write) -> std::io::Result<()> {
        if self.format == Format::Json
            && !self.shape.filters()
            && !self.shape.has_fields()
            && self.table_flag.is_none()
        {
            // The fast path: the agent's line as it is (no parsing).
            out.write_all(&crate::escape::json(line))?;
            return out.write_all(b"\n");
        }
        let mut v: serde_json::Value =
            serde_json::from_slice(line).map_err(std::io::Error::other)?;
        let table = v.is_array();
        if let Some(flag) = self.table_flag.filter(|_| !table) {
            return Err(std::io::Error::other(format!(
                "{flag} applies to toppers and snapshotters (tables); this gadget \
                 {} (leave {flag} out; --filter and --fields work on every gadget)",
                if self.histograms {
                    "prints histograms"
                } else {
                    "is a tracer: it prints each event as it comes"
                }
            )));
        }
        if let serde_json::Value::Array(rows) = &mut v {
            if self.shape.filters() && self.format != Format::Columns {
                rows.retain(|r| self.shape.matches(r));
            }
        } else if !self.histograms && !self.shape.matches(&v) {
            return Ok(());
        }
        if self.shape.has_fields() && !self.histograms && self.format != Format::Columns {
            self.project(&mut v);
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
                    return self.table(rows, out);
                }
                if self.histograms {
                    return out.write_all(crate::histogram::render(&v).as_bytes());
                }
                if !self.titles_printed {
                    self.titles(out)?;
                }
                let cells: Vec<String> = self
                    .columns
                    .iter()
                    .map(|c| cell_text(v.get(&c.name)))
                    .collect();
                let refs: Vec<&str> = cells.iter().map(String::as_str).collect();
                self.row(&refs, out)
            }
        }
    }

    /// Keeps only the `--fields` columns of an event or of each table row.
    fn project(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Array(rows) => rows.iter_mut().for_each(|r| self.project(r)),
            serde_json::Value::Object(map) => {
                let mut kept = serde_json::Map::with_capacity(self.columns.len());
                for c in &self.columns {
                    if let Some(x) = map.remove(&c.name) {
                        kept.insert(c.name.clone(), x);
                    }
                }
                *map = kept;
            }
            _ => {}
        }
    }

    fn row(&self, cells: &[&str], out: &mut impl Write) -> std::io::Result<()> {
        let mut line = String::new();
        let mut used = 0;
        for (i, (c, text)) in self.columns.iter().zip(cells).enumerate() {
            let last = i + 1 == self.columns.len();
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
            let text = crate::escape::terminal(text);
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
        writeln!(out, "{}", line.trim_end())
    }
}

fn cell_text(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| cell_text(Some(i)))
            .collect::<Vec<_>>()
            .join(" "),
        Some(other) => other.to_string(),
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
    fn json_passes_lines_through() {
        let mut p = Printer::new(Format::Json);
        let mut out = Vec::new();
        p.event(br#"{"b":1,"a":2}"#, &mut out).unwrap();
        assert_eq!(out, b"{\"b\":1,\"a\":2}\n");
    }
}
