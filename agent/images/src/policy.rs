//! What may run: the admin's policy, read from a drop-in directory
//! (`/etc/gadgetd/policy.d/*.toml`, `gadgetd --policy-dir DIR`), files
//! merged in name order:
//!
//! ```toml
//! verify-image = true            # default: on when any [[trust]] key is configured
//! allow-unsigned-objects = false # RunObject (.o files, gadget authors); default: on
//!                                # only when nothing is verified or restricted
//! allowed = [                    # default: every image (that passes verification)
//!   "localhost:5000/team/*",     # prefix glob over the full reference
//!   "ghcr.io/x/trace_open:v1",   # an exact reference
//!   "ghcr.io/x/tool@sha256:…",   # a pinned digest: runs without a signature
//! ]
//!
//! [[trust]]
//! key = "/etc/gadgetd/keys/team.pub"   # PEM public key (relative: to the directory)
//! scope = "localhost:5000/team/*"      # references this key vouches for (default "*")
//! ```
//!
//! The policy is checked by the agent on every run path (Run, RunObject,
//! restore after restart). Files are re-read when they (or the key files)
//! change. A file that does not parse, or names a key that cannot be read,
//! is logged and the previous policy stays; with no previous policy nothing
//! runs (never fails open). No directory at all means no policy: everything
//! runs, as before signing existed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Deserialize;

use super::digest::Digest;
use super::keys::PublicKey;
use super::signatures::{self, TrustedKey, Verdict};
use super::store::Store;

/// Default policy directory.
pub const DEFAULT_POLICY_DIR: &str = "/etc/gadgetd/policy.d";

/// One policy file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PolicyFile {
    verify_image: Option<bool>,
    allow_unsigned_objects: Option<bool>,
    #[serde(default)]
    allowed: Vec<String>,
    #[serde(default)]
    trust: Vec<TrustFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    key: PathBuf,
    #[serde(default = "any_scope")]
    scope: String,
}

fn any_scope() -> String {
    "*".into()
}

/// A trusted key and the references it may vouch for.
#[derive(Debug, Clone)]
pub struct Trust {
    pub scope: glob::Pattern,
    pub key: TrustedKey,
}

/// The merged policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub verify_image: bool,
    pub allow_unsigned_objects: bool,
    pub allowed: Vec<String>,
    pub trust: Vec<Trust>,
    /// Files it was read from (for messages).
    pub files: Vec<PathBuf>,
    key_files: Vec<PathBuf>,
}

/// Why a run may go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// No policy restricts it.
    Unrestricted,
    /// Its digest is pinned in `allowed`.
    Pinned(String),
    /// A trusted key signed it (the key's label).
    Signed(String),
}

impl Policy {
    /// Reads every `*.toml` of `dir` (name order). A missing directory is
    /// the empty policy; anything unreadable or malformed is an error naming
    /// the file.
    pub fn load(dir: &Path) -> Result<Policy, String> {
        let mut policy = Policy::default();
        let files = match policy_files(dir) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                policy.allow_unsigned_objects = true;
                return Ok(policy);
            }
            Err(e) => {
                return Err(format!(
                    "cannot read policy directory {}: {e}",
                    dir.display()
                ));
            }
        };
        let (mut verify, mut objects) = (None, None);
        for path in &files {
            only_admin_writable(path)?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let f: PolicyFile = toml::from_str(&text)
                .map_err(|e| format!("{}: {}", path.display(), e.to_string().trim_end()))?;
            verify = f.verify_image.or(verify);
            objects = f.allow_unsigned_objects.or(objects);
            for p in &f.allowed {
                if p.contains('*') {
                    glob::Pattern::new(p)
                        .map_err(|e| format!("{}: allowed pattern `{p}`: {e}", path.display()))?;
                }
            }
            policy.allowed.extend(f.allowed);
            for t in f.trust {
                let key_path = dir.join(&t.key);
                only_admin_writable(&key_path)
                    .map_err(|e| format!("{}: trusted key {e}", path.display()))?;
                let pem = std::fs::read(&key_path).map_err(|e| {
                    format!(
                        "{}: trusted key {}: {e}",
                        path.display(),
                        key_path.display()
                    )
                })?;
                let key = PublicKey::from_pem(&pem).map_err(|e| {
                    format!(
                        "{}: trusted key {}: {e}",
                        path.display(),
                        key_path.display()
                    )
                })?;
                let scope = glob::Pattern::new(&t.scope)
                    .map_err(|e| format!("{}: scope `{}`: {e}", path.display(), t.scope))?;
                policy.trust.push(Trust {
                    scope,
                    key: TrustedKey {
                        label: key_path.display().to_string(),
                        key,
                    },
                });
                policy.key_files.push(key_path);
            }
        }
        policy.verify_image = verify.unwrap_or(!policy.trust.is_empty());
        policy.allow_unsigned_objects =
            objects.unwrap_or(!policy.verify_image && policy.allowed.is_empty());
        policy.files = files;
        Ok(policy)
    }

    /// Keys whose scope covers `reference`.
    pub fn keys_for(&self, reference: &str) -> Vec<TrustedKey> {
        let repo = repository_of(reference);
        self.trust
            .iter()
            .filter(|t| t.scope.matches(reference) || t.scope.matches(repo))
            .map(|t| t.key.clone())
            .collect()
    }

    /// May the image `reference` (store name, or a digest for untagged
    /// images) at `digest` run? The error says why not and what to do.
    pub fn admit_image(
        &self,
        store: &Store,
        reference: &str,
        digest: &Digest,
    ) -> Result<Admission, String> {
        if !self.allowed.is_empty() {
            match self
                .allowed
                .iter()
                .find_map(|p| allowed_match(p, reference, digest))
            {
                Some(Allowed::Pinned(p)) => return Ok(Admission::Pinned(p)),
                Some(Allowed::Listed) => {}
                None => {
                    return Err(format!(
                        "{} ({digest}) is not in the policy's allowed gadgets (policy: {})",
                        reference.escape_debug(),
                        self.file_list()
                    ));
                }
            }
        }
        if !self.verify_image {
            return Ok(Admission::Unrestricted);
        }
        let keys = self.keys_for(reference);
        if keys.is_empty() {
            return Err(format!(
                "the policy requires signed images and trusts no key for {} (add a [[trust]] whose scope covers it; policy: {})",
                reference.escape_debug(),
                self.file_list()
            ));
        }
        let verdict = self.verify(store, digest, &keys)?;
        match verdict.verified.first() {
            Some(v) => Ok(Admission::Signed(v.key.clone())),
            None => Err(format!(
                "{}; the policy requires a signature by a trusted key (sign with `gadgetctl image sign --key KEY {}`)",
                verdict.refusal(),
                reference.escape_debug()
            )),
        }
    }

    fn verify(
        &self,
        store: &Store,
        digest: &Digest,
        keys: &[TrustedKey],
    ) -> Result<Verdict, String> {
        signatures::verify(store, digest, keys)
            .map_err(|e| format!("cannot read the signatures of {digest}: {e}"))
    }

    /// May an object file (RunObject, not an image) run?
    pub fn admit_object(&self) -> Result<Admission, String> {
        if self.allow_unsigned_objects {
            Ok(Admission::Unrestricted)
        } else {
            Err(format!(
                "the policy allows only signed or listed images, not object files (set allow-unsigned-objects = true for gadget authors; policy: {})",
                self.file_list()
            ))
        }
    }

    fn file_list(&self) -> String {
        self.files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

enum Allowed {
    Listed,
    Pinned(String),
}

/// `registry/repo` of `registry/repo:tag` or `registry/repo@sha256:…`.
fn repository_of(reference: &str) -> &str {
    if let Some((name, _)) = reference.split_once('@') {
        return name;
    }
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => reference,
    }
}

fn allowed_match(pattern: &str, reference: &str, digest: &Digest) -> Option<Allowed> {
    if let Some((name, pinned)) = pattern.split_once('@') {
        let name_ok = name == repository_of(reference) || name == reference;
        return (name_ok && pinned == digest.as_str()).then(|| Allowed::Pinned(pattern.into()));
    }
    if pattern.starts_with("sha256:") {
        return (pattern == digest.as_str()).then(|| Allowed::Pinned(pattern.into()));
    }
    if pattern.contains('*') {
        let p = glob::Pattern::new(pattern).ok()?;
        return (p.matches(reference) || p.matches(repository_of(reference)))
            .then_some(Allowed::Listed);
    }
    (pattern == reference).then_some(Allowed::Listed)
}

/// Policy and key files decide what root runs: only root (or the agent's
/// own user) may own them, and nobody else may write them.
fn only_admin_writable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if m.uid() != 0 && m.uid() != me {
        return Err(format!(
            "{} belongs to uid {}; policy and key files must belong to root",
            path.display(),
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by group or others (mode {:o}); run chmod go-w on it",
            path.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

fn policy_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .collect::<std::io::Result<Vec<_>>>()?
        .into_iter()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// What the files looked like when read: (path, size, mtime) of every
/// policy and key file.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(dir: &Path, key_files: &[PathBuf]) -> Fingerprint {
    let mut paths = policy_files(dir).unwrap_or_default();
    paths.push(dir.to_path_buf());
    paths.extend(key_files.iter().cloned());
    paths
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).ok();
            let len = m.as_ref().map(|m| m.len()).unwrap_or(u64::MAX);
            let mtime = m.and_then(|m| m.modified().ok());
            (p, len, mtime)
        })
        .collect()
}

struct Loaded {
    /// The policy in force; Err (deny everything) when none ever loaded.
    policy: Result<Arc<Policy>, String>,
    /// The files as last read (good or bad), to notice changes.
    seen: Fingerprint,
}

/// The policy in force, re-read when its files change.
pub struct PolicyStore {
    dir: PathBuf,
    state: Mutex<Loaded>,
}

impl PolicyStore {
    /// Reads `dir` now; a bad policy is logged and denies every run until fixed.
    pub fn open(dir: &Path) -> PolicyStore {
        let store = PolicyStore {
            dir: dir.to_path_buf(),
            state: Mutex::new(Loaded {
                policy: Err("the policy was not read yet".into()),
                seen: Vec::new(),
            }),
        };
        let _ = store.current();
        store
    }

    /// The directory policies are read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The policy in force (reloaded first when files changed). Err: no
    /// valid policy was ever read; the message says what is wrong and that
    /// nothing runs until it is fixed.
    pub fn current(&self) -> Result<Arc<Policy>, String> {
        let mut st = self.state.lock().unwrap();
        let keys = match &st.policy {
            Ok(p) => p.key_files.clone(),
            Err(_) => Vec::new(),
        };
        let now = fingerprint(&self.dir, &keys);
        if now != st.seen {
            match Policy::load(&self.dir) {
                Ok(p) => {
                    tracing::info!(dir = %self.dir.display(), files = p.files.len(), keys = p.trust.len(), verify_image = p.verify_image, allowed = p.allowed.len(), "policy loaded");
                    st.seen = fingerprint(&self.dir, &p.key_files);
                    st.policy = Ok(Arc::new(p));
                }
                Err(e) => {
                    st.seen = now;
                    match &st.policy {
                        Ok(_) => {
                            tracing::error!(error = %e, "policy not reloaded; the previous policy stays in force")
                        }
                        Err(_) => {
                            tracing::error!(error = %e, "no valid policy; no gadget runs until it is fixed");
                            st.policy = Err(format!(
                                "the run policy is invalid, so nothing runs until it is fixed: {e}"
                            ));
                        }
                    }
                }
            }
        }
        st.policy.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories() {
        assert_eq!(
            repository_of("localhost:5000/me/x:v1"),
            "localhost:5000/me/x"
        );
        assert_eq!(repository_of("localhost:5000/me/x"), "localhost:5000/me/x");
        assert_eq!(repository_of("r/x@sha256:00"), "r/x");
    }

    #[test]
    fn allowed_forms() {
        let d = Digest::of(b"x");
        let r = "localhost:5000/me/x:v1";
        assert!(matches!(
            allowed_match("localhost:5000/me/*", r, &d),
            Some(Allowed::Listed)
        ));
        assert!(matches!(allowed_match(r, r, &d), Some(Allowed::Listed)));
        assert!(allowed_match("localhost:5000/me/x:v2", r, &d).is_none());
        let pin = format!("localhost:5000/me/x@{d}");
        assert!(matches!(
            allowed_match(&pin, r, &d),
            Some(Allowed::Pinned(_))
        ));
        let other = Digest::of(b"y");
        assert!(allowed_match(&pin, r, &other).is_none());
        assert!(matches!(
            allowed_match(d.as_str(), r, &d),
            Some(Allowed::Pinned(_))
        ));
        assert!(allowed_match("other/*", r, &d).is_none());
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("gadgetd-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.toml"), "verify-image = yes\n").unwrap();
        let e = Policy::load(&dir).unwrap_err();
        assert!(
            e.starts_with(&format!("{}:", dir.join("a.toml").display())),
            "{e}"
        );
        std::fs::write(dir.join("a.toml"), "[[trust]]\nkey = \"missing.pub\"\n").unwrap();
        let e = Policy::load(&dir).unwrap_err();
        assert!(
            e.contains("trusted key") && e.contains("missing.pub"),
            "{e}"
        );
        std::fs::write(dir.join("a.toml"), "verify-images = true\n").unwrap();
        let e = Policy::load(&dir).unwrap_err();
        assert!(e.contains("unknown field `verify-images`"), "{e}");
        std::fs::write(dir.join("a.toml"), "verify-image = true\n").unwrap();
        let p = Policy::load(&dir).unwrap();
        assert!(p.verify_image && !p.allow_unsigned_objects);
        use std::os::unix::fs::PermissionsExt;
        let writable = std::fs::Permissions::from_mode(0o666);
        std::fs::set_permissions(dir.join("a.toml"), writable).unwrap();
        let e = Policy::load(&dir).unwrap_err();
        assert!(
            e.ends_with("a.toml is writable by group or others (mode 666); run chmod go-w on it"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let p = Policy::load(&dir).unwrap();
        assert!(!p.verify_image && p.allow_unsigned_objects);
    }
}
