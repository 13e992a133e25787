//! Extern symbols of a gadget object, resolved before aya sees it.
//!
//! **`.kconfig` externs** (`extern int LINUX_KERNEL_VERSION __kconfig;`):
//! clang leaves them undefined, in a BTF DATASEC `.kconfig` of size 0, and
//! reads them through `ld_imm64` relocations against the undefined symbol.
//! libbpf backs them with a read-only map; aya-obj 0.3 fails on the section
//! (`Unable to determine the size of section .kconfig`). [`place_kconfig`]
//! does libbpf's work on the ELF: the values ([`super::kconfig`]) go in a new
//! `.rodata.kconfig` section (aya makes it a frozen read-only array map, as
//! it does for `.rodata`), each extern symbol is defined there at its
//! offset, and the BTF DATASEC is renamed to match with its VARs made
//! global (the kernel refuses extern VARs).
//!
//! **Typed `__ksym` externs** (`extern const struct rq runqueues __ksym;`,
//! [`place_ksyms`]): their `ld_imm64`s carry the kernel BTF id of the
//! variable, as libbpf does, and the kernel fills in the address.
//!
//! **Other undefined symbols** ([`check_undefined`]): a call to a function
//! the object does not define (a kfunc, or `memcmp` that clang 14 emits for
//! an uninlined `__builtin_memcmp`) gets an error naming the symbol and the
//! program, instead of aya's `function 0x220 not found`.

use btf_rs::{Btf, BtfType, Type};
use object::elf;
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionIndex, SymbolKind};

use super::error::{GadgetError, Result};
use super::kconfig::{self, KconfigType};
use super::object::{datasec_vars, name_of};

/// The section the `.kconfig` values are placed in (aya parses every
/// `.rodata*` section as a read-only data map; the name fits the kernel's
/// 15-character map names).
pub const KCONFIG_SECTION: &str = ".rodata.kconfig";

/// One `.kconfig` extern with its value, ready to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KconfigExtern {
    /// `CONFIG_BPF_LSM`, `LINUX_KERNEL_VERSION`.
    pub name: String,
    /// Its C type.
    pub ty: KconfigType,
    /// Declared `__weak`: 0 when the kernel does not know it.
    pub weak: bool,
    /// Its bytes (`ty.size()` of them).
    pub value: Vec<u8>,
}

fn extern_err(name: &str, reason: impl Into<String>) -> GadgetError {
    GadgetError::Load(format!("extern `{name}` (__kconfig): {}", reason.into()))
}

/// The C type of a `.kconfig` extern, or why it is none libbpf accepts.
fn kconfig_type(btf: &Btf, name: &str, mut id: u32) -> Result<KconfigType> {
    for _ in 0..16 {
        let t = btf
            .resolve_type_by_id(id)
            .map_err(|e| GadgetError::Btf(e.to_string()))?;
        match t {
            Type::Typedef(t) => id = t.get_type_id().unwrap_or(0),
            Type::Const(t) | Type::Volatile(t) | Type::Restrict(t) => {
                id = t.get_type_id().unwrap_or(0)
            }
            Type::Int(i) => {
                let size = i.size();
                return Ok(if i.is_bool() {
                    KconfigType::Bool
                } else if size == 1 && (i.is_char() || name_of(btf, &i).contains("char")) {
                    KconfigType::Char
                } else if matches!(size, 1 | 2 | 4 | 8) {
                    KconfigType::Int {
                        size,
                        signed: i.is_signed(),
                    }
                } else {
                    return Err(extern_err(
                        name,
                        format!("a {size}-byte integer is not supported"),
                    ));
                });
            }
            Type::Enum(e) if name_of(btf, &e) == "libbpf_tristate" => {
                return Ok(KconfigType::Tristate);
            }
            Type::Array(a) => {
                let elem = a.get_type_id().unwrap_or(0);
                let is_char = matches!(
                    kconfig_type(btf, name, elem),
                    Ok(KconfigType::Char | KconfigType::Int { size: 1, .. })
                );
                if !is_char {
                    break;
                }
                return Ok(KconfigType::CharArray(a.len()));
            }
            _ => break,
        }
    }
    Err(extern_err(
        name,
        "its type is none of bool, enum libbpf_tristate, char, an integer or a char array",
    ))
}

/// The object's `.kconfig` externs with their values on this kernel.
/// `lookup` gives a name's raw value (`y`, `42`, `"text"`), `Err` when the
/// kernel's config is unreadable. Errors name the extern: a strong one the
/// kernel does not know, a value its type cannot hold.
pub fn kconfig_externs(
    elf_bytes: &[u8],
    btf: &Btf,
    lookup: &dyn Fn(&str) -> std::result::Result<Option<String>, String>,
) -> Result<Vec<KconfigExtern>> {
    let vars = datasec_vars(btf, ".kconfig")?;
    if vars.is_empty() {
        return Ok(Vec::new());
    }
    let file = object::File::parse(elf_bytes).map_err(|e| GadgetError::NotElf(e.to_string()))?;
    let mut out = Vec::with_capacity(vars.len());
    for (name, type_id) in vars {
        let ty = kconfig_type(btf, &name, type_id)?;
        let weak = file
            .symbols()
            .find(|s| s.name() == Ok(name.as_str()))
            .is_some_and(|s| s.is_weak());
        let value = match lookup(&name) {
            Ok(Some(raw)) => kconfig::encode(&raw, ty).map_err(|e| extern_err(&name, e))?,
            Ok(None) | Err(_) if weak => vec![0; ty.size()],
            Ok(None) => {
                return Err(extern_err(
                    &name,
                    "this kernel does not define it: declare it `__weak` to read 0 when it is missing",
                ));
            }
            Err(why) => return Err(extern_err(&name, why)),
        };
        out.push(KconfigExtern {
            name,
            ty,
            weak,
            value,
        });
    }
    Ok(out)
}

/// The object with its `.kconfig` externs defined in a new
/// [`KCONFIG_SECTION`] holding their values on this kernel; `None` when it
/// has none. The kernel's config is read once, if a `CONFIG_*` needs it.
pub fn place_kconfig(elf_bytes: &[u8], btf: &Btf) -> Result<Option<Vec<u8>>> {
    let config = std::cell::OnceCell::new();
    let lookup = |name: &str| -> std::result::Result<Option<String>, String> {
        if name.starts_with("LINUX_") {
            return Ok(kconfig::linux_value(name));
        }
        let config = config.get_or_init(kconfig::kernel_config).as_ref()?;
        Ok(config.get(name).map(str::to_string))
    };
    let externs = kconfig_externs(elf_bytes, btf, &lookup)?;
    if externs.is_empty() {
        return Ok(None);
    }
    place(elf_bytes, &externs).map(Some)
}

/// [`place_kconfig`] with given values.
pub fn place(elf_bytes: &[u8], externs: &[KconfigExtern]) -> Result<Vec<u8>> {
    // Layout: each value at its natural alignment, in declaration order.
    let mut data = Vec::new();
    let mut offsets = Vec::with_capacity(externs.len());
    for e in externs {
        let at = data.len().next_multiple_of(e.ty.align());
        data.resize(at, 0);
        data.extend_from_slice(&e.value);
        offsets.push(at);
    }
    data.resize(data.len().next_multiple_of(8).max(8), 0);

    let btf_section = section_data(elf_bytes, ".BTF")?;
    let btf = super::btf_patch::rename_datasec(&btf_section, ".kconfig", KCONFIG_SECTION)?
        .ok_or_else(|| {
            GadgetError::Btf("no DATASEC `.kconfig` for the object's __kconfig externs".into())
        })?;
    let elf_bytes = super::btf_patch::replace_btf_section(elf_bytes, &btf)?;
    let (mut out, index) = add_section(&elf_bytes, KCONFIG_SECTION, &data)?;

    // Define each extern symbol in the new section.
    let file = object::File::parse(&*elf_bytes).map_err(|e| GadgetError::NotElf(e.to_string()))?;
    let symtab = file
        .section_by_name(".symtab")
        .and_then(|s| s.file_range())
        .ok_or_else(|| GadgetError::NotElf("the object has no symbol table".into()))?;
    for (e, at) in externs.iter().zip(&offsets) {
        let sym = file
            .symbols()
            .find(|s| s.name() == Ok(e.name.as_str()) && s.is_undefined())
            .ok_or_else(|| extern_err(&e.name, "no undefined symbol of that name in the object"))?;
        let entry = symtab.0 as usize + sym.index().0 * 24;
        if entry + 24 > out.len() {
            return Err(GadgetError::NotElf("symbol table out of bounds".into()));
        }
        let bind = out[entry + 4] >> 4;
        out[entry + 4] = (bind << 4) | elf::STT_OBJECT;
        out[entry + 6..entry + 8].copy_from_slice(&(index as u16).to_le_bytes());
        out[entry + 8..entry + 16].copy_from_slice(&(*at as u64).to_le_bytes());
        out[entry + 16..entry + 24].copy_from_slice(&(e.ty.size() as u64).to_le_bytes());
    }
    Ok(out)
}

/// `BPF_PSEUDO_BTF_ID`: an `ld_imm64` whose imm is a kernel BTF id.
const PSEUDO_BTF_ID: u8 = 3;
/// Opcode of `ld_imm64` (`BPF_LD | BPF_IMM | BPF_DW`).
const LD_IMM64: u8 = 0x18;

/// The object with its typed `__ksym` externs (`extern const struct rq
/// runqueues __ksym;`) resolved as libbpf does: each `ld_imm64` of the
/// variable's address carries the kernel BTF id of the variable
/// (`BPF_PSEUDO_BTF_ID`), and the kernel puts the address in; the BTF
/// DATASEC `.ksyms` gets global VARs and a size. `None` when there are
/// none. Errors name a variable the kernel's BTF lacks (only per-CPU
/// variables are in most kernels' BTF) or an untyped (`void`) one.
pub fn place_ksyms(elf_bytes: &[u8], btf: &Btf) -> Result<Option<Vec<u8>>> {
    let vars = datasec_vars(btf, ".ksyms")?;
    if vars.is_empty() {
        return Ok(None);
    }
    let ksym_err =
        |name: &str, why: String| GadgetError::Load(format!("extern `{name}` (__ksym): {why}"));
    let btf_section = section_data(elf_bytes, ".BTF")?;
    let own = super::btf_table::BtfTable::parse(&btf_section)?;
    let kernel = super::core_relo::kernel_table()?;
    let mut sizes = Vec::with_capacity(vars.len());
    let mut ids = Vec::with_capacity(vars.len());
    for (name, type_id) in &vars {
        let size = own.size_of(*type_id).unwrap_or(0);
        if size == 0 {
            return Err(ksym_err(
                name,
                "an untyped (`void`) kernel symbol needs its address from /proc/kallsyms, which gadgetd does not read: declare it with its type".into(),
            ));
        }
        let id = kernel
            .ids_named(&super::btf_table::Kind::Var(0), name)
            .into_iter()
            .find(|&id| kernel.name(id) == name)
            .ok_or_else(|| {
                ksym_err(
                    name,
                    "the running kernel's BTF has no such variable (most kernels describe only per-CPU variables)".into(),
                )
            })?;
        sizes.push(u32::try_from(size).unwrap_or(u32::MAX));
        ids.push(id);
    }
    let btf =
        super::btf_patch::lay_out_datasec(&btf_section, ".ksyms", &sizes)?.ok_or_else(|| {
            GadgetError::Btf("no DATASEC `.ksyms` for the object's __ksym externs".into())
        })?;
    let mut out = super::btf_patch::replace_btf_section(elf_bytes, &btf)?;
    let file = object::File::parse(elf_bytes).map_err(|e| GadgetError::NotElf(e.to_string()))?;
    for section in file
        .sections()
        .filter(|s| s.kind() == object::SectionKind::Text)
    {
        let Some((start, len)) = section.file_range() else {
            continue;
        };
        for (offset, rel) in section.relocations() {
            let RelocationTarget::Symbol(index) = rel.target() else {
                continue;
            };
            let Ok(sym) = file.symbol_by_index(index) else {
                continue;
            };
            let Some(i) = vars
                .iter()
                .position(|(n, _)| sym.is_undefined() && sym.name() == Ok(n.as_str()))
            else {
                continue;
            };
            let at = (start + offset) as usize;
            if offset + 16 > len || out[at] != LD_IMM64 {
                return Err(ksym_err(
                    &vars[i].0,
                    format!(
                        "instruction {} of section `{}` uses it other than by its address",
                        offset / 8,
                        section.name().unwrap_or("?")
                    ),
                ));
            }
            out[at + 1] = (out[at + 1] & 0x0f) | (PSEUDO_BTF_ID << 4);
            out[at + 4..at + 8].copy_from_slice(&ids[i].to_le_bytes());
            out[at + 12..at + 16].copy_from_slice(&0u32.to_le_bytes());
        }
    }
    Ok(Some(out))
}

fn section_data(elf_bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    let file = object::File::parse(elf_bytes).map_err(|e| GadgetError::NotElf(e.to_string()))?;
    file.section_by_name(name)
        .and_then(|s| s.data().ok().map(<[u8]>::to_vec))
        .ok_or_else(|| GadgetError::NotElf(format!("the object has no readable `{name}` section")))
}

/// Appends an allocated PROGBITS section `name` holding `data` to a 64-bit
/// little-endian ELF: data, a grown section-name table and the section
/// header table (one entry longer) go at the end of the file, so every
/// existing offset and section index stays valid. Returns the new ELF and
/// the new section's index.
pub fn add_section(elf_bytes: &[u8], name: &str, data: &[u8]) -> Result<(Vec<u8>, usize)> {
    let bad = |what: &str| GadgetError::NotElf(format!("cannot add section `{name}`: {what}"));
    if elf_bytes.len() < 64 || elf_bytes[4] != elf::ELFCLASS64 || elf_bytes[5] != elf::ELFDATA2LSB {
        return Err(bad("only 64-bit little-endian objects are supported"));
    }
    let u16_at = |at: usize| u16::from_le_bytes([elf_bytes[at], elf_bytes[at + 1]]) as usize;
    let u64_at = |at: usize| {
        elf_bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    let sh_off = u64_at(0x28).ok_or_else(|| bad("truncated header"))?;
    let (entsize, count, strndx) = (u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    if entsize != 64 || count == 0 || strndx >= count || sh_off + count * 64 > elf_bytes.len() {
        return Err(bad("unexpected section header table"));
    }
    let str_hdr = sh_off + strndx * 64;
    let (str_off, str_size) = (
        u64_at(str_hdr + 0x18).ok_or_else(|| bad("truncated"))?,
        u64_at(str_hdr + 0x20).ok_or_else(|| bad("truncated"))?,
    );
    let names = elf_bytes
        .get(str_off..str_off + str_size)
        .ok_or_else(|| bad("section names out of bounds"))?;

    let mut out = elf_bytes.to_vec();
    let pad = |out: &mut Vec<u8>| out.resize(out.len().next_multiple_of(8), 0);
    pad(&mut out);
    let data_off = out.len();
    out.extend_from_slice(data);
    pad(&mut out);
    let new_str_off = out.len();
    out.extend_from_slice(names);
    let name_off = names.len();
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    let new_str_size = out.len() - new_str_off;
    pad(&mut out);
    let new_sh_off = out.len();
    out.extend_from_slice(&elf_bytes[sh_off..sh_off + count * 64]);
    let moved_str_hdr = new_sh_off + strndx * 64;
    out[moved_str_hdr + 0x18..moved_str_hdr + 0x20]
        .copy_from_slice(&(new_str_off as u64).to_le_bytes());
    out[moved_str_hdr + 0x20..moved_str_hdr + 0x28]
        .copy_from_slice(&(new_str_size as u64).to_le_bytes());
    let mut hdr = [0u8; 64];
    hdr[0..4].copy_from_slice(&(name_off as u32).to_le_bytes());
    hdr[4..8].copy_from_slice(&elf::SHT_PROGBITS.to_le_bytes());
    hdr[8..16].copy_from_slice(&u64::from(elf::SHF_ALLOC).to_le_bytes());
    hdr[0x18..0x20].copy_from_slice(&(data_off as u64).to_le_bytes());
    hdr[0x20..0x28].copy_from_slice(&(data.len() as u64).to_le_bytes());
    hdr[0x30..0x38].copy_from_slice(&8u64.to_le_bytes());
    out.extend_from_slice(&hdr);
    out[0x28..0x30].copy_from_slice(&(new_sh_off as u64).to_le_bytes());
    out[0x3c..0x3e].copy_from_slice(&((count + 1) as u16).to_le_bytes());
    Ok((out, count))
}

/// Fails, naming the symbol and the program, when a program refers to a
/// symbol the object leaves undefined other than a `.kconfig` or typed
/// `__ksym` extern: a call to a function defined nowhere.
pub fn check_undefined(elf_bytes: &[u8], btf: &Btf) -> Result<()> {
    let kconfig: Vec<String> = datasec_vars(btf, ".kconfig")?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let ksyms: Vec<String> = datasec_vars(btf, ".ksyms")?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let file = object::File::parse(elf_bytes).map_err(|e| GadgetError::NotElf(e.to_string()))?;
    for section in file
        .sections()
        .filter(|s| s.kind() == object::SectionKind::Text)
    {
        for (offset, rel) in section.relocations() {
            let RelocationTarget::Symbol(index) = rel.target() else {
                continue;
            };
            let Ok(sym) = file.symbol_by_index(index) else {
                continue;
            };
            if !sym.is_undefined() {
                continue;
            }
            let Ok(name) = sym.name() else { continue };
            if name.is_empty()
                || kconfig.iter().any(|k| k == name)
                || ksyms.iter().any(|k| k == name)
            {
                continue;
            }
            let program = program_at(&file, section.index(), offset);
            let section_name = section.name().unwrap_or("?").to_string();
            let reason = if matches!(name, "memcmp" | "memcpy" | "memset" | "memmove" | "bcmp") {
                format!(
                    "it calls `{name}`, which the object does not define: clang emitted a C library call for a `__builtin_{name}` it did not inline (clang 14 does this for BPF, for instance when one operand is a mutable global); rebuild with a newer clang, or compare/copy with a bounded loop"
                )
            } else {
                format!(
                    "it calls `{name}`, which the object does not define (a kfunc declared `__ksym`, or a function from another object): gadgetd links no other objects and does not resolve kfuncs yet"
                )
            };
            return Err(GadgetError::Program {
                program,
                section: section_name,
                reason,
            });
        }
    }
    Ok(())
}

/// The name of the function symbol of `section` that covers `offset`.
fn program_at(file: &object::File<'_>, section: SectionIndex, offset: u64) -> String {
    file.symbols()
        .filter(|s| s.section_index() == Some(section) && s.kind() == SymbolKind::Text)
        .filter(|s| s.address() <= offset && offset < s.address() + s.size().max(1))
        .find_map(|s| s.name().ok().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_garbage_object_is_refused_with_a_reason() {
        let err = add_section(b"not an elf at all", ".rodata.kconfig", &[0; 8]).unwrap_err();
        assert!(err.to_string().contains("64-bit little-endian"), "{err}");
    }
}
