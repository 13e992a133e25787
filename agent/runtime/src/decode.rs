//! The hot path: raw event bytes to one JSON line, without allocating.
//!
//! A [`Decoder`] is compiled once from a [`Layout`]: every field gets its
//! pre-rendered `"name":` key, so decoding is a loop of fixed-offset reads and
//! appends into the caller's buffer.

use std::io::Write as _;

use std::sync::Arc;

use gadgetd_dbus::terminal::unsafe_in_utf8;

use super::enrich::{self, Enricher, NsKind};
use super::formats;
use super::layout::{FieldKind, Layout, Semantic};
use super::names;
use super::walltime;

/// One field, with everything that does not depend on the event worked out
/// when the decoder is built (what the generic steps need).
struct CompiledField {
    /// How the value prints.
    kind: FieldKind,
    /// Byte offset in the event.
    offset: usize,
    /// The kind `X_name`-style companions format, and its enum style.
    companion: Option<(FieldKind, EnumStyle)>,
    /// For enums: how a value prints (decided from the type, once).
    enum_style: EnumStyle,
    /// For endpoints: the keys of the fields the enricher adds after them.
    endpoint: Option<enrich::EndpointKeys>,
}

/// One value of the line: the constant text before it and how it is written.
/// A decoder is a list of these, run in order per event, so the common kinds
/// (integers, `char[N]`, timestamps, names) cost one match and no lookups.
struct Step {
    /// `,"name":` (`{"name":` first), with the opening quote when `op`
    /// writes a string's body.
    key: Key,
    op: Op,
}

/// Where an integer is and how wide: for ops that format one.
#[derive(Debug, Clone, Copy)]
struct IntAt {
    offset: usize,
    size: u8,
    signed: bool,
}

impl IntAt {
    #[inline(always)]
    fn read(self, data: &[u8]) -> i64 {
        match read_int(&data[self.offset..], self.size, self.signed) {
            IntValue::Signed(v) => v,
            IntValue::Unsigned(v) => v as i64,
        }
    }
}

/// How a [`Step`]'s value is written. Offsets are into the event.
#[derive(Debug, Clone, Copy)]
enum Op {
    U8(usize),
    U16(usize),
    U32(usize),
    U64(usize),
    I8(usize),
    I16(usize),
    I32(usize),
    I64(usize),
    /// A `char[len]`: the string's body and closing quote.
    CStr {
        offset: usize,
        len: usize,
    },
    /// Boot-time nanoseconds as RFC 3339: the body and closing quote.
    Timestamp(usize),
    /// An errno's name: the body and closing quote.
    Errno(IntAt),
    /// open(2) flags (`O_RDONLY|O_CLOEXEC`): the body and closing quote.
    FileFlags(IntAt),
    /// A file mode (`-rw-r--r--`): the body and closing quote.
    FileMode(IntAt),
    /// A uid's user name, as a JSON string.
    User(IntAt),
    /// A gid's group name, as a JSON string.
    Group(IntAt),
    /// Field N's value, as [`Decoder::write_value`] writes its kind.
    Value(usize),
    /// Field N's companion (`X_name`, `X_str`, ...), any other kind.
    Companion(usize),
    /// The container fields after field N (they bring their own keys).
    Enrich(usize, NsKind),
    /// The endpoint fields after field N, when an enricher is set.
    Endpoint(usize),
}

impl Op {
    /// The op that writes `kind` at `offset` (field `index`), and whether
    /// it writes a string's body (its key then ends with the opening quote).
    fn value(kind: &FieldKind, offset: usize, index: usize) -> (Op, bool) {
        match *kind {
            FieldKind::Int { size, signed, .. } => (Op::int(size, signed, offset), false),
            FieldKind::Str { len } => (Op::CStr { offset, len }, true),
            FieldKind::Timestamp => (Op::Timestamp(offset), true),
            _ => (Op::Value(index), false),
        }
    }

    fn int(size: u8, signed: bool, at: usize) -> Op {
        match (size, signed) {
            (1, false) => Op::U8(at),
            (2, false) => Op::U16(at),
            (4, false) => Op::U32(at),
            (1, true) => Op::I8(at),
            (2, true) => Op::I16(at),
            (4, true) => Op::I32(at),
            (_, false) => Op::U64(at),
            (_, true) => Op::I64(at),
        }
    }

    /// The op that writes the companion of field `index` formatted as `kind`.
    fn companion(kind: &FieldKind, offset: usize, index: usize) -> (Op, bool) {
        let FieldKind::Int {
            size,
            signed,
            semantic,
        } = *kind
        else {
            return match kind {
                FieldKind::Timestamp => (Op::Timestamp(offset), true),
                _ => (Op::Companion(index), false),
            };
        };
        let at = IntAt {
            offset,
            size,
            signed,
        };
        match semantic {
            Semantic::Errno => (Op::Errno(at), true),
            Semantic::FileFlags => (Op::FileFlags(at), true),
            Semantic::FileMode => (Op::FileMode(at), true),
            Semantic::Uid => (Op::User(at), false),
            Semantic::Gid => (Op::Group(at), false),
            _ => (Op::Companion(index), false),
        }
    }
}

/// How an enum's value prints beside its enumerators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EnumStyle {
    /// The enumerator's name, else the number.
    Plain,
    /// Every enumerator is one bit: a value with no name of its own prints
    /// as the names of its bits (`A|B`, and `|0x..` for unnamed bits).
    Flags,
    /// A type named `*_set` (Inspektor Gadget's convention): always the
    /// members it contains.
    Set,
}

impl EnumStyle {
    fn of(kind: &FieldKind) -> EnumStyle {
        let FieldKind::Enum {
            names, type_name, ..
        } = kind
        else {
            return EnumStyle::Plain;
        };
        if type_name.ends_with("_set") {
            EnumStyle::Set
        } else if names.len() > 1 && names.iter().all(|(k, _)| *k > 0 && (*k & (*k - 1)) == 0) {
            EnumStyle::Flags
        } else {
            EnumStyle::Plain
        }
    }
}

/// A pre-rendered key, copied per event as two fixed 16-byte moves (no call
/// to `memcpy`, whose dispatch costs more than the copy for a few bytes).
enum Key {
    /// Up to 32 bytes, zero-padded to 32.
    Short {
        bytes: [u8; 32],
        len: usize,
    },
    Long(Vec<u8>),
}

impl Key {
    fn new(key: Vec<u8>) -> Key {
        if key.len() <= 32 {
            let mut bytes = [0u8; 32];
            bytes[..key.len()].copy_from_slice(&key);
            Key::Short {
                bytes,
                len: key.len(),
            }
        } else {
            Key::Long(key)
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Short { bytes, len } => &bytes[..*len],
            Key::Long(v) => v,
        }
    }

    /// Appends the key, leaving at least [`INT_MAX_LEN`] bytes of spare
    /// capacity after it, so an integer value needs no check of its own.
    #[inline(always)]
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Key::Short { bytes, len } => {
                out.reserve(32 + INT_MAX_LEN);
                let at = out.len();
                // SAFETY: 32 bytes past `at` are reserved; all 32 are
                // written (initialised), and only `len` ≤ 32 of them
                // counted; the rest is spare capacity, overwritten later.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().add(at), 32);
                    out.set_len(at + len);
                }
            }
            Key::Long(v) => {
                out.reserve(v.len() + INT_MAX_LEN);
                out.extend_from_slice(v);
            }
        }
    }
}

/// The longest decimal integer: a sign and the 20 digits of `u64::MAX`.
const INT_MAX_LEN: usize = 21;

pub struct Decoder {
    size: usize,
    fields: Vec<CompiledField>,
    /// What each event is written as, in order.
    steps: Vec<Step>,
    clock: walltime::BootClock,
    enricher: Option<Arc<dyn Enricher>>,
    empty_enrichment: Vec<u8>,
    /// For `gadget_kernel_stack` fields.
    stacks: Option<Arc<super::stacks::KernelStacks>>,
    /// How an object of a struct with no fields opens (`{`, or `{` and the tag).
    empty_open: Vec<u8>,
    /// Bytes after the struct, shown as one more field.
    rest: Option<Rest>,
}

/// Inspektor Gadget's trailing data (`datasources.<ds>.annotations`
/// `ebpf.rest.name` and `ebpf.rest.len`): the bytes a tracer appends after its
/// event struct (`bpf_perf_event_output(skb, …, len << 32 | …)` puts packet
/// bytes there) become one more field, written as lowercase hex as IG's JSON
/// writes byte fields. With a length field, at most that many bytes are shown
/// (the rest of the record is padding); without, all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Rest {
    /// `"NAME":` (the separator before it is written per event).
    key: Vec<u8>,
    /// Offset and size in bytes (1, 2, 4 or 8) of the unsigned length field.
    len_field: Option<(usize, u8)>,
}

impl Rest {
    /// `name` is the field's JSON name; `len_field` the offset and size of the
    /// integer field holding the length, if the gadget names one.
    pub fn new(name: &str, len_field: Option<(usize, u8)>) -> Rest {
        let mut key = Vec::with_capacity(name.len() + 3);
        write_json_str(&mut key, name.as_bytes());
        key.push(b':');
        Rest { key, len_field }
    }

    fn write(&self, data: &[u8], size: usize, out: &mut Vec<u8>) {
        let trailing = &data[size.min(data.len())..];
        let n = match self.len_field {
            Some((offset, width)) => match read_int(&data[offset..], width, false) {
                IntValue::Unsigned(v) => (v.min(trailing.len() as u64)) as usize,
                IntValue::Signed(v) => (v.clamp(0, trailing.len() as i64)) as usize,
            },
            None => trailing.len(),
        };
        if out.last() != Some(&b'{') {
            out.push(b',');
        }
        out.extend_from_slice(&self.key);
        out.push(b'"');
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for &b in &trailing[..n] {
            out.extend_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
        out.push(b'"');
    }
}

/// The event is shorter than its type: counted, never decoded from garbage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortEvent {
    pub got: usize,
    pub want: usize,
}

impl Decoder {
    pub fn new(layout: &Layout) -> Decoder {
        let enriched = enrich::enriched_field(layout);
        let mut fields = Vec::with_capacity(layout.fields.len());
        let mut steps = Vec::with_capacity(layout.fields.len() * 2);
        let step = |mut key: Vec<u8>, (op, quoted): (Op, bool)| {
            if quoted {
                key.push(b'"');
            }
            Step {
                key: Key::new(key),
                op,
            }
        };
        for (i, f) in layout.fields.iter().enumerate() {
            let mut key = Vec::with_capacity(f.name.len() + 4);
            key.push(if i == 0 { b'{' } else { b',' });
            write_json_str(&mut key, f.name.as_bytes());
            key.push(b':');
            let kind = f.value_kind();
            steps.push(step(key, Op::value(&kind, f.offset, i)));
            let companion = f.companion().map(|(name, _)| {
                let mut k = vec![b','];
                write_json_str(&mut k, name.as_bytes());
                k.push(b':');
                steps.push(step(k, Op::companion(&f.kind, f.offset, i)));
                (f.kind.clone(), EnumStyle::of(&f.kind))
            });
            if let Some((at, ns)) = enriched
                && at == i
            {
                steps.push(step(Vec::new(), (Op::Enrich(i, ns), false)));
            }
            let endpoint = enrich::is_endpoint(&f.kind).then(|| enrich::EndpointKeys::new(&f.name));
            if endpoint.is_some() {
                steps.push(step(Vec::new(), (Op::Endpoint(i), false)));
            }
            fields.push(CompiledField {
                enum_style: EnumStyle::of(&kind),
                endpoint,
                kind,
                offset: f.offset,
                companion,
            });
        }
        Decoder {
            size: layout.size,
            fields,
            steps,
            clock: walltime::BootClock::now(),
            enricher: None,
            empty_enrichment: enrich::empty_fragment(),
            stacks: None,
            empty_open: b"{".to_vec(),
            rest: None,
        }
    }

    /// Writes the bytes after the struct as one more field (see [`Rest`]).
    pub fn with_rest(mut self, rest: Option<Rest>) -> Decoder {
        self.rest = rest;
        self
    }

    /// Starts every object [`Decoder::write_json`] writes with `tag`
    /// (`"datasource":"NAME"`, for gadgets with several data sources): built
    /// into the first key once, so it costs nothing per event. Not for
    /// decoders whose output [`Decoder::write_more_fields`] continues.
    pub fn with_tag(mut self, tag: &[u8]) -> Decoder {
        match self.steps.first_mut() {
            Some(first) => {
                let key = first.key.as_bytes();
                let mut tagged = Vec::with_capacity(key.len() + tag.len() + 1);
                tagged.push(b'{');
                tagged.extend_from_slice(tag);
                tagged.push(b',');
                tagged.extend_from_slice(&key[1..]);
                first.key = Key::new(tagged);
            }
            None => self.empty_open.extend_from_slice(tag),
        }
        self
    }

    /// Resolves `gadget_kernel_stack` fields through the gadget's stack map.
    pub fn with_stacks(mut self, stacks: Option<Arc<super::stacks::KernelStacks>>) -> Decoder {
        self.stacks = stacks;
        self
    }

    /// Container fields after the namespace field come from `enricher`.
    pub fn with_enricher(mut self, enricher: Option<Arc<dyn Enricher>>) -> Decoder {
        self.enricher = enricher;
        self
    }

    /// Appends the event as one JSON object and a newline to `out`.
    pub fn write_json(&self, data: &[u8], out: &mut Vec<u8>) -> Result<(), ShortEvent> {
        if data.len() < self.size {
            return Err(ShortEvent {
                got: data.len(),
                want: self.size,
            });
        }
        if self.fields.is_empty() {
            out.extend_from_slice(&self.empty_open);
        }
        self.write_fields(data, out);
        if let Some(rest) = &self.rest {
            rest.write(data, self.size, out);
        }
        out.extend_from_slice(b"}\n");
        Ok(())
    }

    fn write_enrichment(&self, ns: NsKind, d: &[u8], out: &mut Vec<u8>) {
        let id = match d.len() {
            8.. => u64::from_ne_bytes(d[..8].try_into().unwrap()),
            4..=7 => u32::from_ne_bytes(d[..4].try_into().unwrap()) as u64,
            _ => 0,
        };
        match (&self.enricher, ns) {
            (Some(e), NsKind::Mnt) => e.mntns(id, out),
            (Some(e), NsKind::Net) => e.netns(id, out),
            (None, _) => out.extend_from_slice(&self.empty_enrichment),
        }
    }

    /// Size of the struct this decoder reads.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Appends the fields as `"a":1,"b":2` (the first key starts with `{`);
    /// `data` must be at least [`Decoder::size`] bytes.
    pub fn write_fields(&self, data: &[u8], out: &mut Vec<u8>) {
        for step in &self.steps {
            step.key.put(out);
            self.write_step(step.op, data, out);
        }
    }

    /// Writes one step's value. Called only right after the step's
    /// `Key::put`, which left [`INT_MAX_LEN`] bytes spare: integers are
    /// written without a capacity check of their own (one `reserve` per
    /// integer field instead of two, ~50 instructions per trace_open event).
    #[inline(always)]
    fn write_step(&self, op: Op, data: &[u8], out: &mut Vec<u8>) {
        // SAFETY (the integer arms): `Key::put` just left INT_MAX_LEN bytes
        // of spare capacity, and an integer takes at most that many.
        match op {
            Op::U8(at) => unsafe { put_u64_spare(out, data[at].into()) },
            Op::U16(at) => unsafe {
                put_u64_spare(out, u16::from_ne_bytes(field(data, at)).into())
            },
            Op::U32(at) => unsafe {
                put_u64_spare(out, u32::from_ne_bytes(field(data, at)).into())
            },
            Op::U64(at) => unsafe { put_u64_spare(out, u64::from_ne_bytes(field(data, at))) },
            Op::I8(at) => unsafe { put_i64_spare(out, (data[at] as i8).into()) },
            Op::I16(at) => unsafe {
                put_i64_spare(out, i16::from_ne_bytes(field(data, at)).into())
            },
            Op::I32(at) => unsafe {
                put_i64_spare(out, i32::from_ne_bytes(field(data, at)).into())
            },
            Op::I64(at) => unsafe { put_i64_spare(out, i64::from_ne_bytes(field(data, at))) },
            Op::CStr { offset, len } => {
                write_kernel_bytes_body(out, &data[offset..offset + len], true);
                out.push(b'"');
            }
            Op::Timestamp(at) => {
                self.clock
                    .write_rfc3339(u64::from_ne_bytes(field(data, at)), out);
                out.push(b'"');
            }
            Op::Errno(at) => {
                write_json_str_body(out, names::errno(at.read(data)).as_bytes());
                out.push(b'"');
            }
            Op::FileFlags(at) => {
                formats::write_file_flags(at.read(data) as u32, out);
                out.push(b'"');
            }
            Op::FileMode(at) => {
                formats::write_file_mode(at.read(data) as u32, out);
                out.push(b'"');
            }
            Op::User(at) => {
                names::user(at.read(data) as u64, |n| write_json_str(out, n.as_bytes()))
            }
            Op::Group(at) => {
                names::group(at.read(data) as u64, |n| write_json_str(out, n.as_bytes()))
            }
            Op::Value(i) => {
                let f = &self.fields[i];
                self.write_value(&f.kind, f.enum_style, &data[f.offset..], out);
            }
            Op::Companion(i) => {
                let f = &self.fields[i];
                let d = &data[f.offset..];
                if let Some((formatted, style)) = &f.companion {
                    match formatted {
                        // `X_raw` timestamps and enums: the formatted value.
                        FieldKind::Timestamp | FieldKind::Enum { .. } => {
                            self.write_value(formatted, *style, d, out)
                        }
                        _ => write_companion(formatted, d, out, self.stacks.as_deref()),
                    }
                }
            }
            Op::Enrich(i, ns) => self.write_enrichment(ns, &data[self.fields[i].offset..], out),
            Op::Endpoint(i) => {
                let f = &self.fields[i];
                if let (Some(keys), Some(e)) = (&f.endpoint, &self.enricher) {
                    let d = &data[f.offset..];
                    match endpoint_ip(&f.kind, d) {
                        Some(ip) => e.endpoint(ip, keys, out),
                        None => keys.write_raw(out),
                    }
                }
            }
        }
    }

    /// Like [`Decoder::write_fields`], but continuing an object: the first key starts with `,`.
    pub fn write_more_fields(&self, data: &[u8], out: &mut Vec<u8>) {
        let at = out.len();
        self.write_fields(data, out);
        if out.len() > at && out[at] == b'{' {
            out[at] = b',';
        }
    }

    fn write_value(&self, kind: &FieldKind, style: EnumStyle, d: &[u8], out: &mut Vec<u8>) {
        match kind {
            FieldKind::Int { size, signed, .. } => write_int(out, read_int(d, *size, *signed)),
            FieldKind::Bool => out.extend_from_slice(if d[0] != 0 { b"true" } else { b"false" }),
            FieldKind::Int128 { signed } => {
                let raw: [u8; 16] = d[..16].try_into().unwrap();
                let mut buf = itoa::Buffer::new();
                out.extend_from_slice(
                    if *signed {
                        buf.format(i128::from_ne_bytes(raw))
                    } else {
                        buf.format(u128::from_ne_bytes(raw))
                    }
                    .as_bytes(),
                );
            }
            // Shortest form that reads back to the same value, in the
            // field's own width: a `float` 0.1f prints `0.1`. NaN and
            // infinities have no JSON number: null.
            FieldKind::Float { size: 4 } => {
                let v = f32::from_ne_bytes(d[..4].try_into().unwrap());
                if v.is_finite() {
                    let _ = write!(out, "{v}");
                } else {
                    out.extend_from_slice(b"null");
                }
            }
            FieldKind::Float { .. } => {
                let v = f64::from_ne_bytes(d[..8].try_into().unwrap());
                if v.is_finite() {
                    let _ = write!(out, "{v}");
                } else {
                    out.extend_from_slice(b"null");
                }
            }
            FieldKind::Bits {
                shift,
                bits,
                signed,
            } => {
                let mut raw = [0u8; 8];
                let n = d.len().min(8);
                raw[..n].copy_from_slice(&d[..n]);
                let word = u64::from_le_bytes(raw) >> shift;
                let mask = if *bits >= 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                let v = word & mask;
                if *signed && *bits < 64 && v >> (bits - 1) & 1 == 1 {
                    write_int(out, IntValue::Signed((v | !mask) as i64));
                } else {
                    write_int(out, IntValue::Unsigned(v));
                }
            }
            FieldKind::Str { len } => write_json_cstr(out, &d[..*len]),
            FieldKind::DnsName { len } => {
                write_json_str(out, names::dns_name(&d[..*len]).as_bytes())
            }
            FieldKind::ArgList { len } => {
                out.push(b'[');
                let args = trim_trailing_nuls(&d[..*len]);
                if !args.is_empty() {
                    for (i, arg) in args.split(|&b| b == 0).enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        write_json_bytes(out, arg);
                    }
                }
                out.push(b']');
            }
            FieldKind::Enum {
                size,
                signed,
                names,
                ..
            } => {
                let raw = read_int(d, *size, *signed);
                let v = match raw {
                    IntValue::Signed(v) => v,
                    IntValue::Unsigned(v) => v as i64,
                };
                if style == EnumStyle::Set {
                    // A bit set (Inspektor Gadget's convention): every member it contains.
                    out.push(b'"');
                    formats::write_bitset(names, v, out);
                    out.push(b'"');
                    return;
                }
                match names.iter().find(|(n, _)| *n == v) {
                    Some((_, name)) => write_json_str(out, name.as_bytes()),
                    None if style == EnumStyle::Flags && v > 0 => write_enum_flags(names, v, out),
                    // A value with no name: the number, with the enum's
                    // signedness (an unsigned 8-byte enum past i64::MAX
                    // stays positive).
                    None => write_int(out, raw),
                }
            }
            FieldKind::HistogramSlots { elem_size, count } => {
                super::profiler::write_slot_histogram(d, *elem_size, *count, out);
            }
            FieldKind::IntArray {
                elem_size,
                signed,
                count,
            } => {
                out.push(b'[');
                for i in 0..*count {
                    if i > 0 {
                        out.push(b',');
                    }
                    let at = i * *elem_size as usize;
                    write_int(out, read_int(&d[at..], *elem_size, *signed));
                }
                out.push(b']');
            }
            FieldKind::Pointer => {
                let _ = write!(
                    out,
                    "\"{:#x}\"",
                    u64::from_ne_bytes(d[..8].try_into().unwrap())
                );
            }
            FieldKind::Timestamp => {
                let boot_ns = u64::from_ne_bytes(d[..8].try_into().unwrap());
                out.push(b'"');
                self.clock.write_rfc3339(boot_ns, out);
                out.push(b'"');
            }
            FieldKind::L3Endpoint(at) => {
                out.push(b'"');
                write_ip(out, &d[at.addr..at.addr + 16], d[at.version]);
                out.push(b'"');
            }
            FieldKind::L4Endpoint(at) => {
                let p = at.port.unwrap_or(0);
                let port = u16::from_ne_bytes([d[p], d[p + 1]]);
                let version = d[at.version];
                let addr = &d[at.addr..at.addr + 16];
                out.push(b'"');
                if version == 6 {
                    out.push(b'[');
                    write_ip(out, addr, version);
                    out.push(b']');
                } else {
                    write_ip(out, addr, version);
                }
                out.push(b':');
                put_u64(out, port.into());
                out.push(b'"');
            }
        }
    }
}

/// A flag enum's value with no name of its own, as the JSON string
/// `A|B` (and `|0x..` for bits no enumerator names), as
/// written in place.
fn write_enum_flags(names: &[(i64, String)], v: i64, out: &mut Vec<u8>) {
    out.push(b'"');
    let start = out.len();
    let mut rest = v;
    for (k, n) in names {
        if rest & k != 0 {
            if out.len() > start {
                out.push(b'|');
            }
            escape_into(out, n);
            rest &= !k;
        }
    }
    if rest != 0 {
        if out.len() > start {
            out.push(b'|');
        }
        let _ = write!(out, "{rest:#x}");
    }
    out.push(b'"');
}

/// The name printed beside a semantic number (`"ret_name":"ENOENT"`).
fn write_companion(
    kind: &FieldKind,
    d: &[u8],
    out: &mut Vec<u8>,
    stacks: Option<&super::stacks::KernelStacks>,
) {
    let FieldKind::Int {
        size,
        signed,
        semantic,
    } = kind
    else {
        return;
    };
    let v = match read_int(d, *size, *signed) {
        IntValue::Signed(v) => v,
        IntValue::Unsigned(v) => v as i64,
    };
    match semantic {
        Semantic::Errno => write_json_str(out, names::errno(v).as_bytes()),
        Semantic::Signal => write_json_str(out, names::signal(v as u64).as_bytes()),
        Semantic::Syscall => write_json_str(out, names::syscall(v as u64).as_bytes()),
        Semantic::Uid => names::user(v as u64, |n| write_json_str(out, n.as_bytes())),
        Semantic::Gid => names::group(v as u64, |n| write_json_str(out, n.as_bytes())),
        Semantic::Ifindex => names::interface(v as u64, |n| write_json_str(out, n.as_bytes())),
        Semantic::FileFlags | Semantic::FileMode | Semantic::Bytes | Semantic::Duration => {
            out.push(b'"');
            match semantic {
                Semantic::FileFlags => formats::write_file_flags(v as u32, out),
                Semantic::FileMode => formats::write_file_mode(v as u32, out),
                Semantic::Bytes => formats::write_bytes(v as u64, out),
                _ => formats::write_duration(v as u64, out),
            }
            out.push(b'"');
        }
        Semantic::KernelStack => match stacks {
            Some(s) => s.write_json(v, out),
            None => out.extend_from_slice(b"[]"),
        },
        _ => out.extend_from_slice(b"null"),
    }
}

enum IntValue {
    Signed(i64),
    Unsigned(u64),
}

#[inline(always)]
fn read_int(d: &[u8], size: u8, signed: bool) -> IntValue {
    let (u, s) = match size {
        1 => (d[0] as u64, d[0] as i8 as i64),
        2 => {
            let v = u16::from_ne_bytes([d[0], d[1]]);
            (v as u64, v as i16 as i64)
        }
        4 => {
            let v = u32::from_ne_bytes(d[..4].try_into().unwrap());
            (v as u64, v as i32 as i64)
        }
        _ => {
            let v = u64::from_ne_bytes(d[..8].try_into().unwrap());
            (v, v as i64)
        }
    };
    if signed {
        IntValue::Signed(s)
    } else {
        IntValue::Unsigned(u)
    }
}

/// The `N` bytes at `at`.
#[inline(always)]
fn field<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    data[at..at + N].try_into().unwrap()
}

/// Appends `v` in decimal, written in place (no buffer to copy from).
/// Inlined into each step: the call itself cost as much as the digits.
#[inline(always)]
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.reserve(20);
    // SAFETY: 20 bytes were just reserved.
    unsafe { put_u64_spare(out, v) }
}

/// [`put_u64`] into capacity the caller reserved.
///
/// # Safety
/// `out` must have at least 20 bytes of spare capacity.
#[inline(always)]
unsafe fn put_u64_spare(out: &mut Vec<u8>, mut v: u64) {
    debug_assert!(out.capacity() - out.len() >= 20);
    let n = decimal_len(v);
    let start = out.len();
    let pairs = walltime::DIGIT_PAIRS.as_ptr();
    // SAFETY: 20 bytes are spare past `start` and a u64 has at most 20
    // digits, so every write below lands in `start..start + n`, and all
    // `n` of them are written before the length grows: the loop fills
    // pairs from the end down to the first 1 or 2 digits, which the last
    // branch writes. `pair + 1 < 200`, inside DIGIT_PAIRS.
    unsafe {
        let to = out.as_mut_ptr().add(start);
        let mut end = n;
        while v >= 100 {
            let pair = (v % 100) as usize * 2;
            v /= 100;
            end -= 2;
            std::ptr::copy_nonoverlapping(pairs.add(pair), to.add(end), 2);
        }
        if v >= 10 {
            std::ptr::copy_nonoverlapping(pairs.add(v as usize * 2), to, 2);
        } else {
            *to = b'0' + v as u8;
        }
        out.set_len(start + n);
    }
}

/// Digits of `v` in decimal (1 for 0): from the bit length, one lookup
/// (`ilog10` costs ten times as much on the hot path).
#[inline(always)]
fn decimal_len(v: u64) -> usize {
    const POW10: [u64; 20] = {
        let mut p = [1u64; 20];
        let mut i = 1;
        while i < 20 {
            p[i] = p[i - 1] * 10;
            i += 1;
        }
        p
    };
    // floor(log10(2^bits)) for bits 1..=64 is (bits * 1233) >> 12; that is
    // the number of digits or one less. `v | 1` makes 0 count one digit and
    // never crosses a power of ten (they are even, but 1).
    let bits = 64 - (v | 1).leading_zeros();
    let t = ((bits * 1233) >> 12) as usize;
    t + 1 - usize::from((v | 1) < POW10[t])
}

/// Appends `v` in decimal, with its sign.
#[inline(always)]
fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.reserve(INT_MAX_LEN);
    // SAFETY: INT_MAX_LEN bytes were just reserved.
    unsafe { put_i64_spare(out, v) }
}

/// [`put_i64`] into capacity the caller reserved.
///
/// # Safety
/// `out` must have at least [`INT_MAX_LEN`] bytes of spare capacity.
#[inline(always)]
unsafe fn put_i64_spare(out: &mut Vec<u8>, v: i64) {
    debug_assert!(out.capacity() - out.len() >= INT_MAX_LEN);
    if v < 0 {
        // SAFETY: the sign takes one of the INT_MAX_LEN spare bytes, and
        // leaves the 20 the digits need.
        unsafe {
            *out.as_mut_ptr().add(out.len()) = b'-';
            out.set_len(out.len() + 1);
        }
    }
    // SAFETY: see above.
    unsafe { put_u64_spare(out, v.unsigned_abs()) }
}

#[inline]
fn write_int(out: &mut Vec<u8>, v: IntValue) {
    match v {
        IntValue::Signed(v) => put_i64(out, v),
        IntValue::Unsigned(v) => put_u64(out, v),
    }
}

fn trim_trailing_nuls(d: &[u8]) -> &[u8] {
    let end = d.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    &d[..end]
}

/// The address of an endpoint field (`None`: not an endpoint, or a version
/// byte that is neither 4 nor 6).
fn endpoint_ip(kind: &FieldKind, d: &[u8]) -> Option<std::net::IpAddr> {
    let (FieldKind::L3Endpoint(at) | FieldKind::L4Endpoint(at)) = kind else {
        return None;
    };
    let addr = &d[at.addr..at.addr + 16];
    match d[at.version] {
        4 => Some(std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).into()),
        6 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(addr).ok()?).into()),
        _ => None,
    }
}

fn write_ip(out: &mut Vec<u8>, addr: &[u8], version: u8) {
    if version == 6 {
        let a: [u8; 16] = addr[..16].try_into().unwrap();
        let _ = write!(out, "{}", std::net::Ipv6Addr::from(a));
    } else {
        let _ = write!(
            out,
            "{}",
            std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])
        );
    }
}

/// Appends bytes from the kernel (a `char[N]` field) as a JSON string,
/// losslessly and without allocating: valid UTF-8 as it is, each byte that
/// is not valid UTF-8 as the four characters `\xNN` (lowercase hex), and a
/// backslash as `\\`, so the original bytes can always be recovered.
///
/// One pass: runs of bytes that need nothing are copied at once; only
/// quotes, backslashes, control characters and non-ASCII bytes stop it.
pub fn write_json_bytes(out: &mut Vec<u8>, s: &[u8]) {
    write_kernel_bytes(out, s, false);
}

/// [`write_json_bytes`] of a `char[N]` field: the bytes up to the first NUL,
/// or all N (found in the same pass).
pub fn write_json_cstr(out: &mut Vec<u8>, s: &[u8]) {
    write_kernel_bytes(out, s, true);
}

fn write_kernel_bytes(out: &mut Vec<u8>, s: &[u8], stop_at_nul: bool) {
    out.push(b'"');
    write_kernel_bytes_body(out, s, stop_at_nul);
    out.push(b'"');
}

/// [`write_kernel_bytes`] without the quotes.
fn write_kernel_bytes_body(out: &mut Vec<u8>, s: &[u8], stop_at_nul: bool) {
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        i += plain_prefix(&s[i..]);
        let Some(&b) = s.get(i) else { break };
        put_run(out, s, start, i);
        if b == 0 && stop_at_nul {
            start = i;
            break;
        } else if b < 0x80 {
            escape_ascii(out, b, br"\\\\"); // a backslash in the value: two, so four in JSON
            i += 1;
        } else {
            let n = utf8_len(&s[i..]);
            if n > 0 {
                push_unsafe_escaped(out, &s[i..i + n]);
                i += n;
            } else {
                // `\xNN` in the value: the backslash escaped in JSON.
                out.extend_from_slice(br"\\x");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
                i += 1;
            }
        }
        start = i;
    }
    if start < i {
        put_run(out, s, start, i);
    }
}

/// Appends `s[start..end]` (at most 64 bytes) in 16-byte moves when `s` has
/// the bytes to read past `end`, as a `char[N]` field's body usually does;
/// else as one copy. Saves the call into `memcpy`, which costs more than
/// the copy for names this short.
#[inline(always)]
fn put_run(out: &mut Vec<u8>, s: &[u8], start: usize, end: usize) {
    let n = end - start;
    let blocks = n.div_ceil(16);
    if n > 64 || start + blocks * 16 > s.len() {
        out.extend_from_slice(&s[start..end]);
        return;
    }
    out.reserve(blocks * 16);
    let len = out.len();
    // SAFETY: `start + blocks * 16 <= s.len()` (checked above), so every
    // read is inside `s`; `blocks * 16` bytes are reserved past `len`, so
    // every write is inside the allocation; only the `n` bytes copied from
    // `s[start..end]` are counted in the new length.
    unsafe {
        let from = s.as_ptr().add(start);
        let to = out.as_mut_ptr().add(len);
        for b in 0..blocks {
            std::ptr::copy_nonoverlapping(from.add(b * 16), to.add(b * 16), 16);
        }
        out.set_len(len + n);
    }
}

/// Bytes at the start of `s` that go into a JSON string as they are
/// (printable ASCII but `"` and `\\`), eight at a time.
#[inline]
fn plain_prefix(s: &[u8]) -> usize {
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let special = special_bytes(u64::from_le_bytes(chunk.try_into().unwrap()));
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    // The last 0-7 bytes, padded with a plain byte.
    let rest = &s[i..];
    let special = special_bytes(tail_word(rest));
    i + ((special.trailing_zeros() / 8) as usize).min(rest.len())
}

/// `rest` (0-7 bytes) as a little-endian word, the bytes past it a plain
/// `a`. Loaded in registers with two overlapping reads: copied into a
/// padded stack buffer and read back as one word instead, the narrow
/// stores stalled the wide load (store forwarding fails), ~40% of
/// `write_json_str`'s time under a flood.
#[inline(always)]
fn tail_word(rest: &[u8]) -> u64 {
    const PAD: u64 = u64::from_ne_bytes([b'a'; 8]);
    let n = rest.len();
    let word = match n {
        0 => return PAD,
        1 => u64::from(rest[0]),
        // The two reads overlap on equal bytes, so OR-ing them is exact.
        2..=3 => {
            let lo = u16::from_le_bytes([rest[0], rest[1]]);
            let hi = u16::from_le_bytes([rest[n - 2], rest[n - 1]]);
            u64::from(lo) | u64::from(hi) << (8 * (n - 2))
        }
        _ => {
            let lo = u32::from_le_bytes(rest[..4].try_into().unwrap());
            let hi = u32::from_le_bytes(rest[n - 4..n].try_into().unwrap());
            u64::from(lo) | u64::from(hi) << (8 * (n - 4))
        }
    };
    word | (PAD & !((1u64 << (8 * n)) - 1))
}

/// The high bit of each byte of `x` (little-endian) that is not plain (below
/// 0x20, DEL, non-ASCII, a quote, a backslash). Exact for the lowest flagged byte,
/// which is all callers use: the subtractions borrow only out of a byte that
/// is flagged itself, so a false flag can only sit above a true one.
#[inline(always)]
fn special_bytes(x: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte of `x` is zero: the classic (x - 0x01..) & !x & 0x80.. test.
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    (x.wrapping_sub(ONES * 0x20) & !x & HIGH)
        | (x & HIGH)
        | has_zero(x ^ (ONES * u64::from(b'"')))
        | has_zero(x ^ (ONES * u64::from(b'\\')))
        | has_zero(x ^ (ONES * 0x7f))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes of the valid UTF-8 character that `s` starts with (a non-ASCII
/// lead byte), or 0 when it does not start with one.
fn utf8_len(s: &[u8]) -> usize {
    let n = match s[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return 0,
    };
    match s.get(..n) {
        Some(c) if std::str::from_utf8(c).is_ok() => n,
        _ => 0,
    }
}

/// Appends the JSON escape of an ASCII byte that needs one (`backslash`: what
/// a backslash becomes).
fn escape_ascii(out: &mut Vec<u8>, b: u8, backslash: &[u8]) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(backslash),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\t' => out.extend_from_slice(b"\\t"),
        b'\r' => out.extend_from_slice(b"\\r"),
        _ => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
        }
    }
}

/// Appends `s` as a JSON string. Invalid UTF-8 becomes U+FFFD so the line
/// stays valid JSON whatever the kernel handed us.
pub fn write_json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    write_json_str_body(out, s);
    out.push(b'"');
}

/// [`write_json_str`] without the quotes.
#[inline(always)]
fn write_json_str_body(out: &mut Vec<u8>, s: &[u8]) {
    if plain_prefix(s) == s.len() {
        out.extend_from_slice(s);
    } else {
        write_json_str_escaped(out, s);
    }
}

/// The body of a JSON string that needs escapes (kept out of line: names
/// and table entries rarely do).
#[cold]
#[inline(never)]
fn write_json_str_escaped(out: &mut Vec<u8>, s: &[u8]) {
    match std::str::from_utf8(s) {
        Ok(text) => escape_into(out, text),
        Err(_) => escape_into(out, &String::from_utf8_lossy(s)),
    }
}

/// Appends `text` as the body of a JSON string: quotes, backslashes, C0
/// controls and DEL escaped, and the characters a terminal acts on
/// ([`push_unsafe_escaped`]).
fn escape_into(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b >= 0x80 {
            // `text` is valid UTF-8: a whole character starts here.
            let n = utf8_len(&bytes[i..]);
            if unsafe_in_utf8(&bytes[i..i + n]).is_some() {
                out.extend_from_slice(&bytes[start..i]);
                push_unsafe_escaped(out, &bytes[i..i + n]);
                start = i + n;
            }
            i += n;
            continue;
        }
        i += 1;
        if b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f {
            continue;
        }
        out.extend_from_slice(&bytes[start..i - 1]);
        escape_ascii(out, b, b"\\\\");
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends one valid UTF-8 character `c` (2 to 4 bytes) to a JSON string:
/// as it is, or as a `\uHHHH` escape when a terminal would act on it
/// instead of showing it ([`unsafe_in_utf8`]). The JSON value is the same
/// either way; the line is safe to print raw on a terminal.
#[inline(always)]
fn push_unsafe_escaped(out: &mut Vec<u8>, c: &[u8]) {
    match unsafe_in_utf8(c) {
        None => out.extend_from_slice(c),
        Some(code) => {
            out.extend_from_slice(b"\\u");
            for shift in [12, 8, 4, 0] {
                out.push(HEX[usize::from((code >> shift) & 15)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::FieldLayout;

    fn field(name: &str, offset: usize, kind: FieldKind) -> FieldLayout {
        FieldLayout {
            name: name.into(),
            offset,
            kind,
        }
    }

    #[test]
    fn names_follow_the_value_and_keys_of_every_length_print_whole() {
        let long = "a_field_name_of_more_than_thirty_two_bytes_uid";
        let uid = |name: &str, offset| {
            field(
                name,
                offset,
                FieldKind::Int {
                    size: 4,
                    signed: false,
                    semantic: Semantic::Uid,
                },
            )
        };
        let layout = Layout {
            type_name: "event".into(),
            size: 12,
            fields: vec![
                uid("uid", 0),
                uid(long, 4),
                field(
                    "gid",
                    8,
                    FieldKind::Int {
                        size: 4,
                        signed: false,
                        semantic: Semantic::Gid,
                    },
                ),
            ],
        };
        let d = Decoder::new(&layout);
        let name = |uid: u32| names::user(uid.into(), |n| n.to_string());
        let group = |gid: u32| names::group(gid.into(), |n| n.to_string());
        // The same value twice (the thread's last name), others between, and back.
        for (a, b, g) in [
            (0u32, 0u32, 0u32),
            (0, 0, 0),
            (65534, 0, 1),
            (0, 65534, 0),
            (12345, 12345, 65534),
            (0, 0, 0),
        ] {
            let mut ev = Vec::new();
            for v in [a, b, g] {
                ev.extend_from_slice(&v.to_ne_bytes());
            }
            let mut out = Vec::new();
            d.write_json(&ev, &mut out).unwrap();
            let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let want = serde_json::json!({
                "uid": a, "uid_name": name(a),
                long: b, format!("{long}_name"): name(b),
                "gid": g, "gid_name": group(g),
            });
            assert_eq!(line, want, "{a} {b} {g}");
        }
    }

    /// Integer values are written into the capacity their key reserved:
    /// every width and sign at its extremes, after short and long keys,
    /// into buffers whose spare capacity starts at every size from 0.
    #[test]
    fn integers_at_their_extremes_after_keys_of_every_length() {
        let long = "an_integer_field_whose_name_is_longer_than_thirty_two_bytes";
        let widths: [(u8, bool); 8] = [
            (1, false),
            (2, false),
            (4, false),
            (8, false),
            (1, true),
            (2, true),
            (4, true),
            (8, true),
        ];
        let mut fields = Vec::new();
        let mut offset = 0;
        for (i, (size, signed)) in widths.iter().enumerate() {
            for name in [format!("i{i}"), format!("{long}{i}")] {
                let kind = FieldKind::Int {
                    size: *size,
                    signed: *signed,
                    semantic: Semantic::None,
                };
                fields.push(field(&name, offset, kind));
                offset += *size as usize;
            }
        }
        let layout = Layout {
            type_name: "event".into(),
            size: offset,
            fields,
        };
        let d = Decoder::new(&layout);
        // Each width's minimum, maximum, -1 and 0 (unsigned: 0, max, 1, 10^k).
        for pick in 0..4 {
            let mut ev = Vec::new();
            let mut want = serde_json::Map::new();
            for (i, (size, signed)) in widths.iter().enumerate() {
                let bits = u32::from(*size) * 8;
                let (raw, text): (u64, String) = match (signed, pick) {
                    (false, 0) => (0, "0".into()),
                    (false, 1) => (
                        u64::MAX >> (64 - bits),
                        (u64::MAX >> (64 - bits)).to_string(),
                    ),
                    (false, 2) => (1, "1".into()),
                    (false, _) => (
                        100u64.min(u64::MAX >> (64 - bits)),
                        100u64.min(u64::MAX >> (64 - bits)).to_string(),
                    ),
                    (true, 0) => (1u64 << (bits - 1), (-(1i128 << (bits - 1))).to_string()),
                    (true, 1) => (
                        (1u64 << (bits - 1)) - 1,
                        ((1i128 << (bits - 1)) - 1).to_string(),
                    ),
                    (true, 2) => (u64::MAX >> (64 - bits), "-1".into()),
                    (true, _) => (0, "0".into()),
                };
                for name in [format!("i{i}"), format!("{long}{i}")] {
                    match size {
                        1 => ev.extend_from_slice(&(raw as u8).to_ne_bytes()),
                        2 => ev.extend_from_slice(&(raw as u16).to_ne_bytes()),
                        4 => ev.extend_from_slice(&(raw as u32).to_ne_bytes()),
                        _ => ev.extend_from_slice(&raw.to_ne_bytes()),
                    }
                    want.insert(name, serde_json::from_str(&text).unwrap());
                }
            }
            let want = serde_json::Value::Object(want);
            for spare in 0..64 {
                let mut out = Vec::with_capacity(3 + spare);
                out.extend_from_slice(b"[\n");
                d.write_json(&ev, &mut out).unwrap();
                let line: serde_json::Value = serde_json::from_slice(&out[2..]).unwrap();
                assert_eq!(line, want, "pick {pick}, {spare} bytes spare");
            }
        }
    }

    #[test]
    fn decodes_every_kind_to_valid_json() {
        let layout = Layout {
            type_name: "event".into(),
            size: 64,
            fields: vec![
                field(
                    "pid",
                    0,
                    FieldKind::Int {
                        size: 4,
                        signed: false,
                        semantic: Semantic::Pid,
                    },
                ),
                field(
                    "ret",
                    4,
                    FieldKind::Int {
                        size: 4,
                        signed: true,
                        semantic: Semantic::None,
                    },
                ),
                field("comm", 8, FieldKind::Str { len: 8 }),
                field(
                    "kind",
                    16,
                    FieldKind::Enum {
                        size: 4,
                        signed: false,
                        names: vec![(1, "OPEN".into()), (2, "EXEC".into())],
                        type_name: "ev_kind".into(),
                    },
                ),
                field("args", 20, FieldKind::ArgList { len: 12 }),
                field(
                    "arr",
                    32,
                    FieldKind::IntArray {
                        elem_size: 2,
                        signed: false,
                        count: 3,
                    },
                ),
                field("ok", 38, FieldKind::Bool),
                field(
                    "bits",
                    39,
                    FieldKind::Bits {
                        shift: 2,
                        bits: 3,
                        signed: false,
                    },
                ),
                field(
                    "l4",
                    40,
                    FieldKind::L4Endpoint(crate::endpoint::EndpointLayout {
                        addr: 0,
                        version: 20,
                        port: Some(16),
                    }),
                ),
            ],
        };
        let mut ev = vec![0u8; 64];
        ev[0..4].copy_from_slice(&42u32.to_ne_bytes());
        ev[4..8].copy_from_slice(&(-2i32).to_ne_bytes());
        ev[8..14].copy_from_slice(b"a\"b\\c\n");
        ev[16..20].copy_from_slice(&2u32.to_ne_bytes());
        ev[20..29].copy_from_slice(b"ls\0-l\0/x\0");
        ev[32..38].copy_from_slice(&[1, 0, 2, 0, 3, 0]);
        ev[38] = 1;
        ev[39] = 0b0001_0100; // bits 2..5 = 0b101
        ev[40..44].copy_from_slice(&[10, 0, 0, 1]);
        ev[56..58].copy_from_slice(&8080u16.to_ne_bytes());
        ev[60] = 4;
        let mut out = Vec::new();
        Decoder::new(&layout).write_json(&ev, &mut out).unwrap();
        let line = std::str::from_utf8(&out).unwrap();
        assert!(line.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"pid":42,"ret":-2,"comm":"a\"b\\\\c\n","kind":"EXEC","args":["ls","-l","/x"],
                "arr":[1,2,3],"ok":true,"bits":5,"l4":"10.0.0.1:8080"})
        );
    }

    struct OneContainer;

    impl crate::enrich::Enricher for OneContainer {
        fn mntns(&self, id: u64, out: &mut Vec<u8>) {
            if id == 7 {
                out.extend_from_slice(br#","runtime.containerName":"web""#);
            } else {
                out.extend_from_slice(br#","runtime.containerName":"""#);
            }
        }
        fn netns(&self, _: u64, _: &mut Vec<u8>) {
            unreachable!("a mount namespace field comes first");
        }
    }

    #[test]
    fn container_fields_follow_the_namespace_field() {
        let layout = Layout {
            type_name: "e".into(),
            size: 16,
            fields: vec![
                field(
                    "netns",
                    0,
                    FieldKind::Int {
                        size: 4,
                        signed: false,
                        semantic: Semantic::NetnsId,
                    },
                ),
                field(
                    "mntns_id",
                    4,
                    FieldKind::Int {
                        size: 8,
                        signed: false,
                        semantic: Semantic::MntnsId,
                    },
                ),
                field(
                    "pid",
                    12,
                    FieldKind::Int {
                        size: 4,
                        signed: false,
                        semantic: Semantic::Pid,
                    },
                ),
            ],
        };
        let mut ev = vec![0u8; 16];
        ev[4..12].copy_from_slice(&7u64.to_ne_bytes());
        ev[12..16].copy_from_slice(&9u32.to_ne_bytes());
        let mut out = Vec::new();
        let d = Decoder::new(&layout).with_enricher(Some(std::sync::Arc::new(OneContainer)));
        d.write_json(&ev, &mut out).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "{\"netns\":0,\"mntns_id\":7,\"runtime.containerName\":\"web\",\"pid\":9}\n"
        );
        // Without an enricher every key is still there, empty.
        out.clear();
        Decoder::new(&layout).write_json(&ev, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        for (key, _) in crate::enrich::FIELDS {
            assert_eq!(v[key], "", "{key}");
        }
        assert_eq!(v["pid"], 9);
    }

    /// Knows one address: 10.0.0.7 is container `web`.
    struct OneAddress;

    impl crate::enrich::Enricher for OneAddress {
        fn mntns(&self, _: u64, _: &mut Vec<u8>) {}
        fn netns(&self, _: u64, _: &mut Vec<u8>) {}
        fn endpoint(
            &self,
            ip: std::net::IpAddr,
            keys: &crate::enrich::EndpointKeys,
            out: &mut Vec<u8>,
        ) {
            if ip == std::net::Ipv4Addr::new(10, 0, 0, 7) {
                let v = [
                    r#""container""#,
                    r#""""#,
                    r#""""#,
                    r#""web""#,
                    r#""abc""#,
                    r#""docker""#,
                ];
                keys.write(&v, out);
            } else {
                keys.write_raw(out);
            }
        }
    }

    #[test]
    fn endpoint_fields_follow_each_endpoint_with_an_enricher() {
        let at = crate::endpoint::EndpointLayout {
            addr: 0,
            version: 16,
            port: Some(18),
        };
        let layout = Layout {
            type_name: "e".into(),
            size: 40,
            fields: vec![
                field("src", 0, FieldKind::L4Endpoint(at)),
                field("dst", 20, FieldKind::L4Endpoint(at)),
            ],
        };
        let mut ev = vec![0u8; 40];
        ev[..4].copy_from_slice(&[10, 0, 0, 7]);
        ev[16] = 4;
        ev[18..20].copy_from_slice(&53u16.to_ne_bytes());
        ev[20..24].copy_from_slice(&[192, 0, 2, 1]);
        ev[36] = 4;
        let mut out = Vec::new();
        let d = Decoder::new(&layout).with_enricher(Some(std::sync::Arc::new(OneAddress)));
        d.write_json(&ev, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"src":"10.0.0.7:53","src.kind":"container","src.k8s.namespace":"","src.k8s.name":"",
                "src.runtime.containerName":"web","src.runtime.containerId":"abc","src.runtime.name":"docker",
                "dst":"192.0.2.1:0","dst.kind":"raw","dst.k8s.namespace":"","dst.k8s.name":"",
                "dst.runtime.containerName":"","dst.runtime.containerId":"","dst.runtime.name":""})
        );
        // A version byte that is neither 4 nor 6: not an address, `raw`.
        ev[16] = 9;
        out.clear();
        d.write_json(&ev, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["src.kind"], "raw");
        // Without an enricher (gadget tests in-process): the endpoints alone.
        out.clear();
        Decoder::new(&layout).write_json(&ev, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    }

    #[test]
    fn short_events_and_bad_utf8_do_not_break_the_stream() {
        let layout = Layout {
            type_name: "e".into(),
            size: 4,
            fields: vec![field("s", 0, FieldKind::Str { len: 4 })],
        };
        let d = Decoder::new(&layout);
        let mut out = Vec::new();
        assert_eq!(
            d.write_json(&[1, 2], &mut out),
            Err(ShortEvent { got: 2, want: 4 })
        );
        assert!(out.is_empty());
        d.write_json(&[0xff, 0xfe, b'x', 0], &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["s"], r"\xff\xfex");
        // No NUL: all four bytes; a backslash doubles, so bytes stay recoverable.
        out.clear();
        d.write_json(&[b'a', b'\\', 0xc3, b'b'], &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["s"], r"a\\\xc3b");
    }

    fn until_nul(d: &[u8]) -> &[u8] {
        d.iter().position(|&b| b == 0).map_or(d, |n| &d[..n])
    }

    /// The two-pass writer this module had before (from_utf8, then split on
    /// backslashes, then escape): the one-pass writer must print the same.
    fn reference_json_bytes(out: &mut Vec<u8>, mut s: &[u8]) {
        out.push(b'"');
        loop {
            match std::str::from_utf8(s) {
                Ok(text) => {
                    reference_escape(out, text);
                    break;
                }
                Err(e) => {
                    let (valid, rest) = s.split_at(e.valid_up_to());
                    reference_escape(out, std::str::from_utf8(valid).unwrap());
                    let bad = e.error_len().unwrap_or(rest.len());
                    for &b in &rest[..bad] {
                        let _ = write!(out, r"\\x{b:02x}");
                    }
                    s = &rest[bad..];
                }
            }
        }
        out.push(b'"');
    }

    fn reference_escape(out: &mut Vec<u8>, text: &str) {
        for (i, part) in text.split('\\').enumerate() {
            if i > 0 {
                out.extend_from_slice(br"\\\\");
            }
            for c in part.chars() {
                match c {
                    '"' => out.extend_from_slice(b"\\\""),
                    '\n' => out.extend_from_slice(b"\\n"),
                    '\t' => out.extend_from_slice(b"\\t"),
                    '\r' => out.extend_from_slice(b"\\r"),
                    c if c.is_control()
                        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
                            | '\u{2060}'..='\u{2069}' | '\u{FEFF}') =>
                    {
                        let _ = write!(out, "\\u{:04x}", c as u32);
                    }
                    c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
        }
    }

    #[test]
    fn one_pass_string_writer_prints_what_the_reference_prints() {
        // Every string of up to three bytes from a set that covers each
        // class: ASCII, escapes, UTF-8 leads of every length, continuation
        // bytes, overlong and surrogate leads, bytes never valid in UTF-8.
        let alphabet: &[u8] = &[
            b'a', b'"', b'\\', b'\n', 0x01, 0x1f, 0x7f, 0x80, 0xa9, 0xbf, 0xc0, 0xc3, 0xdf, 0xe0,
            0xe6, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff,
        ];
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        for a in alphabet {
            inputs.push(vec![*a]);
            for b in alphabet {
                inputs.push(vec![*a, *b]);
                for c in alphabet {
                    inputs.push(vec![*a, *b, *c]);
                }
            }
        }
        // Whole characters of each length, valid and cut short.
        for text in [
            "caf\u{e9}",
            "\u{65e5}\u{672c}",
            "\u{1f600}x",
            "a\\\"b",
            // Characters a terminal acts on, and their safe neighbours.
            "\u{7f}\u{80}\u{9b}\u{9f}\u{a0}",
            "\u{200a}\u{200b}\u{200f}\u{2010}\u{2027}\u{2028}\u{202e}\u{202f}",
            "\u{205f}\u{2060}\u{2066}\u{2069}\u{206a}\u{feff}\u{fefe}\u{ff00}",
        ] {
            let b = text.as_bytes();
            for end in 0..=b.len() {
                inputs.push(b[..end].to_vec());
                inputs.push([&b[..end], b"\xed\xa0\x80", b].concat()); // a surrogate between
            }
        }
        let (mut got, mut want) = (Vec::new(), Vec::new());
        for input in &inputs {
            got.clear();
            want.clear();
            write_json_bytes(&mut got, input);
            reference_json_bytes(&mut want, input);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "{input:x?}"
            );
            let v: serde_json::Value = serde_json::from_slice(&got).unwrap();
            assert!(v.is_string(), "{input:x?}");
            // A `char[N]` field: the same, up to the first NUL, whatever follows it.
            for tail in [&b""[..], b"\0", b"\0\xff\"tail"] {
                got.clear();
                want.clear();
                let field = [input.as_slice(), tail].concat();
                write_json_cstr(&mut got, &field);
                reference_json_bytes(&mut want, until_nul(&field));
                assert_eq!(got, want, "{field:x?}");
            }
        }
        // Long runs take the eight-bytes-at-a-time path: every special byte
        // at every position of a 24-byte string.
        for special in [0u8, 0x01, 0x1f, b'"', b'\\', 0x7f, 0x80, 0xc3, 0xff] {
            for at in 0..24 {
                let mut input = b"abcdefghijklmnopqrstuvwx".to_vec();
                input[at] = special;
                got.clear();
                want.clear();
                write_json_bytes(&mut got, &input);
                reference_json_bytes(&mut want, &input);
                assert_eq!(got, want, "{input:x?}");
                got.clear();
                want.clear();
                write_json_str(&mut got, &input);
                want.push(b'"');
                escape_into(&mut want, &String::from_utf8_lossy(&input));
                want.push(b'"');
                assert_eq!(got, want, "{input:x?}");
            }
        }
    }

    #[test]
    fn characters_a_terminal_acts_on_are_escaped_in_every_string_writer() {
        // ESC (C0), DEL, CSI as the C1 byte U+009B, a right-to-left
        // override, a left-to-right isolate, a zero-width no-break space,
        // invalid UTF-8; and a safe non-ASCII character that stays as it is.
        let input = "a\x1b[2Jb\x7fc\u{9b}31md\u{202e}e\u{2066}f\u{feff}g\u{e9}";
        let escaped = r#"a\u001b[2Jb\u007fc\u009b31md\u202ee\u2066f\ufeffg"#;
        let mut got = Vec::new();
        write_json_str(&mut got, input.as_bytes());
        assert_eq!(
            String::from_utf8(got).unwrap(),
            format!("\"{escaped}\u{e9}\"")
        );
        for (writer, invalid) in [
            (write_json_bytes as fn(&mut Vec<u8>, &[u8]), r"\\xff"),
            (write_json_cstr, r"\\xff"),
            (write_json_str, "\u{fffd}"),
        ] {
            let mut got = Vec::new();
            writer(&mut got, &[input.as_bytes(), b"\xff"].concat());
            assert_eq!(
                String::from_utf8(got).unwrap(),
                format!("\"{escaped}\u{e9}{invalid}\"")
            );
        }
        // The characters inside enum flag names take the same path.
        let mut got = Vec::new();
        write_enum_flags(&[(1, "A\u{202e}".into()), (2, "B\x7f".into())], 3, &mut got);
        assert_eq!(String::from_utf8(got).unwrap(), r#""A\u202e|B\u007f""#);
    }

    #[test]
    fn integers_print_as_std_prints_them_at_every_digit_count() {
        let mut values: Vec<u64> = vec![0, 1, 9, u64::MAX, u64::MAX - 1, i64::MAX as u64];
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            values.extend([p - 1, p, p + 1, next / 2]);
            p = next;
        }
        values.extend([p - 1, p, p + 1]);
        let mut out = Vec::new();
        for v in values {
            out.clear();
            put_u64(&mut out, v);
            assert_eq!(String::from_utf8_lossy(&out), v.to_string());
            assert_eq!(decimal_len(v), v.to_string().len(), "{v}");
            for s in [v as i64, (v as i64).wrapping_neg(), i64::MIN] {
                out.clear();
                out.extend_from_slice(b"x"); // after existing bytes, as in a line
                put_i64(&mut out, s);
                assert_eq!(String::from_utf8_lossy(&out), format!("x{s}"));
            }
        }
    }

    #[test]
    fn plain_runs_end_at_the_first_special_byte_at_every_length() {
        // Every length around the eight-byte steps, every special byte at
        // every position (and none), and a second special byte after it.
        for len in 0..=19 {
            for special in [
                None,
                Some(0u8),
                Some(0x1f),
                Some(b'"'),
                Some(b'\\'),
                Some(0x7f),
                Some(0x80),
                Some(0xff),
            ] {
                for at in 0..len.max(1) {
                    let mut s = vec![b'a'; len];
                    let want = match special {
                        Some(b) if at < len => {
                            s[at] = b;
                            if at + 2 < len {
                                s[at + 2] = b'"';
                            }
                            at
                        }
                        _ => len,
                    };
                    assert_eq!(plain_prefix(&s), want, "{s:x?}");
                }
            }
        }
    }

    #[test]
    fn char_arrays_of_every_size_print_their_text_up_to_the_nul() {
        // Field sizes around the 16-byte moves and their 64-byte limit, each
        // text length, with a special byte or none, and garbage after the NUL
        // that must not show.
        let (mut got, mut want) = (Vec::new(), Vec::new());
        for size in 1..=80 {
            for len in 0..=size {
                for special in [None, Some(b'"'), Some(0xc3)] {
                    let mut field: Vec<u8> = (0..size).map(|i| b'A' + (i % 26) as u8).collect();
                    if len < size {
                        field[len] = 0;
                        field[len + 1..].fill(b'#');
                    }
                    if let Some(b) = special
                        && len > 0
                    {
                        field[len / 2] = b;
                    }
                    got.clear();
                    want.clear();
                    got.extend_from_slice(b"{\"k\":");
                    write_json_cstr(&mut got, &field);
                    want.extend_from_slice(b"{\"k\":");
                    reference_json_bytes(&mut want, until_nul(&field));
                    assert_eq!(got, want, "size {size}, text {len}");
                }
            }
        }
    }

    #[test]
    fn enums_print_names_flags_sets_and_numbers() {
        let kind = |type_name: &str, names: Vec<(i64, String)>| FieldKind::Enum {
            size: 4,
            signed: false,
            names,
            type_name: type_name.into(),
        };
        let bits = || {
            vec![
                (1, "R".to_string()),
                (2, "W".to_string()),
                (4, "X".to_string()),
            ]
        };
        let cases: Vec<(FieldKind, u32, &str)> = vec![
            // Plain enums: the name, else the number.
            (
                kind(
                    "state",
                    vec![(0, "IDLE".into()), (1, "BUSY".into()), (3, "GONE".into())],
                ),
                1,
                r#""BUSY""#,
            ),
            (
                kind(
                    "state",
                    vec![(0, "IDLE".into()), (1, "BUSY".into()), (3, "GONE".into())],
                ),
                2,
                "2",
            ),
            // Every enumerator one bit: an unnamed value prints its bits.
            (kind("perm", bits()), 2, r#""W""#),
            (kind("perm", bits()), 5, r#""R|X""#),
            (kind("perm", bits()), 9, r#""R|0x8""#),
            (kind("perm", bits()), 0x1d, r#""R|X|0x18""#),
            (kind("perm", bits()), 0, "0"),
            (kind("perm", bits()), 8, r#""0x8""#),
            // `_set`: always the members, even for a named value.
            (kind("perm_set", bits()), 3, r#""R|W""#),
        ];
        for (k, v, want) in cases {
            let layout = Layout {
                type_name: "e".into(),
                size: 4,
                fields: vec![field("f", 0, k.clone())],
            };
            let mut out = Vec::new();
            Decoder::new(&layout)
                .write_json(&v.to_ne_bytes(), &mut out)
                .unwrap();
            let line = std::str::from_utf8(&out).unwrap();
            assert_eq!(line, format!("{{\"f\":{want}}}\n"), "{k:?} {v}");
        }
    }
}
