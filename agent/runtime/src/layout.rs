//! Event layouts: a struct's BTF flattened into the list of fields the
//! decoder reads. Nested structs become dotted names (`a.b`); the gadget
//! API's semantic typedefs (`gadget_timestamp`, `gadget_mntns_id`, ...) and
//! endpoint structs are recognised here, once, not per event.

use btf_rs::{Btf, BtfType, Type};

use super::endpoint::{self, EndpointLayout};
use super::error::{GadgetError, Result};
use super::object::name_of;

/// The decoded shape of an event struct.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The struct's C name (`event`), empty when anonymous.
    pub type_name: String,
    /// Bytes of one record.
    pub size: usize,
    /// Leaf fields in order; nested structs flattened to dotted names.
    pub fields: Vec<FieldLayout>,
}

/// One leaf field of an event.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldLayout {
    /// Dotted name (`outer.inner`), as in the stream's JSON.
    pub name: String,
    /// Byte offset in the event.
    pub offset: usize,
    /// How its bytes decode.
    pub kind: FieldKind,
}

/// How a field's bytes decode to JSON. Sizes are in bytes; numbers are in
/// the host's byte order, as the kernel wrote them.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    /// An integer of `size` bytes (1, 2, 4, 8); what it means in `semantic`.
    Int {
        /// Bytes.
        size: u8,
        /// Two's complement when true.
        signed: bool,
        /// From the gadget typedef it was declared with.
        semantic: Semantic,
    },
    /// A C `bool`: JSON `true`/`false`.
    Bool,
    /// `__int128` / `unsigned __int128`: printed as a JSON number of up to 39 digits.
    Int128 {
        /// Two's complement when true.
        signed: bool,
    },
    /// An IEEE float of `size` bytes (4 or 8).
    Float {
        /// Bytes.
        size: u8,
    },
    /// A bitfield member: `bits` wide, `shift` bits into the byte at `offset`.
    Bits {
        /// Bits from the low end of the byte at `offset`.
        shift: u32,
        /// Width in bits.
        bits: u32,
        /// Sign-extended when true.
        signed: bool,
    },
    /// A 1-byte integer array (`char[N]`, `__u8[N]`, ...): the bytes up to
    /// the first NUL, or all N; see [`super::decode::write_json_bytes`].
    Str {
        /// Bytes of the array.
        len: usize,
    },
    /// `gadget_arglist[N]`: NUL-separated strings, printed as a list.
    ArgList {
        /// Bytes of the array.
        len: usize,
    },
    /// `gadget_dnsname[N]`: a DNS name in wire format, printed dotted.
    DnsName {
        /// Bytes of the array.
        len: usize,
    },
    /// A C enum: printed as the enumerator's name, else the number.
    Enum {
        /// Bytes.
        size: u8,
        /// Two's complement when true.
        signed: bool,
        /// (value, name) of every enumerator.
        names: Vec<(i64, String)>,
        /// The enum's name: a kernel enum's members come from the running kernel.
        type_name: String,
    },
    /// A fixed array of integers: a JSON array of `count` numbers.
    IntArray {
        /// Bytes of one element.
        elem_size: u8,
        /// Two's complement when true.
        signed: bool,
        /// Elements.
        count: usize,
    },
    /// `gadget_histogram_slot__u32/u64[N]` (Inspektor Gadget's log2
    /// histogram slots: slot n counts [2^n, 2^(n+1)), slot 0 also 0):
    /// printed as a histogram object like a `hist_*` profiler's,
    /// `{"scale":"log2","total":T,"buckets":[{"start","end","count"},...]}`,
    /// buckets up to the highest non-empty slot.
    HistogramSlots {
        /// Bytes of one slot (4 or 8).
        elem_size: u8,
        /// Slots.
        count: usize,
    },
    /// A pointer: printed as a hex string (`"0x..."`).
    Pointer,
    /// `gadget_timestamp`: ns since boot, printed as RFC 3339 wall time.
    Timestamp,
    /// `struct gadget_l3endpoint_t`: an IPv4 or IPv6 address; member offsets from BTF.
    L3Endpoint(EndpointLayout),
    /// `struct gadget_l4endpoint_t`: address, port and protocol; member offsets from BTF.
    L4Endpoint(EndpointLayout),
}

/// What an integer means, from the typedef it was declared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantic {
    /// A plain number.
    None,
    /// `gadget_mntns_id`: a mount namespace inode (containers are found by it).
    MntnsId,
    /// `gadget_netns_id`: a network namespace inode.
    NetnsId,
    /// `gadget_pid`.
    Pid,
    /// `gadget_uid`: also printed as `<field>_name` (the user).
    Uid,
    /// `gadget_gid`: also printed as `<field>_name` (the group).
    Gid,
    /// `gadget_errno`: also printed as `<field>_name` (`ENOENT`).
    Errno,
    /// `gadget_signal`: also printed as `<field>_name` (`SIGKILL`).
    Signal,
    /// `gadget_syscall`: also printed as `<field>_name` (`openat`).
    Syscall,
    /// `gadget_ifindex`: also printed as `<field>_name` (`eth0`).
    Ifindex,
    /// A stack id into `gadget_kernel_stacks` (or Inspektor Gadget's `ig_kstack`).
    KernelStack,
    /// open(2) flags, printed `O_RDONLY|O_CREAT`.
    FileFlags,
    /// A file mode, printed `-rw-r--r--`.
    FileMode,
    /// A byte count, printed `1.5 MB`.
    Bytes,
    /// Nanoseconds, printed `1.5ms`.
    Duration,
}

impl FieldKind {
    /// The `type` of the field in the stream header.
    pub fn type_name(&self) -> String {
        match self {
            FieldKind::Int {
                size,
                signed,
                semantic,
            } => match semantic {
                Semantic::MntnsId => "mntns_id".into(),
                Semantic::NetnsId => "netns_id".into(),
                Semantic::Pid => "pid".into(),
                Semantic::Uid => "uid".into(),
                Semantic::Gid => "gid".into(),
                Semantic::Errno => "errno".into(),
                Semantic::Signal => "signal".into(),
                Semantic::Syscall => "syscall".into(),
                Semantic::Ifindex => "ifindex".into(),
                Semantic::KernelStack => "kernel_stack".into(),
                Semantic::FileFlags => "file_flags".into(),
                Semantic::FileMode => "file_mode".into(),
                Semantic::Bytes => "bytes".into(),
                Semantic::Duration => "duration".into(),
                Semantic::None => {
                    format!("{}{}", if *signed { "i" } else { "u" }, *size as u32 * 8)
                }
            },
            FieldKind::Bool => "bool".into(),
            FieldKind::Int128 { signed } => if *signed { "i128" } else { "u128" }.into(),
            FieldKind::Float { size } => format!("f{}", *size as u32 * 8),
            FieldKind::Bits { signed, .. } => if *signed { "i64" } else { "u64" }.into(),
            FieldKind::Str { .. } => "string".into(),
            FieldKind::ArgList { .. } => "list".into(),
            FieldKind::DnsName { .. } => "string".into(),
            FieldKind::Enum { .. } => "enum".into(),
            FieldKind::IntArray { .. } => "array".into(),
            FieldKind::HistogramSlots { .. } => "histogram".into(),
            FieldKind::Pointer => "pointer".into(),
            FieldKind::Timestamp => "timestamp".into(),
            FieldKind::L3Endpoint(_) => "l3endpoint".into(),
            FieldKind::L4Endpoint(_) => "l4endpoint".into(),
        }
    }

    /// Column width when the definition file gives none.
    pub fn default_width(&self) -> u32 {
        match self {
            FieldKind::Int { size, semantic, .. } => match semantic {
                Semantic::Pid | Semantic::Uid | Semantic::Gid => 7,
                Semantic::Errno | Semantic::Signal => 8,
                Semantic::Syscall | Semantic::Ifindex | Semantic::KernelStack => 10,
                Semantic::MntnsId | Semantic::NetnsId => 10,
                Semantic::FileFlags | Semantic::FileMode => 10,
                Semantic::Bytes | Semantic::Duration => 10,
                Semantic::None => [3, 5, 0, 10, 0, 0, 0, 20][*size as usize - 1].max(3),
            },
            FieldKind::Bool => 5,
            FieldKind::Int128 { .. } => 40,
            FieldKind::Float { .. } => 12,
            FieldKind::Bits { .. } => 6,
            FieldKind::Str { len } => (*len as u32).clamp(4, 32),
            FieldKind::ArgList { .. } => 40,
            FieldKind::DnsName { .. } => 32,
            FieldKind::Enum { names, .. } => names
                .iter()
                .map(|(_, n)| n.len() as u32)
                .max()
                .unwrap_or(6)
                .clamp(4, 24),
            FieldKind::IntArray { .. } => 24,
            FieldKind::HistogramSlots { .. } => 40,
            FieldKind::Pointer => 18,
            FieldKind::Timestamp => 30,
            FieldKind::L3Endpoint(_) => 16,
            FieldKind::L4Endpoint(_) => 22,
        }
    }

    /// Semantic numbers also print as a name, in a field named `<field><suffix>`.
    pub fn companion_suffix(&self) -> Option<&'static str> {
        match self {
            FieldKind::Int {
                semantic:
                    Semantic::Errno
                    | Semantic::Signal
                    | Semantic::Syscall
                    | Semantic::Uid
                    | Semantic::Gid
                    | Semantic::Ifindex,
                ..
            } => Some("_name"),
            FieldKind::Int {
                semantic: Semantic::KernelStack,
                ..
            } => Some("_syms"),
            FieldKind::Int {
                semantic:
                    Semantic::FileFlags | Semantic::FileMode | Semantic::Bytes | Semantic::Duration,
                ..
            } => Some("_str"),
            _ => None,
        }
    }

    /// Numbers align right, text left.
    pub fn right_aligned(&self) -> bool {
        matches!(
            self,
            FieldKind::Int {
                semantic: Semantic::None
                    | Semantic::Pid
                    | Semantic::Uid
                    | Semantic::Gid
                    | Semantic::MntnsId
                    | Semantic::NetnsId
                    | Semantic::Ifindex,
                ..
            } | FieldKind::Float { .. }
                | FieldKind::Int128 { .. }
                | FieldKind::Bits { .. }
        )
    }
}

impl FieldLayout {
    /// Inspektor Gadget's convention for a timestamp or enum member named
    /// `X_raw`: it prints as the raw number, and the formatted value follows
    /// as `X` (see [`FieldLayout::companion`]).
    pub fn raw_with_formatted(&self) -> bool {
        self.name.ends_with("_raw")
            && matches!(self.kind, FieldKind::Timestamp | FieldKind::Enum { .. })
    }

    /// The field printed right after this one, if any: its name and stream
    /// type. A semantic number `X` is followed by `X_name` (`X_syms` for
    /// stacks, `X_str` for flags, modes, bytes and durations); a member
    /// named `X_raw` is followed by `X` instead (Inspektor Gadget's naming).
    pub fn companion(&self) -> Option<(String, &'static str)> {
        let base = self.name.strip_suffix("_raw");
        if self.raw_with_formatted() {
            let kind = if matches!(self.kind, FieldKind::Timestamp) {
                "timestamp"
            } else {
                "enum"
            };
            return Some((base.unwrap_or_default().to_string(), kind));
        }
        let suffix = self.kind.companion_suffix()?;
        let kind = if suffix == "_syms" { "list" } else { "string" };
        Some((
            base.map_or_else(|| format!("{}{suffix}", self.name), str::to_string),
            kind,
        ))
    }

    /// The kind the field's own value prints with: the raw integer for
    /// [`FieldLayout::raw_with_formatted`] members, else its kind.
    pub fn value_kind(&self) -> FieldKind {
        match &self.kind {
            FieldKind::Timestamp if self.raw_with_formatted() => FieldKind::Int {
                size: 8,
                signed: false,
                semantic: Semantic::None,
            },
            FieldKind::Enum { size, signed, .. } if self.raw_with_formatted() => FieldKind::Int {
                size: *size,
                signed: *signed,
                semantic: Semantic::None,
            },
            kind => kind.clone(),
        }
    }
}

/// The reserved key of control lines (see the stream codec).
const RESERVED_KEY: &str = "gadgetd";
const MAX_DEPTH: usize = 8;

fn btf_err(e: impl std::fmt::Display) -> GadgetError {
    GadgetError::Btf(e.to_string())
}

/// Builds the layout of the struct with BTF id `type_id`.
pub fn build(btf: &Btf, type_id: u32) -> Result<Layout> {
    let (ty, _) = resolve(btf, type_id)?;
    let (Type::Struct(s) | Type::Union(s)) = &ty else {
        return Err(GadgetError::UnsupportedType {
            field: "(event)".into(),
            reason: format!(
                "the event type must be a struct or union, found {}",
                ty.name()
            ),
        });
    };
    let mut fields = Vec::new();
    walk_struct(btf, s, "", 0, &mut fields, 0)?;
    for f in &mut fields {
        if f.name == RESERVED_KEY {
            f.name.push('_');
        }
    }
    use_kernel_enums(&mut fields);
    Ok(Layout {
        type_name: name_of(btf, s),
        size: s.size(),
        fields,
    })
}

/// Kernel enums (`skb_drop_reason`, ...) renumber between kernels: take their
/// members from the running kernel's BTF, not from the `vmlinux.h` the gadget
/// was compiled against. The gadget's own enums stay as they are.
fn use_kernel_enums(fields: &mut [FieldLayout]) {
    let wanted: Vec<String> = fields
        .iter()
        .filter_map(|f| match &f.kind {
            FieldKind::Enum { type_name, .. } if !type_name.is_empty() => Some(type_name.clone()),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return;
    }
    let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let kernel = super::kernel_enums::lookup(&refs);
    for f in fields {
        if let FieldKind::Enum {
            type_name, names, ..
        } = &mut f.kind
            && let Some(k) = kernel.get(type_name.as_str())
        {
            *names = k.clone();
        }
    }
}

/// Like [`build`], but a scalar type (a map key such as `__u32 pid`) becomes
/// one field named `scalar_name`.
pub fn build_or_scalar(btf: &Btf, type_id: u32, scalar_name: &str) -> Result<Layout> {
    let (ty, _) = resolve(btf, type_id)?;
    if let Type::Struct(_) = ty {
        return build(btf, type_id);
    }
    let size = match &ty {
        Type::Int(i) => i.size(),
        Type::Enum(e) => e.size(),
        Type::Array(_) => 0,
        other => {
            return Err(unsupported(
                scalar_name,
                format!(
                    "map keys and values must be structs or integers, found {}",
                    other.name()
                ),
            ));
        }
    };
    match classify(btf, type_id, scalar_name)? {
        Classified::Leaf(kind) => {
            let mut one = [FieldLayout {
                name: scalar_name.into(),
                offset: 0,
                kind,
            }];
            use_kernel_enums(&mut one);
            let [FieldLayout { kind, .. }] = one;
            let size = match &kind {
                FieldKind::Str { len }
                | FieldKind::ArgList { len }
                | FieldKind::DnsName { len } => *len,
                FieldKind::IntArray {
                    elem_size, count, ..
                }
                | FieldKind::HistogramSlots { elem_size, count } => *elem_size as usize * count,
                _ => size,
            };
            Ok(Layout {
                type_name: scalar_name.into(),
                size,
                fields: vec![FieldLayout {
                    name: scalar_name.into(),
                    offset: 0,
                    kind,
                }],
            })
        }
        Classified::Nested(_) | Classified::NestedArray { .. } => build(btf, type_id),
    }
}

/// Skips modifiers and typedefs, returning the concrete type and the first
/// semantic typedef name met on the way.
fn resolve(btf: &Btf, type_id: u32) -> Result<(Type, Option<String>)> {
    let mut ty = btf.resolve_type_by_id(type_id).map_err(btf_err)?;
    let mut semantic = None;
    for _ in 0..32 {
        match &ty {
            Type::Typedef(t) => {
                let name = name_of(btf, t);
                if semantic.is_none() && name.starts_with("gadget_") {
                    semantic = Some(name);
                }
                ty = btf.resolve_chained_type(t).map_err(btf_err)?;
            }
            Type::Const(t) | Type::Volatile(t) | Type::Restrict(t) => {
                ty = btf.resolve_chained_type(t).map_err(btf_err)?
            }
            Type::TypeTag(t) => ty = btf.resolve_chained_type(t).map_err(btf_err)?,
            _ => return Ok((ty, semantic)),
        }
    }
    Err(GadgetError::Btf(format!(
        "type {type_id}: typedef chain too long"
    )))
}

fn walk_struct(
    btf: &Btf,
    s: &btf_rs::Struct,
    prefix: &str,
    base_bits: u32,
    out: &mut Vec<FieldLayout>,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(GadgetError::UnsupportedType {
            field: prefix.trim_end_matches('.').into(),
            reason: format!("structs nested deeper than {MAX_DEPTH} levels"),
        });
    }
    for m in &s.members {
        let member_name = name_of(btf, m);
        let name = if member_name.is_empty() {
            prefix.trim_end_matches('.').to_string()
        } else {
            format!("{prefix}{member_name}")
        };
        let bit_offset = base_bits + m.bit_offset();
        let type_id = m
            .get_type_id()
            .ok_or_else(|| btf_err("member without type"))?;
        if let Some(bits) = m.bitfield_size().filter(|&b| b > 0) {
            let (ty, _) = resolve(btf, type_id)?;
            let signed = matches!(&ty, Type::Int(i) if i.is_signed());
            out.push(FieldLayout {
                name,
                offset: (bit_offset / 8) as usize,
                kind: FieldKind::Bits {
                    shift: bit_offset % 8,
                    bits,
                    signed,
                },
            });
            continue;
        }
        if !bit_offset.is_multiple_of(8) {
            return Err(GadgetError::UnsupportedType {
                field: name,
                reason: "member is not byte-aligned".into(),
            });
        }
        let offset = (bit_offset / 8) as usize;
        match classify(btf, type_id, &name)? {
            Classified::Leaf(kind) => out.push(FieldLayout { name, offset, kind }),
            Classified::Nested(inner) => {
                let inner_prefix = if member_name.is_empty() {
                    prefix.to_string()
                } else {
                    format!("{name}.")
                };
                walk_struct(btf, &inner, &inner_prefix, bit_offset, out, depth + 1)?;
            }
            Classified::NestedArray {
                elem,
                count,
                stride,
            } => {
                for i in 0..count {
                    let base = bit_offset + (i * stride * 8) as u32;
                    walk_struct(btf, &elem, &format!("{name}[{i}]."), base, out, depth + 1)?;
                }
            }
        }
    }
    Ok(())
}

enum Classified {
    Leaf(FieldKind),
    Nested(btf_rs::Struct),
    /// An array of structs: `count` elements `stride` bytes apart, each
    /// flattened as `name[i].member`.
    NestedArray {
        elem: btf_rs::Struct,
        count: usize,
        stride: usize,
    },
}

/// More elements than this in an array of structs is an error (each becomes columns).
const MAX_STRUCT_ARRAY: usize = 64;

fn semantic_of(typedef: Option<&str>) -> Semantic {
    match typedef {
        Some("gadget_mntns_id") => Semantic::MntnsId,
        Some("gadget_netns_id") => Semantic::NetnsId,
        Some("gadget_pid") => Semantic::Pid,
        Some("gadget_uid") => Semantic::Uid,
        Some("gadget_gid") => Semantic::Gid,
        Some("gadget_errno") => Semantic::Errno,
        Some("gadget_signal") => Semantic::Signal,
        Some("gadget_syscall") => Semantic::Syscall,
        Some("gadget_ifindex") => Semantic::Ifindex,
        Some("gadget_kernel_stack") => Semantic::KernelStack,
        Some("gadget_file_flags") => Semantic::FileFlags,
        Some("gadget_file_mode") => Semantic::FileMode,
        Some("gadget_bytes") => Semantic::Bytes,
        Some("gadget_duration") => Semantic::Duration,
        _ => Semantic::None,
    }
}

fn unsupported(field: &str, reason: impl Into<String>) -> GadgetError {
    GadgetError::UnsupportedType {
        field: field.into(),
        reason: reason.into(),
    }
}

fn classify(btf: &Btf, type_id: u32, field: &str) -> Result<Classified> {
    let (ty, typedef) = resolve(btf, type_id)?;
    if typedef.as_deref() == Some("gadget_timestamp") {
        return Ok(Classified::Leaf(FieldKind::Timestamp));
    }
    Ok(Classified::Leaf(match ty {
        Type::Int(i) if i.is_bool() => FieldKind::Bool,
        Type::Int(i) if i.size() == 16 => FieldKind::Int128 {
            signed: i.is_signed(),
        },
        Type::Int(i) => {
            let size = i.size();
            if ![1, 2, 4, 8].contains(&size) {
                return Err(unsupported(
                    field,
                    format!("{size}-byte integers are not supported"),
                ));
            }
            FieldKind::Int {
                size: size as u8,
                signed: i.is_signed(),
                semantic: semantic_of(typedef.as_deref()),
            }
        }
        Type::Float(f) if f.size() == 4 || f.size() == 8 => FieldKind::Float {
            size: f.size() as u8,
        },
        Type::Enum(e) => {
            // clang before 15 never sets BTF's signed flag; a 1- or 2-byte
            // enum whose values do not fit its width unsigned holds negative ones.
            let signed = e.is_signed()
                || (e.size() < 4
                    && e.members
                        .iter()
                        .any(|m| m.val() as u64 >= 1u64 << (8 * e.size())));
            FieldKind::Enum {
                size: e.size() as u8,
                signed,
                type_name: name_of(btf, &e),
                names: e
                    .members
                    .iter()
                    .map(|m| {
                        let v = if signed {
                            m.val() as i32 as i64
                        } else {
                            m.val() as i64
                        };
                        (v, name_of(btf, m))
                    })
                    .collect(),
            }
        }
        Type::Enum64(e) => FieldKind::Enum {
            size: e.size() as u8,
            signed: e.is_signed(),
            type_name: name_of(btf, &e),
            names: e
                .members
                .iter()
                .map(|m| (m.val() as i64, name_of(btf, m)))
                .collect(),
        },
        Type::Ptr(_) => FieldKind::Pointer,
        Type::Array(a) => {
            let elem_id = a
                .get_type_id()
                .ok_or_else(|| btf_err("array without element type"))?;
            let (elem, elem_typedef) = resolve(btf, elem_id)?;
            let count = a.len();
            match elem {
                Type::Int(i)
                    if i.size() == 1 && elem_typedef.as_deref() == Some("gadget_arglist") =>
                {
                    FieldKind::ArgList { len: count }
                }
                Type::Int(i)
                    if i.size() == 1 && elem_typedef.as_deref() == Some("gadget_dnsname") =>
                {
                    FieldKind::DnsName { len: count }
                }
                // `char`, `signed char`, `unsigned char`, `__u8`, `__s8` and
                // typedefs of them (`gadget_comm`): clang encodes `char` as a
                // signed 1-byte INT without the CHAR bit, so any 1-byte
                // integer array is text.
                Type::Int(i) if i.size() == 1 && !i.is_bool() => FieldKind::Str { len: count },
                Type::Int(i)
                    if [4, 8].contains(&i.size())
                        && elem_typedef
                            .as_deref()
                            .is_some_and(|t| t.starts_with("gadget_histogram_slot__")) =>
                {
                    FieldKind::HistogramSlots {
                        elem_size: i.size() as u8,
                        count,
                    }
                }
                Type::Int(i) if [1, 2, 4, 8].contains(&i.size()) => FieldKind::IntArray {
                    elem_size: i.size() as u8,
                    signed: i.is_signed(),
                    count,
                },
                Type::Struct(elem) if count <= MAX_STRUCT_ARRAY => {
                    let stride = elem.size();
                    return Ok(Classified::NestedArray {
                        elem,
                        count,
                        stride,
                    });
                }
                Type::Struct(_) => {
                    return Err(unsupported(
                        field,
                        format!(
                            "an array of {count} structs: at most {MAX_STRUCT_ARRAY} (each element's members become fields)"
                        ),
                    ));
                }
                other => {
                    return Err(unsupported(
                        field,
                        format!(
                            "arrays of {} are not supported (only arrays of integers, chars and structs)",
                            other.name()
                        ),
                    ));
                }
            }
        }
        Type::Struct(s) => match name_of(btf, &s).as_str() {
            ty @ "gadget_l3endpoint_t" => {
                FieldKind::L3Endpoint(endpoint::layout(btf, &s, ty, field, false)?)
            }
            ty @ "gadget_l4endpoint_t" => {
                FieldKind::L4Endpoint(endpoint::layout(btf, &s, ty, field, true)?)
            }
            _ => return Ok(Classified::Nested(s)),
        },
        // Which member of a union is live is unknown, so every member is
        // decoded from the same bytes, as bpftool's BTF dump shows them:
        // `u.a`, `u.b` (an anonymous union's members join the enclosing
        // struct's, as C reads them).
        Type::Union(u) => return Ok(Classified::Nested(u)),
        other => {
            return Err(unsupported(
                field,
                format!("BTF kind `{}` is not supported in events", other.name()),
            ));
        }
    }))
}
