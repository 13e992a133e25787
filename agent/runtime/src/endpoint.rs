//! Where an endpoint struct (`gadget_l3endpoint_t`, `gadget_l4endpoint_t`)
//! keeps its address, IP version and port, read from the object's BTF by
//! member name, never assumed. Layouts seen in the wild (all decode):
//!
//! | layout | members |
//! |---|---|
//! | gadgetd, Inspektor Gadget today | `addr_raw` (16 bytes), `port` (u16, host order), `proto`/`proto_raw`, `version` (u8) |
//! | Inspektor Gadget, older | `l3 { addr, version, pad[3] }`, `port`, `proto` |
//! | L3 | `addr_raw` or `addr`, `version` |

use btf_rs::{Btf, BtfType, Type};

use super::error::{GadgetError, Result};
use super::object::name_of;

/// Byte offsets, from the start of the endpoint struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointLayout {
    /// The 16-byte address (IPv4 in its first 4 bytes).
    pub addr: usize,
    /// The version byte: 4 or 6.
    pub version: usize,
    /// The port (u16, host byte order); `None` for an L3 endpoint.
    pub port: Option<usize>,
}

impl EndpointLayout {
    /// Bytes the decoder reads past the field's offset.
    pub fn span(&self) -> usize {
        (self.addr + 16)
            .max(self.version + 1)
            .max(self.port.map_or(0, |p| p + 2))
    }
}

fn missing(field: &str, ty: &str, what: &str) -> GadgetError {
    GadgetError::UnsupportedType {
        field: field.into(),
        reason: format!(
            "`{ty}` has no {what} member: an endpoint needs `addr_raw` (or `addr`, or `l3.addr`), `version` and, for L4, `port` (see include/gadget/types.h)"
        ),
    }
}

/// Reads the layout of endpoint struct `s` (named `ty`) for field `field`.
pub fn layout(
    btf: &Btf,
    s: &btf_rs::Struct,
    ty: &str,
    field: &str,
    l4: bool,
) -> Result<EndpointLayout> {
    let (mut addr, mut version, mut port) = (None, None, None);
    for m in &s.members {
        let off = (m.bit_offset() / 8) as usize;
        match name_of(btf, m).as_str() {
            "addr_raw" | "addr" => addr = Some(off),
            "version" => version = Some(off),
            "port" => port = Some(off),
            "l3" => {
                let Some(Type::Struct(inner)) = m
                    .get_type_id()
                    .and_then(|id| btf.resolve_type_by_id(id).ok())
                else {
                    continue;
                };
                let l3 = layout(btf, &inner, ty, field, false)?;
                addr = Some(off + l3.addr);
                version = Some(off + l3.version);
            }
            _ => {}
        }
    }
    let out = EndpointLayout {
        addr: addr.ok_or_else(|| missing(field, ty, "address"))?,
        version: version.ok_or_else(|| missing(field, ty, "`version`"))?,
        port: if l4 {
            Some(port.ok_or_else(|| missing(field, ty, "`port`"))?)
        } else {
            None
        },
    };
    if out.span() > s.size() {
        return Err(GadgetError::UnsupportedType {
            field: field.into(),
            reason: format!(
                "`{ty}` is {} bytes, too small for a 16-byte address",
                s.size()
            ),
        });
    }
    Ok(out)
}
