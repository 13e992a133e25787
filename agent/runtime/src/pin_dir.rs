//! Maps declared with `__uint(pinning, LIBBPF_PIN_BY_NAME)` are pinned in a
//! bpffs. aya pins them in `/sys/fs/bpf` by default, where they outlive the
//! run and the next run silently reuses their stale contents (or fails
//! where `/sys/fs/bpf` is no bpffs). gadgetd gives each run its own bpffs
//! instance instead, mounted on `/run/gadgetd/pins/<run>`, and unmounts and
//! removes it when the run ends ([`PinDir`]'s drop).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{GadgetError, Result};

/// Where the per-run pin directories go.
pub const PINS_ROOT: &str = "/run/gadgetd/pins";

/// A run's private bpffs; dropping it unmounts it (its pins go) and removes the directory.
#[derive(Debug)]
pub struct PinDir {
    path: PathBuf,
}

impl PinDir {
    /// Mounts a fresh bpffs on a new directory under [`PINS_ROOT`].
    pub fn create() -> Result<PinDir> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(PINS_ROOT).join(format!("run-{}-{n}", std::process::id()));
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            GadgetError::Load(format!(
                "maps declared with LIBBPF_PIN_BY_NAME need a bpffs: {what} {}: {e}",
                path.display()
            ))
        };
        std::fs::create_dir_all(&path).map_err(|e| fail("creating", &e))?;
        if let Err(e) = nix::mount::mount(
            Some("bpf"),
            &path,
            Some("bpf"),
            nix::mount::MsFlags::MS_NOSUID
                | nix::mount::MsFlags::MS_NODEV
                | nix::mount::MsFlags::MS_NOEXEC,
            None::<&str>,
        ) {
            let _ = std::fs::remove_dir(&path);
            return Err(fail("mounting a bpffs on", &e));
        }
        Ok(PinDir { path })
    }

    /// The directory maps are pinned in (`<dir>/<map name>`).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(path = %self.path.display(), error = %e, "unmounting a run's bpffs");
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Whether any map of the object asks to be pinned (`pinning` member = 1).
pub fn wants_pinning(btf: &btf_rs::Btf) -> Result<bool> {
    use btf_rs::{BtfType, Type};
    for (_, struct_id) in super::object::datasec_vars(btf, ".maps")? {
        let Ok(Type::Struct(def)) = btf.resolve_type_by_id(struct_id) else {
            continue;
        };
        for m in &def.members {
            if super::object::name_of(btf, m) != "pinning" {
                continue;
            }
            // `__uint(pinning, N)` is `int (*pinning)[N]`.
            let Some(Type::Ptr(p)) = m
                .get_type_id()
                .and_then(|id| btf.resolve_type_by_id(id).ok())
            else {
                continue;
            };
            if let Ok(Type::Array(a)) = btf.resolve_chained_type(&p)
                && a.len() > 0
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
