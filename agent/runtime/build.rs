//! Builds the socket enricher's eBPF object (`bpf/socket_enricher.bpf.c`,
//! see `src/socket_enricher.rs`) with clang into `OUT_DIR`, where the crate
//! embeds it. clang is a build dependency of gadgetd anyway (the gadgets need
//! it); without it the crate still builds, with an empty object, and the
//! enricher says at run time that it was built without clang.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("socket_enricher.o");
    let src = manifest.join("bpf/socket_enricher.bpf.c");
    let include = manifest.join("../../include");
    println!("cargo:rerun-if-changed=bpf/socket_enricher.bpf.c");
    println!("cargo:rerun-if-changed=../../include/vmlinux");
    println!("cargo:rerun-if-env-changed=CLANG");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "arm64",
        _ => "x86",
    };
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
                "cargo:warning=the socket enricher was not built ({clang} failed: {other:?}); install clang and rebuild to enrich network events with processes"
            );
            std::fs::write(&out, b"").expect("writing OUT_DIR");
        }
    }
}
