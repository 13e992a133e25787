//! Image references (docker/OCI grammar). A name without a registry
//! (`trace_open`, `me/tool:v1`) gets the agent's default registry prefix,
//! so `trace_open` means `<prefix>/trace_open:latest`.

/// A parsed image reference (oci-client's), as [`normalize`] returns it.
pub use oci_client::Reference;

use super::error::{ImageError, Result};

/// The prefix bare names resolve against unless the admin sets another
/// (`gadgetd --default-registry`).
pub const DEFAULT_PREFIX: &str = "ghcr.io/gadgetd/gadget";

/// Parses `input` into a full reference (`registry/repo:tag` or
/// `registry/repo@sha256:...`) normalized as docker, podman and skopeo do
/// (docs/images.md, "References"):
///
/// - a name without a registry gets `prefix` (`trace_open` →
///   `ghcr.io/gadgetd/gadget/trace_open`); the first component names a
///   registry when it has a `.` or a `:` or is `localhost`;
/// - the registry host is lower-cased and the default HTTPS port `:443`
///   dropped (`GHCR.IO:443/x` → `ghcr.io/x`) unless the host has no dot
///   (`myhost:443/x` stays: `myhost/x` would be a repository path);
/// - `index.docker.io` is `docker.io`, and a one-component name there is
///   an official image (`docker.io/busybox` → `docker.io/library/busybox`);
/// - `:latest` is added when there is neither tag nor digest; tags and
///   digests are kept as given.
///
/// Errors name the rule the input breaks.
pub fn normalize(input: &str, prefix: &str) -> Result<Reference> {
    let bad = |reason: String| ImageError::BadReference {
        reference: input.to_string(),
        reason,
    };
    if input.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if let Some(c) = input.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(format!(
            "it contains {c:?}; a reference has no spaces or control characters ({SHAPE})"
        )));
    }
    let (rest, digest) = match input.split_once('@') {
        Some((rest, d)) => (rest, Some(check_digest(d).map_err(bad)?)),
        None => (input, None),
    };
    let (name, tag) = match rest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(check_tag(tag).map_err(bad)?)),
        _ => (rest, None),
    };
    let full = match split_registry(name) {
        Some(_) => name.to_string(),
        None => {
            let prefix = prefix.trim_end_matches('/');
            if prefix.is_empty() {
                return Err(bad(format!(
                    "it names no registry and there is no default registry; write REGISTRY/NAME ({SHAPE})"
                )));
            }
            format!("{prefix}/{name}")
        }
    };
    let (registry, path) = match split_registry(&full) {
        Some((host, path)) => (normalize_host(host).map_err(bad)?, path),
        // A default registry prefix without a host means Docker Hub, as
        // for docker (`--default-registry me/tools`).
        None => (DOCKER_HUB.to_string(), full.as_str()),
    };
    let mut repository = check_path(path).map_err(bad)?;
    if registry == DOCKER_HUB && !repository.contains('/') {
        repository = format!("library/{repository}");
    }
    if repository.len() > MAX_NAME {
        return Err(bad(format!(
            "the repository name is {} characters; at most {MAX_NAME} are allowed",
            repository.len()
        )));
    }
    Ok(match (tag, digest) {
        (Some(t), Some(d)) => Reference::with_tag_and_digest(registry, repository, t, d),
        (None, Some(d)) => Reference::with_digest(registry, repository, d),
        (t, None) => {
            Reference::with_tag(registry, repository, t.unwrap_or_else(|| "latest".into()))
        }
    })
}

/// What a reference looks like, for error messages.
const SHAPE: &str = "expected [REGISTRY[:PORT]/]NAME[:TAG][@sha256:DIGEST], e.g. trace_open, localhost:5000/me/tool:v1";
const DOCKER_HUB: &str = "docker.io";
/// Longest repository name (docker's limit).
const MAX_NAME: usize = 255;

/// The registry host and the rest when the first component names a
/// registry (it has a `.` or `:`, or is `localhost`: docker's rule).
fn split_registry(name: &str) -> Option<(&str, &str)> {
    let (first, rest) = name.split_once('/')?;
    (first.contains('.') || first.contains(':') || first.eq_ignore_ascii_case("localhost"))
        .then_some((first, rest))
}

/// `HOST[:PORT]` lower-cased, without the default HTTPS port, with
/// Docker Hub's legacy name replaced.
fn normalize_host(registry: &str) -> std::result::Result<String, String> {
    let (host, port) = if let Some(v6) = registry.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(|| {
            format!("registry `{registry}` opens an IPv6 address with `[` but never closes it")
        })?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "registry `{registry}`: `{addr}` is not an IPv6 address"
            ));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| {
                format!("registry `{registry}`: only `:PORT` may follow the IPv6 address")
            })?),
        };
        (&registry[..addr.len() + 2], port)
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if !host.starts_with('[') {
        let ok = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        };
        if let Some(c) = host.split('.').find(|c| !ok(c)) {
            return Err(format!(
                "registry host `{host}`: each dot-separated part must be letters, digits and inner hyphens (`{c}` is not)"
            ));
        }
    }
    let host = host.to_ascii_lowercase();
    let host = if host == "index.docker.io" {
        DOCKER_HUB.to_string()
    } else {
        host
    };
    // Without its port, a host with no dot (`myhost:443`) would read as a
    // repository path: such a port stays.
    let reads_as_host = host.contains('.') || host.starts_with('[') || host == "localhost";
    match port {
        None => Ok(host),
        Some(p) => match p.parse::<u16>() {
            Ok(443) if p == "443" && reads_as_host => Ok(host),
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) && !p.starts_with('0') => {
                Ok(format!("{host}:{n}"))
            }
            _ => Err(format!(
                "registry `{registry}`: port `{p}` is not a number from 1 to 65535"
            )),
        },
    }
}

/// The repository path: `/`-separated components of lowercase letters and
/// digits, joined inside a component by `.`, `_`, `__` or runs of `-`.
fn check_path(path: &str) -> std::result::Result<String, String> {
    for c in path.split('/') {
        if c.is_empty() {
            return Err(format!(
                "repository `{path}` has an empty component (a leading, trailing or double `/`)"
            ));
        }
        if c.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "repository `{path}` must be lowercase (`{c}` is not); only the registry host may have capitals"
            ));
        }
        if !path_component_ok(c) {
            return Err(format!(
                "repository component `{c}` may hold only a-z and 0-9, joined by `.`, `_`, `__` or `-`, and must start and end with a letter or digit"
            ));
        }
    }
    Ok(path.to_string())
}

fn path_component_ok(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: `.`, `_`, `__`, or one or more `-`.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => i += if b.get(i + 1) == Some(&b'_') { 2 } else { 1 },
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !b.get(i).is_some_and(|x| alnum(*x)) {
            return false;
        }
    }
    true
}

/// A tag: a letter, digit or `_`, then up to 127 of those, `.` and `-`.
fn check_tag(tag: &str) -> std::result::Result<String, String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    if b.is_empty() {
        return Err(format!("the tag after `:` is empty ({SHAPE})"));
    }
    if b.len() > 128 || !word(b[0]) || !b.iter().all(|x| word(*x) || *x == b'.' || *x == b'-') {
        return Err(format!(
            "tag `{tag}` must start with a letter, digit or `_` and hold at most 128 letters, digits, `_`, `.` and `-`"
        ));
    }
    Ok(tag.to_string())
}

/// A digest: `sha256:` and 64 lowercase hex digits (or sha384/sha512).
fn check_digest(digest: &str) -> std::result::Result<String, String> {
    let (algo, hex) = digest.split_once(':').ok_or_else(|| {
        format!("digest `{digest}` must be ALGORITHM:HEX, e.g. sha256:<64 hex digits>")
    })?;
    let want = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            return Err(format!(
                "digest algorithm `{algo}` is not supported (sha256, sha384 or sha512)"
            ));
        }
    };
    if hex.len() != want
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "digest `{digest}` must have {want} lowercase hex digits after `{algo}:`"
        ));
    }
    Ok(digest.to_string())
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

    fn norm(s: &str) -> String {
        store_name(&normalize(s, DEFAULT_PREFIX).unwrap_or_else(|e| panic!("{s}: {e}")))
    }

    fn reason(s: &str) -> String {
        match normalize(s, DEFAULT_PREFIX) {
            Err(ImageError::BadReference { reference, reason }) => {
                assert_eq!(reference, s);
                reason
            }
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn registry_hosts_are_lower_cased() {
        assert_eq!(norm("GHCR.IO/me/tool:v1"), "ghcr.io/me/tool:v1");
        assert_eq!(
            norm("Registry.Example.COM:5000/x"),
            "registry.example.com:5000/x:latest"
        );
        assert_eq!(norm("LOCALHOST/x"), "localhost/x:latest");
        assert_eq!(norm("LocalHost:5000/x"), "localhost:5000/x:latest");
    }

    #[test]
    fn the_default_https_port_is_dropped_and_others_kept() {
        assert_eq!(norm("ghcr.io:443/me/tool"), "ghcr.io/me/tool:latest");
        assert_eq!(
            norm("docker.io:443/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("localhost:5000/x:1"), "localhost:5000/x:1");
        assert_eq!(norm("r.io:8443/x"), "r.io:8443/x:latest");
        assert_eq!(norm("[::1]:5000/x"), "[::1]:5000/x:latest");
        assert_eq!(norm("[::1]:443/x"), "[::1]/x:latest");
        assert_eq!(norm("LocalHost:443/x"), "localhost/x:latest");
        // Without the port a dotless host would be a repository path.
        assert_eq!(norm("MYHOST:443/x"), "myhost:443/x:latest");
    }

    /// Inputs the `reference` fuzz target found (fuzz/regressions/reference):
    /// each normalizes, or not, the same way twice.
    #[test]
    fn fuzzer_findings_normalize_stably() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/regressions/reference"
        );
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let Ok(input) = std::str::from_utf8(&bytes) else {
                continue;
            };
            n += 1;
            if let Ok(r) = normalize(input, DEFAULT_PREFIX) {
                let name = store_name(&r);
                assert_eq!(norm(&name), name, "{input:?}");
            }
        }
        assert!(n >= 1, "the findings are in {dir}");
        // The first finding: a dotless host with the default port.
        assert_eq!(norm("GHCO:443/metool:v0"), "ghco:443/metool:v0");
    }

    #[test]
    fn docker_hub_names_are_spelled_one_way() {
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("INDEX.DOCKER.IO/me/tool:v2"), "docker.io/me/tool:v2");
        assert_eq!(
            norm("docker.io/library/busybox:1.36"),
            "docker.io/library/busybox:1.36"
        );
        // Only Docker Hub has `library/`.
        assert_eq!(norm("quay.io/busybox"), "quay.io/busybox:latest");
        // A default registry on Docker Hub works the same way.
        let r = |s: &str, p: &str| store_name(&normalize(s, p).unwrap());
        assert_eq!(
            r("busybox", "docker.io"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            r("busybox", "index.docker.io"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(r("tool", "me"), "docker.io/me/tool:latest");
        assert_eq!(
            r("tool", "LOCALHOST:5000/gadgets/"),
            "localhost:5000/gadgets/tool:latest"
        );
    }

    #[test]
    fn tags_and_digests_are_kept_as_given() {
        let d = format!("sha256:{}", "0123456789abcdef".repeat(4));
        assert_eq!(norm(&format!("r.io/x@{d}")), format!("r.io/x@{d}"));
        assert_eq!(
            norm(&format!("R.IO:443/x:V1.0_rc-2@{d}")),
            format!("r.io/x:V1.0_rc-2@{d}")
        );
        assert_eq!(
            norm("trace_open:V2"),
            "ghcr.io/gadgetd/gadget/trace_open:V2"
        );
        let d384 = format!("sha384:{}", "a".repeat(96));
        assert_eq!(norm(&format!("r.io/x@{d384}")), format!("r.io/x@{d384}"));
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for s in [
            "trace_open",
            "GHCR.IO:443/me/tool:v1",
            "index.docker.io/busybox",
            "[::1]:5000/a/b__c/d-e.f:x",
            "docker.io:443/me/t",
        ] {
            assert_eq!(norm(&norm(s)), norm(s), "{s}");
        }
    }

    #[test]
    fn a_bad_reference_names_the_rule_it_breaks() {
        assert_eq!(reason(""), "it is empty");
        assert!(reason("Bad Name").starts_with("it contains ' '; a reference has no spaces"));
        assert_eq!(
            reason("r.io/Me/tool"),
            "repository `Me/tool` must be lowercase (`Me` is not); only the registry host may have capitals"
        );
        assert_eq!(
            reason("Me/tool"),
            "repository `gadgetd/gadget/Me/tool` must be lowercase (`Me` is not); only the registry host may have capitals"
        );
        assert!(reason("r.io/a//b").starts_with("repository `a//b` has an empty component"));
        assert!(reason("r.io/a/").starts_with("repository `a/` has an empty component"));
        for c in ["-a", "a-", "a..b", "a___b", "a+b", "_a"] {
            assert!(
                reason(&format!("r.io/{c}"))
                    .starts_with(&format!("repository component `{c}` may hold only")),
                "{c}"
            );
        }
        assert_eq!(
            reason("r.io/x:.v1"),
            "tag `.v1` must start with a letter, digit or `_` and hold at most 128 letters, digits, `_`, `.` and `-`"
        );
        assert!(reason(&format!("r.io/x:{}", "a".repeat(129))).starts_with("tag `aaaa"));
        assert!(reason("r.io/x:").starts_with("the tag after `:` is empty"));
        assert_eq!(
            reason("r.io/x@md5:abc"),
            "digest algorithm `md5` is not supported (sha256, sha384 or sha512)"
        );
        assert_eq!(
            reason(&format!("r.io/x@sha256:{}", "A".repeat(64))),
            "digest `sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA` must have 64 lowercase hex digits after `sha256:`"
        );
        assert!(reason("r.io/x@abc").starts_with("digest `abc` must be ALGORITHM:HEX"));
        assert_eq!(
            reason("r.io:0/x"),
            "registry `r.io:0`: port `0` is not a number from 1 to 65535"
        );
        assert_eq!(
            reason("r.io:99999/x"),
            "registry `r.io:99999`: port `99999` is not a number from 1 to 65535"
        );
        assert_eq!(
            reason("r_x.io/x"),
            "registry host `r_x.io`: each dot-separated part must be letters, digits and inner hyphens (`r_x` is not)"
        );
        assert_eq!(
            reason("[::1/x"),
            "registry `[::1` opens an IPv6 address with `[` but never closes it"
        );
        assert_eq!(
            reason("[zz]:5000/x"),
            "registry `[zz]:5000`: `zz` is not an IPv6 address"
        );
        assert!(
            reason(&format!("r.io/{}", "a".repeat(256)))
                .starts_with("the repository name is 256 characters")
        );
        assert!(
            normalize("x", "")
                .unwrap_err()
                .to_string()
                .contains("there is no default registry"),
        );
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
