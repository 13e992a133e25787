//! Man pages (hidden `gadgetctl generate-man DIR`, used by packaging).

use std::path::Path;

use anyhow::{Context, Result};
use clap::Command;

/// Writes `gadgetctl.1` and one page per subcommand, nested ones included
/// (`gadgetctl-image-build.1`): every page a SUBCOMMANDS section refers to.
pub fn man_pages(cmd: Command, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_pages(cmd, dir)
}

/// `cmd`'s page and, recursively, its visible subcommands' (named
/// `PARENT-SUB`, the name clap_mangen's SUBCOMMANDS section uses).
fn write_pages(mut cmd: Command, dir: &Path) -> Result<()> {
    // Built, the command has the `help` subcommand its page lists too.
    cmd.build();
    let parent = cmd.get_name().to_string();
    write_page(cmd.clone(), &dir.join(format!("{parent}.1")))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{parent}-{}", sub.get_name());
        write_pages(sub.clone().name(name), dir)?;
    }
    Ok(())
}

fn write_page(cmd: Command, path: &Path) -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_page_a_page_refers_to_exists() {
        let dir = std::env::temp_dir().join(format!("gadgetctl-man-{}", std::process::id()));
        super::man_pages(crate::Cli::command(), &dir).unwrap();
        let pages: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        for must in [
            "gadgetctl.1",
            "gadgetctl-run.1",
            "gadgetctl-image.1",
            "gadgetctl-image-build.1",
        ] {
            assert!(
                pages.iter().any(|p| p == must),
                "{must} missing from {pages:?}"
            );
        }
        let mut refs = 0;
        for page in &pages {
            let text = std::fs::read_to_string(dir.join(page)).unwrap();
            // References look like `gadgetctl\-image\-build(1)` in roff.
            for (at, _) in text.match_indices("(1)") {
                let head = &text[..at];
                let start = head
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '\\'))
                    .map_or(0, |i| i + 1);
                let name = head[start..].replace('\\', "");
                if name.starts_with("gadgetctl") {
                    refs += 1;
                    assert!(
                        pages.contains(&format!("{name}.1")),
                        "{page} refers to {name}(1), which is missing"
                    );
                }
            }
        }
        assert!(refs > 10, "only {refs} references found");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
