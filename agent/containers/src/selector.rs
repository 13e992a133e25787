//! Which containers a run wants (`gadgetctl run --containername ...`).
//! Criteria are ANDed; several values of one criterion are ORed.

use std::collections::HashMap;

use gadgetd_dbus::types::container_options as options;
use zbus::zvariant::OwnedValue;

use super::Container;

#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Exact names or globs (`web-*`).
    pub names: Vec<glob::Pattern>,
    /// Full ids or unique prefixes (`docker ps` shows 12 characters).
    pub ids: Vec<String>,
    pub runtimes: Vec<String>,
    pub k8s_namespace: Option<String>,
    pub k8s_podname: Option<String>,
    /// Also the host: processes in PID 1's mount namespace.
    pub host: bool,
}

/// The option keys a selector reads from a Run's options dictionary.
pub const KEYS: &[&str] = &[
    options::CONTAINER_NAME,
    options::CONTAINER_ID,
    options::RUNTIME,
    options::HOST,
    options::K8S_NAMESPACE,
    options::K8S_PODNAME,
];

fn strings(key: &str, value: &OwnedValue) -> zbus::fdo::Result<Vec<String>> {
    let bad =
        || zbus::fdo::Error::InvalidArgs(format!("option {key} must be a list of strings (as)"));
    let v = value.try_clone().map_err(|_| bad())?;
    let list = Vec::<String>::try_from(v).map_err(|_| bad())?;
    if let Some(empty) = list.iter().position(|s| s.trim().is_empty()) {
        return Err(zbus::fdo::Error::InvalidArgs(format!(
            "option {key}: value {} is empty",
            empty + 1
        )));
    }
    Ok(list)
}

fn string(key: &str, value: &OwnedValue) -> zbus::fdo::Result<String> {
    let s = value
        .try_clone()
        .ok()
        .and_then(|v| String::try_from(v).ok())
        .ok_or_else(|| {
            zbus::fdo::Error::InvalidArgs(format!("option {key} must be a string (s)"))
        })?;
    if s.trim().is_empty() {
        return Err(zbus::fdo::Error::InvalidArgs(format!(
            "option {key} is empty"
        )));
    }
    Ok(s)
}

impl Selector {
    /// Reads the selector's keys of a Run's options (others are ignored).
    pub fn from_options(opts: &HashMap<String, OwnedValue>) -> zbus::fdo::Result<Selector> {
        let mut sel = Selector::default();
        for (key, value) in opts {
            sel.set(key, value)?;
        }
        Ok(sel)
    }

    /// Sets one option; `key` must be one of [`KEYS`].
    pub fn set(&mut self, key: &str, value: &OwnedValue) -> zbus::fdo::Result<()> {
        match key {
            options::CONTAINER_NAME => {
                for name in strings(key, value)? {
                    let pattern = glob::Pattern::new(&name).map_err(|e| {
                        zbus::fdo::Error::InvalidArgs(format!(
                            "--containername `{name}` is not a valid glob: {e}"
                        ))
                    })?;
                    self.names.push(pattern);
                }
            }
            options::CONTAINER_ID => self.ids.extend(strings(key, value)?),
            options::RUNTIME => {
                for r in strings(key, value)? {
                    if !super::config::RUNTIME_NAMES.contains(&r.as_str()) {
                        return Err(zbus::fdo::Error::InvalidArgs(format!(
                            "--runtime `{r}` is not a runtime gadgetd knows (one of: {})",
                            super::config::RUNTIME_NAMES.join(", ")
                        )));
                    }
                    self.runtimes.push(r);
                }
            }
            options::HOST => {
                self.host = bool::try_from(value).map_err(|_| {
                    zbus::fdo::Error::InvalidArgs(format!("option {key} must be a boolean (b)"))
                })?;
            }
            options::K8S_NAMESPACE => self.k8s_namespace = Some(string(key, value)?),
            options::K8S_PODNAME => self.k8s_podname = Some(string(key, value)?),
            _ => {}
        }
        Ok(())
    }

    /// No criterion at all: the gadget sees everything (no filter map).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
            && self.ids.is_empty()
            && self.runtimes.is_empty()
            && self.k8s_namespace.is_none()
            && self.k8s_podname.is_none()
            && !self.host
    }

    /// Whether any container criterion was given (`--host` alone selects
    /// the host only).
    fn selects_containers(&self) -> bool {
        !(self.names.is_empty()
            && self.ids.is_empty()
            && self.runtimes.is_empty()
            && self.k8s_namespace.is_none()
            && self.k8s_podname.is_none())
    }

    pub fn matches(&self, c: &Container) -> bool {
        if !self.selects_containers() {
            return false;
        }
        let any = |list_empty: bool, hit: bool| list_empty || hit;
        any(
            self.names.is_empty(),
            self.names.iter().any(|p| p.matches(&c.name)),
        ) && any(
            self.ids.is_empty(),
            self.ids.iter().any(|id| c.id.starts_with(id.as_str())),
        ) && any(self.runtimes.is_empty(), self.runtimes.contains(&c.runtime))
            && self
                .k8s_namespace
                .as_ref()
                .is_none_or(|n| *n == c.k8s.namespace)
            && self
                .k8s_podname
                .as_ref()
                .is_none_or(|n| *n == c.k8s.pod_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::K8s;

    fn c(name: &str, id: &str, runtime: &str, k8s_ns: &str) -> Container {
        Container {
            id: id.into(),
            name: name.into(),
            runtime: runtime.into(),
            image: String::new(),
            pid: 1,
            mntns: 1,
            netns: 1,
            cgroup: String::new(),
            namespace: String::new(),
            k8s: K8s {
                namespace: k8s_ns.into(),
                pod_name: "pod".into(),
                container_name: name.into(),
            },
            ips: Vec::new(),
        }
    }

    fn opts(pairs: &[(&str, OwnedValue)]) -> HashMap<String, OwnedValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.try_clone().unwrap()))
            .collect()
    }

    fn list(v: &[&str]) -> OwnedValue {
        OwnedValue::try_from(zbus::zvariant::Value::from(
            v.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ))
        .unwrap()
    }

    #[test]
    fn names_are_exact_or_globs_and_criteria_combine() {
        let sel =
            Selector::from_options(&opts(&[(options::CONTAINER_NAME, list(&["web", "db-*"]))]))
                .unwrap();
        assert!(sel.matches(&c("web", "a1", "docker", "")));
        assert!(!sel.matches(&c("web2", "a1", "docker", "")));
        assert!(sel.matches(&c("db-1", "a1", "podman", "")));
        let sel = Selector::from_options(&opts(&[
            (options::CONTAINER_NAME, list(&["*"])),
            (options::RUNTIME, list(&["podman"])),
            (options::CONTAINER_ID, list(&["abc"])),
        ]))
        .unwrap();
        assert!(sel.matches(&c("x", "abcdef", "podman", "")));
        assert!(!sel.matches(&c("x", "abcdef", "docker", "")));
        assert!(!sel.matches(&c("x", "bcdef", "podman", "")));
        let host =
            Selector::from_options(&opts(&[(options::HOST, OwnedValue::from(true))])).unwrap();
        assert!(!host.is_empty());
        assert!(!host.matches(&c("x", "a", "docker", "")));
        let k8s = Selector::from_options(&opts(&[(
            options::K8S_NAMESPACE,
            OwnedValue::from(zbus::zvariant::Str::from("prod")),
        )]))
        .unwrap();
        assert!(k8s.matches(&c("x", "a", "containerd", "prod")));
        assert!(!k8s.matches(&c("x", "a", "containerd", "dev")));
    }

    #[test]
    fn bad_values_name_the_option() {
        let e = Selector::from_options(&opts(&[(options::RUNTIME, list(&["rkt"]))])).unwrap_err();
        assert!(e.to_string().contains("--runtime `rkt`"), "{e}");
        let e =
            Selector::from_options(&opts(&[(options::CONTAINER_NAME, list(&["[x"]))])).unwrap_err();
        assert!(e.to_string().contains("not a valid glob"), "{e}");
        let e = Selector::from_options(&opts(&[(options::HOST, list(&["x"]))])).unwrap_err();
        assert!(e.to_string().contains("boolean"), "{e}");
    }
}
