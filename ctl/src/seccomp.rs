//! `-o seccomp`: a seccomp profile (Docker/containerd/Kubernetes format)
//! allowing every syscall the gadget reported, printed when the run ends.
//! Works for any gadget with a `syscall`-typed field (advise_seccomp).

use std::collections::BTreeSet;

use gadgetd_dbus::stream::Field;

#[derive(Default)]
pub struct Profile {
    /// Fields of type `syscall`: their names are in `<field>_name`.
    name_fields: Vec<String>,
    names: BTreeSet<String>,
}

impl Profile {
    pub fn header(&mut self, fields: &[Field]) {
        self.name_fields = fields
            .iter()
            .filter(|f| f.kind == "syscall")
            .map(|f| format!("{}_name", f.name))
            .collect();
    }

    /// Takes the syscall names of an event or of every row of a table.
    pub fn add(&mut self, v: &serde_json::Value) {
        match v {
            serde_json::Value::Array(rows) => rows.iter().for_each(|r| self.add(r)),
            serde_json::Value::Object(_) => {
                for f in &self.name_fields {
                    if let Some(name) = v.get(f).and_then(|n| n.as_str()).filter(|n| !n.is_empty())
                    {
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

/// Syscall names are the agent's architecture's (gadgetd runs on the same host).
fn architectures() -> Vec<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "aarch64" => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        _ => vec![],
    }
}
