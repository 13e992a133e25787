//! The agent's registry settings file, `/etc/gadgetd/registries.toml`
//! (`gadgetd --registries-config FILE`):
//!
//! ```toml
//! # Where bare names (`trace_open`) resolve: a registry and repository prefix.
//! default-registry = "registry.example.com/gadgets"
//! # Registries that may be used over plain HTTP (HOST[:PORT]).
//! insecure-registries = ["registry.lan:5000"]
//! ```
//!
//! `--default-registry` (or `GADGETD_DEFAULT_REGISTRY`) wins over the
//! file; `--insecure-registry` flags add to its list. A missing file means
//! the built-in defaults. podman's `/etc/containers/registries.conf` is not
//! read: its `unqualified-search-registries` resolve short names to
//! container images (`busybox` → `docker.io/library/busybox`), while a bare
//! gadget name means a gadget of the default prefix (docs/images.md).

use std::path::Path;

use serde::Deserialize;

use super::error::{ImageError, Result};
use super::reference;

/// Where the agent looks for the file unless told otherwise.
pub const DEFAULT_PATH: &str = "/etc/gadgetd/registries.toml";

/// The file's settings; every key is optional.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RegistriesConfig {
    /// Registry and repository prefix bare names resolve to.
    pub default_registry: Option<String>,
    /// `HOST[:PORT]` registries that may be used over plain HTTP.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
}

/// Reads `path`; a missing file gives the defaults. Errors name the file,
/// the line and what to fix.
pub fn load(path: &Path) -> Result<RegistriesConfig> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => {
            return Err(ImageError::Io {
                context: format!("cannot read the registry settings {}", path.display()),
                source: e,
            });
        }
    };
    let config: RegistriesConfig = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| format!(" (line {})", text[..s.start].matches('\n').count() + 1))
            .unwrap_or_default();
        ImageError::Invalid(format!(
            "registry settings {}{line}: {}; the keys are default-registry (a string) and insecure-registries (a list of strings)",
            path.display(),
            e.message()
        ))
    })?;
    if let Some(prefix) = &config.default_registry {
        check_prefix(prefix, &format!("default-registry in {}", path.display()))?;
    }
    Ok(config)
}

/// The default prefix and insecure registries the agent uses: the flag's
/// prefix over the file's over the built-in one; both lists of insecure
/// registries. `from_flag` is `--default-registry` (or its variable).
pub fn resolve(
    from_flag: Option<&str>,
    flag_insecure: &[String],
    file: &Path,
) -> Result<(String, Vec<String>)> {
    let config = load(file)?;
    let prefix = match from_flag {
        Some(p) => {
            check_prefix(p, "--default-registry")?;
            p.to_string()
        }
        None => config
            .default_registry
            .unwrap_or_else(|| reference::DEFAULT_PREFIX.to_string()),
    };
    let mut insecure = config.insecure_registries;
    insecure.extend(flag_insecure.iter().cloned());
    Ok((prefix, insecure))
}

/// A default registry prefix must make a valid reference of a bare name.
fn check_prefix(prefix: &str, source: &str) -> Result<()> {
    match reference::normalize("gadget", prefix) {
        Ok(_) => Ok(()),
        Err(ImageError::BadReference { reason, .. }) => Err(ImageError::Invalid(format!(
            "{source} `{prefix}` is not a registry prefix (REGISTRY[:PORT][/PATH]): {reason}"
        ))),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn file(tag: &str, text: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gadgetd-regconf-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("registries.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn the_flag_wins_over_the_file_over_the_built_in_prefix() {
        let f = file(
            "order",
            "default-registry = \"Registry.Example.com:443/gadgets\"\ninsecure-registries = [\"lan:5000\"]\n",
        );
        let (p, insecure) = resolve(None, &["other:80".into()], &f).unwrap();
        assert_eq!(p, "Registry.Example.com:443/gadgets");
        assert_eq!(insecure, ["lan:5000", "other:80"]);
        let r = reference::normalize("trace_open", &p).unwrap();
        assert_eq!(
            reference::store_name(&r),
            "registry.example.com/gadgets/trace_open:latest"
        );
        let (p, _) = resolve(Some("localhost:5000/g"), &[], &f).unwrap();
        assert_eq!(p, "localhost:5000/g");
        let missing = f.with_file_name("none.toml");
        let (p, insecure) = resolve(None, &[], &missing).unwrap();
        assert_eq!((p.as_str(), insecure.len()), (reference::DEFAULT_PREFIX, 0));
        std::fs::remove_dir_all(f.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_bad_file_or_prefix_is_named_with_the_rule() {
        let f = file("bad", "\ndefault-registery = \"x\"\n");
        let e = load(&f).unwrap_err().to_string();
        assert!(
            e.contains("registries.toml (line 2): unknown field `default-registery`"),
            "{e}"
        );
        assert!(e.contains("the keys are default-registry"), "{e}");
        std::fs::write(&f, "default-registry = \"r.io/Gadgets\"\n").unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(
            e.contains("default-registry in ")
                && e.contains("`r.io/Gadgets` is not a registry prefix"),
            "{e}"
        );
        assert!(e.contains("must be lowercase (`Gadgets` is not)"), "{e}");
        let e = resolve(Some("r.io:99999"), &[], &f.with_file_name("none"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--default-registry `r.io:99999` is not a registry prefix"),
            "{e}"
        );
        std::fs::remove_dir_all(f.parent().unwrap()).unwrap();
    }
}
