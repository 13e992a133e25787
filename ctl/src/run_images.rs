//! `gadgetctl run IMAGE`: tells images from object files, and pulls per
//! `--pull` before the agent runs the image.

use std::path::Path;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use crate::{escape, suggest};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PullPolicy {
    /// Pull every time (a newer image under the same tag is picked up).
    Always,
    /// Pull only when the image is not in the local store.
    Missing,
    /// Never pull; fail when the image is not local.
    Never,
}

#[derive(Args, Debug)]
pub struct RunImageArgs {
    /// When to pull an image before running it.
    #[arg(long, value_enum, default_value = "missing")]
    pub pull: PullPolicy,
}

/// The image `gadget` names, or `None` when it is an object file on disk.
/// A path that looks like a file (`/...`, `./...`, `../...`, `~/...`,
/// `NAME.o`) but does not exist is an error naming it, with the closest
/// object file in its directory, never a registry lookup.
pub fn image_of(gadget: &Path) -> Result<Option<&str>> {
    if gadget.is_file() {
        return Ok(None);
    }
    let text = gadget.to_str().ok_or_else(|| {
        anyhow::anyhow!(
            "no such file: {} (an image name is UTF-8)",
            gadget.display()
        )
    })?;
    if !looks_like_file(text) {
        return Ok(Some(text));
    }
    if gadget.exists() {
        bail!(
            "{} is not a file (expected a compiled gadget, FILE.o)",
            escape::terminal(text)
        );
    }
    let hint = similar_object(gadget)
        .map(|p| format!("; did you mean {}?", escape::terminal(&p)))
        .unwrap_or_default();
    bail!("no such file: {}{hint}", escape::terminal(text))
}

/// Whether `text` is meant as a path rather than an image reference: image
/// references never start with `/`, `.` or `~`, and a `.o` suffix outside a
/// tag names an object file.
fn looks_like_file(text: &str) -> bool {
    let last = text.rsplit('/').next().unwrap_or(text);
    text.starts_with(['/', '.', '~']) || (last.ends_with(".o") && !last.contains(':'))
}

/// The object file in `path`'s directory whose name is closest to its name.
fn similar_object(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".o"))
        .collect();
    let best = suggest::closest(name, names.iter().map(String::as_str))?;
    Some(dir.join(best).display().to_string())
}

/// A bare name (`trace_opne`) that is not a local image but is one typo away
/// from one is an error with the right name, before any registry is asked.
pub async fn check_spelling(address: Option<&str>, image: &str) -> Result<()> {
    if image.contains(['/', ':', '@']) {
        return Ok(());
    }
    let proxy = crate::images::images_proxy(address).await?;
    match proxy.resolve(image).await {
        Ok(_) => return Ok(()),
        Err(zbus::Error::MethodError(name, _, _))
            if name.as_str() == "org.freedesktop.DBus.Error.FileNotFound" => {}
        Err(e) => return Err(e.into()),
    }
    let local = proxy.list().await?;
    let names: Vec<&str> = local
        .iter()
        .filter_map(|i| gadget_name(&i.reference))
        .collect();
    if let Some(best) = suggest::closest(image, names.iter().copied()) {
        bail!(
            "no gadget `{}`; did you mean `{}`? (local gadgets: `gadgetctl image list`)",
            escape::terminal(image),
            escape::terminal(best)
        );
    }
    Ok(())
}

/// The gadget name of an image reference: its last path component, untagged
/// (`ghcr.io/gadgetd/gadget/trace_open:latest` → `trace_open`).
pub(crate) fn gadget_name(reference: &str) -> Option<&str> {
    let last = reference.rsplit('/').next()?;
    let name = last.split(['@', ':']).next()?;
    (!name.is_empty()).then_some(name)
}

/// Makes sure `image` is local, pulling per `policy`.
pub async fn ensure_local(address: Option<&str>, image: &str, policy: PullPolicy) -> Result<()> {
    let proxy = crate::images::images_proxy(address).await?;
    let pull = match policy {
        PullPolicy::Always => true,
        PullPolicy::Never => false,
        PullPolicy::Missing => match proxy.resolve(image).await {
            Ok(_) => false,
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.DBus.Error.FileNotFound" =>
            {
                true
            }
            Err(e) => return Err(e.into()),
        },
    };
    if pull {
        let (reference, digest) = crate::images::pull(address, image).await?;
        eprintln!("pulled {reference} ({digest})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_references_are_told_apart() {
        for file in [
            "./x",
            "/tmp/g.o",
            "../g",
            "~/g.o",
            "g.o",
            "build/gadgets/trace_opne.o",
        ] {
            assert!(looks_like_file(file), "{file}");
        }
        for image in [
            "trace_open",
            "localhost:5000/me/g:v1",
            "ghcr.io/a/b@sha256:ab",
            "r/x.o:v1",
        ] {
            assert!(!looks_like_file(image), "{image}");
        }
        assert_eq!(
            gadget_name("ghcr.io/gadgetd/gadget/trace_open:latest"),
            Some("trace_open")
        );
        assert_eq!(
            gadget_name("localhost:5000/top_file@sha256:00"),
            Some("top_file")
        );
    }

    #[test]
    fn a_missing_object_names_the_closest_one() {
        let dir = std::env::temp_dir().join(format!("gadgetctl-objs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("trace_open.o"), b"").unwrap();
        let err = image_of(&dir.join("trace_opne.o")).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "no such file: {0}/trace_opne.o; did you mean {0}/trace_open.o?",
                dir.display()
            )
        );
        let err = image_of(&dir.join("zzz.o")).unwrap_err().to_string();
        assert_eq!(err, format!("no such file: {}/zzz.o", dir.display()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
