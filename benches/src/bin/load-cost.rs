//! What loading a gadget costs the agent, phase by phase: the kernel BTF
//! parses (aya's and the runtime's own CO-RE table), and whole loads of a
//! gadget object as the agent does them (load, attach, drop).
//!
//! Usage: `load-cost OBJECT [LOADS] [--on-demand]` (LOADS: 10 unless
//! given; `--on-demand` reads the kernel's BTF on demand as on kernels
//! before 6.16 instead of mapping it).
//!
//! Prints one line per phase with milliseconds (median and min–max over
//! LOADS) and the process's resident memory (`VmRSS`, `VmHWM`, MiB) after it.

use std::time::Instant;

use gadgetd_runtime::load::{self, LoadRequest};
use gadgetd_runtime::object::GadgetObject;

/// `BPF_MAP_TYPE_RINGBUF`: a tracer's ring, rewritten as the agent does.
const RINGBUF: u32 = 27;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load-cost: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `VmRSS` and `VmHWM` of this process, MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn report(phase: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let (rss, hwm) = rss_mib();
    println!(
        "{phase:<34} median {:7.2} ms (min {:7.2}, max {:7.2}, {} runs)  RSS {rss:5.1} MiB  HWM {hwm:5.1} MiB",
        ms[ms.len() / 2],
        ms[0],
        ms[ms.len() - 1],
        ms.len()
    );
}

fn time<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let v = f();
    (t.elapsed().as_secs_f64() * 1000.0, v)
}

fn run() -> Result<(), String> {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--on-demand") {
        args.remove(i);
        gadgetd_runtime::core_relo::read_kernel_btf_on_demand(true);
        println!("kernel BTF read on demand (not mapped)");
    }
    let (object, loads) = match args.as_slice() {
        [_, o] => (o, 10),
        [_, o, n] => (
            o,
            n.parse()
                .map_err(|_| format!("LOADS must be a count, not {n:?}"))?,
        ),
        _ => return Err("usage: load-cost OBJECT [LOADS] [--on-demand]".into()),
    };
    let bytes = std::fs::read(object).map_err(|e| format!("reading {object}: {e}"))?;
    let obj = GadgetObject::parse(bytes).map_err(|e| format!("{object}: {e}"))?;
    let (rss, hwm) = rss_mib();
    println!(
        "{:<34} RSS {rss:5.1} MiB  HWM {hwm:5.1} MiB",
        "start (object parsed)"
    );
    let mut whole = Vec::new();
    let mut attach = Vec::new();
    for _ in 0..loads {
        let req = LoadRequest {
            obj: &obj,
            tracer_maps: obj
                .maps
                .iter()
                .filter(|m| m.map_type == RINGBUF)
                .map(|m| m.name.as_str())
                .take(1)
                .collect(),
            globals: vec![("targ_pid".into(), 1i32.to_ne_bytes().to_vec())],
            max_entries: Vec::new(),
        };
        let (ms, ebpf) = time(|| {
            let _release = load::KernelBtfRelease;
            load::load(&req)
        });
        let mut ebpf = ebpf.map_err(|e| format!("loading {object}: {e}"))?;
        let (ams, att) = time(|| load::attach_all(&mut ebpf, &obj));
        att.map_err(|e| format!("attaching: {e}"))?;
        whole.push(ms);
        attach.push(ams);
        drop(ebpf);
        load::trim_heap();
    }
    report("load (BTF, CO-RE, maps, verifier)", whole);
    report("attach", attach);
    let (ms, table) = time(gadgetd_runtime::core_relo::kernel_table);
    table.map_err(|e| format!("the runtime parsing the kernel BTF: {e}"))?;
    report("runtime core_relo::kernel_table (kept)", vec![ms]);
    gadgetd_runtime::core_relo::release_kernel_table();
    load::trim_heap();
    let (ms, btf) = time(aya::Btf::from_sys_fs);
    btf.map_err(|e| format!("aya parsing the kernel BTF: {e}"))?;
    report("aya Btf::from_sys_fs (kept)", vec![ms]);
    Ok(())
}
