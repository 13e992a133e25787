//! A uprobe symbol's offset in its file, found as libbpf and gdb find it.
//!
//! The library's own `.dynsym` and `.symtab` first; then its separate debug
//! file, where distributions install one: `/usr/lib/debug/.build-id/NN/REST.debug`
//! (by build id), then the `.gnu_debuglink` name next to the library, in its
//! `.debug/` directory and under `/usr/lib/debug/<dir>/`. aya 0.14 looks only
//! next to the library and fails the attach when that file is missing,
//! though most systems ship stripped libraries with a debuglink and no debug
//! file. [`resolve`] says where it looked when the symbol is nowhere, so the
//! program can be skipped with that reason (as Inspektor Gadget skips a
//! uprobe whose symbol a library lacks).

use std::path::{Path, PathBuf};

use object::{Object, ObjectSegment, ObjectSymbol};

/// Where distributions install separate debug files.
const DEBUG_ROOT: &str = "/usr/lib/debug";

/// The symbol's offset in the file `path` (what the kernel's uprobe takes),
/// `Ok(None)` with the places searched when no symbol table there has it,
/// `Err` when the library itself cannot be read.
pub fn resolve(path: &Path, symbol: &str) -> Result<Result<u64, String>, String> {
    let data = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let file = object::File::parse(&*data)
        .map_err(|e| format!("{} is not an ELF file: {e}", path.display()))?;
    if let Some(addr) = address_of(&file, symbol) {
        return to_file_offset(&file, addr).map(Ok).ok_or_else(|| {
            format!(
                "symbol `{symbol}` of {} is in no loadable segment",
                path.display()
            )
        });
    }
    let candidates = debug_files(&file, path);
    for candidate in &candidates {
        let Ok(debug) = std::fs::read(candidate) else {
            continue;
        };
        let Ok(debug_file) = object::File::parse(&*debug) else {
            continue;
        };
        // A debug file of another build has other addresses.
        let (ours, theirs) = (
            file.build_id().ok().flatten(),
            debug_file.build_id().ok().flatten(),
        );
        if ours.is_some() && theirs.is_some() && ours != theirs {
            continue;
        }
        if let Some(addr) = address_of(&debug_file, symbol) {
            // The debug file's sections hold no code: translate with the library's segments.
            return to_file_offset(&file, addr).map(Ok).ok_or_else(|| {
                format!(
                    "symbol `{symbol}` of {} is in no loadable segment",
                    path.display()
                )
            });
        }
    }
    let searched = if candidates.is_empty() {
        "it names no debug file".to_string()
    } else {
        format!(
            "no debug file has it ({} tried)",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Ok(Err(format!(
        "symbol `{symbol}` is not in {} (neither its .dynsym nor its .symtab; {searched}): install the library's debug symbols to probe it",
        path.display()
    )))
}

/// The address of a defined symbol named `symbol` in `.dynsym` or `.symtab`.
fn address_of(file: &object::File<'_>, symbol: &str) -> Option<u64> {
    file.dynamic_symbols()
        .chain(file.symbols())
        .filter(|s| s.is_definition() && s.address() != 0)
        .find(|s| s.name() == Ok(symbol))
        .map(|s| s.address())
}

/// The file offset of virtual address `addr`: through the loadable segment
/// that maps it.
fn to_file_offset(file: &object::File<'_>, addr: u64) -> Option<u64> {
    file.segments().find_map(|seg| {
        let (start, size) = (seg.address(), seg.size());
        let (offset, file_size) = seg.file_range();
        (start <= addr && addr < start + size && addr - start < file_size)
            .then(|| addr - start + offset)
    })
}

/// The places a separate debug file of `file` (at `path`) may be, in the
/// order gdb tries them.
fn debug_files(file: &object::File<'_>, path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(Some(id)) = file.build_id()
        && id.len() > 1
    {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        out.push(
            Path::new(DEBUG_ROOT)
                .join(".build-id")
                .join(&hex[..2])
                .join(format!("{}.debug", &hex[2..])),
        );
    }
    if let Ok(Some((name, _crc))) = file.gnu_debuglink()
        && let Ok(name) = std::str::from_utf8(name)
        && !name.contains('/')
    {
        let dir = path.parent().unwrap_or(Path::new("/"));
        out.push(dir.join(name));
        out.push(dir.join(".debug").join(name));
        out.push(
            Path::new(DEBUG_ROOT)
                .join(dir.strip_prefix("/").unwrap_or(dir))
                .join(name),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary itself: an ELF with its own symbol table.
    #[test]
    fn a_symbol_of_the_files_own_table_is_found_at_its_file_offset() {
        let exe = std::env::current_exe().unwrap();
        let data = std::fs::read(&exe).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let sym = file
            .symbols()
            .find(|s| s.is_definition() && s.name() == Ok("main"))
            .expect("the test binary has `main`");
        let want = to_file_offset(&file, sym.address()).unwrap();
        assert_eq!(resolve(&exe, "main").unwrap(), Ok(want));
        let missing = resolve(&exe, "gadgetd_no_such_symbol")
            .unwrap()
            .unwrap_err();
        assert!(
            missing.starts_with(&format!(
                "symbol `gadgetd_no_such_symbol` is not in {} (neither its .dynsym nor its .symtab;",
                exe.display()
            )),
            "{missing}"
        );
        assert!(
            resolve(Path::new("/nonexistent/lib.so"), "x")
                .unwrap_err()
                .contains("/nonexistent/lib.so")
        );
    }
}
