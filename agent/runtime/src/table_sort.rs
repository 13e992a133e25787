//! `RunOptions::sort` and `max_rows` split among a gadget's table sources (toppers and
//! snapshotters): `SOURCE:FIELD` (or `-SOURCE:FIELD`, `SOURCE:-FIELD`) sorts
//! that source; a bare `FIELD` sorts the only table source, or, with
//! several, every one whose rows have the field.

use std::collections::BTreeMap;

use super::datasource::{DataSource, Kind};
use super::error::{GadgetError, Result};
use super::layout::Layout;
use super::topper::SortSpec;

/// One sort order per source, in the sources' order: toppers always have
/// one (their default without a spec), snapshotters when asked, others none.
/// Errors name the entry and the valid sources or fields.
pub fn per_source(sources: &[DataSource], spec: Option<&str>) -> Result<Vec<Option<SortSpec>>> {
    let tables: Vec<&DataSource> = sources.iter().filter(|s| s.kind.is_table()).collect();
    let mut specs: Vec<Vec<String>> = vec![Vec::new(); sources.len()];
    let index = |name: &str| sources.iter().position(|s| s.name == name);
    for entry in spec.unwrap_or("").split(',').map(str::trim) {
        if entry.is_empty() {
            continue;
        }
        let (minus, rest) = match entry.strip_prefix('-') {
            Some(r) => ("-", r),
            None => ("", entry),
        };
        match rest.split_once(':') {
            Some((source, field)) => {
                let i = index(source)
                    .filter(|&i| sources[i].kind.is_table())
                    .ok_or_else(|| {
                        bad(
                            entry,
                            format!(
                                "names no data source that prints tables ({})",
                                names(&tables)
                            ),
                        )
                    })?;
                specs[i].push(format!("{minus}{field}"));
            }
            None if tables.len() <= 1 => {
                if let Some(t) = tables.first() {
                    specs[index(&t.name).unwrap_or(0)].push(entry.to_string());
                }
            }
            None => {
                let field = rest;
                let mut found = false;
                for t in &tables {
                    if t.layout.fields.iter().any(|f| f.name == field) {
                        specs[index(&t.name).unwrap_or(0)].push(entry.to_string());
                        found = true;
                    }
                }
                if !found {
                    return Err(bad(
                        entry,
                        format!(
                            "names a field no table source has (prefix a field with its source, SOURCE:FIELD; table sources: {})",
                            names(&tables)
                        ),
                    ));
                }
            }
        }
    }
    sources
        .iter()
        .zip(specs)
        .map(|(s, spec)| {
            let spec = spec.join(",");
            let parsed = match &s.kind {
                Kind::Topper(_, key, value) => Some(SortSpec::parse(&spec, key, value)),
                Kind::Snapshotter(_) if !spec.is_empty() => {
                    Some(SortSpec::parse(&spec, &empty_layout(), &s.layout))
                }
                _ => None,
            };
            parsed.transpose().map_err(|e| {
                if sources.len() > 1 {
                    e.in_datasource(&s.name)
                } else {
                    e
                }
            })
        })
        .collect()
}

/// The row limit of each source, in the sources' order: `per_source`'s
/// entry, else `all`; `None` for sources that print no tables. A name that
/// is no table source is an error naming the table sources.
pub fn max_rows(
    sources: &[DataSource],
    all: Option<usize>,
    per_source: &BTreeMap<String, usize>,
) -> Result<Vec<Option<usize>>> {
    let tables: Vec<&DataSource> = sources.iter().filter(|s| s.kind.is_table()).collect();
    if let Some(name) = per_source
        .keys()
        .find(|n| !tables.iter().any(|t| &t.name == *n))
    {
        return Err(GadgetError::Param {
            name: "max-rows".into(),
            reason: format!(
                "`{name}:N` names no data source that prints tables ({})",
                names(&tables)
            ),
        });
    }
    Ok(sources
        .iter()
        .map(|s| match s.kind.is_table() {
            true => per_source.get(&s.name).copied().or(all),
            false => None,
        })
        .collect())
}

/// `parameter `sort`: `ENTRY` REASON`.
fn bad(entry: &str, reason: String) -> GadgetError {
    GadgetError::Param {
        name: "sort".into(),
        reason: format!("`{entry}` {reason}"),
    }
}

fn names(tables: &[&DataSource]) -> String {
    if tables.is_empty() {
        return "none".into();
    }
    tables
        .iter()
        .map(|t| format!("`{}`", t.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn empty_layout() -> Layout {
    Layout {
        type_name: String::new(),
        size: 0,
        fields: Vec::new(),
    }
}
