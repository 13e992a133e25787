//! `-o seccomp`: a seccomp profile (Docker/containerd/Kubernetes format)
//! allowing every syscall the gadget reported, printed when the run ends.
//! Works for any gadget with a `syscall`-typed field (advise_seccomp).
//! With several data sources, the syscalls are those of every source that
//! has such a field (each source's own fields; events of the others are
//! ignored): a profile that missed a syscall of the workload would break it.
//!
//! Names come from the syscall number, by the `syscalls` crate's table of
//! the host's architecture (the profile is for this host), and only when the
//! number is unknown there from the agent's `<field>_name`: a profile must
//! never lose a syscall the workload made because its name is missing
//! (the agent's table names no syscall 0, `read` on x86_64).

use std::collections::BTreeSet;

use gadgetd_dbus::stream::{DATASOURCE_KEY, DataSourceInfo};

#[derive(Default)]
pub struct Profile {
    /// Fields of type `syscall`: (data source, number field, the agent's
    /// `<field>_name`).
    name_fields: Vec<(String, String, String)>,
    names: BTreeSet<String>,
}

impl Profile {
    /// Takes the `syscall` fields of every data source of the header.
    pub fn header(&mut self, sources: &[DataSourceInfo]) {
        self.name_fields = sources
            .iter()
            .flat_map(|s| {
                s.fields
                    .iter()
                    .filter(|f| f.kind == "syscall")
                    .map(|f| (s.name.clone(), f.name.clone(), format!("{}_name", f.name)))
            })
            .collect();
    }

    /// Takes the syscall names of an event or of every row of a table,
    /// from the fields of the source it names (`"datasource"`; any source
    /// when it names none, as with a single source).
    pub fn add(&mut self, v: &serde_json::Value) {
        match v {
            serde_json::Value::Array(rows) => rows.iter().for_each(|r| self.add(r)),
            serde_json::Value::Object(_) => {
                let source = v.get(DATASOURCE_KEY).and_then(|n| n.as_str());
                let of_source = self
                    .name_fields
                    .iter()
                    .filter(|(s, _, _)| source.is_none_or(|n| n == s));
                for (_, number, name) in of_source {
                    let by_number = v
                        .get(number)
                        .and_then(serde_json::Value::as_u64)
                        .and_then(host_syscall_name);
                    let by_agent = v
                        .get(name)
                        .and_then(|n| n.as_str())
                        .filter(|n| !n.is_empty());
                    if let Some(name) = by_number.or(by_agent) {
                        self.names.insert(name.to_string());
                    }
                }
            }
            _ => {}
        }
    }

    pub fn render(&self) -> serde_json::Value {
        serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": architectures(),
            "syscalls": [{"names": self.names, "action": "SCMP_ACT_ALLOW"}],
        })
    }

    pub fn has_syscall_fields(&self) -> bool {
        !self.name_fields.is_empty()
    }
}

/// The name of syscall `nr` on this host's architecture.
pub fn host_syscall_name(nr: u64) -> Option<&'static str> {
    syscalls::Sysno::new(usize::try_from(nr).ok()?).map(|s| s.name())
}

/// Syscall names are the agent's architecture's (gadgetd runs on the same host).
fn architectures() -> Vec<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "aarch64" => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gadgetd_dbus::stream::{Alignment, Ellipsis, Field};

    fn field(name: &str, kind: &str) -> Field {
        Field {
            name: name.into(),
            kind: kind.into(),
            width: 1,
            min_width: None,
            max_width: None,
            alignment: Alignment::Left,
            visible: true,
            order: 0,
            ellipsis: Ellipsis::End,
            description: String::new(),
        }
    }

    fn source(name: &str, fields: Vec<Field>) -> DataSourceInfo {
        DataSourceInfo {
            name: name.into(),
            kind: "tracer".into(),
            fields,
        }
    }

    /// With several sources, every source with a syscall field counts,
    /// each by its own fields: a number in another source's field of the
    /// same name is no syscall.
    #[test]
    fn each_source_with_syscalls_counts_by_its_own_fields() {
        let mut p = Profile::default();
        p.header(&[
            source("opens", vec![field("syscall", "u32")]),
            source("get", vec![field("nr", "syscall")]),
            source("set", vec![field("syscall", "syscall")]),
        ]);
        for e in [
            serde_json::json!({"datasource": "opens", "syscall": 1000, "nr": 1001}),
            serde_json::json!({"datasource": "get", "nr": 99990, "nr_name": "getter", "syscall": 99991, "syscall_name": "not_mine"}),
            serde_json::json!([{"datasource": "set", "syscall": 99992, "syscall_name": "setter"}]),
        ] {
            p.add(&e);
        }
        let names: Vec<&str> = p.names.iter().map(String::as_str).collect();
        assert_eq!(names, ["getter", "setter"]);
    }

    #[test]
    fn every_number_is_named_syscall_zero_included() {
        let mut p = Profile::default();
        p.header(&[source(
            "calls",
            vec![field("syscall", "syscall"), field("syscall_name", "string")],
        )]);
        // What the agent sends: no name for 0, names for the rest.
        p.add(&serde_json::json!([
            {"syscall": 0, "syscall_name": ""},
            {"syscall": 1, "syscall_name": "write"},
            {"syscall": 231, "syscall_name": "exit_group"},
            {"syscall": 99999, "syscall_name": "from_the_agent"},
        ]));
        #[cfg(target_arch = "x86_64")]
        {
            let names: Vec<&str> = p.names.iter().map(String::as_str).collect();
            assert_eq!(names, ["exit_group", "from_the_agent", "read", "write"]);
        }
        let want: BTreeSet<String> = [0, 1, 231]
            .into_iter()
            .filter_map(host_syscall_name)
            .chain(["from_the_agent"])
            .map(str::to_string)
            .collect();
        assert_eq!(p.names, want);
    }
}
