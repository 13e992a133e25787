//! `gadgetctl stop`, `rm [-f]` and `list [-a]`: the run lifecycle as docker
//! users expect it. `stop` returns once the run has stopped (its programs
//! are detached), and stopping a run that has already ended is not an error;
//! `rm -f` stops a live run, then forgets it; `list` shows live runs and
//! `list -a` the ended ones the agent still keeps (detached runs until `rm`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use gadgetd_dbus::ManagerProxy;
use gadgetd_dbus::types::{RunSummary, state};

use crate::escape;

/// How long `stop` waits for a run to end before it gives up.
pub const STOP_WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// Whether `run` is starting or running.
pub fn is_live(run: &RunSummary) -> bool {
    matches!(run.state.as_str(), state::STARTING | state::RUNNING)
}

/// The run `key` names, by the agent's rules: exact id, exact name, or a
/// unique id prefix of at least 4 characters.
pub fn resolve<'a>(runs: &'a [RunSummary], key: &str) -> Result<&'a RunSummary> {
    if let Some(r) = runs.iter().find(|r| r.id == key) {
        return Ok(r);
    }
    let matches: Vec<&RunSummary> = runs
        .iter()
        .filter(|r| r.name == key || (key.len() >= 4 && r.id.starts_with(key)))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => bail!(
            "no run with id or name `{}` (see `gadgetctl list -a`)",
            escape::terminal(key)
        ),
        _ => bail!(
            "`{}` matches several runs ({}); use more of the id",
            escape::terminal(key),
            matches
                .iter()
                .map(|r| escape::terminal(&r.id).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Waits until run `id` has ended (or is gone, as attached runs go when they
/// end); returns its final summary when the agent still lists it.
async fn wait_ended(
    mgr: &ManagerProxy<'_>,
    id: &str,
    limit: Duration,
) -> Result<Option<RunSummary>> {
    let start = Instant::now();
    loop {
        let runs = mgr.list_runs().await?;
        match runs.into_iter().find(|r| r.id == id) {
            None => return Ok(None),
            Some(r) if !is_live(&r) => return Ok(Some(r)),
            Some(_) if start.elapsed() >= limit => bail!(
                "run {id} did not stop within {}s; its state is in `gadgetctl list`",
                limit.as_secs()
            ),
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Stops run `key` and waits until it has stopped; returns its id.
/// A run that has already ended is left as it is.
async fn stop_one(mgr: &ManagerProxy<'_>, key: &str, limit: Duration) -> Result<String> {
    let runs = mgr.list_runs().await?;
    let run = resolve(&runs, key)?;
    let id = run.id.clone();
    if is_live(run) {
        if let Err(e) = mgr.stop(&id).await {
            // It may have ended between the list and the call.
            let now = mgr.list_runs().await?;
            if now.iter().any(|r| r.id == id && is_live(r)) {
                return Err(e.into());
            }
        }
        wait_ended(mgr, &id, limit).await?;
    }
    Ok(id)
}

/// `gadgetctl stop ID...`: prints each run's id once it has stopped.
pub async fn stop(mgr: &ManagerProxy<'_>, keys: &[String], limit: Duration) -> Result<ExitCode> {
    for key in keys {
        let id = stop_one(mgr, key, limit).await?;
        println!("{}", escape::terminal(&id));
    }
    Ok(ExitCode::SUCCESS)
}

/// `gadgetctl rm [-f] ID...`: forgets ended runs; with `force`, stops live
/// ones first.
pub async fn remove(mgr: &ManagerProxy<'_>, keys: &[String], force: bool) -> Result<ExitCode> {
    for key in keys {
        let runs = mgr.list_runs().await?;
        let run = resolve(&runs, key)?;
        let id = run.id.clone();
        if is_live(run) {
            if !force {
                // The agent decides (it may deny the caller); its refusal
                // of a live run gets the way out.
                let state = run.state.clone();
                match mgr.remove(&id).await {
                    Ok(()) => {
                        println!("{}", escape::terminal(&id));
                        continue;
                    }
                    Err(zbus::Error::MethodError(name, msg, info))
                        if name.as_str() == "org.freedesktop.DBus.Error.AccessDenied" =>
                    {
                        return Err(zbus::Error::MethodError(name, msg, info).into());
                    }
                    Err(_) => bail!(
                        "run {} is still {}: stop it first (`gadgetctl stop {id}`), or use `gadgetctl rm -f {id}`",
                        escape::terminal(&id),
                        escape::terminal(&state)
                    ),
                }
            }
            stop_one(mgr, &id, STOP_WAIT).await?;
        }
        // An attached run is gone once it has ended; a detached one stays until removed.
        if mgr.list_runs().await?.iter().any(|r| r.id == id)
            && let Err(e) = mgr.remove(&id).await
        {
            // An ended attached run may be forgotten between the list and
            // the call: gone is what was asked.
            if mgr.list_runs().await?.iter().any(|r| r.id == id) {
                return Err(e.into());
            }
        }
        println!("{}", escape::terminal(&id));
    }
    Ok(ExitCode::SUCCESS)
}

/// The runs `list` shows: live ones, or all with `all`.
pub fn listed(runs: Vec<RunSummary>, all: bool) -> Vec<RunSummary> {
    runs.into_iter().filter(|r| all || is_live(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, name: &str, state: &str) -> RunSummary {
        RunSummary {
            id: id.into(),
            name: name.into(),
            state: state.into(),
            image: String::new(),
            digest: String::new(),
            detached: true,
            started_at: 0,
            owner: 0,
            events_seen: 0,
            events_lost: 0,
            exit_reason: String::new(),
            path: zbus::zvariant::OwnedObjectPath::try_from("/r").unwrap(),
        }
    }

    #[test]
    fn resolves_like_the_agent() {
        let runs = [
            run("abcd1234", "web", "running"),
            run("abce5678", "db", "stopped"),
        ];
        assert_eq!(resolve(&runs, "abcd1234").unwrap().name, "web");
        assert_eq!(resolve(&runs, "db").unwrap().id, "abce5678");
        assert_eq!(resolve(&runs, "abcd").unwrap().id, "abcd1234");
        let err = resolve(&runs, "abc").unwrap_err().to_string();
        assert_eq!(
            err,
            "no run with id or name `abc` (see `gadgetctl list -a`)"
        );
        let runs = [run("abcd1", "", "running"), run("abcd2", "", "running")];
        let err = resolve(&runs, "abcd").unwrap_err().to_string();
        assert_eq!(
            err,
            "`abcd` matches several runs (abcd1, abcd2); use more of the id"
        );
        let names: Vec<String> = listed(
            vec![
                run("a", "", "running"),
                run("b", "", "stopped"),
                run("c", "", "failed"),
                run("d", "", "starting"),
            ],
            false,
        )
        .into_iter()
        .map(|r| r.id)
        .collect();
        assert_eq!(names, ["a", "d"]);
    }
}
