//! Gadget images end to end: gadgetctl build/push/pull/run/login/export/
//! import against a real Debian docker-registry on loopback, skopeo as the
//! outside OCI tool, real eBPF in the running kernel.

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gadgetd::images::Digest;
use gadgetd_tests::registry::{PASSWORD, Registry, USER};
use gadgetd_tests::*;
use serde_json::{Value, json};

const INDEX_MT: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST_MT: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_MT: &str = "application/vnd.gadget.config.v1+yaml";
const PROGRAM_MT: &str = "application/vnd.gadget.ebpf.program.v1+binary";

fn include() -> String {
    repo_root().join("include").display().to_string()
}

fn gadget_dir(name: &str) -> String {
    repo_root().join("gadgets").join(name).display().to_string()
}

/// `gadgetctl build` of gadgets/NAME tagged `tag`; returns the digest.
fn build(agent: &Agent, name: &str, tag: &str) -> String {
    let out = agent.ctl(&[
        "build",
        "--include",
        &include(),
        "-t",
        tag,
        &gadget_dir(name),
    ]);
    let line = ok(&out, "build");
    let (reference, digest) = line
        .trim()
        .split_once(' ')
        .expect("build prints REFERENCE DIGEST");
    assert!(reference.ends_with(tag), "{reference} is not {tag}");
    digest.to_string()
}

fn images_dir(agent: &Agent) -> PathBuf {
    agent.state.path().join("images")
}

/// What must not change when an operation fails: index.json and the blobs.
fn snapshot(agent: &Agent) -> (String, BTreeSet<String>) {
    let dir = images_dir(agent);
    let index = std::fs::read_to_string(dir.join("index.json")).unwrap();
    let blobs = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    (index, blobs)
}

fn staging_is_empty(agent: &Agent) -> bool {
    std::fs::read_dir(images_dir(agent).join(".staging"))
        .unwrap()
        .next()
        .is_none()
}

fn list(agent: &Agent) -> Vec<Value> {
    json_lines(&agent.ctl(&["image", "list", "-o", "json"]))
}

/// Runs `image` and checks that it reports our own open of a fresh file.
fn run_sees_our_open(agent: &Agent, image: &str, extra: &[&str]) -> String {
    let me = std::process::id().to_string();
    let pid_param = format!("targ_pid={me}");
    let mut args = vec![
        "run",
        image,
        "-o",
        "json",
        "--timeout",
        "30s",
        "-p",
        &pid_param,
    ];
    args.extend_from_slice(extra);
    let mut client = agent.ctl_spawn(&args);
    agent.wait_running(1);
    let dir = TempDir::new("img-open");
    let path = dir.path().join("gadgetd-image-probe");
    std::fs::write(&path, b"x").unwrap();
    drop(std::fs::File::open(&path).unwrap());
    let mut reader = BufReader::new(client.stdout.take().unwrap());
    let line = wait_child_line(&mut reader, Duration::from_secs(20), |l| {
        l.contains(path.to_str().unwrap())
    });
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(client.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let out = client.wait_with_output().unwrap();
    let line =
        line.unwrap_or_else(|| panic!("no event for our open from {image}: {}", stderr(&out)));
    let ev: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ev["proc.pid"], std::process::id());
    assert_eq!(ev["fname"], path.to_str().unwrap());
    assert_eq!(ev["proc.comm"], own_comm());
    stderr(&out)
}

fn skopeo_raw(reg: &Registry, reference: &str) -> (Vec<u8>, Value) {
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
    let v = serde_json::from_slice(&out.stdout).unwrap();
    (out.stdout, v)
}

#[test]
fn build_push_remove_pull_run_round_trip_with_both_architectures() {
    require_registry!();
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let reg = Registry::start(false);
    let tag = format!("{}/gadgets/trace_open:v1", reg.addr());

    // Reproducible: the same inputs give the same digest; SOURCE_DATE_EPOCH is honoured.
    let digest = build(&agent, "trace_open", &tag);
    assert_eq!(build(&agent, "trace_open", &tag), digest);
    let dated = Command::new(bin("gadgetctl"))
        .args([
            "--address",
            &agent.bus_address,
            "build",
            "--include",
            &include(),
            "-t",
            "local/dated:v1",
            "-o",
        ])
        .arg(agent.state.path().join("dated.tar"))
        .arg(gadget_dir("trace_open"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    let dated_digest = ok(&dated, "build -o")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert_ne!(dated_digest, digest);
    ok(
        &agent.ctl(&[
            "image",
            "import",
            agent.state.path().join("dated.tar").to_str().unwrap(),
        ]),
        "import",
    );
    let images = list(&agent);
    let dated_row = images
        .iter()
        .find(|i| i["digest"] == dated_digest.as_str())
        .expect("dated image listed");
    assert_eq!(dated_row["created"], "2023-11-14T22:13:20Z");
    let row = images
        .iter()
        .find(|i| i["reference"] == tag.as_str())
        .expect("built image listed");
    assert_eq!(row["digest"], digest.as_str());
    assert_eq!(row["architectures"], json!(["amd64", "arm64"]));
    ok(&agent.ctl(&["image", "rm", "local/dated:v1"]), "rm dated");

    // The local store is an OCI layout skopeo reads.
    let layout = format!("oci:{}:{tag}", images_dir(&agent).display());
    let out = reg.skopeo(&["inspect", "--raw", &layout]);
    assert!(
        out.status.success(),
        "skopeo on the store: {}",
        stderr(&out)
    );
    assert_eq!(Digest::of(&out.stdout).to_string(), digest);

    // Push, then look at it with skopeo: the seed's media types, both platforms.
    assert_eq!(ok(&agent.ctl(&["push", &tag]), "push").trim(), digest);
    let (raw, index) = skopeo_raw(&reg, &tag);
    assert_eq!(
        Digest::of(&raw).to_string(),
        digest,
        "digest preserved by the push"
    );
    assert_eq!(index["mediaType"], INDEX_MT);
    let platforms: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["os"].as_str().unwrap().into(),
                m["platform"]["architecture"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        platforms,
        [
            ("linux".into(), "amd64".into()),
            ("linux".into(), "arm64".into())
        ]
    );
    let mut programs = BTreeSet::new();
    for m in index["manifests"].as_array().unwrap() {
        assert_eq!(m["mediaType"], MANIFEST_MT);
        let (_, manifest) = skopeo_raw(
            &reg,
            &format!(
                "{}/gadgets/trace_open@{}",
                reg.addr(),
                m["digest"].as_str().unwrap()
            ),
        );
        assert_eq!(manifest["config"]["mediaType"], CONFIG_MT);
        assert_eq!(
            manifest["config"]["annotations"]["org.opencontainers.image.title"],
            "config.yaml"
        );
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], PROGRAM_MT);
        assert_eq!(
            layers[0]["annotations"]["org.opencontainers.image.title"],
            "program.o"
        );
        assert_eq!(
            layers[0]["annotations"]["org.opencontainers.image.description"],
            "Trace openat(2) calls and their results"
        );
        programs.insert(layers[0]["digest"].as_str().unwrap().to_string());
    }
    assert_eq!(programs.len(), 2, "amd64 and arm64 programs differ");

    // Remove locally: the tag and every blob go.
    ok(&agent.ctl(&["image", "rm", &tag]), "rm");
    let (index_json, blobs) = snapshot(&agent);
    assert!(blobs.is_empty(), "blobs left after rm: {blobs:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&index_json).unwrap()["manifests"],
        json!([])
    );
    let err = fails(
        &agent.ctl(&["run", &tag, "--pull", "never"]),
        "run --pull never",
    );
    assert!(err.contains("not found locally"), "{err}");

    // Run pulls the missing image and sees a real event; the second run uses the cache.
    let err = run_sees_our_open(&agent, &tag, &[]);
    assert!(err.contains(&format!("pulled {tag} ({digest})")), "{err}");
    assert_eq!(
        list(&agent)
            .iter()
            .filter(|i| i["digest"] == digest.as_str())
            .count(),
        1
    );
    let err = run_sees_our_open(&agent, &tag, &["--pull", "never"]);
    assert!(!err.contains("pulled"), "{err}");
    // --pull always checks the registry even when the image is local.
    let out = agent.ctl(&[
        "run",
        &tag,
        "--pull",
        "always",
        "--timeout",
        "500ms",
        "-o",
        "json",
    ]);
    assert!(
        stderr(&out).contains(&format!("pulled {tag} ({digest})")),
        "{}",
        stderr(&out)
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(staging_is_empty(&agent));
}

/// Writes a blob into a hand-made OCI layout; returns its descriptor.
fn put_blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let d = Digest::of(bytes);
    std::fs::write(dir.join("blobs/sha256").join(d.hex()), bytes).unwrap();
    json!({"mediaType": media_type, "digest": d.to_string(), "size": bytes.len()})
}

/// An OCI layout made by hand (one manifest, no index), tagged `v1`.
fn craft_layout(dir: &Path, program: &[u8]) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(
        dir.join("oci-layout"),
        br#"{"imageLayoutVersion": "1.0.0"}"#,
    )
    .unwrap();
    let config = put_blob(
        dir,
        CONFIG_MT,
        &std::fs::read(repo_root().join("gadgets/trace_open/gadget.yaml")).unwrap(),
    );
    let layer = put_blob(dir, PROGRAM_MT, program);
    let manifest =
        json!({"schemaVersion": 2, "mediaType": MANIFEST_MT, "config": config, "layers": [layer]});
    let mut desc = put_blob(dir, MANIFEST_MT, &serde_json::to_vec(&manifest).unwrap());
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": "v1"});
    let index = json!({"schemaVersion": 2, "manifests": [desc]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn an_image_pushed_by_skopeo_from_a_hand_made_layout_runs() {
    require_registry!();
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let reg = Registry::start(false);
    let dir = TempDir::new("crafted");
    craft_layout(dir.path(), &std::fs::read(gadget("trace_open")).unwrap());
    let target = format!("{}/crafted/trace_open:v1", reg.addr());
    let out = reg.skopeo(&[
        "copy",
        &format!("oci:{}:v1", dir.path().display()),
        &format!("docker://{target}"),
        "--dest-tls-verify=false",
    ]);
    assert!(out.status.success(), "skopeo copy: {}", stderr(&out));
    let pulled = ok(&agent.ctl(&["pull", &target]), "pull");
    assert!(pulled.starts_with(&format!("{target} sha256:")), "{pulled}");
    run_sees_our_open(&agent, &target, &["--pull", "never"]);
}

#[test]
fn login_logout_and_registries_with_auth() {
    require_registry!();
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let reg = Registry::start(true);
    let tag = format!("{}/private/trace_open:v1", reg.addr());
    let digest = build(&agent, "trace_open", &tag);
    let auth_file = agent.state.path().join("auth.json");

    let err = fails(&agent.ctl(&["push", &tag]), "anonymous push");
    assert!(
        err.contains("authentication required")
            && err.contains(&format!("gadgetctl login {}", reg.addr())),
        "{err}"
    );

    let err = fails(
        &agent.ctl(&["login", "-u", USER, "-p", "wrong", &reg.addr()]),
        "login with a wrong password",
    );
    assert!(
        err.contains(&format!(
            "login as `{USER}` failed: wrong username or password"
        )),
        "{err}"
    );
    assert!(!auth_file.exists(), "a rejected login stored credentials");

    let mut login = Command::new(bin("gadgetctl"))
        .args([
            "--address",
            &agent.bus_address,
            "login",
            "-u",
            USER,
            "--password-stdin",
            &reg.addr(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(login.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    ok(&login.wait_with_output().unwrap(), "login");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&auth_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let creds: Value = serde_json::from_slice(&std::fs::read(&auth_file).unwrap()).unwrap();
    let expected = gadgetd_base64(&format!("{USER}:{PASSWORD}"));
    assert_eq!(creds["auths"][reg.addr()]["auth"], expected.as_str());

    assert_eq!(
        ok(&agent.ctl(&["push", &tag]), "push with credentials").trim(),
        digest
    );
    ok(&agent.ctl(&["image", "rm", &tag]), "rm");
    ok(&agent.ctl(&["pull", &tag]), "pull with credentials");

    ok(&agent.ctl(&["logout", &reg.addr()]), "logout");
    let creds: Value = serde_json::from_slice(&std::fs::read(&auth_file).unwrap()).unwrap();
    assert!(creds["auths"].get(reg.addr()).is_none());
    ok(&agent.ctl(&["image", "rm", &tag]), "rm");
    let err = fails(&agent.ctl(&["pull", &tag]), "pull after logout");
    assert!(err.contains("authentication required"), "{err}");
}

fn gadgetd_base64(s: &str) -> String {
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = out;
    out.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    stdout(&out.wait_with_output().unwrap())
}

#[test]
fn bad_input_gives_clear_errors_and_leaves_the_store_intact() {
    require_registry!();
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let mut reg = Registry::start(false);
    // An image that must survive everything below.
    let keeper = build(&agent, "trace_exec", "local/keeper:v1");
    let before = snapshot(&agent);
    let intact = |what: &str| {
        assert_eq!(snapshot(&agent), before, "store changed by {what}");
        assert!(staging_is_empty(&agent), "staging left by {what}");
        assert!(
            ok(
                &agent.ctl(&["image", "inspect", "local/keeper:v1"]),
                "inspect keeper"
            )
            .contains(&keeper)
        );
    };

    // An unknown tag.
    let err = fails(
        &agent.ctl(&["pull", &format!("{}/gadgets/nope:v9", reg.addr())]),
        "pull of an unknown tag",
    );
    assert!(err.contains("no such image or tag"), "{err}");
    intact("an unknown tag");

    // A malformed reference.
    let err = fails(
        &agent.ctl(&["pull", "Not A/Reference"]),
        "pull of a malformed reference",
    );
    assert!(
        err.contains("invalid image reference `Not A/Reference`"),
        "{err}"
    );

    // A blob whose content does not match its digest (tampered registry storage).
    let tag = format!("{}/tamper/trace_open:v1", reg.addr());
    build(&agent, "trace_open", &tag);
    ok(&agent.ctl(&["push", &tag]), "push");
    let inspect: Value =
        serde_json::from_str(&ok(&agent.ctl(&["image", "inspect", &tag]), "inspect")).unwrap();
    let program = inspect["manifest"]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&agent.ctl(&["image", "rm", &tag]), "rm");
    assert_eq!(snapshot(&agent), before);
    let data = reg.blob_data(&program);
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let err = fails(&agent.ctl(&["pull", &tag]), "pull of a tampered blob");
    assert!(
        err.contains("does not match its digest") && err.contains(&program),
        "{err}"
    );
    intact("a tampered blob");

    // A truncated archive.
    let tar = agent.state.path().join("keeper.tar");
    ok(
        &agent.ctl(&["image", "export", "local/keeper:v1", tar.to_str().unwrap()]),
        "export",
    );
    let full = std::fs::read(&tar).unwrap();
    let cut = agent.state.path().join("cut.tar");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    ok(&agent.ctl(&["image", "rm", "local/keeper:v1"]), "rm keeper");
    let empty = snapshot(&agent);
    let err = fails(
        &agent.ctl(&["image", "import", cut.to_str().unwrap()]),
        "import of a truncated archive",
    );
    assert!(
        err.contains("invalid archive") || err.contains("truncated"),
        "{err}"
    );
    assert_eq!(snapshot(&agent), empty);
    // The full archive restores the same image.
    let imported = ok(
        &agent.ctl(&["image", "import", tar.to_str().unwrap()]),
        "import",
    );
    assert_eq!(
        imported.trim(),
        format!("ghcr.io/gadgetd/gadget/local/keeper:v1 {keeper}")
    );
    intact("a truncated archive");

    // A tar with `../` paths.
    let evil = agent.state.path().join("evil.tar");
    let victim = agent.state.path().join("escaped");
    let py = format!(
        "import tarfile,io\nt=tarfile.open('{}','w')\nd=b'x'\ni=tarfile.TarInfo('../escaped')\ni.size=1\nt.addfile(i,io.BytesIO(d))\nt.close()",
        evil.display()
    );
    assert!(
        Command::new("python3")
            .args(["-c", &py])
            .status()
            .unwrap()
            .success()
    );
    let err = fails(
        &agent.ctl(&["image", "import", evil.to_str().unwrap()]),
        "import of a ../ archive",
    );
    assert!(err.contains("unsafe path `../escaped`"), "{err}");
    assert!(!victim.exists());
    intact("a ../ archive");

    // The registry dies in the middle of a pull (a large layer so there is a
    // middle, within the 64 MiB a program layer may have).
    let big = TempDir::new("big");
    let mut payload = vec![0u8; 60 << 20];
    for (i, b) in payload.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2654435761) >> 13) as u8;
    }
    craft_layout(big.path(), &payload);
    let target = format!("{}/big/blob:v1", reg.addr());
    let out = reg.skopeo(&[
        "copy",
        &format!("oci:{}:v1", big.path().display()),
        &format!("docker://{target}"),
        "--dest-tls-verify=false",
    ]);
    assert!(out.status.success(), "skopeo copy: {}", stderr(&out));
    let pull = agent.ctl_spawn(&["pull", &target]);
    let staging = images_dir(&agent).join(".staging");
    let start = Instant::now();
    let partial_seen = loop {
        let growing = std::fs::read_dir(&staging).unwrap().flatten().any(|d| {
            std::fs::read_dir(d.path())
                .map(|rd| {
                    rd.flatten().any(|f| {
                        f.file_name().to_string_lossy().starts_with("partial-")
                            && f.metadata().is_ok_and(|m| m.len() > 0)
                    })
                })
                .unwrap_or(false)
        });
        if growing || start.elapsed() > Duration::from_secs(30) {
            break growing;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    reg.kill();
    let out = pull.wait_with_output().unwrap();
    assert!(
        partial_seen,
        "the pull never started downloading: {}",
        stderr(&out)
    );
    let err = fails(&out, "a pull whose registry died");
    assert!(
        err.contains(&format!("registry {}", reg.addr()))
            && (err.contains("broke off") || err.contains("cannot talk")),
        "{err}"
    );
    intact("a registry dying mid-pull");
}

#[test]
fn bundled_archives_run_without_any_registry() {
    let bus = Bus::start();
    let bundled = TempDir::new("bundled");
    // Like `make images`: several gadget directories, one archive.
    let tar = bundled.path().join("gadgets.tar");
    let out = Command::new(bin("gadgetctl"))
        .current_dir("/")
        .args([
            "build",
            "--include",
            &include(),
            "-o",
            tar.to_str().unwrap(),
            &gadget_dir("trace_open"),
            &gadget_dir("trace_exec"),
        ])
        .output()
        .unwrap();
    let built = ok(&out, "build -o");
    let lines: Vec<Vec<&str>> = built
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 2, "{built}");
    assert_eq!((lines[0][0], lines[1][0]), ("trace_open", "trace_exec"));
    let dir_digest = lines[0][1].to_string();
    // The seed's syntax, from another directory, builds the same image (same
    // inputs, same digest).
    let seed_tar = bundled.path().join("seed.tar.out");
    let src = repo_root().join("gadgets/trace_open");
    let out = Command::new(bin("gadgetctl"))
        .args([
            "build",
            "--include",
            &include(),
            "-o",
            seed_tar.to_str().unwrap(),
        ])
        .args(["--prog", src.join("program.bpf.c").to_str().unwrap()])
        .args([
            "--definition",
            src.join("gadget.yaml").to_str().unwrap(),
            "mygadgetimage:latest",
        ])
        .output()
        .unwrap();
    let line = ok(&out, "seed-syntax build");
    assert_eq!(
        line.split_whitespace().take(2).collect::<Vec<_>>(),
        ["mygadgetimage:latest", dir_digest.as_str()]
    );
    let agent = Agent::start_with(&bus, &["--bundled-images", tar.to_str().unwrap()]);
    let images = list(&agent);
    let names: Vec<&str> = images
        .iter()
        .map(|i| i["reference"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ghcr.io/gadgetd/gadget/trace_exec:latest",
            "ghcr.io/gadgetd/gadget/trace_open:latest"
        ]
    );
    assert_eq!(images[1]["digest"], dir_digest.as_str());
    run_sees_our_open(&agent, "trace_open", &["--pull", "never"]);
    // Tags and inspect work on it like on any image.
    assert_eq!(
        ok(&agent.ctl(&["tag", "trace_open", "mine:v1"]), "tag").trim(),
        "ghcr.io/gadgetd/gadget/mine:v1"
    );
    let inspect: Value =
        serde_json::from_str(&ok(&agent.ctl(&["image", "inspect", "mine:v1"]), "inspect")).unwrap();
    assert_eq!(
        inspect["programs"][0]["section"],
        "tracepoint/syscalls/sys_enter_openat"
    );
    assert_eq!(inspect["params"][0]["name"], "pid");
    assert!(
        inspect["maps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "events" && m["type"] == "ringbuf")
    );
}

#[test]
fn pull_reports_progress_over_the_passed_fd() {
    require_registry!();
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let reg = Registry::start(false);
    let tag = format!("{}/progress/trace_open:v1", reg.addr());
    let digest = build(&agent, "trace_open", &tag);
    ok(&agent.ctl(&["push", &tag]), "push");
    ok(&agent.ctl(&["image", "rm", &tag]), "rm");

    let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let address = agent.bus_address.clone();
    let pulled = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let conn = zbus::connection::Builder::address(address.as_str())
                .unwrap()
                .build()
                .await
                .unwrap();
            let images = gadgetd_dbus::ImagesProxy::new(&conn).await.unwrap();
            use std::os::fd::AsFd;
            images
                .pull(
                    &tag,
                    Default::default(),
                    zbus::zvariant::Fd::from(theirs.as_fd()),
                )
                .await
        })
        .expect("Images.Pull");
    drop(theirs);
    assert_eq!(pulled, (tag.clone(), digest.clone()));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut &mine, &mut text).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let done: BTreeSet<(String, String)> = lines
        .iter()
        .filter(|l| l["state"] == "done")
        .map(|l| {
            assert_eq!(l["done"], l["total"], "{l}");
            (
                l["kind"].as_str().unwrap().to_string(),
                l["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let kinds: Vec<&str> = done.iter().map(|(k, _)| k.as_str()).collect();
    // One index, two manifests, one shared config, two programs.
    assert_eq!(
        kinds,
        [
            "config", "index", "manifest", "manifest", "program", "program"
        ],
        "{lines:?}"
    );
    assert!(done.contains(&("index".to_string(), digest)));
    assert!(
        lines
            .iter()
            .any(|l| l["state"] == "downloading" && l["kind"] == "program")
    );
}

/// A hand-made layout tagged `v1` whose index holds `entries` (manifest
/// JSON values, each with the platform to give its index entry, if any).
fn craft_index_layout(dir: &Path, entries: &[(Value, Option<Value>)]) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(
        dir.join("oci-layout"),
        br#"{"imageLayoutVersion": "1.0.0"}"#,
    )
    .unwrap();
    let manifests: Vec<Value> = entries
        .iter()
        .map(|(m, platform)| {
            let mut d = put_blob(dir, MANIFEST_MT, &serde_json::to_vec(m).unwrap());
            if let Some(p) = platform {
                d["platform"] = p.clone();
            }
            d
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": INDEX_MT, "manifests": manifests});
    let mut desc = put_blob(dir, INDEX_MT, &serde_json::to_vec(&index).unwrap());
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": "v1"});
    let top = json!({"schemaVersion": 2, "manifests": [desc]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
}

/// Layers gadgetd does not run (Inspektor Gadget's wasm and btfgen, an
/// unknown media type) and an index entry without a platform, next to a
/// non-gadget artifact (an attestation): the pull stores every blob, the
/// run uses the program layer and says which layers it ignored; an index
/// whose only platform-less entry is not a gadget fails at pull time.
#[test]
fn extra_layers_are_stored_and_named_and_a_platformless_entry_runs() {
    require_registry!();
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let reg = Registry::start(false);
    let dir = TempDir::new("layers");
    let d = dir.path();
    std::fs::create_dir_all(d.join("blobs/sha256")).unwrap();
    let config = put_blob(
        d,
        CONFIG_MT,
        &std::fs::read(repo_root().join("gadgets/trace_open/gadget.yaml")).unwrap(),
    );
    let program = put_blob(d, PROGRAM_MT, &std::fs::read(gadget("trace_open")).unwrap());
    let extra = [
        (
            "application/vnd.gadget.wasm.program.v1+binary",
            &b"\0asm\x01\0\0\0"[..],
        ),
        (
            "application/vnd.gadget.btfgen.v1+binary",
            &b"btfgen archive"[..],
        ),
        ("application/vnd.example.unknown.v7", &b"who knows"[..]),
    ];
    let extra: Vec<Value> = extra.iter().map(|(mt, b)| put_blob(d, mt, b)).collect();
    let mut layers = vec![program];
    layers.extend(extra.iter().cloned());
    let gadget_manifest =
        json!({"schemaVersion": 2, "mediaType": MANIFEST_MT, "config": config, "layers": layers});
    let att_config = put_blob(d, "application/vnd.oci.image.config.v1+json", b"{}");
    let att_layer = put_blob(d, "application/vnd.in-toto+json", b"{\"predicate\":{}}");
    let attestation = json!({"schemaVersion": 2, "mediaType": MANIFEST_MT, "config": att_config, "layers": [att_layer]});
    let unknown = json!({"os": "unknown", "architecture": "unknown"});
    craft_index_layout(
        d,
        &[
            (attestation.clone(), Some(unknown.clone())),
            (gadget_manifest, None),
        ],
    );
    let target = format!("{}/layers/trace_open:v1", reg.addr());
    let copy = |dir: &Path, target: &str| {
        let out = reg.skopeo(&[
            "copy",
            "--all",
            &format!("oci:{}:v1", dir.display()),
            &format!("docker://{target}"),
            "--dest-tls-verify=false",
        ]);
        assert!(out.status.success(), "skopeo copy: {}", stderr(&out));
    };
    copy(d, &target);
    ok(&agent.ctl(&["pull", &target]), "pull");
    let (_, blobs) = snapshot(&agent);
    for blob in extra.iter().chain([&att_layer, &att_config]) {
        let hex = blob["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        assert!(blobs.contains(hex), "{blob} was not stored");
    }
    let err = run_sees_our_open(&agent, &target, &["--pull", "never"]);
    let notes: Vec<&str> = err.lines().filter(|l| l.contains("note:")).collect();
    let want: Vec<String> = extra
        .iter()
        .map(|l| {
            format!(
                "gadgetctl: note: the image's {} layer {} is not used (gadgetd runs its eBPF program layer)",
                l["mediaType"].as_str().unwrap(),
                l["digest"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(notes, want, "{err}");

    // The only platform-less entry is not a gadget: refused when pulled.
    let bad = TempDir::new("layers-bad");
    std::fs::create_dir_all(bad.path().join("blobs/sha256")).unwrap();
    for b in [&att_config, &att_layer] {
        let hex = b["digest"].as_str().unwrap().trim_start_matches("sha256:");
        std::fs::copy(
            d.join("blobs/sha256").join(hex),
            bad.path().join("blobs/sha256").join(hex),
        )
        .unwrap();
    }
    let arm_only = {
        let config = put_blob(bad.path(), CONFIG_MT, b"name: arm only\n");
        let program = put_blob(bad.path(), PROGRAM_MT, b"\x7fELF not really");
        json!({"schemaVersion": 2, "mediaType": MANIFEST_MT, "config": config, "layers": [program]})
    };
    let other_arch = if cfg!(target_arch = "x86_64") {
        "arm64"
    } else {
        "amd64"
    };
    craft_index_layout(
        bad.path(),
        &[
            (attestation, None),
            (
                arm_only,
                Some(json!({"os": "linux", "architecture": other_arch})),
            ),
        ],
    );
    let bad_target = format!("{}/layers/bad:v1", reg.addr());
    copy(bad.path(), &bad_target);
    let before = snapshot(&agent);
    let out = agent.ctl(&["pull", &bad_target]);
    assert!(!out.status.success());
    let host = if cfg!(target_arch = "x86_64") {
        "amd64"
    } else {
        "arm64"
    };
    assert!(
        stderr(&out).contains(&format!(
            "image has no manifest for linux/{host} (it has: no platform, not a gadget manifest, linux/{other_arch})"
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&agent), before);
}

/// An image whose export takes long enough to be cut: a hand-made layout
/// with a 48 MiB program layer, imported as `local/big:v1`.
fn import_big_image(agent: &Agent) -> u64 {
    let dir = TempDir::new("big-layout");
    let program: Vec<u8> = (0..48u32 << 20).map(|i| (i % 251) as u8).collect();
    craft_layout(dir.path(), &program);
    let tar = agent.state.path().join("big-in.tar");
    let out = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-cf")
        .arg(&tar)
        .args(["oci-layout", "index.json", "blobs"])
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {}", stderr(&out));
    ok(
        &agent.ctl(&[
            "image",
            "import",
            "-t",
            "local/big:v1",
            tar.to_str().unwrap(),
        ]),
        "import of the big image",
    );
    std::fs::remove_file(&tar).unwrap();
    program.len() as u64
}

/// The size of the unnamed file (`O_TMPFILE`, shown as `DIR/#INODE
/// (deleted)`) process `pid` is writing in `dir`, once it has one.
fn unnamed_file_size(pid: u32, dir: &Path) -> Option<u64> {
    let prefix = format!("{}/#", dir.display());
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .find(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy().starts_with(&prefix))
        })
        .and_then(|fd| std::fs::metadata(fd.path()).ok())
        .map(|m| m.len())
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

/// Starts `image export local/big:v1 OUT` and stops it (SIGSTOP) once it
/// has written part of the archive, but not all of it (`total` bytes or
/// more); retries when the export outran the check. Returns the stopped
/// client and the bytes it had written.
fn export_stopped_midway(agent: &Agent, out: &Path, total: u64) -> (std::process::Child, u64) {
    use nix::sys::signal::Signal;
    let dir = out.parent().unwrap();
    for _ in 0..5 {
        let mut client =
            agent.ctl_spawn(&["image", "export", "local/big:v1", out.to_str().unwrap()]);
        let pid = client.id();
        let start = Instant::now();
        let written = loop {
            if unnamed_file_size(pid, dir).is_some_and(|n| n > 0) {
                signal(pid, Signal::SIGSTOP);
                break unnamed_file_size(pid, dir);
            }
            if client.try_wait().unwrap().is_some() || start.elapsed() > Duration::from_secs(20) {
                break None;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        match written {
            Some(n) if n < total => return (client, n),
            _ => {
                let _ = client.kill();
                let _ = client.wait();
                let _ = std::fs::remove_file(out);
            }
        }
    }
    panic!("five exports finished before they could be stopped midway");
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// `image export` cut off mid-stream never leaves a file under its name,
/// nor a partial one beside it: the client killed by SIGKILL, SIGTERM or
/// SIGINT, and the agent killed (SIGKILL) while it sends. A file already
/// under the name stays as it was. The agent lets go of each cut export
/// (its fds come back) and a whole export afterwards is named and complete.
#[test]
fn an_export_cut_off_midway_never_leaves_a_file_under_its_name() {
    use nix::sys::signal::Signal;
    let bus = Bus::start();
    let mut agent = Agent::start(&bus);
    let size = import_big_image(&agent);
    let out_dir = TempDir::new("export-out");
    let out = out_dir.path().join("exp.tar");
    let agent_fds = fd_count(agent.pid());

    for sig in [Signal::SIGKILL, Signal::SIGTERM, Signal::SIGINT] {
        let (mut client, written) = export_stopped_midway(&agent, &out, size);
        signal(client.id(), sig);
        signal(client.id(), Signal::SIGCONT);
        let status = client.wait().unwrap();
        assert!(!status.success(), "{sig}: the client exited with {status}");
        assert_eq!(
            names_in(out_dir.path()),
            Vec::<String>::new(),
            "{sig} after {written} of {size} bytes"
        );
        eprintln!("measured: client {sig} after {written} of {size} bytes: nothing left");
        wait_for(
            "the agent to let go of the cut export",
            Duration::from_secs(10),
            || fd_count(agent.pid()) <= agent_fds,
        );
    }

    // A whole export is named, complete, and replaces an older file.
    std::fs::write(&out, "older").unwrap();
    let said = stderr(&agent.ctl(&["image", "export", "local/big:v1", out.to_str().unwrap()]));
    assert!(
        said.starts_with(&format!("wrote {}", out.display())),
        "{said}"
    );
    let archive = std::fs::read(&out).unwrap();
    gadgetd::images::archive::check_complete(archive.as_slice()).unwrap();
    assert!(archive.len() as u64 > size);
    assert_eq!(names_in(out_dir.path()), vec!["exp.tar".to_string()]);

    // The agent killed mid-export: the client says so, the older file stays.
    std::fs::write(&out, "older").unwrap();
    let (client, written) = export_stopped_midway(&agent, &out, size);
    signal(agent.pid(), Signal::SIGKILL);
    let _ = agent.stop();
    signal(client.id(), Signal::SIGCONT);
    let result = client.wait_with_output().unwrap();
    let err = fails(&result, "an export whose agent was killed");
    assert!(
        err.contains("the export broke off after")
            && err.contains("the archive is incomplete")
            && err.contains(&format!("{} was not written", out.display())),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "older");
    assert_eq!(names_in(out_dir.path()), vec!["exp.tar".to_string()]);
    eprintln!(
        "measured: agent SIGKILL after {written} of {size} bytes: {}",
        err.trim()
    );
}
