//! What a C toolchain emits, loaded and decoded in-process on the real
//! kernel (issue 17): CO-RE relocations aya-obj 0.3 cannot resolve, and
//! event shapes decoded from BTF.

use std::ffi::CString;
use std::time::{Duration, Instant};

use gadgetd::runtime::{Gadget, Record, RunOptions, Running};
use gadgetd_tests::*;
use serde_json::Value;

/// One getcwd(2) of this process (what most test objects trace).
fn getcwd() {
    let mut buf = [0u8; 256];
    // SAFETY: getcwd(2) into a buffer we own.
    unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
}

/// The first event of `gadget` run for this process after one getcwd(2).
async fn first_getcwd_event(gadget: &Gadget) -> Value {
    let mut run = gadget.start(&mine()).unwrap();
    getcwd();
    let evs = events_until(&mut run, |evs| !evs.is_empty()).await;
    evs.into_iter().next().unwrap()
}

/// Options of a run that sees only this process (`targ_pid`).
fn mine() -> RunOptions {
    let mut opts = RunOptions::default();
    opts.params
        .insert("targ_pid".into(), std::process::id().to_string());
    opts
}

/// The error `gadget` fails to start with under `opts` (`why` says why it
/// must fail, should it start).
fn start_error(gadget: &Gadget, opts: &RunOptions, why: &str) -> String {
    rt().block_on(async {
        match gadget.start(opts) {
            Ok(_) => panic!("{why}"),
            Err(e) => e.to_string(),
        }
    })
}

/// Asserts that `err` says each of `parts`.
fn assert_says(err: &str, parts: &[&str]) {
    for part in parts {
        assert!(err.contains(part), "`{part}` missing from: {err}");
    }
}

/// Events of `run` until `done` says it has them all, or 10 s pass.
async fn events_until(run: &mut Running, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !done(&seen) {
        let rec = tokio::time::timeout_at(deadline.into(), run.next_record())
            .await
            .unwrap_or_else(|_| panic!("timed out; events so far: {seen:?}"))
            .unwrap();
        if let Some(Record::Event(ev)) = rec {
            seen.push(Value::Object(ev));
        }
    }
    seen
}

#[test]
fn flexible_array_members_and_type_matches_resolve_against_the_kernel() {
    require_root();
    rt().block_on(async {
        let mut opts = mine();
        let pid = std::process::id();
        opts.params
            .insert("targ_nr".into(), libc::SYS_getcwd.to_string());
        let mut run = load("core_flex").start(&opts).unwrap();

        let dir = TempDir::new("core-flex");
        let path = dir.path().join("flex-probe");
        let c = CString::new(path.to_str().unwrap()).unwrap();
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW;
        // SAFETY: plain open(2) of a path we own; the fd is closed right away.
        let fd = unsafe { libc::open(c.as_ptr(), flags, 0o640) };
        assert!(fd >= 0);
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        getcwd();

        let want = path.to_str().unwrap();
        let evs = events_until(&mut run, |evs| {
            evs.iter().any(|e| e["fname"] == want) && evs.iter().any(|e| e["source"] == 2)
        })
        .await;
        let open = evs.iter().find(|e| e["fname"] == want).unwrap();
        // ctx->nr, ctx->args[2], ctx->args[3] of struct syscall_trace_enter.
        assert_eq!(open["pid"], pid);
        assert_eq!(open["source"], 1);
        assert_eq!(open["nr"], libc::SYS_openat);
        assert_eq!(open["flags"], flags as u64);
        assert_eq!(open["mode"], 0o640);
        // bpf_core_type_matches() (kind 12) and bpf_core_type_exists() (kind 8).
        assert_eq!(open["matches_task"], 1);
        assert_eq!(open["matches_mismatch"], 0);
        assert_eq!(open["matches_absent"], 0);
        assert_eq!(open["exists_task"], 1);
        // bpf_raw_tracepoint_args.args[1] of raw_tp/sys_enter: the syscall number.
        let raw = evs.iter().find(|e| e["source"] == 2).unwrap();
        assert_eq!(raw["pid"], pid);
        assert_eq!(raw["nr"], libc::SYS_getcwd);
    });
}

#[test]
fn an_unresolvable_relocation_is_named_not_a_bare_verifier_code() {
    require_root();
    let err = start_error(
        &load("bad_core"),
        &RunOptions::default(),
        "a read of a field no kernel has must not load",
    );
    assert_says(
        &err,
        &[
            "program `bad_core_getcwd` (section `tracepoint/syscalls/sys_enter_getcwd`)",
            "(field byte offset) of `task_struct___gone.gadgetd_no_such_field`",
            "access string 0:0",
            "Guard the access with bpf_core_field_exists()",
            "the verifier stopped at instruction",
        ],
    );
    assert!(!err.contains("195896080"), "{err}");
}

#[test]
fn every_kind_of_byte_array_decodes_as_a_string() {
    require_root();
    rt().block_on(async {
        let pid = std::process::id();
        let ev = &first_getcwd_event(&load("strings")).await;
        assert_eq!(ev["pid"], pid);
        assert_eq!(ev["comm"], own_comm());
        assert_eq!(ev["tcomm"], own_comm());
        assert_eq!(ev["s_char"], "signed");
        assert_eq!(ev["u_char"], "unsig");
        assert_eq!(ev["u8s"], "u8");
        assert_eq!(ev["s8s"], "s8");
        assert_eq!(ev["full"], "full");
        assert_eq!(ev["raw"], r"\xffa\\\xc3");
    });
}

/// The fix-ups touch only what aya-obj 0.3 cannot do: every bundled gadget's
/// relocations resolve on this kernel, none is poisoned, and a gadget is
/// rewritten only where a fix-up resolved something.
#[test]
fn bundled_gadgets_have_no_unresolvable_relocations() {
    use gadgetd::runtime::core_relo;
    let dir = std::path::Path::new(&std::env::var("GADGETD_GADGETS").unwrap()).to_path_buf();
    let mut objects: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    objects.sort();
    assert!(objects.len() >= 5, "gadgets in {}", dir.display());
    let kernel = core_relo::kernel_table().unwrap();
    let sockets = gadgetd::runtime::socket_enricher::value_btf().unwrap();
    let mut rewritten = Vec::new();
    for path in &objects {
        let bytes = std::fs::read(path).unwrap();
        // Network gadgets' gadget_socket_value accesses resolve against the
        // socket enricher's types, as the loader does.
        let fixed = core_relo::fix_up_with(&bytes, core_relo::kernel_table, Some(&sockets))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // IG-style gadgets use what aya-obj 0.3 lacks (flexible arrays such as
        // `ctx->args[i]`, type matches in the gadget/ headers, the enricher's
        // types): a rewrite is fine but always resolves something.
        if fixed.bytes.is_some() {
            assert!(
                fixed.resolved > 0,
                "{} rewritten for nothing",
                path.display()
            );
            rewritten.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        } else {
            assert_eq!(fixed.resolved, 0, "{}", path.display());
        }
        let missing =
            core_relo::unresolved(fixed.bytes.as_deref().unwrap_or(&bytes), &kernel).unwrap();
        assert!(missing.is_empty(), "{}: {missing:?}", path.display());
    }
    eprintln!("rewritten by the fix-ups: {rewritten:?}");
    let flex = core_relo::fix_up(
        &std::fs::read(test_object("core_flex")).unwrap(),
        core_relo::kernel_table,
    )
    .unwrap();
    // args[1], args[2], args[3] (tracepoint), args[1] loaded twice (raw_tp),
    // three type matches; `ctx->nr` (0:1) is aya's.
    assert_eq!((flex.resolved, flex.poisoned.len()), (8, 0));
    // The guarded and the unguarded read: left to aya, named if reached.
    let bad = std::fs::read(test_object("bad_core")).unwrap();
    let missing = core_relo::unresolved(&bad, &kernel).unwrap();
    assert_eq!(missing.len(), 2, "{missing:?}");
    assert!(missing.iter().all(|(p, _)| p == "bad_core_getcwd"));
}

/// The kernel's BTF mapped (Linux 6.16+) and read on demand (the fallback
/// for older kernels) resolve every relocation of every bundled gadget and
/// test object to the same bytes, with the same counts.
#[test]
fn co_re_is_the_same_with_the_kernel_btf_mapped_or_read_on_demand() {
    use gadgetd::runtime::core_relo;
    let dir = std::path::PathBuf::from(std::env::var("GADGETD_GADGETS").unwrap());
    let mut objects: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    objects.sort();
    objects.extend(["core_flex", "bad_core"].map(test_object));
    assert!(objects.len() >= 7, "objects: {objects:?}");
    let sockets = gadgetd::runtime::socket_enricher::value_btf().unwrap();
    let mut resolved = 0;
    for path in &objects {
        let bytes = std::fs::read(path).unwrap();
        let fix = |kernel: fn() -> gadgetd::runtime::Result<_>| {
            core_relo::fix_up_all(&bytes, kernel, Some(&sockets))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let mapped = fix(core_relo::kernel_table);
        let read = fix(core_relo::kernel_table_read_on_demand);
        assert_eq!(mapped.bytes, read.bytes, "{}", path.display());
        assert_eq!(
            (mapped.resolved, &mapped.poisoned, mapped.left_to_aya),
            (read.resolved, &read.poisoned, read.left_to_aya),
            "{}",
            path.display()
        );
        resolved += mapped.resolved;
    }
    assert!(resolved > 50, "{resolved} relocations resolved in all");
}

#[test]
fn a_declarative_program_array_is_filled_and_its_tail_call_runs() {
    require_root();
    rt().block_on(async {
        let pid = std::process::id();
        let mut run = load("prog_array").start(&mine()).unwrap();
        getcwd();
        let evs = events_until(&mut run, |evs| evs.len() >= 2).await;
        // Slot 0 is empty: the entry program goes on (2); slot 1 runs tail_getcwd (1).
        let ran: Vec<_> = evs.iter().map(|e| e["ran"].clone()).collect();
        assert_eq!(ran, [2, 1]);
        assert!(evs.iter().all(|e| e["pid"] == pid));
    });
}

#[test]
fn integer_enum_float_and_array_shapes_decode_exactly() {
    require_root();
    rt().block_on(async {
        let pid = std::process::id();
        let mut run = load("shapes").start(&mine()).unwrap();
        getcwd();
        // The raw line: 128-bit numbers do not survive a parse into f64.
        let mut raw = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !raw.ends_with(b"\n") {
            tokio::time::timeout_at(deadline.into(), run.next_batch(&mut raw))
                .await
                .expect("no event");
        }
        let line = String::from_utf8(raw).unwrap();
        let ev: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
        assert_eq!(ev["pid"], pid);
        // Shortest round-trip text in the field's own width.
        assert!(line.contains(r#""f":0.1,"#), "{line}");
        assert!(line.contains(r#""third":0.33333334,"#), "{line}");
        assert!(line.contains(r#""d":0.1,"#), "{line}");
        assert_eq!(ev["four_unnamed"], 4294967280u64);
        assert_eq!(ev["two"], "TWO_NEG");
        assert_eq!(ev["two_unnamed"], -5);
        assert_eq!(ev["one"], "ONE_B");
        assert_eq!(ev["one_unnamed"], 7);
        // An array of structs: one field per element member.
        assert_eq!(ev["pairs[0].a"], 1);
        assert_eq!(ev["pairs[0].b"], 2);
        assert_eq!(ev["pairs[1].a"], 300);
        assert_eq!(ev["pairs[1].b"], 4);
        // 128-bit integers: every digit.
        assert!(
            line.contains(r#""big":1267650600228229401496703205376,"#),
            "{line}"
        );
        assert!(
            line.contains(r#""big_neg":-1180591620717411303424,"#),
            "{line}"
        );
        // Zero-length arrays: empty.
        assert_eq!(ev["none"], serde_json::json!([]));
        assert_eq!(ev["rest"], "");
    });
}

#[test]
fn endpoints_of_an_older_layout_decode_by_member_name() {
    require_root();
    rt().block_on(async {
        let pid = std::process::id();
        let ev = &first_getcwd_event(&load("endpoints_old")).await;
        assert_eq!(ev["pid"], pid);
        assert_eq!(ev["host"], "10.0.0.1");
        assert_eq!(ev["src"], "127.0.0.1:8080");
        assert_eq!(ev["dst6"], "[::1]:443");
    });
}

#[test]
fn sections_spelled_as_libbpf_reads_them_load_and_attach() {
    require_root();
    rt().block_on(async {
        let mut opts = mine();
        let pid = std::process::id();
        const PAYLOAD: usize = 1234;
        // Ethernet (loopback too), IPv4 and UDP headers.
        let frame = 14 + 20 + 8 + PAYLOAD;
        opts.params
            .insert("targ_nr".into(), libc::SYS_getcwd.to_string());
        opts.params.insert("targ_len".into(), frame.to_string());
        let mut run = load("sections").start(&opts).unwrap();
        getcwd();
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(&[7u8; PAYLOAD], rx.local_addr().unwrap())
            .unwrap();
        let evs = events_until(&mut run, |evs| {
            (1..=4).all(|s| evs.iter().any(|e| e["source"] == s))
        })
        .await;
        let first = |s: u32| evs.iter().find(|e| e["source"] == s).unwrap();
        assert_eq!(first(1)["pid"], pid, "tp/");
        assert_eq!(first(2)["value"], libc::SYS_getcwd, "raw_tp.w/");
        assert_eq!(first(3)["value"], libc::SYS_getcwd, "tp_btf/");
        assert_eq!(first(4)["value"], frame, "socket1");
    });
}

#[test]
fn a_section_gadgetd_cannot_attach_is_named_with_the_known_ones() {
    require_root();
    let err = start_error(
        &load("bad_section"),
        &RunOptions::default(),
        "ksyscall/ must not load",
    );
    assert_says(
        &err,
        &[
            "program `bad_section_getcwd` (section `ksyscall/getcwd`)",
            "not a program type gadgetd can attach",
            "tracepoint/<category>/<name>",
            "tp_btf/<name>",
        ],
    );
}

/// A burst that overflows one CPU's perf buffer, with no later event on that
/// CPU: the kernel writes its LOST record only at the next sample there, so
/// the loss must come from the kernel's count, read periodically and at the end.
#[test]
fn a_perf_buffer_overflow_with_no_later_event_is_counted() {
    require_root();
    rt().block_on(async {
        let mut run = load("perf_open").start(&mine()).unwrap();
        let dir = TempDir::new("perf-lost");
        let path = dir.path().join("burst");
        std::fs::write(&path, b"").unwrap();
        // Pin the burst to CPU 0; nothing is read until it ends (one thread).
        // SAFETY: sched_setaffinity(2) on this thread with a valid cpu set.
        let old = unsafe {
            let mut old: libc::cpu_set_t = std::mem::zeroed();
            libc::sched_getaffinity(0, std::mem::size_of_val(&old), &mut old);
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut one);
            assert_eq!(
                libc::sched_setaffinity(0, std::mem::size_of_val(&one), &one),
                0
            );
            old
        };
        // 64 pages per CPU hold about 2,500 of these 104-byte samples.
        const OPENS: u64 = 20_000;
        for _ in 0..OPENS {
            drop(std::fs::File::open(&path).unwrap());
        }
        // SAFETY: restoring the affinity saved above.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&old), &old) };
        let (mut events, mut lost) = (0u64, 0u64);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && events + lost < OPENS {
            let mut buf = Vec::new();
            if let Ok(batch) =
                tokio::time::timeout(Duration::from_millis(300), run.next_batch(&mut buf)).await
            {
                events += batch.events;
                lost += batch.lost;
            }
        }
        lost += run.final_losses();
        assert!(lost > 10_000, "events {events}, lost {lost}");
        // Every open is delivered or counted (a few opens by the runtime tolerated).
        assert!(
            (OPENS..OPENS + 10).contains(&(events + lost)),
            "events {events} + lost {lost} != {OPENS}"
        );
    });
}

#[test]
fn uprobe_targets_as_users_write_them_and_the_per_program_policy() {
    use gadgetd::runtime::load::ProgramStatus;
    require_root();
    rt().block_on(async {
        let pid = std::process::id();
        let mut run = load("uprobes").start(&mine()).unwrap();
        let status: Vec<(String, ProgramStatus)> = run
            .programs()
            .iter()
            .map(|p| (p.program.clone(), p.status.clone()))
            .collect();
        let of = |name: &str| status.iter().find(|(p, _)| p == name).unwrap().1.clone();
        for name in ["up_bare_name", "up_soname", "up_full_path", "up_versioned", "up_offset"] {
            assert_eq!(of(name), ProgramStatus::Attached, "{name}");
        }
        assert_eq!(of("up_disabled"), ProgramStatus::Disabled);
        assert_eq!(
            of("up_absent"),
            ProgramStatus::Skipped(
                "uprobe target `libgadgetd_absent.so.7` is not on this host (no such file, and not in /etc/ld.so.cache)".into()
            )
        );
        // SAFETY: plain libc calls without arguments.
        unsafe {
            libc::getpid();
            libc::getppid();
            libc::getuid();
            libc::getgid();
            libc::getegid();
        }
        let evs = events_until(&mut run, |evs| {
            (1..=5).all(|p| evs.iter().any(|e| e["probe"] == p))
        })
        .await;
        assert!(evs.iter().all(|e| e["pid"] == pid));
        assert!(!evs.iter().any(|e| e["probe"] == 6 || e["probe"] == 7));
    });
}

/// `BPF_UPROBE` with six arguments and `BPF_URETPROBE` (libbpf 1.2/1.3 macros,
/// supplied by include/bpf/bpf_tracing.h over an older system libbpf): mmap()'s
/// six arguments, the sixth from its own register, and its return value.
#[test]
fn uprobe_macros_read_six_arguments_and_the_return_value() {
    require_root();
    rt().block_on(async {
        let gadget = load("uprobe_args");
        let mut opts = RunOptions::default();
        let pid = std::process::id();
        opts.params.insert("targ_pid".into(), pid.to_string());
        let mut run = gadget.start(&opts).unwrap();
        // Unusual values in every argument so none can match by accident; the
        // offset is page-aligned (glibc checks it) and ignored for anonymous maps.
        const LEN: usize = 12_345;
        const OFF: i64 = 0x7000;
        // SAFETY: an anonymous private mapping, unmapped right after.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                OFF,
            )
        };
        assert_ne!(
            addr,
            libc::MAP_FAILED,
            "{}",
            std::io::Error::last_os_error()
        );
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(addr, LEN) };
        let evs = events_until(&mut run, |evs| {
            evs.iter()
                .any(|e| e["probe"] == 1 && e["len"] == LEN as u64)
                && evs
                    .iter()
                    .any(|e| e["probe"] == 2 && e["ret"] == addr as i64)
        })
        .await;
        let entry = evs
            .iter()
            .find(|e| e["probe"] == 1 && e["len"] == LEN as u64)
            .unwrap();
        assert_eq!(entry["pid"], pid);
        assert_eq!(entry["addr"], 0);
        assert_eq!(entry["prot"], libc::PROT_READ as i64);
        assert_eq!(
            entry["flags"],
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as i64
        );
        assert_eq!(entry["fd"], -1);
        assert_eq!(entry["off"], OFF, "the sixth argument (r9 on x86-64)");
    });
}

/// BPF LSM: where the kernel runs BPF LSM programs, one reports our own open
/// with its flags; where it does not (this VM refuses tracing programs with
/// EPERM), the error names the program, the hook and why.
#[test]
fn an_lsm_program_runs_or_says_why_it_cannot() {
    require_root();
    rt().block_on(async {
        let pid = std::process::id();
        let mut run = match load("lsm_open").start(&mine()) {
            Ok(run) => run,
            Err(e) => {
                let e = e.to_string();
                eprintln!("lsm attach skipped: {e}");
                assert!(
                    e.starts_with("program `lsm_file_open` (section `lsm/file_open`): ")
                        && (e.contains("BPF LSM is not enabled on this kernel")
                            || e.contains("BPF LSM hook `file_open` is not usable on this kernel")
                            || e.contains("BPF LSM programs cannot attach on this kernel")),
                    "{e}"
                );
                return;
            }
        };
        let dir = TempDir::new("lsm");
        let path = dir.path().join("lsm-probe");
        std::fs::write(&path, b"").unwrap();
        drop(std::fs::File::open(&path).unwrap());
        let evs = events_until(&mut run, |evs| !evs.is_empty()).await;
        assert_eq!(evs[0]["pid"], pid);
        // O_RDONLY | O_CLOEXEC, plus the kernel's FMODE bits are not in f_flags.
        assert_eq!(evs[0]["flags"].as_u64().unwrap() & 0o2000000, 0o2000000);
    });
}

/// The run's pin directories under /run/gadgetd/pins that hold `map`.
fn pins_of(map: &str) -> Vec<std::path::PathBuf> {
    let Ok(dirs) = std::fs::read_dir(gadgetd::runtime::pin_dir::PINS_ROOT) else {
        return Vec::new();
    };
    dirs.filter_map(|d| Some(d.ok()?.path().join(map)))
        .filter(|p| p.exists())
        .collect()
}

#[test]
fn pinned_maps_live_in_a_bpffs_of_the_run_and_go_with_it() {
    require_root();
    rt().block_on(async {
        let gadget = load("pinned");
        let opts = mine();
        let before = pins_of("pin_counts");
        for run_no in 0..2 {
            let mut run = gadget.start(&opts).unwrap();
            let pins: Vec<_> = pins_of("pin_counts")
                .into_iter()
                .filter(|p| !before.contains(p))
                .collect();
            assert_eq!(pins.len(), 1, "run {run_no}: one pin of its own: {pins:?}");
            getcwd();
            getcwd();
            let evs = events_until(&mut run, |evs| evs.len() >= 2).await;
            // Counting starts from zero in every run: nothing stale is reused.
            let counts: Vec<_> = evs.iter().map(|e| e["count"].clone()).collect();
            assert_eq!(counts, [1, 2], "run {run_no}");
            drop(run);
            assert!(
                !pins[0].exists(),
                "run {run_no} left {} behind",
                pins[0].display()
            );
            assert!(!pins[0].parent().unwrap().exists());
        }
        assert!(!std::path::Path::new("/sys/fs/bpf/pin_counts").exists());
    });
}

/// Moves this process into `cgroup` until dropped (back to where it was).
struct InCgroup(std::path::PathBuf);

impl InCgroup {
    fn enter(cgroup: &std::path::Path) -> InCgroup {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let rel = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap()
            .to_string();
        let root = gadgetd::runtime::load::cgroup2_root().unwrap();
        let back = root.join(rel.trim_start_matches('/'));
        std::fs::write(cgroup.join("cgroup.procs"), std::process::id().to_string()).unwrap();
        InCgroup(back)
    }
}

impl Drop for InCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.procs"), std::process::id().to_string());
    }
}

#[test]
fn cgroup_programs_attach_to_the_cgroup_the_run_names() {
    require_root();
    let Some(root) = gadgetd::runtime::load::cgroup2_root() else {
        eprintln!("cgroup programs skipped: no cgroup2 file system is mounted");
        return;
    };
    let cgroup = root.join(format!("gadgetd-test-{}", std::process::id()));
    std::fs::create_dir_all(&cgroup).unwrap();
    // Removed however the test ends (the process has left it by then).
    struct Remove<'a>(&'a std::path::Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(self.0);
        }
    }
    let _remove = Remove(&cgroup);
    rt().block_on(async {
        let gadget = load("cgroup_sock");
        let opts = RunOptions {
            cgroups: vec![cgroup.clone()],
            ..RunOptions::default()
        };
        let mut run = gadget.start(&opts).unwrap();
        let pid = std::process::id();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        {
            let _inside = InCgroup::enter(&cgroup);
            let _udp6 = std::net::UdpSocket::bind("[::1]:0").unwrap();
            let _tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        }
        // Outside the cgroup: not seen.
        let _outside = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let evs = events_until(&mut run, |evs| evs.iter().any(|e| e["hook"] == 2)).await;
        let created: Vec<_> = evs
            .iter()
            .filter(|e| e["hook"] == 1 && e["pid"] == pid)
            .map(|e| {
                (
                    e["family"].clone(),
                    e["type"].clone(),
                    e["protocol"].clone(),
                )
            })
            .collect();
        assert_eq!(
            created,
            [
                (
                    libc::AF_INET6.into(),
                    libc::SOCK_DGRAM.into(),
                    libc::IPPROTO_UDP.into()
                ),
                (
                    libc::AF_INET.into(),
                    libc::SOCK_STREAM.into(),
                    libc::IPPROTO_TCP.into()
                ),
            ]
        );
        let connect = evs.iter().find(|e| e["hook"] == 2).unwrap();
        assert_eq!(connect["pid"], pid);
        assert_eq!(connect["family"], libc::AF_INET);
        assert_eq!(connect["port"], port);
        drop(run);
    });
}

/// A veth pair the test owns: `host` in the test's namespace, its peer in a
/// network namespace of its own (`ip netns add`), 10.213.N.1 and .2; removed on drop.
struct VethPair {
    netns: String,
    host: String,
    host_ip: std::net::Ipv4Addr,
    peer_ip: std::net::Ipv4Addr,
}

fn ip(args: &str) {
    gadgetd_tests::net::ip(&args.split(' ').collect::<Vec<_>>());
}

impl VethPair {
    fn new(tag: &str) -> VethPair {
        let id = std::process::id() % 100_000;
        let net = (id % 200) as u8 + tag.len() as u8;
        let pair = VethPair {
            netns: format!("gdtest-{tag}-{id}"),
            host: format!("gd{tag}h{id}"),
            host_ip: [10, 213, net, 1].into(),
            peer_ip: [10, 213, net, 2].into(),
        };
        let (ns, host) = (&pair.netns, &pair.host);
        ip(&format!("netns add {ns}"));
        ip(&format!(
            "link add {host} type veth peer name eth0 netns {ns}"
        ));
        ip(&format!("addr add {}/24 dev {host}", pair.host_ip));
        ip(&format!("link set {host} up"));
        ip(&format!("-n {ns} addr add {}/24 dev eth0", pair.peer_ip));
        ip(&format!("-n {ns} link set eth0 up"));
        ip(&format!("-n {ns} link set lo up"));
        pair
    }

    fn ifindex(&self) -> u32 {
        std::fs::read_to_string(format!("/sys/class/net/{}/ifindex", self.host))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn netns_inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/run/netns/{}", self.netns))
            .unwrap()
            .ino()
    }

    /// `count` UDP datagrams of `payload` bytes to `port`, sent from inside
    /// the namespace to the host side.
    fn send_from_peer(&self, port: u16, count: usize, payload: usize) {
        use std::os::fd::AsFd;
        let ns = std::fs::File::open(format!("/run/netns/{}", self.netns)).unwrap();
        let (from, to) = (self.peer_ip, self.host_ip);
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                gadgetd_tests::net::send_udp(from.into(), (to, port).into(), count, payload);
            })
            .join()
            .unwrap()
        });
    }

    fn send_from_host(&self, port: u16, count: usize, payload: usize) {
        let (from, to) = (self.host_ip, self.peer_ip);
        gadgetd_tests::net::send_udp(from.into(), (to, port).into(), count, payload);
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}

/// Events of `run` until `done`, then whatever else arrives within 300 ms
/// (so that counts asserted afterwards are exact, not lower bounds).
async fn events_settled(run: &mut Running, done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
    let mut evs = events_until(run, done).await;
    while let Ok(Ok(Some(rec))) =
        tokio::time::timeout(Duration::from_millis(300), run.next_record()).await
    {
        if let Record::Event(ev) = rec {
            evs.push(Value::Object(ev));
        }
    }
    evs
}

/// tc_count started with `opts`, counting the TCP packets to `port`.
fn start_tc_count(mut opts: RunOptions, port: u16) -> Running {
    opts.params.insert("targ_port".into(), port.to_string());
    load("tc_count").start(&opts).unwrap()
}

/// Sends 3 datagrams out of the host side and 5 into it, and checks that
/// each tc program saw exactly its direction's packets on that interface.
async fn tc_traffic_counted(run: &mut Running, pair: &VethPair, port: u16) {
    const PAYLOAD: usize = 100;
    let frame = 14 + 20 + 8 + PAYLOAD;
    pair.send_from_host(port, 3, PAYLOAD);
    pair.send_from_peer(port, 5, PAYLOAD);
    let count = |evs: &[Value], s: u32| evs.iter().filter(|e| e["source"] == s).count();
    let evs = events_settled(run, |evs| {
        [2, 4, 6].iter().all(|&s| count(evs, s) >= 3)
            && [1, 3, 5, 7].iter().all(|&s| count(evs, s) >= 5)
    })
    .await;
    let per_source: Vec<usize> = (1..=7).map(|s| count(&evs, s)).collect();
    // tc, tc/egress, tcx/ingress, tcx/egress, classifier/ingress/…, classifier/egress/…, classifier
    assert_eq!(per_source, [5, 3, 5, 3, 5, 3, 5], "events: {evs:?}");
    for e in &evs {
        assert_eq!(e["ifindex"], pair.ifindex(), "{e}");
        assert_eq!(e["len"], frame, "{e}");
        assert_eq!(e["dport"], port, "{e}");
    }
}

#[test]
fn tc_programs_count_packets_on_the_interface_the_run_names() {
    use gadgetd::runtime::load::ProgramStatus;
    require_root();
    let pair = VethPair::new("i");
    rt().block_on(async {
        let port = 40_000 + (std::process::id() % 20_000) as u16;
        let mut run = start_tc_count(
            RunOptions {
                iface: Some(pair.host.clone()),
                ..RunOptions::default()
            },
            port,
        );
        assert_eq!(run.programs().len(), 7);
        assert!(
            run.programs()
                .iter()
                .all(|p| p.status == ProgramStatus::Attached),
            "{:?}",
            run.programs()
        );
        tc_traffic_counted(&mut run, &pair, port).await;
        drop(run);
        // Nothing stays attached: no tcx program and no clsact qdisc we added.
        let o = std::process::Command::new("tc")
            .args(["filter", "show", "dev", &pair.host, "ingress"])
            .output()
            .unwrap();
        assert_eq!(ok(&o, "tc filter show"), "");
        let links = std::process::Command::new("bpftool")
            .args(["net", "show", "dev", &pair.host])
            .output()
            .unwrap();
        let links = ok(&links, "bpftool net show");
        assert!(!links.contains("tc_plain"), "{links}");
    });
}

#[test]
fn tc_programs_attach_to_each_selected_containers_host_side_veth() {
    require_root();
    let pair = VethPair::new("c");
    rt().block_on(async {
        let port = 40_001 + (std::process::id() % 20_000) as u16;
        let mut run = start_tc_count(
            RunOptions {
                netns_ids: Some(vec![pair.netns_inode()]),
                ..RunOptions::default()
            },
            port,
        );
        tc_traffic_counted(&mut run, &pair, port).await;
    });
}

#[test]
fn a_tc_program_without_an_interface_says_how_to_name_one() {
    require_root();
    let gadget = load("tc_count");
    let start = |opts: RunOptions| {
        start_error(
            &gadget,
            &opts,
            "tc programs must not attach without an interface",
        )
    };
    let err = start(RunOptions::default());
    assert!(
        err.contains(
            "program `tc_plain` (section `tc`): tc programs need an interface: name one (--iface"
        ),
        "{err}"
    );
    let err = start(RunOptions {
        iface: Some("gdnope0".into()),
        ..RunOptions::default()
    });
    assert!(err.contains("program `tc_plain` (section `tc`)"), "{err}");
    assert!(err.contains("`gdnope0`"), "{err}");
    // A namespace with no veth (only lo).
    let lonely = format!("gdtest-lo-{}", std::process::id());
    ip(&format!("netns add {lonely}"));
    let inode = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/run/netns/{lonely}"))
            .unwrap()
            .ino()
    };
    let err = start(RunOptions {
        netns_ids: Some(vec![inode]),
        ..RunOptions::default()
    });
    ip(&format!("netns del {lonely}"));
    assert!(
        err.contains(&format!(
            "network namespaces [{inode}] have none; name an interface with --iface"
        )),
        "{err}"
    );
}

/// Kernels before 6.6 attach tc programs through a clsact qdisc: created when
/// missing and removed at the end, left alone when it was there already.
#[test]
fn a_clsact_qdisc_is_removed_only_if_gadgetd_added_it() {
    use gadgetd::runtime::tc::Clsact;
    require_root();
    let pair = VethPair::new("q");
    let qdiscs = || {
        let o = std::process::Command::new("tc")
            .args(["qdisc", "show", "dev", &pair.host])
            .output()
            .unwrap();
        ok(&o, "tc qdisc show").contains("qdisc clsact")
    };
    assert!(!qdiscs());
    let added = Clsact::ensure(&pair.host).unwrap();
    assert!(added.is_some());
    assert!(qdiscs());
    drop(added);
    assert!(!qdiscs(), "the clsact qdisc gadgetd added stays");
    let o = std::process::Command::new("tc")
        .args(["qdisc", "add", "dev", &pair.host, "clsact"])
        .output()
        .unwrap();
    ok(&o, "tc qdisc add");
    assert!(Clsact::ensure(&pair.host).unwrap().is_none());
    assert!(qdiscs(), "a clsact qdisc gadgetd did not add was removed");
    let err = Clsact::ensure("gdnope0").unwrap_err();
    assert!(err.starts_with("no interface `gdnope0` here"), "{err}");
}

/// Waits until the run `child` started is running; its stderr if it failed.
fn wait_started(agent: &Agent, child: &mut std::process::Child) {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("gadgetctl exited with {status} before the run started: {err}");
        }
        let out = agent.ctl(&["list", "-o", "json"]);
        if json_lines(&out).iter().any(|r| r["state"] == "running") {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no run started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `gadgetctl run --iface` and `--cgroup` through the agent: the tc gadget
/// counts exactly the test's packets on the named interface, the cgroup
/// gadget sees exactly the socket a process in the named cgroup (given
/// relative to the cgroup2 root, as /proc/PID/cgroup shows it) creates;
/// bad names are refused up front, naming the option, and the agent keeps serving.
#[test]
fn gadgetctl_names_the_interface_and_the_cgroup_programs_attach_on() {
    require_root();
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let pair = VethPair::new("a");
    let port = 41_000 + (std::process::id() % 20_000) as u16;
    let child = agent.ctl_spawn(&[
        "run",
        test_object("tc_count").to_str().unwrap(),
        "--iface",
        &pair.host,
        "-p",
        &format!("targ_port={port}"),
        "-o",
        "json",
        "--timeout",
        "3s",
    ]);
    let mut child = child;
    wait_started(&agent, &mut child);
    pair.send_from_host(port, 3, 100);
    pair.send_from_peer(port, 5, 100);
    let out = child.wait_with_output().unwrap();
    let evs = json_lines(&out);
    let per_source: Vec<usize> = (1..=7)
        .map(|s| evs.iter().filter(|e| e["source"] == s).count())
        .collect();
    assert_eq!(per_source, [5, 3, 5, 3, 5, 3, 5], "{}", stderr(&out));

    let Some(root) = gadgetd::runtime::load::cgroup2_root() else {
        eprintln!("--cgroup skipped: no cgroup2 file system is mounted");
        return;
    };
    let rel = format!("gadgetd-ctl-test-{}", std::process::id());
    let cgroup = root.join(&rel);
    std::fs::create_dir_all(&cgroup).unwrap();
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _remove = Remove(cgroup.clone());
    let child = agent.ctl_spawn(&[
        "run",
        test_object("cgroup_sock").to_str().unwrap(),
        "--cgroup",
        &format!("/{rel}"),
        "-o",
        "json",
        "--timeout",
        "2s",
    ]);
    let mut child = child;
    wait_started(&agent, &mut child);
    // A process that moves itself into the cgroup, then makes one UDP socket.
    let procs = cgroup.join("cgroup.procs");
    let script = format!(
        "import os, socket; open({:?}, 'w').write(str(os.getpid())); socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); print(os.getpid())",
        procs.to_str().unwrap()
    );
    let py = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let py_pid: u64 = ok(&py, "python3").trim().parse().unwrap();
    let out = child.wait_with_output().unwrap();
    let created: Vec<_> = json_lines(&out)
        .into_iter()
        .filter(|e| e["hook"] == 1)
        .map(|e| (e["pid"].clone(), e["family"].clone(), e["type"].clone()))
        .collect();
    assert_eq!(
        created,
        [(
            py_pid.into(),
            libc::AF_INET6.into(),
            libc::SOCK_DGRAM.into()
        )],
        "{}",
        stderr(&out)
    );

    for (flag, value, want) in [
        ("--cgroup", "../../etc", "option cgroup: cgroup `../../etc`"),
        (
            "--cgroup",
            "gadgetd-no-such-cgroup",
            "option cgroup: cgroup `gadgetd-no-such-cgroup`: ",
        ),
        (
            "--iface",
            "a/b",
            "option iface: interface name `a/b` may not contain",
        ),
        ("--iface", "x234567890abcdef", "must be 1 to 15 bytes long"),
    ] {
        let out = agent.ctl(&[
            "run",
            test_object("cgroup_sock").to_str().unwrap(),
            flag,
            value,
            "--timeout",
            "1s",
        ]);
        assert!(!out.status.success(), "{flag} {value} must be refused");
        assert!(
            stderr(&out).contains(want),
            "{flag} {value}: {}",
            stderr(&out)
        );
    }
    // A named interface that does not exist fails when the program attaches.
    let out = agent.ctl(&[
        "run",
        test_object("tc_count").to_str().unwrap(),
        "--iface",
        "gdnope0",
        "--timeout",
        "1s",
    ]);
    assert!(
        stderr(&out).contains("program `tc_plain` (section `tc`): no interface `gdnope0` here"),
        "{}",
        stderr(&out)
    );
    assert!(agent.ctl(&["list"]).status.success());
}

/// `iter/bpf_map_elem` with `GADGET_ITER_TARGET_MAP`: the element iterator
/// walks exactly the elements the gadget's task iterator put in its map.
#[test]
fn a_map_element_iterator_walks_the_map_its_marker_names() {
    require_root();
    rt().block_on(async {
        let gadget = load("mapelem_iter");
        for count in [3u64, 7] {
            let mut opts = mine();
            let pid = std::process::id();
            opts.params.insert("targ_count".into(), count.to_string());
            let mut run = gadget.start(&opts).unwrap();
            let rows = loop {
                match run.next_record().await.unwrap() {
                    Some(Record::Rows(rows)) => break rows,
                    Some(_) => continue,
                    None => panic!("the snapshot ended without rows"),
                }
            };
            let mut got: Vec<(u64, u64, u64)> = rows
                .iter()
                .map(|r| {
                    (
                        r["id"].as_u64().unwrap(),
                        r["square"].as_u64().unwrap(),
                        r["pid"].as_u64().unwrap(),
                    )
                })
                .collect();
            got.sort();
            let want: Vec<_> = (1..=count).map(|i| (i, i * i, pid as u64)).collect();
            assert_eq!(got, want, "{rows:?}");
        }
    });
}

#[test]
fn a_map_element_iterator_reading_past_its_maps_values_names_the_map() {
    require_root();
    let err = start_error(
        &load("bad_mapelem"),
        &RunOptions::default(),
        "reading 16 bytes of 4-byte values must be refused",
    );
    assert!(
        err.starts_with(
            "program `read_too_much` (section `iter/bpf_map_elem`): walking map `small`: "
        ),
        "{err}"
    );
    assert!(
        err.contains("reads more of a key or value than the map has"),
        "{err}"
    );
}

/// The stream header says what became of each program, and gadgetctl
/// warns about the skipped ones (the run goes on without them).
#[test]
fn the_stream_header_and_gadgetctl_say_which_programs_attached() {
    require_root();
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let object = test_object("uprobes");
    let pid = std::process::id().to_string();
    let lines = raw_stream(&bus, &object, Some(("targ_pid", &pid)), 300, || ());
    let header: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(header["gadgetd"], "header");
    let programs: Vec<(String, String, Value)> = header["programs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
                p["reason"].clone(),
            )
        })
        .collect();
    let absent = "uprobe target `libgadgetd_absent.so.7` is not on this host (no such file, and not in /etc/ld.so.cache)";
    let attached = |n: &str| (n.to_string(), "attached".to_string(), Value::Null);
    assert_eq!(
        programs,
        [
            attached("up_bare_name"),
            attached("up_soname"),
            attached("up_full_path"),
            attached("up_versioned"),
            attached("up_offset"),
            ("up_absent".into(), "skipped".into(), absent.into()),
            ("up_disabled".into(), "disabled".into(), Value::Null),
        ]
    );
    assert_eq!(
        header["programs"][5]["section"],
        "uprobe/libgadgetd_absent.so.7:nothing"
    );
    let out = agent.ctl(&[
        "run",
        object.to_str().unwrap(),
        "-p",
        &format!("targ_pid={pid}"),
        "--timeout",
        "300ms",
        "-o",
        "json",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("skipped"))
            .collect::<Vec<_>>(),
        [format!(
            "gadgetctl: program `up_absent` (section `uprobe/libgadgetd_absent.so.7:nothing`) skipped: {absent}"
        )]
    );
}

/// A root file system of its own (a "container" without a runtime): copies
/// of sleep, libc and the dynamic loader (so its libc is another file than
/// the host's), `libgadgetd_ctr.so.1` only here, and its own ld.so.cache.
struct Rootfs(std::path::PathBuf);

impl Rootfs {
    fn new() -> Rootfs {
        let root = std::env::temp_dir().join(format!("gadgetd-rootfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let lib = root.join("usr/lib/x86_64-linux-gnu");
        for dir in [
            &lib,
            &root.join("usr/bin"),
            &root.join("etc"),
            &root.join("lib64"),
        ] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::fs::copy("/bin/sleep", root.join("usr/bin/sleep")).unwrap();
        std::fs::copy("/lib/x86_64-linux-gnu/libc.so.6", lib.join("libc.so.6")).unwrap();
        std::fs::copy(
            "/lib/x86_64-linux-gnu/libc.so.6",
            lib.join("libgadgetd_ctr.so.1"),
        )
        .unwrap();
        std::fs::copy(
            "/lib64/ld-linux-x86-64.so.2",
            root.join("lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        std::fs::write(root.join("etc/ld.so.conf"), "/usr/lib/x86_64-linux-gnu\n").unwrap();
        let o = std::process::Command::new("ldconfig")
            .arg("-r")
            .arg(&root)
            .output()
            .unwrap();
        ok(&o, "ldconfig -r");
        Rootfs(root)
    }

    /// `sleep SECS` inside the root (in a mount namespace of its own).
    fn sleep(&self, secs: &str) -> std::process::Child {
        std::process::Command::new("unshare")
            .arg("--mount")
            .arg(format!("--root={}", self.0.display()))
            .args(["/usr/bin/sleep", secs])
            .spawn()
            .unwrap()
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// With a container selected, uprobe targets are the container's files
/// (through /proc/PID/root and its own ld.so.cache): its libc, not the
/// host's, and a library only it has; without, that library is skipped.
#[test]
fn uprobes_resolve_their_targets_in_the_containers_root() {
    use gadgetd::runtime::load::ProgramStatus;
    require_root();
    let rootfs = Rootfs::new();
    let mut init = rootfs.sleep("30");
    // unshare execs sleep in the same process: its pid is the container's init.
    let init_pid = init.id();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_link(format!("/proc/{init_pid}/root")).unwrap() != rootfs.0 {
        assert!(Instant::now() < deadline, "the container did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    rt().block_on(async {
        let gadget = load("uprobe_root");
        let host = gadget.start(&RunOptions::default()).unwrap();
        assert_eq!(
            host.programs()[1].status,
            ProgramStatus::Skipped(
                "uprobe target `/usr/lib/x86_64-linux-gnu/libgadgetd_ctr.so.1` is not on this host (no such file, and not in /etc/ld.so.cache)".into()
            )
        );
        drop(host);
        let opts = RunOptions {
            container_pids: vec![init_pid],
            ..RunOptions::default()
        };
        let mut run = gadget.start(&opts).unwrap();
        assert!(
            run.programs()
                .iter()
                .all(|p| p.status == ProgramStatus::Attached),
            "{:?}",
            run.programs()
        );
        // The host's sleep uses the host's libc: not seen.
        let o = std::process::Command::new("sleep").arg("0.05").output().unwrap();
        ok(&o, "sleep on the host");
        let mut pids = Vec::new();
        for _ in 0..2 {
            let mut c = rootfs.sleep("0.05");
            pids.push(c.id() as u64);
            assert!(c.wait().unwrap().success());
        }
        let evs = events_settled(&mut run, |evs| {
            pids.iter().all(|p| evs.iter().any(|e| e["pid"] == *p))
        })
        .await;
        let mut got: Vec<(u64, u64)> = evs
            .iter()
            .map(|e| (e["pid"].as_u64().unwrap(), e["probe"].as_u64().unwrap()))
            .collect();
        got.sort();
        assert_eq!(got, [(pids[0], 1), (pids[1], 1)], "{evs:?}");
    });
    let _ = init.kill();
    let _ = init.wait();
}

/// Unions: every member decoded from the same bytes (bpftool's choice),
/// named (`u.a`, `u.b`), anonymous (members join the event) and holding a struct.
#[test]
fn every_member_of_a_union_is_decoded_from_the_same_bytes() {
    require_root();
    rt().block_on(async {
        let gadget = load("union_event");
        let names: Vec<String> = gadget.fields().iter().map(|f| f.name.clone()).collect();
        assert_eq!(
            names,
            [
                "pid",
                "u.a",
                "u.b",
                "half",
                "whole",
                "w.bytes.lo",
                "w.bytes.hi",
                "w.word"
            ]
        );
        let pid = std::process::id();
        assert_eq!(
            first_getcwd_event(&gadget).await,
            serde_json::json!({
                "pid": pid,
                "u.a": 0x3fc0_0000u32,
                "u.b": 1.5,
                "half": [0x5678, 0x1234],
                "whole": 0x1234_5678u32,
                "w.bytes.lo": 1,
                "w.bytes.hi": 2,
                "w.word": 0x0201,
            })
        );
    });
}

/// With a real container (podman) selected by name, tc programs attach on
/// the host side of its veth, which the agent finds from the container's
/// network namespace: the test's datagrams to the container pass it on
/// egress, and nothing else is counted.
#[test]
fn tc_programs_follow_a_podman_containers_veth() {
    // Dropped last, in its order: the agent, its bus, podman.
    let Some(env) = gadgetd_tests::runtimes::podman_agent() else {
        return;
    };
    let (agent, p) = (&env.agent, &env.podman);
    let name = format!("gd-tc-{}", random_hex(4));
    p.run(&name, "sleep 1000");
    // The harness runs podman without networking: give the container a veth
    // the way a network plugin does (its end is eth0 in the container).
    let veth = gadgetd_tests::net::ContainerVeth::add(p.pid(&name), "gdpod", 214);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !json_lines(&agent.ctl(&["containers", "-o", "json"]))
        .iter()
        .any(|c| c["name"] == name)
    {
        assert!(Instant::now() < deadline, "the agent never listed {name}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let port = 42_000 + (std::process::id() % 20_000) as u16;
    let mut child = agent.ctl_spawn(&[
        "run",
        test_object("tc_count").to_str().unwrap(),
        "--containername",
        &name,
        "-p",
        &format!("targ_port={port}"),
        "-o",
        "json",
        "--timeout",
        "3s",
    ]);
    wait_started(agent, &mut child);
    veth.send_to_container(port, 3, 100);
    let out = child.wait_with_output().unwrap();
    // Egress of the host-side veth only.
    gadgetd_tests::net::assert_tc_count_egress(&out, 3, 100);
    p.remove(&name);
}

/// getpriority(2) of process `who` as the kernel returns it: `20 - nice`,
/// or `-errno`.
fn raw_getpriority(who: u32) -> i64 {
    // SAFETY: getpriority(2) takes two integers.
    let r = unsafe { libc::syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, who) };
    if r < 0 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap())
    } else {
        r
    }
}

/// Whether this kernel creates maps of `kind`, which Linux `since` added;
/// if not, says that the `part` of the test that needs it is skipped and why.
fn kernel_has_map(kind: aya::maps::MapType, part: &str, since: &str) -> bool {
    match aya::sys::is_map_supported(kind) {
        Ok(true) => true,
        Ok(false) => {
            eprintln!(
                "{part} skipped: this kernel has no {kind:?} maps (Linux {since} added them)"
            );
            false
        }
        Err(e) => panic!("probing the kernel for {kind:?} maps: {e}"),
    }
}

/// Whether a map named `name` of bpftool type `kind` exists (Debian's
/// bpftool 7.1 prints an arena's type as its number, 33).
fn bpftool_has_map(name: &str, kind: &str) -> bool {
    let out = std::process::Command::new("bpftool")
        .args(["-j", "map", "show"])
        .output()
        .unwrap();
    let maps: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let is = |m: &Value| m["type"] == kind || (kind == "arena" && m["type"] == 33);
    maps.iter().any(|m| m["name"] == name && is(m))
}

#[test]
fn map_types_aya_does_not_wrap_are_created_and_used() {
    // Task-local storage (the state an entry passes to its exit), a user
    // ring buffer and an arena: aya 0.14 refuses them unless told to create
    // maps it has no type for. Each is in an object of its own, so a kernel
    // without one (each is probed first) still runs the others.
    use aya::maps::MapType;
    require_root();
    rt().block_on(async {
        if kernel_has_map(MapType::TaskStorage, "task storage", "5.11") {
            let pid = std::process::id();
            let mut run = load("local_storage").start(&mine()).unwrap();
            // Ourselves, by pid and as 0, and a pid that does not exist
            // (ESRCH): each exit must find what its own entry stored.
            let whos = [0, pid, 0x7fff_fff0];
            let expected: Vec<(u32, i64)> = whos.iter().map(|&w| (w, raw_getpriority(w))).collect();
            assert_eq!(expected[2].1, -i64::from(libc::ESRCH));
            let evs = events_until(&mut run, |evs| evs.len() >= whos.len()).await;
            let got: Vec<(u32, i64)> = evs
                .iter()
                .map(|e| {
                    assert_eq!(e["pid"], pid);
                    (
                        e["who"].as_u64().unwrap() as u32,
                        e["ret"].as_i64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(got, expected);
            assert!(
                bpftool_has_map("calls", "task_storage"),
                "no task storage map named calls"
            );
            drop(run);
        }
        // The two maps nothing uses here are created, as their types.
        for (object, name, kind, map_type, since) in [
            (
                "user_ringbuf",
                "requests",
                "user_ringbuf",
                MapType::UserRingBuf,
                "6.1",
            ),
            ("arena", "arena", "arena", MapType::Arena, "6.9"),
        ] {
            if !kernel_has_map(map_type, kind, since) {
                continue;
            }
            let run = load(object).start(&RunOptions::default()).unwrap();
            assert!(bpftool_has_map(name, kind), "no {kind} map named {name}");
            drop(run);
        }
    });
}
