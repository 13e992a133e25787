//! Signed gadgets end to end (issue 16): cosign-format signatures made by
//! `gadgetctl image sign`, stored beside the image in a real Debian
//! docker-registry on loopback, checked independently with openssl, and the
//! agent's run policy on Run, RunObject and restore.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine as _;
use gadgetd_tests::registry::Registry;
use gadgetd_tests::system::Service;
use gadgetd_tests::*;
use serde_json::Value;

const SIMPLE_SIGNING_MT: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const SIG_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const PASSWORD: &str = "correct horse";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// gadgetctl with COSIGN_PASSWORD set.
fn ctl_pw(address: &str, args: &[&str]) -> Output {
    Command::new(bin("gadgetctl"))
        .arg("--address")
        .arg(address)
        .args(args)
        .env("COSIGN_PASSWORD", PASSWORD)
        .output()
        .unwrap()
}

/// Keys of every kind a test needs, made by independent tools where they
/// exist: cosign's format by `gadgetctl image generate-key-pair`, PKCS#8
/// P-256 / Ed25519 / RSA by openssl.
struct Keys {
    dir: TempDir,
}

impl Keys {
    fn new() -> Keys {
        let dir = TempDir::new("keys");
        let out = Command::new(bin("gadgetctl"))
            .args(["image", "generate-key-pair", "--output-key-prefix"])
            .arg(dir.path().join("cosign"))
            .env("COSIGN_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        ok(&out, "generate-key-pair");
        for (name, args) in [
            (
                "p256",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            ),
            ("ed25519", &["-algorithm", "ed25519"][..]),
            (
                "rsa",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
            ),
            (
                "p384",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"][..],
            ),
        ] {
            let key = dir.path().join(format!("{name}.key"));
            let o = Command::new("openssl")
                .arg("genpkey")
                .args(args)
                .arg("-out")
                .arg(&key)
                .output()
                .unwrap();
            ok(&o, "openssl genpkey");
            let o = Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&key)
                .arg("-out")
                .arg(dir.path().join(format!("{name}.pub")))
                .output()
                .unwrap();
            ok(&o, "openssl pkey -pubout");
        }
        Keys { dir }
    }

    fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.key"))
    }

    fn public(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.pub"))
    }
}

/// A policy directory the agent reads (`--policy-dir`).
struct PolicyDir(TempDir);

impl PolicyDir {
    fn new() -> PolicyDir {
        PolicyDir(TempDir::new("policy"))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// Replaces `name` (the mtime changes with the size, so the agent re-reads it).
    fn write(&self, name: &str, text: &str) {
        let tmp = self.path().join(".tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.path().join(name)).unwrap();
        // mtime granularity: make sure a rewrite within the same tick is seen.
        std::thread::sleep(Duration::from_millis(20));
    }

    fn trust(key: &Path, scope: &str) -> String {
        format!(
            "[[trust]]\nkey = \"{}\"\nscope = \"{scope}\"\n",
            key.display()
        )
    }
}

fn build(address: &str, gadget: &str, tag: &str) -> String {
    let out = ctl(
        address,
        &[
            "build",
            "--include",
            s(&repo_root().join("include")),
            "-t",
            tag,
            s(&repo_root().join("gadgets").join(gadget)),
        ],
    );
    let line = ok(&out, "build");
    line.split_whitespace().nth(1).unwrap().to_string()
}

/// `run IMAGE` for half a second: Ok(stderr) when it ran, Err(stderr) when refused.
fn try_run(address: &str, image: &str, extra: &[&str]) -> Result<String, String> {
    let mut args = vec!["run", image, "--timeout", "500ms", "-o", "json"];
    args.extend_from_slice(extra);
    let out = ctl(address, &args);
    if out.status.success() {
        Ok(stderr(&out))
    } else {
        Err(stderr(&out))
    }
}

fn skopeo_raw(reg: &Registry, reference: &str) -> Value {
    let out = reg.skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]);
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sig_tag(digest: &str) -> String {
    format!("sha256-{}.sig", digest.trim_start_matches("sha256:"))
}

#[test]
fn sign_push_pull_verify_and_run_under_a_policy_with_a_real_registry() {
    require_registry!();
    let keys = Keys::new();
    let policy = PolicyDir::new();
    let bus = Bus::start();
    let agent = Agent::start_with(&bus, &["--policy-dir", s(policy.path())]);
    let a = agent.bus_address.as_str();
    let reg = Registry::start(false);
    let repo = format!("{}/gadgets/trace_open", reg.addr());
    let tag = format!("{repo}:v1");
    let digest = build(a, "trace_open", &tag);
    ok(&agent.ctl(&["push", &tag]), "push");

    // Sign with the cosign key: the signature image lands in the registry
    // under cosign's tag, in cosign's format.
    let out = ctl_pw(a, &["image", "sign", "--key", s(&keys.key("cosign")), &tag]);
    let text = ok(&out, "sign");
    assert!(
        text.starts_with(&format!(
            "signed {tag} ({digest}) with ecdsa-p256 key sha256:"
        )),
        "{text}"
    );
    let sig = skopeo_raw(&reg, &format!("{repo}:{}", sig_tag(&digest)));
    let layers = sig["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], SIMPLE_SIGNING_MT);
    let payload_digest = layers[0]["digest"].as_str().unwrap();
    let payload = std::fs::read(reg.blob_data(payload_digest)).unwrap();
    assert_eq!(
        String::from_utf8(payload.clone()).unwrap(),
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{repo}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
        )
    );
    // openssl, not our code, checks the signature against cosign.pub.
    let der = base64::engine::general_purpose::STANDARD
        .decode(layers[0]["annotations"][SIG_ANNOTATION].as_str().unwrap())
        .unwrap();
    let scratch = TempDir::new("openssl");
    std::fs::write(scratch.path().join("payload"), &payload).unwrap();
    std::fs::write(scratch.path().join("sig"), &der).unwrap();
    let o = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(keys.public("cosign"))
        .arg("-signature")
        .arg(scratch.path().join("sig"))
        .arg(scratch.path().join("payload"))
        .output()
        .unwrap();
    assert_eq!(ok(&o, "openssl dgst -verify").trim(), "Verified OK");

    // Remove locally (the signature goes with the image), pull: both come back.
    let removed = ok(&agent.ctl(&["image", "rm", &tag]), "rm");
    assert!(removed.contains(&sig_tag(&digest)), "{removed}");
    ok(&agent.ctl(&["pull", &tag]), "pull");
    let listed = stdout(&agent.ctl(&["image", "list"]));
    assert!(
        !listed.contains(".sig"),
        "signature images are not listed: {listed}"
    );
    let out = agent.ctl(&["image", "verify", "--key", s(&keys.public("cosign")), &tag]);
    let text = ok(&out, "verify");
    assert!(
        text.starts_with(&format!(
            "verified {tag} ({digest})\n  signed by {} (sha256:",
            keys.public("cosign").display()
        )),
        "{text}"
    );
    assert!(text.contains(&format!(") for {repo}\n")), "{text}");
    // Another key does not verify it; the message names the digest.
    let err = fails(
        &agent.ctl(&["image", "verify", "--key", s(&keys.public("p256")), &tag]),
        "verify with another key",
    );
    assert!(
        err.contains(&format!(
            "no signature of image {digest} verifies with a trusted key"
        )),
        "{err}"
    );

    // No policy files: everything runs. A policy trusting cosign.pub for the
    // registry's gadgets: the signed image runs, an unsigned one does not.
    try_run(a, &tag, &[]).unwrap();
    policy.write(
        "10-team.toml",
        &PolicyDir::trust(&keys.public("cosign"), &format!("{}/gadgets/*", reg.addr())),
    );
    try_run(a, &tag, &["--pull", "never"]).unwrap();
    let unsigned = format!("{}/gadgets/trace_exec:v1", reg.addr());
    let unsigned_digest = build(a, "trace_exec", &unsigned);
    let err = try_run(a, &unsigned, &["--pull", "never"]).unwrap_err();
    assert!(
        err.contains(&format!(
            "refused by the run policy: image {unsigned_digest} has no signature"
        )),
        "{err}"
    );
    // A signature replayed from another image (the registry's signature
    // image of the signed digest copied to this one's tag): refused, naming both.
    ok(&agent.ctl(&["push", &unsigned]), "push the unsigned image");
    let exec_repo = unsigned.trim_end_matches(":v1");
    let o = reg.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{repo}:{}", sig_tag(&digest)),
        &format!("docker://{exec_repo}:{}", sig_tag(&unsigned_digest)),
    ]);
    assert!(
        o.status.success(),
        "skopeo copy of the signature: {}",
        stderr(&o)
    );
    ok(
        &agent.ctl(&["pull", &unsigned]),
        "pull with the replayed signature",
    );
    let err = try_run(a, &unsigned, &["--pull", "never"]).unwrap_err();
    assert!(
        err.contains(&format!(
            "the signature is for {digest}, not for {unsigned_digest}"
        )),
        "{err}"
    );
    // Signed by an untrusted key (plain PKCS#8 from openssl, kept local): refused.
    let out = agent.ctl(&[
        "image",
        "sign",
        "--no-upload",
        "--key",
        s(&keys.key("p256")),
        &unsigned,
    ]);
    ok(&out, "sign with the openssl key");
    let err = try_run(a, &unsigned, &["--pull", "never"]).unwrap_err();
    assert!(
        err.contains(&format!(
            "no signature of image {unsigned_digest} verifies with a trusted key"
        )),
        "{err}"
    );
    // Outside every trust scope: refused, naming why.
    let elsewhere = "localhost:5999/other/trace_open:v1";
    ok(&agent.ctl(&["tag", &tag, elsewhere]), "tag");
    let err = try_run(a, elsewhere, &["--pull", "never"]).unwrap_err();
    assert!(
        err.contains(&format!("trusts no key for {elsewhere}")),
        "{err}"
    );
    // Ed25519 (openssl) keys sign and verify too, once trusted.
    ok(
        &agent.ctl(&[
            "image",
            "sign",
            "--no-upload",
            "--key",
            s(&keys.key("ed25519")),
            &unsigned,
        ]),
        "sign with ed25519",
    );
    policy.write(
        "20-ed.toml",
        &PolicyDir::trust(&keys.public("ed25519"), "*"),
    );
    try_run(a, &unsigned, &["--pull", "never"]).unwrap();
    // A pull keeps the signatures made here and never uploaded.
    ok(&agent.ctl(&["pull", &unsigned]), "pull again");
    try_run(a, &unsigned, &["--pull", "never"]).unwrap();
    let v: Value =
        serde_json::from_str(&ok(&agent.ctl(&["image", "inspect", &unsigned]), "inspect")).unwrap();
    assert_eq!(
        v["signatures"]["count"], 3,
        "replayed, p256 and ed25519: {v}"
    );

    // RunObject: refused while signatures are required, unless the admin
    // lets authors run object files.
    let object = gadget("trace_open");
    let err = try_run(a, s(&object), &[]).unwrap_err();
    assert!(err.contains("not object files"), "{err}");
    policy.write("30-authors.toml", "allow-unsigned-objects = true\n");
    try_run(a, s(&object), &[]).unwrap();

    // A policy file with a syntax error: logged, the previous policy stays
    // (the unsigned-but-signed-by-ed25519 image still runs, an image no key
    // signed is still refused).
    policy.write("40-broken.toml", "verify-image = maybe\n");
    try_run(a, &unsigned, &["--pull", "never"]).unwrap();
    let third = format!("{}/gadgets/trace_tcp:v1", reg.addr());
    let third_digest = build(a, "trace_tcp", &third);
    let err = try_run(a, &third, &["--pull", "never"]).unwrap_err();
    assert!(
        err.contains(&format!("image {third_digest} has no signature")),
        "{err}"
    );
    assert!(
        agent
            .log_text()
            .contains("policy not reloaded; the previous policy stays in force")
    );
    assert!(
        agent.log_text().contains("40-broken.toml"),
        "the log names the broken file"
    );
    std::fs::remove_file(policy.path().join("40-broken.toml")).unwrap();

    // inspect shows the signature status under the policy.
    let v: Value =
        serde_json::from_str(&ok(&agent.ctl(&["image", "inspect", &tag]), "inspect")).unwrap();
    assert_eq!(v["signatures"]["count"], 1);
    assert_eq!(
        v["signatures"]["verified"][0]["key"],
        s(&keys.public("cosign"))
    );
    assert_eq!(v["signatures"]["policy"]["admitted"], true);

    // A moved tag (the registry's manifest replaced by another image's):
    // the new digest has no signature, and the refusal names it.
    ok(&agent.ctl(&["push", &third]), "push trace_tcp");
    let o = reg.skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{third}"),
        &format!("docker://{tag}"),
    ]);
    assert!(o.status.success(), "skopeo copy: {}", stderr(&o));
    let err = try_run(a, &tag, &["--pull", "always"]).unwrap_err();
    let moved = err
        .split_once(&format!("pulled {tag} ("))
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(d, _)| d.to_string())
        .unwrap_or_else(|| panic!("no pull reported: {err}"));
    assert_ne!(moved, digest, "the tag moved");
    assert!(
        err.contains(&format!(
            "refused by the run policy: image {moved} has no signature"
        )),
        "{err}"
    );

    // A tampered layer in the registry: the pull fails naming the blob.
    ok(&agent.ctl(&["image", "rm", &third, &tag]), "rm");
    let m = skopeo_raw(&reg, &third);
    let first = m["manifests"][0]["digest"].as_str().unwrap();
    let manifest = skopeo_raw(&reg, &format!("{}/gadgets/trace_tcp@{first}", reg.addr()));
    let config = manifest["config"]["digest"].as_str().unwrap();
    let path = reg.blob_data(config);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let err = fails(&agent.ctl(&["pull", &third]), "pull of a tampered image");
    assert!(err.contains("does not match its digest"), "{err}");
    assert!(err.contains(config), "names {config}: {err}");
}

#[test]
fn bad_keys_signatures_and_policies_are_refused_with_what_is_wrong() {
    let keys = Keys::new();
    let policy = PolicyDir::new();
    let bus = Bus::start();
    let agent = Agent::start_with(&bus, &["--policy-dir", s(policy.path())]);
    let a = agent.bus_address.as_str();
    let tag = "localhost:5000/bad/trace_open:v1";
    let digest = build(a, "trace_open", tag);

    // Keys of the wrong kind or type, for both commands.
    for (args, want) in [
        (
            vec!["sign", "--no-upload", "--key", s(&keys.public("cosign"))],
            "this is a public key",
        ),
        (
            vec!["sign", "--no-upload", "--key", s(&keys.key("rsa"))],
            "unsupported private key: RSA",
        ),
        (
            vec!["sign", "--no-upload", "--key", s(&keys.key("p384"))],
            "unsupported private key: EC on curve 1.3.132.0.34 (only P-256 is supported)",
        ),
        (
            vec!["verify", "--key", s(&keys.key("cosign"))],
            "this is a private key (`ENCRYPTED SIGSTORE PRIVATE KEY`)",
        ),
        (
            vec!["verify", "--key", s(&keys.public("rsa"))],
            "unsupported public key: RSA",
        ),
        (vec!["verify", "--key", "/etc/hostname"], "not a PEM key"),
    ] {
        let mut full = vec!["image"];
        full.extend(&args);
        full.push(tag);
        let err = fails(&agent.ctl(&full), &format!("{args:?}"));
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // cosign keys: no or a wrong password.
    let err = fails(
        &agent.ctl(&[
            "image",
            "sign",
            "--no-upload",
            "--key",
            s(&keys.key("cosign")),
            tag,
        ]),
        "sign without COSIGN_PASSWORD",
    );
    assert!(err.contains("set COSIGN_PASSWORD"), "{err}");
    let out = Command::new(bin("gadgetctl"))
        .args([
            "--address",
            a,
            "image",
            "sign",
            "--no-upload",
            "--key",
            s(&keys.key("cosign")),
            tag,
        ])
        .env("COSIGN_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(fails(&out, "wrong password").contains("wrong password (COSIGN_PASSWORD)"));

    // Over D-Bus directly: a payload for another digest is refused; a
    // malformed signature is stored but never verifies.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let other = format!("sha256:{}", "ab".repeat(32));
    rt.block_on(async {
        let conn = zbus::connection::Builder::address(a)
            .unwrap()
            .build()
            .await
            .unwrap();
        let p = gadgetd_dbus::SignaturesProxy::new(&conn).await.unwrap();
        let (_, d, payload) = p.payload(tag).await.unwrap();
        assert_eq!(d, digest);
        let forged = String::from_utf8(payload.clone())
            .unwrap()
            .replace(&digest, &other);
        let e = p
            .attach(tag, forged.as_bytes(), b"sig", Default::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("the signature is for {other}, not for {digest}")),
            "{e}"
        );
        p.attach(tag, &payload, b"\x30\x03junk", Default::default())
            .await
            .unwrap();
    });
    let err = fails(
        &agent.ctl(&["image", "verify", "--key", s(&keys.public("p256")), tag]),
        "verify of a malformed signature",
    );
    assert!(
        err.contains("malformed ECDSA signature (not ASN.1 DER)"),
        "{err}"
    );

    // A running agent keeps its previous policy when a file goes bad (here:
    // none, so an object still runs); an agent that starts with a policy
    // naming a key of the wrong type never falls open: nothing runs, and the
    // error names the file and the key.
    policy.write("10.toml", &PolicyDir::trust(&keys.public("rsa"), "*"));
    try_run(a, s(&gadget("trace_open")), &[]).unwrap();
    assert!(
        agent.log_text().contains("policy not reloaded"),
        "{}",
        agent.log_text()
    );
    let bus2 = Bus::start();
    let fresh = Agent::start_with(&bus2, &["--policy-dir", s(policy.path())]);
    let err = try_run(&fresh.bus_address, s(&gadget("trace_open")), &[]).unwrap_err();
    assert!(
        err.contains("the run policy is invalid, so nothing runs until it is fixed"),
        "{err}"
    );
    assert!(
        err.contains("10.toml: trusted key") && err.contains("unsupported public key: RSA"),
        "{err}"
    );
    drop(fresh);
    // Fixed: the signed-by-nobody image is refused for the right reason.
    policy.write("10.toml", &PolicyDir::trust(&keys.public("p256"), "*"));
    let err = try_run(a, tag, &["--pull", "never"]).unwrap_err();
    assert!(
        err.contains(&format!("no signature of image {digest} verifies")),
        "{err}"
    );
    assert!(err.contains("malformed ECDSA signature"), "{err}");
}

#[test]
fn signatures_travel_in_export_and_import_and_verify_with_the_registry_stopped() {
    require_registry!();
    let keys = Keys::new();
    let bus = Bus::start();
    let source = Agent::start(&bus);
    let mut reg = Registry::start(false);
    let tag = format!("{}/gadgets/trace_open:v1", reg.addr());
    let digest = build(&source.bus_address, "trace_open", &tag);
    ok(&source.ctl(&["push", &tag]), "push");
    ok(
        &ctl_pw(
            &source.bus_address,
            &["image", "sign", "--key", s(&keys.key("cosign")), &tag],
        ),
        "sign",
    );
    let carry = TempDir::new("carry");
    let archive = carry.path().join("export.tar");
    ok(
        &source.ctl(&["image", "export", &tag, s(&archive)]),
        "export",
    );
    drop(source);
    reg.kill();

    // An air-gapped host: its policy trusts cosign.pub; no registry at all.
    let policy = PolicyDir::new();
    policy.write("10.toml", &PolicyDir::trust(&keys.public("cosign"), "*"));
    let bus = Bus::start();
    let target = Agent::start_with(&bus, &["--policy-dir", s(policy.path())]);
    let t = target.bus_address.as_str();
    let imported = ok(&target.ctl(&["image", "import", s(&archive)]), "import");
    assert!(imported.contains(&format!("{tag} {digest}")), "{imported}");
    assert!(imported.contains(&sig_tag(&digest)), "{imported}");
    let text = ok(
        &target.ctl(&["image", "verify", "--key", s(&keys.public("cosign")), &tag]),
        "verify",
    );
    assert!(
        text.starts_with(&format!("verified {tag} ({digest})")),
        "{text}"
    );
    // Without --key: the policy's keys.
    ok(
        &target.ctl(&["image", "verify", &tag]),
        "verify with the policy's keys",
    );
    try_run(t, &tag, &["--pull", "never"]).unwrap();
    // Imported under another name (-t), it is still the signed digest.
    let tar2 = target.state.path().join("renamed.tar");
    ok(
        &target.ctl(&["image", "export", &tag, s(&tar2)]),
        "export again",
    );
    ok(&target.ctl(&["image", "rm", &tag]), "rm");
    ok(
        &target.ctl(&[
            "image",
            "import",
            "-t",
            "localhost:5000/renamed/x:v2",
            s(&tar2),
        ]),
        "import -t",
    );
    try_run(t, "localhost:5000/renamed/x:v2", &["--pull", "never"]).unwrap();
}

#[test]
fn a_detached_run_whose_image_lost_trust_is_not_restored_after_restart() {
    let keys = Keys::new();
    let policy = PolicyDir::new();
    policy.write("10.toml", &PolicyDir::trust(&keys.public("p256"), "*"));
    let bus = Bus::start();
    let mut svc = Service::new(&bus, &["--policy-dir", s(policy.path())]);
    svc.start();
    let a = svc.bus_address.clone();
    let tag = "localhost:5000/team/trace_open:v1";
    let digest = build(&a, "trace_open", tag);
    ok(
        &svc.ctl(&[
            "image",
            "sign",
            "--no-upload",
            "--key",
            s(&keys.key("p256")),
            tag,
        ]),
        "sign",
    );
    let trusted = ok(
        &svc.ctl(&["run", tag, "--pull", "never", "--detach"]),
        "run --detach",
    );
    let trusted = trusted.trim().to_string();
    // A second detached run from an object file, allowed for authors.
    policy.write("20.toml", "allow-unsigned-objects = true\n");
    let object = ok(
        &svc.ctl(&["run", s(&gadget("trace_open")), "--detach"]),
        "run object --detach",
    );
    let object = object.trim().to_string();

    // While the agent is down, the admin drops the key and the authors' rule.
    svc.kill9();
    policy.write("10.toml", &PolicyDir::trust(&keys.public("ed25519"), "*"));
    std::fs::remove_file(policy.path().join("20.toml")).unwrap();
    svc.start();
    let runs = json_lines(&svc.ctl(&["list", "-a", "-o", "json"]));
    for (id, why) in [
        (
            &trusted,
            format!("no signature of image {digest} verifies with a trusted key"),
        ),
        (&object, "not object files".to_string()),
    ] {
        let run = runs
            .iter()
            .find(|r| r["id"] == id.as_str())
            .unwrap_or_else(|| panic!("run {id} listed: {runs:?}"));
        assert_eq!(run["state"], "failed", "{run}");
        let reason = run["exit_reason"].as_str().unwrap();
        assert!(
            reason.starts_with("error: not restored after restart: refused by the run policy: "),
            "{reason}"
        );
        assert!(reason.contains(&why), "{reason}");
    }
    assert!(
        svc.log().contains("detached run could not be restored"),
        "{}",
        svc.log()
    );
}

#[test]
fn allowed_lists_pin_digests_and_match_globs_and_exact_references() {
    let keys = Keys::new();
    let policy = PolicyDir::new();
    let bus = Bus::start();
    let agent = Agent::start_with(&bus, &["--policy-dir", s(policy.path())]);
    let a = agent.bus_address.as_str();
    let pinned = "localhost:5000/vendor/trace_open:v1";
    let pinned_digest = build(a, "trace_open", pinned);
    let team = "localhost:5000/team/trace_exec:v1";
    build(a, "trace_exec", team);
    let exact = "localhost:5000/other/trace_tcp:v1";
    build(a, "trace_tcp", exact);
    ok(
        &agent.ctl(&[
            "image",
            "sign",
            "--no-upload",
            "--key",
            s(&keys.key("p256")),
            team,
        ]),
        "sign",
    );
    ok(
        &agent.ctl(&[
            "image",
            "sign",
            "--no-upload",
            "--key",
            s(&keys.key("p256")),
            exact,
        ]),
        "sign",
    );
    policy.write(
        "10.toml",
        &format!(
            "allowed = [\"localhost:5000/vendor/trace_open@{pinned_digest}\", \"localhost:5000/team/*\"]\n{}",
            PolicyDir::trust(&keys.public("p256"), "*")
        ),
    );
    // Pinned: runs unsigned. Glob and signed: runs. Signed but not listed: refused.
    try_run(a, pinned, &["--pull", "never"]).unwrap();
    try_run(a, team, &["--pull", "never"]).unwrap();
    let err = try_run(a, exact, &["--pull", "never"]).unwrap_err();
    assert!(
        err.contains(&format!("{exact} (sha256:"))
            && err.contains("is not in the policy's allowed gadgets"),
        "{err}"
    );
    // Another name for the pinned digest is not the pinned name.
    ok(
        &agent.ctl(&["tag", pinned, "localhost:5000/vendor/renamed:v1"]),
        "tag",
    );
    let err = try_run(a, "localhost:5000/vendor/renamed:v1", &["--pull", "never"]).unwrap_err();
    assert!(
        err.contains("is not in the policy's allowed gadgets"),
        "{err}"
    );
    // An exact reference, added in a second file (merged).
    policy.write("20.toml", &format!("allowed = [\"{exact}\"]\n"));
    try_run(a, exact, &["--pull", "never"]).unwrap();
}

/// Removes a file when dropped (polkit rules the test installs).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn polkit_can_deny_object_files_while_images_stay_allowed() {
    use gadgetd_tests::system::{Polkit, Users};
    use std::os::unix::fs::PermissionsExt;
    let users = Users::create();
    let rules = PathBuf::from("/etc/polkit-1/rules.d");
    std::fs::create_dir_all(&rules).unwrap();
    let deny = rules.join(format!(
        "48-gadgetd-test-no-objects-{}.rules",
        random_hex(4)
    ));
    std::fs::write(
        &deny,
        format!(
            "polkit.addRule(function(action, subject) {{\n  if (action.id == \"org.gadgetd.run-object\" && subject.isInGroup(\"{}\")) {{ return polkit.Result.NO; }}\n}});\n",
            users.group
        ),
    )
    .unwrap();
    std::fs::set_permissions(&deny, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _deny = RemoveOnDrop(deny);
    let bus = Bus::start();
    let _polkit = Polkit::start(&bus, &users.group);
    let mut svc = Service::new(&bus, &["--group", &users.group]);
    svc.start();
    let image = "localhost:5000/team/trace_open:v1";
    build(&svc.bus_address, "trace_open", image);
    let addr = format!("--address={}", bus.address);
    let ctl = bin("gadgetctl");

    let out = Users::run_as(
        &users.member,
        &ctl,
        &[
            &addr,
            "run",
            image,
            "--pull",
            "never",
            "--timeout",
            "500ms",
            "-o",
            "json",
        ],
    );
    ok(&out, "the member's run of an image");
    let object = gadget("trace_open");
    let out = Users::run_as(
        &users.member,
        &ctl,
        &[&addr, "run", s(&object), "--timeout", "500ms", "-o", "json"],
    );
    let err = fails(&out, "the member's run of an object file");
    assert!(
        err.contains("org.gadgetd.run-object") && err.contains("AccessDenied"),
        "{err}"
    );
    // Root is not subject to polkit.
    try_run(&svc.bus_address, s(&object), &[]).unwrap();
}

/// The library's `run_image` (no agent) honours the same run policy.
#[test]
fn the_runtime_library_checks_the_run_policy_too() {
    use gadgetd_runtime::{GadgetError, ImageOptions, Opts, Pull, run_image};
    let keys = Keys::new();
    let policy = PolicyDir::new();
    policy.write("10.toml", &PolicyDir::trust(&keys.public("p256"), "*"));
    let bus = Bus::start();
    let agent = Agent::start_with(&bus, &["--policy-dir", s(policy.path())]);
    let tag = "localhost:5000/lib/trace_open:v1";
    let digest = build(&agent.bus_address, "trace_open", tag);
    let opts = Opts {
        timeout: Some(Duration::from_millis(200)),
        image: ImageOptions {
            state_dir: agent.state.path().to_path_buf(),
            pull: Pull::Never,
            policy_dir: policy.path().to_path_buf(),
            ..Default::default()
        },
        ..Default::default()
    };
    match run_image(tag, &opts) {
        Err(GadgetError::Image { reference, reason }) => {
            assert_eq!(reference, tag);
            assert!(
                reason.starts_with(&format!(
                    "refused by the run policy: image {digest} has no signature"
                )),
                "{reason}"
            );
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("an unsigned image ran under a policy requiring signatures"),
    }
    ok(
        &agent.ctl(&[
            "image",
            "sign",
            "--no-upload",
            "--key",
            s(&keys.key("p256")),
            tag,
        ]),
        "sign",
    );
    let run = run_image(tag, &opts).expect("the signed image runs");
    assert_eq!(run.gadget().name(), "trace_open");
}
