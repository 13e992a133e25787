//! Image references (docker/OCI grammar). A name without a registry
//! (`trace_open`, `me/tool:v1`) gets the agent's default registry prefix,
//! so `trace_open` means `<prefix>/trace_open:latest`.

/// A parsed image reference (oci-client's), as [`normalize`] returns it.
pub use oci_client::Reference;

use super::error::{ImageError, Result};

/// The prefix bare names resolve against unless the admin sets another
/// (`gadgetd --default-registry`).
pub const DEFAULT_PREFIX: &str = "ghcr.io/gadgetd/gadget";

/// Whether the first path component names a registry (docker's rule).
fn has_registry(name: &str) -> bool {
    match name.split_once('/') {
        Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
        None => false,
    }
}

/// Parses `input` into a full reference (`registry/repo:tag` or
/// `registry/repo@sha256:...`), adding `prefix` to bare names and
/// `:latest` when there is neither tag nor digest.
pub fn normalize(input: &str, prefix: &str) -> Result<Reference> {
    let bad = |reason: String| ImageError::BadReference {
        reference: input.to_string(),
        reason,
    };
    if input.is_empty() {
        return Err(bad("empty".into()));
    }
    let full = if has_registry(input) {
        input.to_string()
    } else {
        format!("{}/{input}", prefix.trim_end_matches('/'))
    };
    let r = Reference::try_from(full.as_str()).map_err(|e| {
        bad(format!(
            "{e} (expected [REGISTRY/]NAME[:TAG][@sha256:DIGEST], lowercase name; e.g. trace_open, localhost:5000/me/tool:v1)"
        ))
    })?;
    if r.registry().is_empty() {
        return Err(bad("no registry".into()));
    }
    Ok(r)
}

/// The string the store keeps as `org.opencontainers.image.ref.name`.
pub fn store_name(r: &Reference) -> String {
    r.whole()
}

/// Registries that may be spoken to over plain HTTP without being listed:
/// loopback ones (a registry on this host).
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_like_docker_with_our_prefix() {
        let n = |s: &str| store_name(&normalize(s, "ghcr.io/gadgetd/gadget").unwrap());
        assert_eq!(n("trace_open"), "ghcr.io/gadgetd/gadget/trace_open:latest");
        assert_eq!(n("trace_open:v1"), "ghcr.io/gadgetd/gadget/trace_open:v1");
        assert_eq!(n("me/tool"), "ghcr.io/gadgetd/gadget/me/tool:latest");
        assert_eq!(n("localhost:5000/me/tool:v2"), "localhost:5000/me/tool:v2");
        assert_eq!(n("127.0.0.1:5000/t"), "127.0.0.1:5000/t:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(n(&format!("r.io/x@{d}")), format!("r.io/x@{d}"));
        let err = normalize("Bad Name", "r.io").unwrap_err().to_string();
        assert!(err.contains("invalid image reference `Bad Name`"), "{err}");
        assert!(normalize("", "r.io").is_err());
    }

    #[test]
    fn loopback_registries_are_recognized() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("ghcr.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }
}
