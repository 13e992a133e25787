//! `-o seccomp`: a seccomp profile (Docker/containerd/Kubernetes format)
//! allowing every syscall the gadget reported, printed when the run ends.
//! Works for any gadget with a `syscall`-typed field (advise_seccomp).
//!
//! Names come from the syscall number, by the `syscalls` crate's table of
//! the host's architecture (the profile is for this host), and only when the
//! number is unknown there from the agent's `<field>_name`: a profile must
//! never lose a syscall the workload made because its name is missing
//! (the agent's table names no syscall 0, `read` on x86_64).

use std::collections::BTreeSet;

use gadgetd_dbus::stream::Field;

#[derive(Default)]
pub struct Profile {
    /// Fields of type `syscall`: (number field, the agent's `<field>_name`).
    name_fields: Vec<(String, String)>,
    names: BTreeSet<String>,
}

impl Profile {
    pub fn header(&mut self, fields: &[Field]) {
        self.name_fields = fields
            .iter()
            .filter(|f| f.kind == "syscall")
            .map(|f| (f.name.clone(), format!("{}_name", f.name)))
            .collect();
    }

    /// Takes the syscall names of an event or of every row of a table.
    pub fn add(&mut self, v: &serde_json::Value) {
        match v {
            serde_json::Value::Array(rows) => rows.iter().for_each(|r| self.add(r)),
            serde_json::Value::Object(_) => {
                for (number, name) in &self.name_fields {
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
    use gadgetd_dbus::stream::{Alignment, Ellipsis};

    #[test]
    fn every_number_is_named_syscall_zero_included() {
        let field = |name: &str, kind: &str| Field {
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
        };
        let mut p = Profile::default();
        p.header(&[field("syscall", "syscall"), field("syscall_name", "string")]);
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
