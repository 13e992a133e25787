//! Builds the agent's own eBPF objects with clang into `OUT_DIR`, where the
//! crate embeds them: `bpf/socket_enricher.bpf.c` (`src/socket_enricher.rs`),
//! `bpf/container_catchup.bpf.c` (`src/catchup.rs`), `bpf/net_dispatch.bpf.c`
//! (`src/net_dispatch.rs`) and `bpf/tc_dispatch.bpf.c` (`src/tc_dispatch.rs`).
//! clang is a build dependency of gadgetd anyway (the gadgets need it); without it the crate still builds, with empty
//! objects, and each says at run time that it was built without clang.

use std::path::PathBuf;
use std::process::Command;

const OBJECTS: [&str; 4] = [
    "socket_enricher",
    "container_catchup",
    "net_dispatch",
    "tc_dispatch",
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let include = manifest.join("../../include");
    println!("cargo:rerun-if-changed=../../include/vmlinux");
    println!("cargo:rerun-if-env-changed=CLANG");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "arm64",
        _ => "x86",
    };
    for name in OBJECTS {
        let src = manifest.join(format!("bpf/{name}.bpf.c"));
        let out = out_dir.join(format!("{name}.o"));
        println!("cargo:rerun-if-changed=bpf/{name}.bpf.c");
        let built = Command::new(&clang)
            .args(["-g", "-O2", "-target", "bpf"])
            .arg(format!("-D__TARGET_ARCH_{arch}"))
            .arg("-I")
            .arg(&include)
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .status();
        match built {
            Ok(s) if s.success() => {
                // DWARF is not needed (BTF stays); a missing llvm-strip only costs size.
                let _ = Command::new("llvm-strip").arg("-g").arg(&out).status();
            }
            other => {
                println!(
                    "cargo:warning={name}.bpf.c was not built ({clang} failed: {other:?}); install clang and rebuild"
                );
                std::fs::write(&out, b"").expect("writing OUT_DIR");
            }
        }
    }
}
