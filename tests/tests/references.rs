//! Image references as docker, podman and skopeo spell them (issue 18
//! item 10), and the default registry from the agent's settings file
//! (`/etc/gadgetd/registries.toml`, `--registries-config`) or its flag,
//! against a real docker-registry on loopback.

use std::process::Command;

use gadgetd_tests::registry::Registry;
use gadgetd_tests::*;

fn include() -> String {
    repo_root().join("include").display().to_string()
}

fn references(agent: &Agent) -> Vec<String> {
    let out = agent.ctl(&["image", "list", "-o", "json"]);
    ok(&out, "image list");
    json_lines(&out)
        .iter()
        .map(|i| i["reference"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn bare_names_resolve_to_the_registry_of_the_settings_file_and_the_flag_wins() {
    require_registry!();
    let reg = Registry::start(false);
    let port = reg.addr().rsplit_once(':').unwrap().1.to_string();
    let dir = TempDir::new("regconf");
    let conf = dir.path().join("registries.toml");
    // A host in capitals, as someone may type it: used lower-cased.
    std::fs::write(
        &conf,
        format!("# test\ndefault-registry = \"LocalHost:{port}/gadgets\"\n"),
    )
    .unwrap();
    let bus = Bus::start();
    let agent = Agent::start_with(&bus, &["--registries-config", conf.to_str().unwrap()]);
    let full = format!("localhost:{port}/gadgets/trace_open:v1");
    let gadget = repo_root().join("gadgets/trace_open");
    ok(
        &agent.ctl(&[
            "build",
            "--include",
            &include(),
            "-t",
            &full,
            gadget.to_str().unwrap(),
        ]),
        "build",
    );
    ok(&agent.ctl(&["push", "trace_open:v1"]), "push by bare name");
    // The bare name, the full one in capitals and with :443-less port all
    // name the same image.
    ok(
        &agent.ctl(&["image", "rm", "trace_open:v1"]),
        "rm by bare name",
    );
    assert!(!references(&agent).contains(&full));
    ok(&agent.ctl(&["pull", "trace_open:v1"]), "pull by bare name");
    assert!(
        references(&agent).contains(&full),
        "{:?}",
        references(&agent)
    );
    ok(
        &agent.ctl(&["pull", &format!("LOCALHOST:{port}/gadgets/trace_open:v1")]),
        "pull in capitals",
    );
    let refs = references(&agent);
    assert_eq!(
        refs.iter()
            .filter(|r| r.contains("trace_open"))
            .collect::<Vec<_>>(),
        [&full],
        "one image under one name"
    );
    let e = fails(
        &agent.ctl(&["pull", &format!("localhost:{port}/Gadgets/x")]),
        "pull",
    );
    assert!(
        e.contains("must be lowercase (`Gadgets` is not)"),
        "the error names the rule: {e}"
    );

    // The flag wins over the file.
    let bus2 = Bus::start();
    let flagged = Agent::start_with(
        &bus2,
        &[
            "--registries-config",
            conf.to_str().unwrap(),
            "--default-registry",
            &format!("{}/gadgets", reg.addr()),
        ],
    );
    ok(
        &flagged.ctl(&["pull", "trace_open:v1"]),
        "pull with the flag's registry",
    );
    let want = format!("{}/gadgets/trace_open:v1", reg.addr());
    assert!(
        references(&flagged).contains(&want),
        "{:?}",
        references(&flagged)
    );
}

#[test]
fn a_bad_settings_file_stops_the_agent_with_the_file_line_and_rule() {
    let dir = TempDir::new("regconf-bad");
    let conf = dir.path().join("registries.toml");
    for (text, want) in [
        (
            "\ndefault-registery = \"r.io\"\n",
            "registries.toml (line 2): unknown field `default-registery`",
        ),
        (
            "default-registry = \"r.io:0/g\"\n",
            "`r.io:0/g` is not a registry prefix (REGISTRY[:PORT][/PATH]): registry `r.io:0`: port `0` is not a number from 1 to 65535",
        ),
    ] {
        std::fs::write(&conf, text).unwrap();
        let out = Command::new(bin("gadgetd"))
            .arg("--listen")
            .arg(dir.path().join("sock"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--registries-config")
            .arg(&conf)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        let e = stderr(&out);
        assert!(e.contains(want), "{text}: {e}");
    }
}
