//! Printing an event stream: columns aligned from the header's field
//! attributes, JSON lines passed through as the agent wrote them, or pretty JSON.

use std::io::Write;

use gadgetd_dbus::stream::{Alignment, Ellipsis, Field, Header};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Columns,
    Json,
    Jsonpretty,
}

pub struct Printer {
    format: Format,
    /// Visible fields in display order, with their widths.
    columns: Vec<Field>,
}

impl Printer {
    pub fn new(format: Format) -> Printer {
        Printer {
            format,
            columns: Vec::new(),
        }
    }

    pub fn header(&mut self, header: &Header, out: &mut impl Write) -> std::io::Result<()> {
        let mut columns: Vec<Field> = header
            .fields
            .iter()
            .filter(|f| f.visible)
            .cloned()
            .collect();
        columns.sort_by_key(|f| f.order);
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
        self.columns = columns;
        if self.format == Format::Columns {
            let names: Vec<String> = self.columns.iter().map(|c| c.name.to_uppercase()).collect();
            let cells: Vec<&str> = names.iter().map(String::as_str).collect();
            self.row(&cells, out)?;
        }
        Ok(())
    }

    pub fn event(&mut self, line: &[u8], out: &mut impl Write) -> std::io::Result<()> {
        match self.format {
            Format::Json => {
                out.write_all(line)?;
                out.write_all(b"\n")
            }
            Format::Jsonpretty => {
                let v: serde_json::Value =
                    serde_json::from_slice(line).map_err(std::io::Error::other)?;
                serde_json::to_writer_pretty(&mut *out, &v)?;
                out.write_all(b"\n")
            }
            Format::Columns => {
                let v: serde_json::Value =
                    serde_json::from_slice(line).map_err(std::io::Error::other)?;
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

    fn row(&self, cells: &[&str], out: &mut impl Write) -> std::io::Result<()> {
        let mut line = String::new();
        for (i, (c, text)) in self.columns.iter().zip(cells).enumerate() {
            let last = i + 1 == self.columns.len();
            let fitted = fit(text, c.width as usize, c.ellipsis, last);
            let pad = (c.width as usize).saturating_sub(fitted.chars().count());
            if i > 0 {
                line.push(' ');
            }
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

/// Cuts `text` to `width` characters with an ellipsis; the last column may overflow.
fn fit(text: &str, width: usize, ellipsis: Ellipsis, last: bool) -> String {
    let len = text.chars().count();
    if len <= width || last || width == 0 {
        return text.to_string();
    }
    let keep = width.saturating_sub(1);
    match ellipsis {
        Ellipsis::None => text.chars().take(width).collect(),
        Ellipsis::End => text.chars().take(keep).chain(['…']).collect(),
        Ellipsis::Start => ['…']
            .into_iter()
            .chain(text.chars().skip(len - keep))
            .collect(),
        Ellipsis::Middle => {
            let head = keep / 2;
            let tail = keep - head;
            text.chars()
                .take(head)
                .chain(['…'])
                .chain(text.chars().skip(len - tail))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
