//! `gadgetctl run` flags that select containers (docs/containers.md).

use std::collections::HashMap;

use gadgetd_dbus::types::container_options as keys;
use zbus::zvariant::Value;

#[derive(clap::Args, Debug, Default)]
pub struct ContainerFilterArgs {
    /// Only these containers, by name: exact or a glob (`web-*`).
    /// Repeatable; comma-separated lists work too.
    #[arg(
        long = "containername",
        short = 'c',
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub names: Vec<String>,
    /// Only these containers, by id or unique id prefix (repeatable).
    #[arg(long = "container-id", value_name = "ID", value_delimiter = ',')]
    pub ids: Vec<String>,
    /// Only containers of these runtimes: docker, podman, containerd, cri-o.
    #[arg(long = "runtime", value_name = "RUNTIME", value_delimiter = ',')]
    pub runtimes: Vec<String>,
    /// Also host processes (those in PID 1's mount namespace). Alone: only them.
    #[arg(long)]
    pub host: bool,
    /// Only containers of this Kubernetes namespace (from CRI labels).
    #[arg(long = "k8s-namespace", value_name = "NS")]
    pub k8s_namespace: Option<String>,
    /// Only containers of this Kubernetes pod (from CRI labels).
    #[arg(long = "k8s-podname", value_name = "POD")]
    pub k8s_podname: Option<String>,
}

impl ContainerFilterArgs {
    /// Adds the selection to a Run's options dictionary.
    pub fn add_to<'a>(&'a self, opts: &mut HashMap<&str, Value<'a>>) {
        let mut list = |key: &'static str, v: &'a [String]| {
            if !v.is_empty() {
                opts.insert(
                    key,
                    Value::from(v.iter().map(String::as_str).collect::<Vec<&str>>()),
                );
            }
        };
        list(keys::CONTAINER_NAME, &self.names);
        list(keys::CONTAINER_ID, &self.ids);
        list(keys::RUNTIME, &self.runtimes);
        if self.host {
            opts.insert(keys::HOST, Value::from(true));
        }
        if let Some(ns) = &self.k8s_namespace {
            opts.insert(keys::K8S_NAMESPACE, Value::from(ns.as_str()));
        }
        if let Some(pod) = &self.k8s_podname {
            opts.insert(keys::K8S_PODNAME, Value::from(pod.as_str()));
        }
    }
}
