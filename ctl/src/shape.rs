//! Output shaping, on every gadget kind and every output format:
//!
//! * `--fields a,b` shows exactly these fields, in this order;
//!   `--fields +a,-b` adds `a` to and removes `b` from the default columns.
//!   Any field of the gadget may be named, hidden ones included.
//! * `--filter` keeps only events (or table rows) matching every rule, with
//!   Inspektor Gadget's operators: `FIELD==VALUE`, `FIELD!=VALUE`,
//!   `FIELD<VALUE`, `FIELD<=VALUE`, `FIELD>VALUE`, `FIELD>=VALUE`,
//!   `FIELD~REGEX`, `FIELD!~REGEX`. Rules are comma-separated (`\,` is a
//!   literal comma) or given as repeated `--filter`s. Numeric fields compare
//!   as numbers, others as text.
//!
//! Syntax errors are reported before the run starts; unknown field names
//! as soon as the stream's header names the gadget's fields, with the list
//! of valid ones.
//!
//! A gadget with several data sources: `SOURCE:FIELD` names a field of one
//! source, in `--fields` (`--fields calls:pid,totals:who`) and `--filter`
//! (`--filter totals:calls>2`); a bare `FIELD` means that field in every
//! source that has it. Each source's table gets the entries that apply to
//! it; a source no `--fields` entry names keeps its default columns, and a
//! rule on a field a source lacks does not filter that source.

use anyhow::{Result, bail};
use gadgetd_dbus::stream::Field;
use regex::Regex;

use crate::escape;

/// `--fields` and `--filter`, shared by `run`, `attach` and `logs`.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ShapeArgs {
    /// Columns to show: `a,b` (exactly these) or `+a,-b` (add to or remove
    /// from the default columns). `gadgetctl run GADGET --help` lists fields.
    #[arg(long, value_name = "FIELDS", allow_hyphen_values = true)]
    pub fields: Option<String>,
    /// Keep events matching `FIELD==VALUE` (also `!=`, `<`, `<=`, `>`, `>=`,
    /// `~REGEX`, `!~REGEX`); comma-separated or repeated: all must match.
    #[arg(long, value_name = "RULES")]
    pub filter: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Matches,
    NotMatches,
}

/// Operators by spelling, longest first so `<=` is not read as `<`.
const OPS: &[(&str, Op)] = &[
    ("==", Op::Eq),
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("!~", Op::NotMatches),
    ("<", Op::Lt),
    (">", Op::Gt),
    ("~", Op::Matches),
];

/// One `--filter` rule.
#[derive(Debug, Clone)]
struct Rule {
    field: String,
    op: Op,
    value: String,
    /// For `~`/`!~`.
    regex: Option<Regex>,
    /// The value as a number, for numeric fields.
    number: Option<f64>,
}

/// One `--fields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Exact(String),
    Add(String),
    Remove(String),
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Exact(n) | Entry::Add(n) | Entry::Remove(n) => n,
        }
    }
}

/// `SOURCE:FIELD` as (Some(SOURCE), FIELD); a bare field as (None, FIELD).
/// Field names never hold a `:`.
fn split_source(name: &str) -> (Option<&str>, &str) {
    match name.split_once(':') {
        Some((s, f)) => (Some(s), f),
        None => (None, name),
    }
}

/// Parsed `--fields` and `--filter`.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    fields: Vec<Entry>,
    rules: Vec<Rule>,
}

impl Shape {
    /// Parses the flags; errors name the bad part and the valid syntax.
    pub fn new(args: &ShapeArgs) -> Result<Shape> {
        let mut fields = Vec::new();
        if let Some(spec) = &args.fields {
            for item in spec.split(',').map(str::trim) {
                let entry = if let Some(n) = item.strip_prefix('+') {
                    Entry::Add(n.to_string())
                } else if let Some(n) = item.strip_prefix('-') {
                    Entry::Remove(n.to_string())
                } else {
                    Entry::Exact(item.to_string())
                };
                if matches!(&entry, Entry::Exact(n) | Entry::Add(n) | Entry::Remove(n) if n.is_empty())
                {
                    bail!(
                        "--fields `{}`: empty field name; expected `a,b` or `+a,-b`",
                        escape::terminal(spec)
                    );
                }
                fields.push(entry);
            }
            let exact = fields.iter().any(|e| matches!(e, Entry::Exact(_)));
            let relative = fields.iter().any(|e| !matches!(e, Entry::Exact(_)));
            if exact && relative {
                bail!(
                    "--fields `{}`: mixes exact names with +/- changes; use either `a,b` or `+a,-b`",
                    escape::terminal(spec)
                );
            }
        }
        let mut rules = Vec::new();
        for arg in &args.filter {
            for text in split_rules(arg) {
                rules.push(parse_rule(&text)?);
            }
        }
        Ok(Shape { fields, rules })
    }

    /// The entries and rules that apply to data source `source`, whose
    /// fields are `fields`, with their `SOURCE:` prefixes removed: those
    /// naming it, and bare ones naming one of its fields (all bare ones
    /// when it is the only source).
    pub fn for_source(&self, source: &str, fields: &[Field], only: bool) -> Shape {
        let applies = |name: &str| match split_source(name) {
            (Some(s), _) => s == source,
            (None, f) => only || fields.iter().any(|x| x.name == f),
        };
        let strip = |name: &str| split_source(name).1.to_string();
        Shape {
            fields: self
                .fields
                .iter()
                .filter(|e| applies(e.name()))
                .map(|e| match e {
                    Entry::Exact(n) => Entry::Exact(strip(n)),
                    Entry::Add(n) => Entry::Add(strip(n)),
                    Entry::Remove(n) => Entry::Remove(strip(n)),
                })
                .collect(),
            rules: self
                .rules
                .iter()
                .filter(|r| applies(&r.field))
                .map(|r| Rule {
                    field: strip(&r.field),
                    ..r.clone()
                })
                .collect(),
        }
    }

    /// Checks the `SOURCE:` prefixes and bare names against the gadget's
    /// data sources (name, fields); errors name the valid sources or fields.
    pub fn check_sources(&self, sources: &[(&str, &[Field])]) -> Result<()> {
        let source_names = || {
            sources
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let names = self
            .fields
            .iter()
            .map(|e| ("--fields", e.name()))
            .chain(self.rules.iter().map(|r| ("--filter", r.field.as_str())));
        for (flag, name) in names {
            match split_source(name) {
                (Some(s), _) if !sources.iter().any(|(n, _)| *n == s) => bail!(
                    "{flag} `{}`: no data source `{}` in this gadget; its data sources: {}",
                    escape::terminal(name),
                    escape::terminal(s),
                    escape::terminal(&source_names())
                ),
                (None, f)
                    if sources.len() > 1
                        && !sources.iter().any(|(_, fs)| fs.iter().any(|x| x.name == f)) =>
                {
                    let each: Vec<String> = sources
                        .iter()
                        .map(|(n, fs)| {
                            let list: Vec<&str> = fs.iter().map(|x| x.name.as_str()).collect();
                            format!("{n}: {}", list.join(", "))
                        })
                        .collect();
                    bail!(
                        "{flag}: no field `{}` in any data source of this gadget; name one as SOURCE:FIELD ({})",
                        escape::terminal(f),
                        escape::terminal(&each.join("; "))
                    )
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether `--fields` names `field` (to show or to hide it).
    pub fn named(&self, field: &str) -> bool {
        self.fields
            .iter()
            .any(|e| matches!(e, Entry::Exact(n) | Entry::Add(n) | Entry::Remove(n) if n == field))
    }

    /// Whether `--fields` is set (JSON and YAML then carry only those fields).
    pub fn has_fields(&self) -> bool {
        !self.fields.is_empty()
    }

    /// The fields `--filter` rules read.
    pub fn filter_fields(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.field.as_str())
    }

    /// Whether any `--filter` rule is set (events must then be parsed).
    pub fn filters(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The columns to print from the header's fields (visible ones by
    /// default), after `--fields`; checks every name `--fields` and
    /// `--filter` use against the gadget's fields.
    pub fn columns(&mut self, all: &[Field]) -> Result<Vec<Field>> {
        let known = |name: &str| -> Result<&Field> {
            all.iter().find(|f| f.name == name).ok_or_else(|| {
                let names: Vec<&str> = all.iter().map(|f| f.name.as_str()).collect();
                let hint = crate::suggest::closest(name, names.iter().copied())
                    .map(|n| format!("did you mean `{n}`? "))
                    .unwrap_or_default();
                anyhow::anyhow!(
                    "no field `{}` in this gadget; {hint}its fields: {}",
                    escape::terminal(name),
                    escape::terminal(&names.join(", "))
                )
            })
        };
        for rule in &mut self.rules {
            let field = known(&rule.field).map_err(|e| anyhow::anyhow!("--filter: {e}"))?;
            if is_numeric(&field.kind) && rule.regex.is_none() {
                rule.number = Some(rule.value.parse::<f64>().map_err(|_| {
                    anyhow::anyhow!(
                        "--filter `{}{}{}`: {} is a number ({}); compare it with a number",
                        escape::terminal(&rule.field),
                        op_text(rule.op),
                        escape::terminal(&rule.value),
                        escape::terminal(&rule.field),
                        field.kind
                    )
                })?);
            }
        }
        let mut columns: Vec<Field> = if self.fields.iter().any(|e| matches!(e, Entry::Exact(_))) {
            Vec::new()
        } else {
            let mut v: Vec<Field> = all.iter().filter(|f| f.visible).cloned().collect();
            v.sort_by_key(|f| f.order);
            v
        };
        for entry in &self.fields {
            match entry {
                Entry::Exact(n) | Entry::Add(n) => {
                    let f = known(n).map_err(|e| anyhow::anyhow!("--fields: {e}"))?;
                    if !columns.iter().any(|c| c.name == f.name) {
                        columns.push(f.clone());
                    }
                }
                Entry::Remove(n) => {
                    known(n).map_err(|e| anyhow::anyhow!("--fields: {e}"))?;
                    columns.retain(|c| &c.name != n);
                }
            }
        }
        Ok(columns)
    }

    /// Whether an event (or a table row) passes every `--filter` rule.
    pub fn matches(&self, event: &serde_json::Value) -> bool {
        self.rules.iter().all(|r| r.matches(event.get(&r.field)))
    }
}

fn is_numeric(kind: &str) -> bool {
    matches!(
        kind,
        "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64" | "f32" | "f64"
    )
}

fn op_text(op: Op) -> &'static str {
    OPS.iter().find(|(_, o)| *o == op).map_or("", |(t, _)| t)
}

/// Splits a `--filter` value at commas not escaped as `\,`.
fn split_rules(arg: &str) -> Vec<String> {
    let mut rules = vec![String::new()];
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                rules.last_mut().unwrap().push(',');
                chars.next();
            }
            ',' => rules.push(String::new()),
            c => rules.last_mut().unwrap().push(c),
        }
    }
    rules
}

fn parse_rule(text: &str) -> Result<Rule> {
    let found = OPS
        .iter()
        .filter_map(|(spelling, op)| text.find(spelling).map(|at| (at, *spelling, *op)))
        // The leftmost operator; at one position, the longest spelling.
        .min_by_key(|(at, spelling, _)| (*at, std::cmp::Reverse(spelling.len())));
    let Some((at, spelling, op)) = found else {
        bail!(
            "--filter `{}`: no operator; expected FIELD==VALUE, !=, <, <=, >, >=, ~REGEX or !~REGEX",
            escape::terminal(text)
        );
    };
    let field = text[..at].trim().to_string();
    let value = text[at + spelling.len()..].to_string();
    if field.is_empty() {
        bail!(
            "--filter `{}`: no field name before `{spelling}`",
            escape::terminal(text)
        );
    }
    let regex = match op {
        Op::Matches | Op::NotMatches => Some(Regex::new(&value).map_err(|e| {
            anyhow::anyhow!(
                "--filter `{}`: bad regular expression: {}",
                escape::terminal(text),
                escape::message(&e.to_string())
            )
        })?),
        _ => None,
    };
    Ok(Rule {
        field,
        op,
        value,
        regex,
        number: None,
    })
}

impl Rule {
    fn matches(&self, v: Option<&serde_json::Value>) -> bool {
        use std::cmp::Ordering;
        let text = match v {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        if let Some(re) = &self.regex {
            return re.is_match(&text) == (self.op == Op::Matches);
        }
        let ordering = match (self.number, v.and_then(serde_json::Value::as_f64)) {
            (Some(want), Some(have)) => have.partial_cmp(&want),
            (Some(_), None) => None,
            (None, _) => Some(text.as_str().cmp(self.value.as_str())),
        };
        let Some(ord) = ordering else {
            return self.op == Op::Ne;
        };
        match self.op {
            Op::Eq => ord == Ordering::Equal,
            Op::Ne => ord != Ordering::Equal,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
            Op::Matches | Op::NotMatches => unreachable!("regex rules returned above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gadgetd_dbus::stream::{Alignment, Ellipsis};
    use serde_json::json;

    fn field(name: &str, kind: &str, visible: bool) -> Field {
        Field {
            name: name.into(),
            kind: kind.into(),
            width: 4,
            min_width: None,
            max_width: None,
            alignment: Alignment::Left,
            visible,
            order: 0,
            ellipsis: Ellipsis::End,
            description: String::new(),
        }
    }

    fn fields() -> Vec<Field> {
        vec![
            field("pid", "u32", true),
            field("comm", "string", true),
            field("flags", "i32", false),
            field("fname", "string", true),
        ]
    }

    fn shape(fields: Option<&str>, filter: &[&str]) -> Result<Shape> {
        Shape::new(&ShapeArgs {
            fields: fields.map(str::to_string),
            filter: filter.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn names(cols: &[Field]) -> Vec<&str> {
        cols.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn fields_set_add_and_remove_columns() {
        let cols = shape(None, &[]).unwrap().columns(&fields()).unwrap();
        assert_eq!(names(&cols), ["pid", "comm", "fname"]);
        let cols = shape(Some("fname,flags"), &[])
            .unwrap()
            .columns(&fields())
            .unwrap();
        assert_eq!(names(&cols), ["fname", "flags"]);
        let cols = shape(Some("+flags,-comm"), &[])
            .unwrap()
            .columns(&fields())
            .unwrap();
        assert_eq!(names(&cols), ["pid", "fname", "flags"]);
        let err = shape(Some("pid,fnmae"), &[])
            .unwrap()
            .columns(&fields())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "--fields: no field `fnmae` in this gadget; did you mean `fname`? its fields: pid, comm, flags, fname"
        );
        let err = shape(Some("pid,-comm"), &[]).unwrap_err().to_string();
        assert!(err.contains("mixes exact names with +/- changes"), "{err}");
        assert!(shape(Some("pid,,comm"), &[]).is_err());
    }

    #[test]
    fn filters_compare_numbers_text_and_regexes() {
        let ev = json!({"pid": 42, "comm": "cat", "flags": 524288, "fname": "/etc/passwd"});
        let check = |rules: &[&str]| {
            let mut s = shape(None, rules).unwrap();
            s.columns(&fields()).unwrap();
            s.matches(&ev)
        };
        for yes in [
            "pid==42",
            "pid!=41",
            "pid>9",
            "pid>=42",
            "pid<100",
            "pid<=42",
            "comm==cat",
            "comm!=dog",
            "fname~^/etc/",
            "fname!~shadow",
            "comm<dog",
            "pid==42,comm==cat",
        ] {
            assert!(check(&[yes]), "{yes} should match");
        }
        for no in [
            "pid==41",
            "pid>42",
            "pid<42",
            "comm==ca",
            "fname~^/usr",
            "fname!~pass",
            "pid==42,comm==dog",
        ] {
            assert!(!check(&[no]), "{no} should not match");
        }
        // Repeated flags all apply; `\,` is a literal comma.
        assert!(!check(&["pid==42", "comm==dog"]));
        let ev2 = json!({"fname": "a,b"});
        let mut s = shape(None, &["fname==a\\,b"]).unwrap();
        s.columns(&fields()).unwrap();
        assert!(s.matches(&ev2));
    }

    #[test]
    fn bad_filters_name_the_problem() {
        let err = |rules: &[&str]| match shape(None, rules) {
            Err(e) => e.to_string(),
            Ok(mut s) => s.columns(&fields()).unwrap_err().to_string(),
        };
        assert_eq!(
            err(&["pid"]),
            "--filter `pid`: no operator; expected FIELD==VALUE, !=, <, <=, >, >=, ~REGEX or !~REGEX"
        );
        assert_eq!(err(&["==1"]), "--filter `==1`: no field name before `==`");
        assert!(err(&["comm~(["]).starts_with("--filter `comm~([`: bad regular expression"));
        assert_eq!(
            err(&["pdi==1"]),
            "--filter: no field `pdi` in this gadget; did you mean `pid`? its fields: pid, comm, flags, fname"
        );
        assert_eq!(
            err(&["pid>abc"]),
            "--filter `pid>abc`: pid is a number (u32); compare it with a number"
        );
    }
}
