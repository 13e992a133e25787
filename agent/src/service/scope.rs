//! A run's scope: which containers (and network namespaces) it watches and
//! its kind options. Built the same way for a new run and for a detached run
//! restored after a restart, from the `a{sv}` options it was started with
//! (kept in the state database), so a restored run keeps its filter.

use std::collections::{BTreeMap, HashMap};

use zbus::zvariant::{self, OwnedValue};

use super::kind_options::KindOptions;
use super::manager::Agent;
use gadgetd_containers::Selector;
use gadgetd_containers::filter::{self, Plan};
use gadgetd_runtime::{RunOptions, Running};

/// A container selection to follow once the gadget is running.
pub struct Following {
    plan: Plan,
    /// The run's network namespaces are the selected containers' (the
    /// caller named none, nor all): socket filters follow them too.
    netns: bool,
}

/// The run options of a scope, and the container plan to follow once the
/// gadget is running (`None`: no container selection).
pub fn run_options(
    agent: &Agent,
    params: BTreeMap<String, String>,
    containers: Selector,
    kinds: &KindOptions,
) -> (RunOptions, Option<Following>) {
    let plan = filter::plan(&agent.containers, containers);
    let mut opts = RunOptions {
        params,
        mntns_filter: plan.as_ref().map(|p| p.initial.clone()),
        enricher: Some(gadgetd_runtime::enrich::SharedEnricher(
            agent.containers.clone(),
        )),
        ..RunOptions::default()
    };
    kinds.apply(&mut opts);
    // A container selection also picks the network namespaces socket
    // filters and network iterators run in, unless the caller named them.
    let netns_from_plan = opts.netns_ids.is_none() && !opts.all_netns;
    if let Some(plan) = &plan
        && netns_from_plan
    {
        opts.netns_ids = Some(plan.netns.clone());
    }
    // Uprobe targets are the selected containers' files.
    if let Some(plan) = &plan {
        opts.container_pids = plan.pids.clone();
    }
    // And the cgroups cgroup programs attach on, unless the caller named one.
    if let (Some(plan), true, Some(root)) = (
        &plan,
        opts.cgroups.is_empty(),
        gadgetd_runtime::load::cgroup2_root(),
    ) {
        opts.cgroups = plan
            .cgroups
            .iter()
            .map(|c| root.join(c.trim_start_matches('/')))
            .collect();
    }
    let following = plan.map(|plan| Following {
        plan,
        netns: netns_from_plan,
    });
    (opts, following)
}

/// Keeps the running gadget's container filter, and the network namespaces
/// of its socket filters, in step with the registry.
pub fn follow(agent: &Agent, following: Option<Following>, running: &Running, run_id: &str) {
    let Some(Following { plan, netns }) = following else {
        return;
    };
    if netns {
        super::netns_follow::follow(
            agent.containers.clone(),
            plan.selector().clone(),
            running.net_dispatch(),
            running.tc_follow(),
            run_id.to_string(),
        );
    }
    if let Some(map) = running.mntns_filter() {
        filter::keep_in_sync(plan, agent.containers.clone(), &map, run_id.to_string());
    }
}

fn context() -> zvariant::serialized::Context {
    zvariant::serialized::Context::new_dbus(zvariant::LE, 0)
}

/// The scope options as bytes for the state database.
pub fn encode(scope: &HashMap<String, OwnedValue>) -> Result<Vec<u8>, String> {
    zvariant::to_bytes(context(), scope)
        .map(|data| data.to_vec())
        .map_err(|e| format!("cannot store the run's options: {e}"))
}

/// Back from [`encode`]; empty or unreadable bytes are an empty scope.
pub fn decode(bytes: &[u8]) -> Result<HashMap<String, OwnedValue>, String> {
    if bytes.is_empty() {
        return Ok(HashMap::new());
    }
    let data = zvariant::serialized::Data::new(bytes, context());
    data.deserialize::<HashMap<String, OwnedValue>>()
        .map(|(map, _)| map)
        .map_err(|e| format!("the stored run options are unreadable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_options_round_trip() {
        let mut scope = HashMap::new();
        scope.insert(
            "containername".to_string(),
            OwnedValue::try_from(zvariant::Value::from(vec!["web-*".to_string()])).unwrap(),
        );
        scope.insert("interval-ms".to_string(), OwnedValue::from(500u64));
        let back = decode(&encode(&scope).unwrap()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(u64::try_from(&back["interval-ms"]).unwrap(), 500);
        let names: Vec<String> = back["containername"]
            .try_clone()
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(names, ["web-*"]);
        assert!(decode(&[]).unwrap().is_empty());
        assert!(decode(&[1, 2, 3]).is_err());
    }
}
