//! A BTF blob (an object's `.BTF` or the kernel's `/sys/kernel/btf/vmlinux`)
//! read into a table of types by id, with names and member bit offsets: what
//! CO-RE relocation needs ([`super::core_relo`]). btf-rs takes about a second
//! for the kernel's BTF and aya-obj keeps its type walk private; this reader
//! takes one pass over the bytes (tens of milliseconds for vmlinux).

use std::borrow::Cow;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::error::{GadgetError, Result};

const BTF_MAGIC: u16 = 0xeb9f;

/// One member of a struct or union.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    pub name_off: u32,
    pub type_id: u32,
    /// Offset from the start of the struct, in bits.
    pub bit_offset: u32,
    /// Width of a bitfield in bits; 0 for a plain member.
    pub bitfield_size: u32,
}

/// One enumerator: its name and value (sign-extended for signed enums).
#[derive(Debug, Clone, Copy)]
pub struct Enumerator {
    pub name_off: u32,
    pub value: i64,
}

/// A BTF type, by kind (the kernel's `BTF_KIND_*`).
#[derive(Debug, Clone)]
pub enum Kind {
    Void,
    /// `size` in bytes; `bits_offset` non-zero only for deprecated bitfield ints.
    Int {
        size: u32,
        signed: bool,
        bits_offset: u32,
    },
    Ptr(u32),
    Array {
        elem: u32,
        len: u32,
    },
    Struct {
        size: u32,
        members: Vec<Member>,
    },
    Union {
        size: u32,
        members: Vec<Member>,
    },
    /// ENUM (4-byte values) and ENUM64 alike; `is64` tells them apart.
    Enum {
        size: u32,
        signed: bool,
        is64: bool,
        values: Vec<Enumerator>,
    },
    Fwd {
        is_union: bool,
    },
    Typedef(u32),
    Volatile(u32),
    Const(u32),
    Restrict(u32),
    #[allow(dead_code)] // parsed for completeness; no fix-up reads it yet
    Func(u32),
    FuncProto {
        ret: u32,
        params: Vec<u32>,
    },
    Var(u32),
    Datasec,
    Float {
        size: u32,
    },
    #[allow(dead_code)]
    DeclTag(u32),
    TypeTag(u32),
}

/// A named type.
#[derive(Debug, Clone)]
pub struct Type {
    pub name_off: u32,
    pub kind: Kind,
}

/// Where a table's bytes are.
enum Blob {
    /// In memory: an object's `.BTF`, or any blob given as bytes.
    Owned(Vec<u8>),
    /// A file mapped read-only. The kernel's BTF can be mapped since Linux
    /// 6.16: the mapping is the kernel's own pages, so it costs this process
    /// no resident memory.
    Mapped(memmap2::Mmap),
    /// A file read on demand (kernels before 6.16 cannot map their BTF):
    /// each type record is read when asked for; only the string section is
    /// held (2.3 of the 5.5 MB of a 6.18 kernel's BTF).
    File { file: File, strings: Vec<u8> },
}

/// Bytes read at a time from a file while walking its type headers.
const CHUNK: usize = 64 * 1024;

/// The types of one BTF blob, by id (id 0 is `void`).
///
/// Only the record offsets are indexed up front (4 bytes per type); a type
/// is decoded when asked for. The kernel's BTF (~130,000 types, ~5.5 MB) is
/// indexed in a few milliseconds; mapped ([`BtfTable::open`]) it then costs
/// only the index (~0.5 MiB), read whole it cost its bytes too. CO-RE
/// relocation looks at a few hundred types.
pub struct BtfTable {
    blob: Blob,
    /// Where the string section is: in the blob for `Owned` and `Mapped`,
    /// `0..len` of the held strings for `File`.
    strings: Range<usize>,
    /// Where the type section ends in the blob (or file).
    types_end: usize,
    /// Byte offset in the blob of each type's record, by id; id 0 (`void`)
    /// has none (0).
    offsets: Vec<u32>,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| GadgetError::Btf(format!("truncated BTF at byte {at}")))
}

/// Bytes after a type's 12-byte header, by kind; an unknown kind is an
/// error naming it and the type id.
fn body_len(kind: u32, vlen: usize, id: usize) -> Result<usize> {
    Ok(match kind {
        1 => 4,
        2 | 7..=12 | 16 | 18 => 0,
        13 => 8 * vlen,
        3 => 12,
        4 | 5 => 12 * vlen,
        6 => 8 * vlen,
        14 | 17 => 4,
        15 | 19 => 12 * vlen,
        other => {
            return Err(GadgetError::Btf(format!(
                "unknown BTF kind {other} (type {id})"
            )));
        }
    })
}

/// The type and string sections of a blob of `len` bytes, from its header
/// (the first 24 bytes at least); errors say what is wrong with it.
fn sections(header: &[u8], len: usize) -> Result<(Range<usize>, Range<usize>)> {
    if header.len() < 24 || u16::from_le_bytes([header[0], header[1]]) != BTF_MAGIC {
        return Err(GadgetError::Btf("bad magic: not little-endian BTF".into()));
    }
    let hdr_len = u32_at(header, 4)? as usize;
    let type_start = hdr_len + u32_at(header, 8)? as usize;
    let type_end = type_start + u32_at(header, 12)? as usize;
    let str_start = hdr_len + u32_at(header, 16)? as usize;
    let str_end = str_start + u32_at(header, 20)? as usize;
    if type_end > len || str_end > len {
        return Err(GadgetError::Btf("section lengths exceed the data".into()));
    }
    Ok((type_start..type_end, str_start..str_end))
}

/// `err`, saying which file it is about.
fn at_path(path: &Path, err: GadgetError) -> GadgetError {
    GadgetError::Btf(format!("{}: {err}", path.display()))
}

/// Reads small pieces of a blob at increasing offsets: from memory, or
/// from a file through one buffer of `chunk` bytes.
struct Cursor<'a> {
    src: Src<'a>,
    buf: Vec<u8>,
    /// Offset of `buf[0]` in the file.
    start: usize,
    chunk: usize,
}

enum Src<'a> {
    Mem(&'a [u8]),
    /// A file and where reading must stop (the end of its type section).
    File(&'a File, usize),
}

impl<'a> Cursor<'a> {
    fn mem(bytes: &'a [u8]) -> Self {
        Cursor {
            src: Src::Mem(bytes),
            buf: Vec::new(),
            start: 0,
            chunk: 0,
        }
    }

    /// `len` bytes at `at`; past the end is an error naming the byte.
    fn get(&mut self, at: usize, len: usize) -> Result<&[u8]> {
        let truncated = || GadgetError::Btf(format!("truncated BTF at byte {}", at + len));
        match self.src {
            Src::Mem(b) => b.get(at..at + len).ok_or_else(truncated),
            Src::File(file, end) => {
                if at < self.start || at + len > self.start + self.buf.len() {
                    let n = self.chunk.max(len).min(end.saturating_sub(at));
                    if n < len {
                        return Err(truncated());
                    }
                    self.buf.resize(n, 0);
                    file.read_exact_at(&mut self.buf, at as u64)?;
                    self.start = at;
                }
                Ok(&self.buf[at - self.start..at - self.start + len])
            }
        }
    }
}

/// The offset of every type record in `types`, by id (0 for `void`),
/// walking the 12-byte record headers through `cur`.
fn index(cur: &mut Cursor<'_>, types: &Range<usize>) -> Result<Vec<u32>> {
    // ~24 bytes per type on average in the kernel's BTF.
    let mut offsets = Vec::with_capacity(1 + types.len() / 24);
    offsets.push(0);
    let mut at = types.start;
    while at < types.end {
        let id = offsets.len();
        let info = match cur.get(at, 12) {
            Ok(h) => u32_at(h, 4)?,
            Err(_) => {
                return Err(GadgetError::Btf(format!(
                    "truncated BTF at byte {} (type {id})",
                    (at + 12).min(types.end)
                )));
            }
        };
        let extra = body_len((info >> 24) & 0x1f, (info & 0xffff) as usize, id)?;
        if at + 12 + extra > types.end {
            return Err(GadgetError::Btf(format!(
                "truncated BTF at byte {} (type {id})",
                at + 12 + extra
            )));
        }
        offsets.push(
            u32::try_from(at).map_err(|_| {
                GadgetError::Btf(format!("type {id} starts past 4 GiB (byte {at})"))
            })?,
        );
        at += 12 + extra;
    }
    // Not kept growing: the kernel's index is ~0.5 MiB for the whole load.
    offsets.shrink_to_fit();
    Ok(offsets)
}

impl BtfTable {
    /// Parses a little-endian BTF blob. Errors name the byte or kind at fault.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Self::parse_owned(bytes.to_vec())
    }

    /// Like [`BtfTable::parse`], keeping `bytes` without a copy.
    pub fn parse_owned(bytes: Vec<u8>) -> Result<Self> {
        let (types, strings) = sections(&bytes, bytes.len())?;
        let offsets = index(&mut Cursor::mem(&bytes), &types)?;
        Ok(BtfTable {
            blob: Blob::Owned(bytes),
            strings,
            types_end: types.end,
            offsets,
        })
    }

    /// The BTF file at `path` (the kernel's is `/sys/kernel/btf/vmlinux`),
    /// mapped read-only where the file allows it (the kernel's since Linux
    /// 6.16), else read on demand ([`BtfTable::open_read_on_demand`]).
    /// Neither holds the whole file in this process's memory. Errors name
    /// the path.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| at_path(path, e.into()))?;
        // SAFETY: a private read-only mapping; the kernel's BTF never
        // changes, and a regular file changed under it could only give wrong
        // types, which every read here bounds-checks.
        match unsafe { memmap2::MmapOptions::new().map_copy_read_only(&file) } {
            Ok(map) => {
                let (types, strings) = sections(&map, map.len()).map_err(|e| at_path(path, e))?;
                let offsets =
                    index(&mut Cursor::mem(&map), &types).map_err(|e| at_path(path, e))?;
                Ok(BtfTable {
                    blob: Blob::Mapped(map),
                    strings,
                    types_end: types.end,
                    offsets,
                })
            }
            Err(_) => Self::read_on_demand(path, file, CHUNK),
        }
    }

    /// The BTF file at `path`, read on demand: the type headers are read
    /// in chunks once to index them, then a type's record when it is asked
    /// for; the string section is held. For kernels before 6.16, whose BTF
    /// cannot be mapped. Errors name the path.
    pub fn open_read_on_demand(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| at_path(path, e.into()))?;
        Self::read_on_demand(path, file, CHUNK)
    }

    fn read_on_demand(path: &Path, file: File, chunk: usize) -> Result<Self> {
        let build = || {
            let len = file.metadata()?.len() as usize;
            let mut header = [0u8; 24];
            file.read_exact_at(&mut header, 0)
                .map_err(|_| GadgetError::Btf("bad magic: not little-endian BTF".into()))?;
            let (types, strings) = sections(&header, len)?;
            let mut cur = Cursor {
                src: Src::File(&file, types.end),
                buf: Vec::new(),
                start: 0,
                chunk,
            };
            let offsets = index(&mut cur, &types)?;
            let mut held = vec![0u8; strings.len()];
            file.read_exact_at(&mut held, strings.start as u64)?;
            Ok::<_, GadgetError>((types, held, offsets))
        };
        let (types, held, offsets) = build().map_err(|e| at_path(path, e))?;
        Ok(BtfTable {
            strings: 0..held.len(),
            blob: Blob::File {
                file,
                strings: held,
            },
            types_end: types.end,
            offsets,
        })
    }

    /// True when the blob is mapped rather than held or read on demand.
    #[allow(dead_code)] // for tests and diagnostics
    pub fn is_mapped(&self) -> bool {
        matches!(self.blob, Blob::Mapped(_))
    }

    /// The whole blob, when it is in memory or mapped.
    fn whole(&self) -> Option<&[u8]> {
        match &self.blob {
            Blob::Owned(b) => Some(b),
            Blob::Mapped(m) => Some(m),
            Blob::File { .. } => None,
        }
    }

    /// The string section.
    fn string_bytes(&self) -> &[u8] {
        match &self.blob {
            Blob::File { strings, .. } => strings,
            _ => &self.whole().expect("in memory")[self.strings.clone()],
        }
    }

    /// The record of type `id` (1..len): its header and body.
    fn record(&self, id: usize) -> Result<Cow<'_, [u8]>> {
        let at = self.offsets[id] as usize;
        let end = self
            .offsets
            .get(id + 1)
            .map_or(self.types_end, |&next| next as usize);
        match &self.blob {
            Blob::File { file, .. } => {
                let mut rec = vec![0u8; end - at];
                file.read_exact_at(&mut rec, at as u64)?;
                Ok(Cow::Owned(rec))
            }
            _ => Ok(Cow::Borrowed(&self.whole().expect("in memory")[at..end])),
        }
    }

    /// The name offset of type `id`'s record (1..len).
    fn name_off(&self, id: usize) -> Result<u32> {
        let at = self.offsets[id] as usize;
        match &self.blob {
            Blob::File { file, .. } => {
                let mut word = [0u8; 4];
                file.read_exact_at(&mut word, at as u64)?;
                Ok(u32::from_le_bytes(word))
            }
            _ => u32_at(self.whole().expect("in memory"), at),
        }
    }

    /// Ids of the types of `kind`'s kind (ENUM and ENUM64 alike) whose
    /// name, without a `___flavor` suffix, is `name`: CO-RE's candidates,
    /// found from the record headers without decoding the types.
    pub fn ids_named(&self, kind: &Kind, name: &str) -> Vec<u32> {
        let want = kind_code(kind);
        let strings = self.string_bytes();
        let name = name.as_bytes();
        let mut cur = match &self.blob {
            Blob::File { file, .. } => Cursor {
                src: Src::File(file, self.types_end),
                buf: Vec::new(),
                start: 0,
                chunk: CHUNK,
            },
            _ => Cursor::mem(self.whole().expect("in memory")),
        };
        let mut ids = Vec::new();
        for id in 1..self.offsets.len() {
            // Indexed, so readable; a file that shrank since reads as no match.
            let Ok(header) = cur.get(self.offsets[id] as usize, 8) else {
                break;
            };
            let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().unwrap());
            let (name_off, info) = (word(0) as usize, word(4));
            let code = match (info >> 24) & 0x1f {
                19 => 6,
                c => c,
            };
            if code == want
                && strings.get(name_off..).is_some_and(|s| {
                    s.starts_with(name)
                        && matches!(&s[name.len()..], [0, ..] | [] | [b'_', b'_', b'_', ..])
                })
            {
                ids.push(id as u32);
            }
        }
        ids
    }

    /// Decodes a type's record (its header and body).
    fn decode(t: &[u8]) -> Result<Type> {
        let at = 0;
        let name_off = u32_at(t, at)?;
        let info = u32_at(t, at + 4)?;
        let size_or_type = u32_at(t, at + 8)?;
        let vlen = (info & 0xffff) as usize;
        let kflag = info >> 31 == 1;
        let body = at + 12;
        let kind = match (info >> 24) & 0x1f {
            1 => {
                let enc = u32_at(t, body)?;
                Kind::Int {
                    size: size_or_type,
                    signed: (enc >> 24) & 1 == 1,
                    bits_offset: (enc >> 16) & 0xff,
                }
            }
            2 => Kind::Ptr(size_or_type),
            3 => Kind::Array {
                elem: u32_at(t, body)?,
                len: u32_at(t, body + 8)?,
            },
            k @ (4 | 5) => {
                let mut members = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    let m = body + 12 * i;
                    let off = u32_at(t, m + 8)?;
                    let (bit_offset, bitfield_size) = if kflag {
                        (off & 0xff_ffff, off >> 24)
                    } else {
                        (off, 0)
                    };
                    members.push(Member {
                        name_off: u32_at(t, m)?,
                        type_id: u32_at(t, m + 4)?,
                        bit_offset,
                        bitfield_size,
                    });
                }
                if k == 4 {
                    Kind::Struct {
                        size: size_or_type,
                        members,
                    }
                } else {
                    Kind::Union {
                        size: size_or_type,
                        members,
                    }
                }
            }
            6 => {
                let mut values = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    let raw = u32_at(t, body + 8 * i + 4)?;
                    values.push(Enumerator {
                        name_off: u32_at(t, body + 8 * i)?,
                        value: if kflag { raw as i32 as i64 } else { raw as i64 },
                    });
                }
                Kind::Enum {
                    size: size_or_type,
                    signed: kflag,
                    is64: false,
                    values,
                }
            }
            19 => {
                let mut values = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    let lo = u32_at(t, body + 12 * i + 4)? as u64;
                    let hi = u32_at(t, body + 12 * i + 8)? as u64;
                    values.push(Enumerator {
                        name_off: u32_at(t, body + 12 * i)?,
                        value: ((hi << 32) | lo) as i64,
                    });
                }
                Kind::Enum {
                    size: size_or_type,
                    signed: kflag,
                    is64: true,
                    values,
                }
            }
            7 => Kind::Fwd { is_union: kflag },
            8 => Kind::Typedef(size_or_type),
            9 => Kind::Volatile(size_or_type),
            10 => Kind::Const(size_or_type),
            11 => Kind::Restrict(size_or_type),
            12 => Kind::Func(size_or_type),
            13 => {
                let mut params = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    params.push(u32_at(t, body + 8 * i + 4)?);
                }
                Kind::FuncProto {
                    ret: size_or_type,
                    params,
                }
            }
            14 => Kind::Var(size_or_type),
            15 => Kind::Datasec,
            16 => Kind::Float { size: size_or_type },
            17 => Kind::DeclTag(size_or_type),
            18 => Kind::TypeTag(size_or_type),
            other => {
                return Err(GadgetError::Btf(format!("unknown BTF kind {other}")));
            }
        };
        Ok(Type { name_off, kind })
    }

    /// Number of type ids, `void` included.
    #[allow(dead_code)]
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Always false: `void` is id 0.
    #[allow(dead_code)]
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The type with this id, decoded; an id past the end is an error naming it.
    pub fn get(&self, id: u32) -> Result<Type> {
        match self.offsets.get(id as usize) {
            Some(_) if id == 0 => Ok(Type {
                name_off: 0,
                kind: Kind::Void,
            }),
            Some(_) => Self::decode(&self.record(id as usize)?),
            None => Err(GadgetError::Btf(format!("no BTF type with id {id}"))),
        }
    }

    /// Iterates over `(id, type)`, `void` excluded, decoding each (for small
    /// blobs; [`BtfTable::ids_where`] finds types by kind and name cheaply).
    pub fn iter(&self) -> impl Iterator<Item = (u32, Type)> + '_ {
        (1..self.offsets.len() as u32).filter_map(|id| self.get(id).ok().map(|t| (id, t)))
    }

    /// The string at `off` in the string section ("" when out of range or not UTF-8).
    pub fn str_at(&self, off: u32) -> &str {
        let strings = self.string_bytes();
        let start = (off as usize).min(strings.len());
        let rest = &strings[start..];
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    /// The name of type `id` ("" for anonymous types).
    pub fn name(&self, id: u32) -> &str {
        match self.offsets.get(id as usize) {
            Some(_) if id != 0 => self
                .name_off(id as usize)
                .map_or("", |off| self.str_at(off)),
            _ => "",
        }
    }

    /// Follows typedefs, const/volatile/restrict and type tags to the type
    /// they name; returns its id.
    pub fn skip_mods_and_typedefs(&self, mut id: u32) -> Result<u32> {
        for _ in 0..64 {
            match self.get(id)?.kind {
                Kind::Typedef(next)
                | Kind::Volatile(next)
                | Kind::Const(next)
                | Kind::Restrict(next)
                | Kind::TypeTag(next) => id = next,
                _ => return Ok(id),
            }
        }
        Err(GadgetError::Btf(format!(
            "type {id}: modifier chain too long"
        )))
    }

    /// Size in bytes of type `id` (arrays: element size times length).
    pub fn size_of(&self, id: u32) -> Result<u64> {
        let mut id = id;
        let mut count = 1u64;
        for _ in 0..64 {
            id = self.skip_mods_and_typedefs(id)?;
            match &self.get(id)?.kind {
                Kind::Int { size, .. }
                | Kind::Struct { size, .. }
                | Kind::Union { size, .. }
                | Kind::Enum { size, .. }
                | Kind::Float { size } => return Ok(count * *size as u64),
                Kind::Ptr(_) => return Ok(count * 8),
                Kind::Array { elem, len } => {
                    count *= *len as u64;
                    id = *elem;
                }
                Kind::Var(t) => id = *t,
                other => {
                    return Err(GadgetError::Btf(format!(
                        "type {id} ({}) has no size",
                        kind_name(other)
                    )));
                }
            }
        }
        Err(GadgetError::Btf(format!("type {id}: nested too deep")))
    }
}

/// The kernel's `BTF_KIND_*` of a kind (ENUM for ENUM64 too).
fn kind_code(kind: &Kind) -> u32 {
    match kind {
        Kind::Void => 0,
        Kind::Int { .. } => 1,
        Kind::Ptr(_) => 2,
        Kind::Array { .. } => 3,
        Kind::Struct { .. } => 4,
        Kind::Union { .. } => 5,
        Kind::Enum { .. } => 6,
        Kind::Fwd { .. } => 7,
        Kind::Typedef(_) => 8,
        Kind::Volatile(_) => 9,
        Kind::Const(_) => 10,
        Kind::Restrict(_) => 11,
        Kind::Func(_) => 12,
        Kind::FuncProto { .. } => 13,
        Kind::Var(_) => 14,
        Kind::Datasec => 15,
        Kind::Float { .. } => 16,
        Kind::DeclTag(_) => 17,
        Kind::TypeTag(_) => 18,
    }
}

/// The kernel's name of a kind, for messages.
pub fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Void => "void",
        Kind::Int { .. } => "int",
        Kind::Ptr(_) => "ptr",
        Kind::Array { .. } => "array",
        Kind::Struct { .. } => "struct",
        Kind::Union { .. } => "union",
        Kind::Enum { is64: false, .. } => "enum",
        Kind::Enum { is64: true, .. } => "enum64",
        Kind::Fwd { .. } => "fwd",
        Kind::Typedef(_) => "typedef",
        Kind::Volatile(_) => "volatile",
        Kind::Const(_) => "const",
        Kind::Restrict(_) => "restrict",
        Kind::Func(_) => "func",
        Kind::FuncProto { .. } => "func_proto",
        Kind::Var(_) => "var",
        Kind::Datasec => "datasec",
        Kind::Float { .. } => "float",
        Kind::DeclTag(_) => "decl_tag",
        Kind::TypeTag(_) => "type_tag",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob of `types` (each: name offset, info, size/type, body
    /// words) over `strings`.
    fn blob(types: &[(u32, u32, u32, &[u32])], strings: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        for (name, info, size, body) in types {
            for w in [*name, *info, *size].iter().chain(body.iter()) {
                t.extend_from_slice(&w.to_le_bytes());
            }
        }
        let mut b = Vec::new();
        b.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(&t);
        b.extend_from_slice(strings);
        b
    }

    const STRINGS: &[u8] = b"\0foo___v1\0foo\0fo\0bar\0x\0";
    const FOO_V1: u32 = 1;
    const FOO: u32 = 10;
    const FO: u32 = 14;
    const BAR: u32 = 17;
    const X: u32 = 21;

    fn test_types() -> Vec<u8> {
        let st = |vlen: u32| (4 << 24) | vlen;
        blob(
            &[
                // 1: int (4 bytes, signed)
                (0, 1 << 24, 4, &[(1 << 24) | 32]),
                // 2: struct foo___v1 { int x; }
                (FOO_V1, st(1), 4, &[X, 1, 0]),
                // 3: struct foo {}
                (FOO, st(0), 0, &[]),
                // 4: union foo {}
                (FOO, 5 << 24, 0, &[]),
                // 5: struct fo {}
                (FO, st(0), 0, &[]),
                // 6: enum64 bar { x = 2^32 }
                (BAR, (19 << 24) | 1, 8, &[X, 0, 1]),
            ],
            STRINGS,
        )
    }

    /// A file of this test's own holding `bytes`, removed when dropped.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(bytes: &[u8]) -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "btf-table-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, bytes).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// `bytes` parsed every way a table can hold them: in memory, mapped,
    /// and read on demand through a 13-byte buffer (so that nearly every
    /// header read refills it, and headers straddle its ends).
    fn every_way(bytes: &[u8]) -> Vec<(&'static str, Result<BtfTable>)> {
        let file = TempFile::new(bytes);
        let on_demand = File::open(&file.0)
            .map_err(GadgetError::from)
            .and_then(|f| BtfTable::read_on_demand(&file.0, f, 13));
        vec![
            ("in memory", BtfTable::parse(bytes)),
            ("mapped", BtfTable::open(&file.0)),
            ("on demand", on_demand),
            ("on demand, 64 KiB", BtfTable::open_read_on_demand(&file.0)),
        ]
    }

    fn tables() -> Vec<(&'static str, BtfTable)> {
        every_way(&test_types())
            .into_iter()
            .map(|(how, t)| (how, t.unwrap()))
            .collect()
    }

    #[test]
    fn candidates_are_found_by_kind_and_name_without_the_flavor() {
        for (how, t) in tables() {
            candidates_in(how, &t);
        }
    }

    fn candidates_in(how: &str, t: &BtfTable) {
        assert_eq!(t.is_mapped(), how == "mapped", "{how}");
        let strukt = Kind::Struct {
            size: 0,
            members: Vec::new(),
        };
        assert_eq!(t.ids_named(&strukt, "foo"), [2, 3], "{how}");
        assert_eq!(t.ids_named(&strukt, "fo"), [5], "{how}");
        assert_eq!(
            t.ids_named(
                &Kind::Union {
                    size: 0,
                    members: Vec::new()
                },
                "foo"
            ),
            [4],
            "{how}"
        );
        // ENUM and ENUM64 are one kind for CO-RE.
        let enum32 = Kind::Enum {
            size: 4,
            signed: false,
            is64: false,
            values: Vec::new(),
        };
        assert_eq!(t.ids_named(&enum32, "bar"), [6], "{how}");
        assert!(t.ids_named(&strukt, "ba").is_empty(), "{how}");
    }

    #[test]
    fn types_decode_on_demand() {
        for (how, t) in tables() {
            assert_eq!(t.len(), 7, "{how}");
            assert_eq!(t.name(2), "foo___v1", "{how}");
            assert_eq!(t.name(6), "bar", "{how}");
            assert_eq!(t.name(1), "", "{how}");
            assert_eq!(t.name(0), "", "{how}");
            assert_eq!(t.name(7), "", "{how}");
            let Kind::Struct { size: 4, members } = t.get(2).unwrap().kind else {
                panic!("{how}: not the struct");
            };
            assert_eq!(t.str_at(members[0].name_off), "x", "{how}");
            assert_eq!(members[0].type_id, 1, "{how}");
            let Kind::Enum {
                is64: true, values, ..
            } = t.get(6).unwrap().kind
            else {
                panic!("{how}: not the enum64");
            };
            assert_eq!(values[0].value, 1 << 32, "{how}");
            assert_eq!(t.size_of(2).unwrap(), 4, "{how}");
            assert_eq!(t.size_of(1).unwrap(), 4, "{how}");
            assert!(matches!(
                t.get(5).unwrap().kind,
                Kind::Struct { size: 0, .. }
            ));
            assert_eq!(
                t.get(7).unwrap_err().to_string(),
                GadgetError::Btf("no BTF type with id 7".into()).to_string(),
                "{how}"
            );
        }
    }

    #[test]
    fn a_truncated_or_unknown_record_is_an_error_naming_it() {
        let cut = blob(&[(FOO, (4 << 24) | 2, 8, &[X, 1, 0])], STRINGS);
        let unknown = blob(&[(FOO, 31 << 24, 0, &[])], STRINGS);
        // The header says more types than the file has.
        let mut short = test_types();
        short.truncate(24 + 20);
        for (how, t) in every_way(&cut) {
            let err = t.err().unwrap().to_string();
            assert!(
                err.contains("truncated BTF") && err.contains("type 1"),
                "{how}: {err}"
            );
        }
        for (how, t) in every_way(&unknown) {
            let err = t.err().unwrap().to_string();
            assert!(err.contains("unknown BTF kind 31 (type 1)"), "{how}: {err}");
        }
        for (how, t) in every_way(&short) {
            let err = t.err().unwrap().to_string();
            assert!(
                err.contains("section lengths exceed the data"),
                "{how}: {err}"
            );
        }
        for (how, t) in every_way(b"not BTF at all, but long enough") {
            let err = t.err().unwrap().to_string();
            assert!(err.contains("bad magic"), "{how}: {err}");
        }
    }

    #[test]
    fn a_file_error_names_the_path() {
        let path = Path::new("/nonexistent/btf/vmlinux");
        for t in [BtfTable::open(path), BtfTable::open_read_on_demand(path)] {
            let err = t.err().unwrap().to_string();
            assert!(err.contains("/nonexistent/btf/vmlinux"), "{err}");
        }
    }

    /// The running kernel's `(major, minor)` version.
    fn kernel_version() -> (u32, u32) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut parts = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    /// The kernel's BTF mapped and read on demand: the same types, names
    /// and candidates (what CO-RE relocation asks of it).
    #[test]
    fn the_kernels_btf_reads_the_same_mapped_and_on_demand() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            eprintln!("skipping: no kernel BTF ({} is missing)", path.display());
            return;
        }
        let mapped = BtfTable::open(path).unwrap();
        let read = BtfTable::open_read_on_demand(path).unwrap();
        // Linux 6.16 added mmap to the kernel's BTF file.
        assert_eq!(mapped.is_mapped(), kernel_version() >= (6, 16));
        assert!(!read.is_mapped());
        assert_eq!(mapped.len(), read.len());
        assert!(mapped.len() > 10_000, "{} types", mapped.len());
        for id in (0..mapped.len() as u32).step_by(97) {
            assert_eq!(mapped.name(id), read.name(id), "type {id}");
            assert_eq!(
                format!("{:?}", mapped.get(id).unwrap()),
                format!("{:?}", read.get(id).unwrap()),
                "type {id}"
            );
        }
        let strukt = Kind::Struct {
            size: 0,
            members: Vec::new(),
        };
        for name in ["task_struct", "file", "sk_buff", "pt_regs"] {
            let ids = mapped.ids_named(&strukt, name);
            assert!(!ids.is_empty(), "struct {name}");
            assert_eq!(ids, read.ids_named(&strukt, name), "struct {name}");
            assert_eq!(
                mapped.size_of(ids[0]).unwrap(),
                read.size_of(ids[0]).unwrap()
            );
        }
    }
}
