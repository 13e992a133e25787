//! The optional definition file (`gadget.yaml`): names, docs, column
//! attributes and parameter descriptions. Without it everything is derived
//! from BTF. Two formats are read into the same [`Definition`]:
//!
//! - the seed's: `name`, `description`, `documentation`, a `columns` list
//!   and a `params` list (`key`, `name`, `description`, `default`,
//!   `possibleValues`);
//! - Inspektor Gadget's: `name`, `description`, `homepageURL`,
//!   `documentationURL`, `sourceURL`, `annotations`,
//!   `datasources.<ds>.annotations`, `datasources.<ds>.fields.<f>.annotations`
//!   (`description`, `template`, `columns.*`, `json.skip`, `value.one-of`,
//!   `metrics.*`, ...), `params.ebpf.<var>` (`key`, `defaultValue`,
//!   `description`, `possibleValues`), and the older `ebpfParams.<var>`,
//!   `tracers` and `structs.<s>.fields[]` forms.
//!
//! Keys neither format knows (`operator`, `paramDefaults`, ...) are kept in
//! [`Definition::extra`] and otherwise ignored; they are never an error.

use std::collections::BTreeMap;

use serde::Deserialize;

use gadgetd_dbus::stream::{Alignment, Ellipsis};

use super::error::{GadgetError, Result};

#[derive(Debug, Clone, Default)]
pub struct Definition {
    pub name: Option<String>,
    pub description: Option<String>,
    pub documentation: Option<String>,
    pub homepage_url: Option<String>,
    pub documentation_url: Option<String>,
    pub source_url: Option<String>,
    /// Gadget-wide annotations (Inspektor Gadget's `annotations`).
    pub annotations: BTreeMap<String, String>,
    /// Column attributes: the seed's `columns`, the older `structs`, and
    /// (after [`Definition::select_datasource`]) the chosen data source's fields.
    pub columns: Vec<ColumnDef>,
    pub params: Vec<ParamDef>,
    /// Inspektor Gadget's `datasources`, as written.
    pub datasources: BTreeMap<String, DataSourceDef>,
    /// The names under `datasources`, in the file's order (the order the
    /// gadget's data sources are listed and streamed in).
    pub datasource_order: Vec<String>,
    /// Top-level keys of neither format, kept verbatim.
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Column attributes of one event field (the seed's columninfo, or an
/// Inspektor Gadget field's annotations).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnDef {
    pub name: String,
    pub width: Option<u32>,
    pub min_width: Option<u32>,
    pub max_width: Option<u32>,
    pub alignment: Option<Alignment>,
    pub visible: Option<bool>,
    pub order: Option<i32>,
    pub ellipsis: Option<Ellipsis>,
    pub description: Option<String>,
    /// `columns.hex`: print integers in hexadecimal.
    #[serde(default)]
    pub hex: Option<bool>,
    /// `columns.precision`: digits after the point for floats.
    #[serde(default)]
    pub precision: Option<u32>,
    /// `json.skip`: leave the field out of JSON output.
    #[serde(default)]
    pub json_skip: Option<bool>,
    /// `value.one-of`: the values the field can have.
    #[serde(default)]
    pub one_of: Vec<String>,
    /// Every annotation as written (Inspektor Gadget fields), for the ones
    /// with no attribute above (`metrics.*`, `columns.alias`, ...).
    #[serde(skip)]
    pub annotations: BTreeMap<String, String>,
    /// False for Inspektor Gadget fields: naming no field is a warning, as
    /// in Inspektor Gadget, not an error.
    #[serde(skip, default = "strict_default")]
    pub strict: bool,
}

fn strict_default() -> bool {
    true
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParamDef {
    /// The `const volatile` variable.
    pub key: String,
    /// The flag users type (`--NAME`); default: the key.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub possible_values: Vec<String>,
}

/// One of Inspektor Gadget's `datasources.<name>`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct DataSourceDef {
    #[serde(default, deserialize_with = "null_is_default")]
    pub annotations: BTreeMap<String, Scalar>,
    /// A field may be listed with no annotations (`fname:`).
    #[serde(default, deserialize_with = "null_is_default")]
    pub fields: BTreeMap<String, Option<FieldDef>>,
}

/// One of Inspektor Gadget's `datasources.<ds>.fields.<name>`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct FieldDef {
    #[serde(default, deserialize_with = "null_is_default")]
    pub annotations: BTreeMap<String, Scalar>,
}

/// `key:` with nothing after it (YAML null) reads as the empty value.
fn null_is_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An annotation value: YAML lets `columns.width: 8` be a number and
/// `columns.hidden: true` a boolean; Inspektor Gadget reads them as strings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            Bool(bool),
            Int(i64),
            Float(f64),
            Str(String),
        }
        Ok(Scalar(match Any::deserialize(d)? {
            Any::Bool(b) => b.to_string(),
            Any::Int(i) => i.to_string(),
            Any::Float(f) => f.to_string(),
            Any::Str(s) => s,
        }))
    }
}

/// `params.ebpf.<var>` / `ebpfParams.<var>` (Inspektor Gadget's ParamDesc).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IgParam {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    default_value: Option<Scalar>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    possible_values: Vec<Scalar>,
}

/// `structs.<name>.fields[]` (Inspektor Gadget's format before data sources).
#[derive(Debug, Clone, Default, Deserialize)]
struct OldStruct {
    #[serde(default)]
    fields: Vec<OldField>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct OldField {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, Scalar>,
}

/// The seed's `params` is a list; Inspektor Gadget's a map of groups.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawParams {
    Seed(Vec<ParamDef>),
    Groups(BTreeMap<String, Option<BTreeMap<String, IgParam>>>),
}

/// A YAML mapping in its written order.
#[derive(Debug)]
struct InOrder<V>(Vec<(String, V)>);

impl<V> Default for InOrder<V> {
    fn default() -> Self {
        InOrder(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for InOrder<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = InOrder<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<InOrder<V>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, V>()? {
                    entries.push(entry);
                }
                Ok(InOrder(entries))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    documentation: Option<String>,
    #[serde(default, rename = "homepageURL")]
    homepage_url: Option<String>,
    #[serde(default, rename = "documentationURL")]
    documentation_url: Option<String>,
    #[serde(default, rename = "sourceURL")]
    source_url: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, Scalar>,
    #[serde(default)]
    columns: Vec<ColumnDef>,
    #[serde(default)]
    params: Option<RawParams>,
    #[serde(default, alias = "dataSources")]
    datasources: InOrder<Option<DataSourceDef>>,
    #[serde(default)]
    ebpf_params: BTreeMap<String, IgParam>,
    #[serde(default)]
    structs: BTreeMap<String, OldStruct>,
    #[serde(flatten)]
    extra: BTreeMap<String, serde_json::Value>,
}

impl Definition {
    /// Parses either format. Malformed YAML, or a known key with the wrong
    /// shape, is an error naming it; unknown keys are kept.
    pub fn parse(yaml: &str) -> Result<Definition> {
        if yaml.trim().is_empty() {
            return Ok(Definition::default());
        }
        let raw: Raw =
            serde_saphyr::from_str(yaml).map_err(|e| GadgetError::Definition(e.to_string()))?;
        let mut def = Definition {
            name: raw.name,
            description: raw.description,
            documentation: raw.documentation,
            homepage_url: raw.homepage_url,
            documentation_url: raw.documentation_url,
            source_url: raw.source_url,
            annotations: raw.annotations.into_iter().map(|(k, v)| (k, v.0)).collect(),
            columns: raw.columns,
            params: Vec::new(),
            datasource_order: raw.datasources.0.iter().map(|(k, _)| k.clone()).collect(),
            datasources: raw
                .datasources
                .0
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
            extra: raw.extra,
        };
        let mut ig_params: Vec<(String, IgParam)> = raw.ebpf_params.into_iter().collect();
        match raw.params {
            Some(RawParams::Seed(list)) => def.params = list,
            Some(RawParams::Groups(groups)) => {
                for (group, params) in groups {
                    // Only eBPF parameters are the object's; other groups
                    // (operators', wasm's) are kept for later and ignored.
                    if group == "ebpf" {
                        ig_params.extend(params.unwrap_or_default());
                    }
                }
            }
            None => {}
        }
        for (var, p) in ig_params {
            if def.params.iter().any(|d| d.key == var) {
                continue; // params.ebpf wins over the older ebpfParams
            }
            def.params.push(ParamDef {
                key: var,
                name: p.key.filter(|k| !k.is_empty()),
                description: p.description.filter(|d| !d.is_empty()),
                default: p.default_value.map(|d| d.0).filter(|d| !d.is_empty()),
                possible_values: p.possible_values.into_iter().map(|v| v.0).collect(),
            });
        }
        for (struct_name, s) in raw.structs {
            for f in s.fields {
                let mut annotations: BTreeMap<String, String> = f
                    .attributes
                    .into_iter()
                    .map(|(k, v)| (format!("columns.{}", k.to_lowercase()), v.0))
                    .collect();
                if let Some(d) = f.description {
                    annotations.insert("description".into(), d);
                }
                let col = column_from_annotations(&f.name, annotations)
                    .map_err(|e| GadgetError::Definition(format!("structs.{struct_name}.{e}")))?;
                def.columns.push(col);
            }
        }
        Ok(def)
    }

    /// Adds the column attributes of Inspektor Gadget's data source
    /// `source` (the one this run streams). Returns warnings: the file
    /// describes data sources but none by that name.
    pub fn select_datasource(&mut self, source: &str) -> Result<Vec<String>> {
        let Some(ds) = self.datasources.get(source).cloned() else {
            if self.datasources.is_empty() {
                return Ok(Vec::new());
            }
            return Ok(vec![format!(
                "gadget.yaml describes data sources {} but the gadget's is `{source}`; their field annotations are not used",
                self.datasources
                    .keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )]);
        };
        for (name, field) in ds.fields {
            let annotations = field
                .unwrap_or_default()
                .annotations
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            let col = column_from_annotations(&name, annotations)
                .map_err(|e| GadgetError::Definition(format!("datasources.{source}.{e}")))?;
            // A seed column entry for the same field keeps its own attributes.
            if !self.columns.iter().any(|c| c.name == name) {
                self.columns.push(col);
            }
        }
        Ok(Vec::new())
    }

    pub fn column(&self, field: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == field)
    }

    pub fn param(&self, key: &str) -> Option<&ParamDef> {
        self.params.iter().find(|p| p.key == key)
    }
}

/// Inspektor Gadget's field templates: attributes a field gets unless its
/// own annotations say otherwise.
fn template(name: &str) -> &'static [(&'static str, &'static str)] {
    match name {
        "timestamp" => &[
            ("columns.width", "35"),
            ("columns.maxwidth", "35"),
            ("columns.ellipsis", "end"),
        ],
        "node" | "pod" => &[("columns.width", "30"), ("columns.ellipsis", "middle")],
        "container" | "namespace" | "containerImageName" | "containerImageDigest" => {
            &[("columns.width", "30")]
        }
        "containerStartedAt" => &[("columns.hidden", "true"), ("columns.width", "35")],
        "comm" => &[("description", "Process name"), ("columns.maxwidth", "16")],
        "pcomm" => &[
            ("description", "The process name of the parent process"),
            ("columns.maxwidth", "16"),
        ],
        "pid" => &[("columns.minwidth", "7"), ("columns.alignment", "right")],
        "uid" | "gid" => &[("columns.minwidth", "8"), ("columns.alignment", "right")],
        "ns" => &[
            ("columns.hidden", "true"),
            ("columns.width", "12"),
            ("columns.alignment", "right"),
        ],
        "l4endpoint" => &[
            ("columns.minwidth", "22"),
            ("columns.width", "40"),
            ("columns.maxwidth", "52"),
        ],
        "syscall" => &[("columns.width", "18"), ("columns.maxwidth", "28")],
        "errorString" => &[("columns.width", "12")],
        _ => &[],
    }
}

/// Reads a field's annotations into column attributes. A known annotation
/// with a value of the wrong kind (`columns.width: wide`) is an error
/// naming the field and the annotation; unknown annotations are kept.
fn column_from_annotations(
    field: &str,
    mut annotations: BTreeMap<String, String>,
) -> std::result::Result<ColumnDef, String> {
    if let Some(t) = annotations.get("template").cloned() {
        for (k, v) in template(&t) {
            annotations
                .entry(k.to_string())
                .or_insert_with(|| v.to_string());
        }
    }
    let bad = |key: &str, value: &str, expected: &str| {
        format!("fields.{field}: annotation `{key}: {value}` is not {expected}")
    };
    let get = |key: &str| annotations.get(key).map(|v| v.trim());
    let uint = |key: &str| -> std::result::Result<Option<u32>, String> {
        get(key)
            .map(|v| v.parse().map_err(|_| bad(key, v, "a whole number")))
            .transpose()
    };
    let boolean = |key: &str| -> std::result::Result<Option<bool>, String> {
        get(key)
            .map(|v| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(bad(key, v, "true or false")),
            })
            .transpose()
    };
    let alignment = get("columns.alignment")
        .map(|v| match v {
            "left" => Ok(Alignment::Left),
            "right" => Ok(Alignment::Right),
            _ => Err(bad("columns.alignment", v, "left or right")),
        })
        .transpose()?;
    let ellipsis = get("columns.ellipsis")
        .map(|v| match v {
            "end" => Ok(Ellipsis::End),
            "start" => Ok(Ellipsis::Start),
            "middle" => Ok(Ellipsis::Middle),
            "none" => Ok(Ellipsis::None),
            _ => Err(bad("columns.ellipsis", v, "start, middle, end or none")),
        })
        .transpose()?;
    Ok(ColumnDef {
        name: field.to_string(),
        width: uint("columns.width")?,
        min_width: uint("columns.minwidth")?,
        max_width: uint("columns.maxwidth")?,
        alignment,
        visible: boolean("columns.hidden")?.map(|hidden| !hidden),
        order: None,
        ellipsis,
        description: get("description").map(str::to_string),
        hex: boolean("columns.hex")?,
        precision: uint("columns.precision")?,
        json_skip: boolean("json.skip")?,
        one_of: get("value.one-of")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        annotations,
        strict: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_columns_and_params() {
        let def = Definition::parse(
            "name: trace open\ncolumns:\n  - name: pid\n    width: 7\n    alignment: right\n  - name: fname\n    maxWidth: 40\nparams:\n  - key: targ_pid\n    description: only this pid\n",
        )
        .unwrap();
        assert_eq!(def.name.as_deref(), Some("trace open"));
        assert_eq!(def.column("pid").unwrap().alignment, Some(Alignment::Right));
        assert_eq!(def.column("fname").unwrap().max_width, Some(40));
        assert!(def.column("pid").unwrap().strict);
        assert_eq!(
            def.param("targ_pid").unwrap().description.as_deref(),
            Some("only this pid")
        );
    }

    #[test]
    fn malformed_yaml_names_the_problem() {
        let err = Definition::parse("columns: [name: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("definition file:"), "{err}");
        let err = Definition::parse("columns:\n  - width: 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("name"), "{err}");
    }

    const IG_YAML: &str = r#"
name: trace open
description: trace open files
homepageURL: https://inspektor-gadget.io/
documentationURL: https://example.org/docs/trace_open
sourceURL: https://example.org/src/trace_open
annotations:
  cli.default-output-mode: columns
datasources:
  open:
    annotations:
      cli.clear-screen-before: "true"
    fields:
      flags_raw:
        annotations:
          columns.hidden: true
      fd:
        annotations:
          description: File descriptor
          columns.minwidth: 2
          columns.maxwidth: 3
          columns.alignment: right
      fname:
        annotations:
          columns.width: 32
          columns.ellipsis: start
          json.skip: "true"
          value.one-of: "a, b,c"
          metrics.type: key
      comm:
        annotations:
          template: comm
  other:
    fields:
      x:
        annotations:
          columns.width: 4
params:
  ebpf:
    targ_failed:
      key: failed
      defaultValue: "false"
      description: Show only failed events
    level:
      key: level
      defaultValue: 2
      possibleValues: [1, 2, 3]
  operator:
    oci:
      key: x
operator:
  ebpf:
    map-fetch-interval: 1s
paramDefaults:
  operator.oci.ebpf.map-fetch-interval: 2s
some-future-key: [1, 2]
"#;

    #[test]
    fn reads_inspektor_gadget_metadata() {
        let mut def = Definition::parse(IG_YAML).unwrap();
        assert_eq!(def.name.as_deref(), Some("trace open"));
        assert_eq!(
            def.homepage_url.as_deref(),
            Some("https://inspektor-gadget.io/")
        );
        assert_eq!(
            def.documentation_url.as_deref(),
            Some("https://example.org/docs/trace_open")
        );
        assert_eq!(
            def.source_url.as_deref(),
            Some("https://example.org/src/trace_open")
        );
        assert_eq!(def.annotations["cli.default-output-mode"], "columns");
        assert_eq!(
            def.datasources["open"].annotations["cli.clear-screen-before"],
            Scalar("true".into())
        );
        // Parameters: renamed flag, default, description, possible values (numbers read as text).
        assert_eq!(
            def.param("targ_failed").unwrap(),
            &ParamDef {
                key: "targ_failed".into(),
                name: Some("failed".into()),
                description: Some("Show only failed events".into()),
                default: Some("false".into()),
                possible_values: vec![],
            }
        );
        assert_eq!(def.param("level").unwrap().default.as_deref(), Some("2"));
        assert_eq!(def.param("level").unwrap().possible_values, ["1", "2", "3"]);
        assert!(
            def.param("x").is_none(),
            "operator params are not eBPF params"
        );
        // Unknown keys are kept.
        for key in ["operator", "paramDefaults", "some-future-key"] {
            assert!(def.extra.contains_key(key), "{key}: {:?}", def.extra.keys());
        }

        // Fields apply once the data source is chosen, and only its own.
        assert!(def.column("fd").is_none());
        assert!(def.select_datasource("open").unwrap().is_empty());
        assert!(def.column("x").is_none());
        assert_eq!(def.column("flags_raw").unwrap().visible, Some(false));
        let fd = def.column("fd").unwrap();
        assert_eq!(
            (
                fd.min_width,
                fd.max_width,
                fd.alignment,
                fd.description.as_deref()
            ),
            (
                Some(2),
                Some(3),
                Some(Alignment::Right),
                Some("File descriptor")
            )
        );
        assert!(!fd.strict);
        let fname = def.column("fname").unwrap();
        assert_eq!(fname.width, Some(32));
        assert_eq!(fname.ellipsis, Some(Ellipsis::Start));
        assert_eq!(fname.json_skip, Some(true));
        assert_eq!(fname.one_of, ["a", "b", "c"]);
        assert_eq!(fname.annotations["metrics.type"], "key");
        let comm = def.column("comm").unwrap();
        assert_eq!(comm.max_width, Some(16));
        assert_eq!(comm.description.as_deref(), Some("Process name"));
    }

    #[test]
    fn a_datasource_that_is_not_the_gadgets_is_a_warning() {
        let mut def = Definition::parse(IG_YAML).unwrap();
        let warnings = def.select_datasource("exec").unwrap();
        assert_eq!(
            warnings,
            [
                "gadget.yaml describes data sources `open`, `other` but the gadget's is `exec`; their field annotations are not used"
            ]
        );
        assert!(def.column("fd").is_none());
    }

    #[test]
    fn empty_entries_are_empty_not_errors() {
        // As in Inspektor Gadget's snapshot_process and ttysnoop.
        let mut def =
            Definition::parse("---\ndatasources:\n  processes:\n    fields:\nparams:\n  ebpf:\n")
                .unwrap();
        assert!(def.select_datasource("processes").unwrap().is_empty());
        let mut def = Definition::parse(
            "datasources:\n  tty:\n    annotations:\n    fields:\n      len:\n      buf:\n        annotations:\n          columns.width: 32\n",
        )
        .unwrap();
        def.select_datasource("tty").unwrap();
        assert_eq!(def.column("buf").unwrap().width, Some(32));
        assert_eq!(def.column("len").unwrap().width, None);
    }

    #[test]
    fn reads_the_older_forms() {
        let def = Definition::parse(
            "name: old\nebpfParams:\n  targ_pid:\n    key: pid\n    description: only this\ntracers:\n  open:\n    mapName: events\n    structName: event\nstructs:\n  event:\n    fields:\n    - name: pid\n      description: process id\n      attributes:\n        width: 7\n        alignment: right\n        hidden: false\n",
        )
        .unwrap();
        assert_eq!(def.param("targ_pid").unwrap().name.as_deref(), Some("pid"));
        let pid = def.column("pid").unwrap();
        assert_eq!(
            (
                pid.width,
                pid.alignment,
                pid.visible,
                pid.description.as_deref()
            ),
            (
                Some(7),
                Some(Alignment::Right),
                Some(true),
                Some("process id")
            )
        );
        assert!(def.extra.contains_key("tracers"));
    }

    #[test]
    fn a_bad_annotation_names_field_and_annotation() {
        let mut def = Definition::parse(
            "datasources:\n  open:\n    fields:\n      fd:\n        annotations:\n          columns.width: wide\n",
        )
        .unwrap();
        let err = def.select_datasource("open").unwrap_err().to_string();
        assert_eq!(
            err,
            "definition file: datasources.open.fields.fd: annotation `columns.width: wide` is not a whole number"
        );
        let err = Definition::parse("datasources:\n  open:\n    fields: [1, 2]\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("definition file:"), "{err}");
    }
}
