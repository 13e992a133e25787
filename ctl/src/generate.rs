//! Shell completions (`gadgetctl completion SHELL`, as docker and kubectl do)
//! and man pages (hidden `gadgetctl generate-man DIR`, used by packaging).

use std::path::Path;

use anyhow::{Context, Result};
use clap::Command;
use clap_complete::Shell;

/// Writes the completion script for `shell` to stdout.
pub fn completion(mut cmd: Command, shell: Shell) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, &mut std::io::stdout());
}

/// Writes `gadgetctl.1` and one `gadgetctl-SUBCOMMAND.1` per subcommand into `dir`.
pub fn man_pages(cmd: Command, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_page(cmd.clone(), &dir.join(format!("{}.1", cmd.get_name())))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{}-{}", cmd.get_name(), sub.get_name());
        write_page(
            sub.clone().name(name.clone()),
            &dir.join(format!("{name}.1")),
        )?;
    }
    Ok(())
}

fn write_page(cmd: Command, path: &Path) -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}
