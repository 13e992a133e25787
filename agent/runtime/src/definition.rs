//! The optional definition file (YAML): names, docs, column attributes and
//! parameter descriptions. Without it everything is derived from BTF.

use serde::Deserialize;

use gadgetd_dbus::stream::{Alignment, Ellipsis};

use super::error::{GadgetError, Result};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Definition {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub documentation: Option<String>,
    #[serde(default)]
    pub columns: Vec<ColumnDef>,
    #[serde(default)]
    pub params: Vec<ParamDef>,
}

/// Column attributes of one event field (the seed's columninfo).
#[derive(Debug, Clone, Default, Deserialize)]
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
}

#[derive(Debug, Clone, Default, Deserialize)]
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

impl Definition {
    pub fn parse(yaml: &str) -> Result<Definition> {
        if yaml.trim().is_empty() {
            return Ok(Definition::default());
        }
        serde_saphyr::from_str(yaml).map_err(|e| GadgetError::Definition(e.to_string()))
    }

    pub fn column(&self, field: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == field)
    }

    pub fn param(&self, key: &str) -> Option<&ParamDef> {
        self.params.iter().find(|p| p.key == key)
    }
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
}
