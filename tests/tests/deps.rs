//! `make run` installs only what building and running needs; the test-only
//! packages (container runtimes, packaging and boot tools) come with `make test`.

use std::process::Command;

use gadgetd_tests::repo_root;

fn set(name: &str) -> Vec<String> {
    let out = Command::new(repo_root().join(".ci/install-deps"))
        .args([name, "--list"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The install-deps set a make target asks for (`make -n` prints the recipe).
fn deps_set_of(target: &str) -> String {
    let out = Command::new("make")
        .args(["-n", "-C"])
        .arg(repo_root())
        .arg(target)
        .env("CARGO", "true")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("./.ci/install-deps "))
        .unwrap_or_else(|| panic!("`make -n {target}` runs no install-deps:\n{text}"))
        .to_string()
}

#[test]
fn make_run_installs_only_what_building_and_running_need() {
    let build = set("build");
    let test = set("test");
    for needed in ["clang", "llvm", "libbpf-dev", "protobuf-compiler"] {
        assert!(
            build.iter().any(|p| p == needed),
            "{needed} missing from {build:?}"
        );
    }
    for test_only in [
        "docker.io",
        "podman",
        "containerd",
        "lintian",
        "debootstrap",
        "docker-registry",
        "skopeo",
    ] {
        assert!(
            !build.iter().any(|p| p == test_only),
            "{test_only} in the build set {build:?}"
        );
        assert!(
            test.iter().any(|p| p == test_only),
            "{test_only} missing from {test:?}"
        );
    }
    assert!(
        build.iter().all(|p| test.contains(p)),
        "the test set includes the build set"
    );
    assert_eq!(deps_set_of("run"), "build");
    assert_eq!(deps_set_of("test"), "test");
    let bad = Command::new(repo_root().join(".ci/install-deps"))
        .arg("everything")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("unknown set `everything`; expected `build`, `test` or `bench`")
    );
}
