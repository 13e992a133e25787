//! Registry credentials, per registry, in docker's `config.json` format
//! (`{"auths":{"REGISTRY":{"auth":"base64(user:password)"}}}`), in a file
//! only root can read. Written atomically.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::error::{ImageError, IoContext, Result};

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    /// Keys other tools keep in the same file survive our rewrites.
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    auth: String,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

pub struct Credentials {
    path: PathBuf,
}

impl Credentials {
    pub fn new(path: &Path) -> Credentials {
        Credentials {
            path: path.to_path_buf(),
        }
    }

    fn load(&self) -> Result<AuthFile> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                ImageError::Invalid(format!(
                    "{} is not a docker config.json: {e}",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuthFile::default()),
            Err(e) => Err(e).ctx(|| format!("cannot read {}", self.path.display())),
        }
    }

    fn save(&self, file: &AuthFile) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(file).expect("serializes");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .ctx(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .ctx(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path).ctx(|| format!("cannot write {}", self.path.display()))
    }

    /// (user, password) stored for `registry`.
    pub fn get(&self, registry: &str) -> Result<Option<(String, String)>> {
        let file = self.load()?;
        let Some(entry) = file.auths.get(registry) else {
            return Ok(None);
        };
        let decoded = STANDARD
            .decode(entry.auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
            });
        match decoded {
            Some(c) => Ok(Some(c)),
            None => Err(ImageError::Invalid(format!(
                "the stored credentials for {registry} in {} are malformed; run `gadgetctl login {registry}` again",
                self.path.display()
            ))),
        }
    }

    pub fn set(&self, registry: &str, user: &str, password: &str) -> Result<()> {
        let mut file = self.load()?;
        let entry = file.auths.entry(registry.to_string()).or_default();
        entry.auth = STANDARD.encode(format!("{user}:{password}"));
        self.save(&file)
    }

    /// Forgets `registry`; returns whether anything was stored.
    pub fn remove(&self, registry: &str) -> Result<bool> {
        let mut file = self.load()?;
        let had = file.auths.remove(registry).is_some();
        if had {
            self.save(&file)?;
        }
        Ok(had)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn credentials_round_trip_in_docker_format_readable_by_root_only() {
        let dir = std::env::temp_dir().join(format!("gadgetd-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = Credentials::new(&dir.join("auth.json"));
        assert_eq!(c.get("r.io").unwrap(), None);
        c.set("r.io", "gadget", "s3:cret").unwrap();
        assert_eq!(
            c.get("r.io").unwrap(),
            Some(("gadget".into(), "s3:cret".into()))
        );
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("auth.json")).unwrap()).unwrap();
        assert_eq!(
            v["auths"]["r.io"]["auth"],
            STANDARD.encode("gadget:s3:cret")
        );
        let mode = std::fs::metadata(dir.join("auth.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(c.remove("r.io").unwrap());
        assert!(!c.remove("r.io").unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
