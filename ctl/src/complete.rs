//! Completions that know things: run ids and names, local gadget images and
//! object files, and the parameters of the gadget on the command line,
//! asked of the agent while the shell completes (clap_complete's dynamic
//! completion: the shell calls `COMPLETE=SHELL gadgetctl -- WORDS...`).
//! `gadgetctl completion SHELL` prints the shell's registration script.

use std::ffi::OsStr;
use std::future::Future;

use clap_complete::CompletionCandidate;
use clap_complete::engine::ValueCompleter;
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};

/// The variable the registration script sets to ask for completions.
const VAR: &str = "COMPLETE";

/// Prints the registration script of `shell` (what `source <(...)` or a
/// bash-completion file needs).
pub fn registration(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let completer: &dyn EnvCompleter = match shell {
        clap_complete::Shell::Bash => &Bash,
        clap_complete::Shell::Elvish => &Elvish,
        clap_complete::Shell::Fish => &Fish,
        clap_complete::Shell::PowerShell => &Powershell,
        clap_complete::Shell::Zsh => &Zsh,
        other => anyhow::bail!("no completion for shell {other}"),
    };
    let mut out = std::io::stdout().lock();
    completer.write_registration(VAR, "gadgetctl", "gadgetctl", "gadgetctl", &mut out)?;
    Ok(())
}

/// The completion words (after `--`), when completing.
fn words() -> Vec<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args
        .iter()
        .position(|a| a == "--")
        .map_or(args.len(), |i| i + 1);
    args[at..].to_vec()
}

/// Runs `f` against the agent the command line (or GADGETD_ADDRESS) names;
/// nothing when it cannot be reached (completion must stay quiet).
fn ask<T, F: Future<Output = anyhow::Result<T>>>(f: impl FnOnce(Option<String>) -> F) -> Option<T> {
    let words = words();
    let address = crate::run_params::address_arg(&words)
        .or_else(|| std::env::var(gadgetd_dbus::names::ADDRESS_ENV).ok());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(2), f(address))
            .await
            .ok()?
            .ok()
    })
}

fn candidate(value: &str, help: &str) -> CompletionCandidate {
    CompletionCandidate::new(crate::escape::terminal(value).into_owned())
        .help(Some(crate::escape::terminal(help).into_owned().into()))
}

/// Run ids and names, with the run's state and image as help.
pub fn runs() -> Vec<CompletionCandidate> {
    let runs = ask(|address| async move {
        let mgr = crate::manager(address.as_deref()).await?;
        Ok(mgr.list_runs().await?)
    })
    .unwrap_or_default();
    let mut out = Vec::new();
    for r in runs {
        let help = format!("{} {}", r.state, r.image);
        out.push(candidate(&r.id, &help));
        if !r.name.is_empty() {
            out.push(candidate(&r.name, &help));
        }
    }
    out
}

/// Local images (their short gadget names and full references) and object
/// files under the typed path.
pub fn gadgets(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let mut out: Vec<CompletionCandidate> = clap_complete::PathCompleter::any()
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "o"))
        .complete(current.as_ref().as_ref());
    if current.starts_with(['.', '/', '~']) {
        return out;
    }
    let images = ask(|address| async move {
        Ok(crate::images::images_proxy(address.as_deref())
            .await?
            .list()
            .await?)
    })
    .unwrap_or_default();
    for i in images.iter().filter(|i| !i.reference.is_empty()) {
        if let Some(short) = crate::run_images::gadget_name(&i.reference) {
            out.push(candidate(short, &i.reference));
        }
        out.push(candidate(&i.reference, ""));
    }
    out.retain(|c| {
        c.get_value()
            .to_string_lossy()
            .starts_with(current.as_ref())
    });
    out
}

/// The parameters (`--NAME`) of the gadget named after `run`.
pub fn gadget_params(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy().into_owned();
    let words = words();
    let Some(run_at) = words.iter().position(|w| w == "run") else {
        return Vec::new();
    };
    let Some(gadget) = words[run_at + 1..]
        .iter()
        .find(|w| !w.starts_with('-'))
        .cloned()
    else {
        return Vec::new();
    };
    let desc = ask(|address| async move {
        if std::path::Path::new(&gadget).is_file() {
            let (conn, _) =
                gadgetd_dbus::connect(address.as_deref().map(gadgetd_dbus::Endpoint::parse))
                    .await?;
            // The definition next to the object renames parameters, as in `run`.
            let object = std::path::Path::new(&gadget);
            let definition =
                std::fs::read_to_string(object.with_extension("yaml")).unwrap_or_default();
            crate::run_params::describe(&conn, object, &definition).await
        } else {
            crate::run_params::describe_image(address.as_deref(), &gadget).await
        }
    });
    desc.map(|d| {
        d.params
            .iter()
            .map(|p| candidate(&format!("--{}", p.name), &p.description))
            .filter(|c| c.get_value().to_string_lossy().starts_with(&current))
            .collect()
    })
    .unwrap_or_default()
}
