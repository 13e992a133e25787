//! Structural checks of what packaging ships that no package test boots:
//! the Kubernetes DaemonSet.

use gadgetd_tests::repo_root;
use serde_json::Value;

fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
    text.split("\n---\n")
        .map(|doc| serde_saphyr::from_str::<Value>(doc).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

#[test]
fn the_daemonset_runs_a_privileged_agent_per_node_with_its_socket_on_the_node() {
    let docs = documents("packaging/kubernetes/gadgetd-daemonset.yaml");
    let ds = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet");
    assert_eq!(ds["apiVersion"], "apps/v1");
    let ns = docs
        .iter()
        .find(|d| d["kind"] == "Namespace")
        .expect("its Namespace");
    assert_eq!(ds["metadata"]["namespace"], ns["metadata"]["name"]);
    let spec = &ds["spec"];
    let labels = &spec["template"]["metadata"]["labels"];
    for (k, v) in spec["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "the selector must match the pod labels");
    }
    let pod = &spec["template"]["spec"];
    assert_eq!(
        pod["hostPID"], true,
        "container pids and namespaces as the node sees them"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["privileged"], true);
    let cmd: Vec<&str> = c["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(cmd[0], "/usr/bin/gadgetd");
    let listen = cmd.iter().position(|a| *a == "--listen").expect("--listen");
    assert_eq!(cmd[listen + 1], gadgetd_dbus::names::DEFAULT_P2P_SOCKET);

    // Every mount names a volume, and the socket's directory is a hostPath on the node.
    let volumes = pod["volumes"].as_array().unwrap();
    let host_path = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))["hostPath"]["path"]
            .as_str()
            .map(str::to_string)
    };
    let mut socket_dir_on_node = None;
    for m in c["volumeMounts"].as_array().unwrap() {
        let path = host_path(m["name"].as_str().unwrap());
        if m["mountPath"] == "/run/gadgetd" {
            socket_dir_on_node = path;
        }
    }
    assert_eq!(socket_dir_on_node.as_deref(), Some("/run/gadgetd"));
    for needed in ["/sys/kernel", "/sys/fs/bpf", "/var/lib/gadgetd"] {
        assert!(
            c["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["mountPath"] == needed),
            "{needed} is not mounted"
        );
    }
}
