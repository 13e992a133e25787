//! A file that appears under its final name only when it is whole. It is
//! written unnamed (`O_TMPFILE`) in the target's directory, so a process
//! killed at any point (`kill -9` included) leaves nothing behind, and is
//! linked to its name by [`AtomicFile::commit`]. Where the file system
//! has no `O_TMPFILE`, a hidden `.NAME.partial-PID` file is used instead
//! and removed by every way out short of `kill -9`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags};

/// An uncommitted file for `target`; dropped uncommitted, it vanishes.
pub struct AtomicFile {
    file: File,
    target: PathBuf,
    /// The fallback's named temporary file (None with `O_TMPFILE`).
    named: Option<PathBuf>,
}

/// The directory `target` is in (`.` for a bare file name).
fn dir_of(target: &Path) -> &Path {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `.NAME.SUFFIX` beside `target`.
fn hidden_beside(target: &Path, suffix: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir_of(target).join(format!(".{name}.{suffix}"))
}

impl AtomicFile {
    /// Starts the file for `target` (mode 0666 less the umask, as
    /// `File::create`). Errors: the directory missing or not writable.
    pub fn create(target: &Path) -> io::Result<AtomicFile> {
        let unnamed = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o666)
            .custom_flags(nix::libc::O_TMPFILE)
            .open(dir_of(target));
        match unnamed {
            Ok(file) => Ok(AtomicFile {
                file,
                target: target.to_path_buf(),
                named: None,
            }),
            // No O_TMPFILE on this file system (or kernel).
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(nix::libc::EOPNOTSUPP | nix::libc::EISDIR | nix::libc::EINVAL)
                ) =>
            {
                let named = hidden_beside(target, &format!("partial-{}", std::process::id()));
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&named)?;
                Ok(AtomicFile {
                    file,
                    target: target.to_path_buf(),
                    named: Some(named),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The file being written (readable too, to check it before commit).
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Syncs the file and gives it its final name, replacing a file there.
    pub fn commit(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        if let Some(named) = self.named.take() {
            return std::fs::rename(&named, &self.target).inspect_err(|_| {
                let _ = std::fs::remove_file(&named);
            });
        }
        use std::os::fd::AsRawFd;
        let proc_path = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        let link = |to: &Path| {
            nix::unistd::linkat(
                AT_FDCWD,
                proc_path.as_str(),
                AT_FDCWD,
                to,
                AtFlags::AT_SYMLINK_FOLLOW,
            )
        };
        match link(&self.target) {
            Ok(()) => Ok(()),
            Err(Errno::EEXIST) => {
                // Replacing a file: link beside it, then rename over it.
                let mut rnd = [0u8; 6];
                getrandom::fill(&mut rnd).map_err(|e| io::Error::other(e.to_string()))?;
                let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
                let beside = hidden_beside(&self.target, &format!("new-{hex}"));
                link(&beside)?;
                std::fs::rename(&beside, &self.target).inspect_err(|_| {
                    let _ = std::fs::remove_file(&beside);
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(named) = &self.named {
            let _ = std::fs::remove_file(named);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};

    fn scratch(tag: &str) -> PathBuf {
        let mut rnd = [0u8; 6];
        getrandom::fill(&mut rnd).unwrap();
        let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let dir = std::env::temp_dir().join(format!("gadgetd-atomic-{tag}-{hex}"));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn nothing_is_named_until_commit_and_a_dropped_file_leaves_nothing() {
        let dir = scratch("drop");
        let target = dir.join("out.tar");
        let mut f = AtomicFile::create(&target).unwrap();
        f.write_all(b"half").unwrap();
        // Readable back before the commit.
        let mut back = String::new();
        f.file().rewind().unwrap();
        f.file().read_to_string(&mut back).unwrap();
        assert_eq!(back, "half");
        assert_eq!(names(&dir), Vec::<String>::new());
        drop(f);
        assert_eq!(names(&dir), Vec::<String>::new());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn commit_names_the_file_and_replaces_an_existing_one() {
        let dir = scratch("commit");
        let target = dir.join("out.tar");
        for content in ["first", "second, longer"] {
            let mut f = AtomicFile::create(&target).unwrap();
            f.write_all(content.as_bytes()).unwrap();
            f.commit().unwrap();
            assert_eq!(std::fs::read_to_string(&target).unwrap(), content);
            assert_eq!(names(&dir), vec!["out.tar".to_string()]);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = scratch("missing");
        let err = AtomicFile::create(&dir.join("no/such/out.tar"))
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
