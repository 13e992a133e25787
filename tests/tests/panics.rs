//! A dependency that panics on a malformed object (aya-obj slices a
//! program by its ELF symbol's size without checking it) costs that one
//! run an error, logged in one line; the agent keeps serving (issue 11
//! item 7).

use gadgetd_tests::system::Service;
use gadgetd_tests::*;

/// `object` with the size of every global function symbol set far past
/// the end of its section.
fn with_huge_program_sizes(object: &[u8]) -> Vec<u8> {
    let mut elf = object.to_vec();
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    assert_eq!(&elf[..6], b"\x7fELF\x02\x01", "a 64-bit little-endian ELF");
    let (shoff, shentsize, shnum) = (u64_at(&elf, 0x28), u16_at(&elf, 0x3a), u16_at(&elf, 0x3c));
    let mut patched = 0;
    for i in 0..shnum {
        let sh = shoff + i * shentsize;
        if u32_at(&elf, sh + 4) != 2 {
            continue; // not SHT_SYMTAB
        }
        let (off, size, entsize) = (
            u64_at(&elf, sh + 0x18),
            u64_at(&elf, sh + 0x20),
            u64_at(&elf, sh + 0x38),
        );
        for s in (off..off + size).step_by(entsize) {
            let info = elf[s + 4];
            let shndx = u16_at(&elf, s + 6);
            // STB_GLOBAL, STT_FUNC, defined in a section.
            if info >> 4 == 1 && info & 0xf == 2 && shndx != 0 {
                elf[s + 16..s + 24].copy_from_slice(&0x7fff_0000u64.to_le_bytes());
                patched += 1;
            }
        }
    }
    assert!(patched > 0, "the object has program symbols");
    elf
}

#[test]
fn a_panic_in_the_loader_fails_the_run_in_one_line_and_the_agent_serves_on() {
    let bus = Bus::start();
    // A backtrace would be printed with RUST_BACKTRACE=1 if the panic escaped.
    let mut svc = Service::new(&bus, &[]).env("RUST_BACKTRACE", "1");
    svc.start();
    let dir = TempDir::new("panic");
    let good = gadget("trace_open");
    let bad = dir.path().join("bad_sizes.o");
    std::fs::write(
        &bad,
        with_huge_program_sizes(&std::fs::read(&good).unwrap()),
    )
    .unwrap();

    for attempt in 1..=2 {
        let out = svc.ctl(&["run", bad.to_str().unwrap(), "--timeout", "1s"]);
        let e = fails(&out, "run of the crafted object");
        assert!(
            e.contains("the object broke the loader (it panicked: ") && e.contains("out of range"),
            "attempt {attempt}: {e}"
        );
    }
    let log = svc.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("a dependency panicked on this object"))
        .collect();
    assert_eq!(lines.len(), 2, "one line per run: {log}");
    assert!(!log.contains("stack backtrace"), "{log}");
    assert!(!log.contains("panicked at"), "{log}");
    // The agent serves on, and a good object still runs.
    ok(&svc.ctl(&["list"]), "list after the panics");
    let out = svc.ctl(&[
        "run",
        good.to_str().unwrap(),
        "--timeout",
        "1s",
        "-o",
        "json",
    ]);
    ok(&out, "run of the good object");
}
