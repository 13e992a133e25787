//! The committed introspection XML (`dbus/org.gadgetd.Agent1.xml`) is the D-Bus contract outside
//! tools read; this test keeps it equal to what a live agent serves.
//! Regenerate after an API change with `GADGETD_UPDATE_XML=1 make test` (then review the diff).

use gadgetd_tests::*;
use std::time::Duration;

/// The `<interface name="org.gadgetd.…">` blocks of an introspection document, in order.
fn gadgetd_interfaces(xml: &str) -> Vec<String> {
    // Child nodes (zbus may describe them inline) belong to other objects.
    let own = xml.find("<node name=").map_or(xml, |child| &xml[..child]);
    let mut blocks = Vec::new();
    let mut rest = own;
    while let Some(start) = rest.find("<interface name=\"org.gadgetd.") {
        let end = rest[start..]
            .find("</interface>")
            .expect("unterminated interface")
            + start;
        let block = &rest[start..end + "</interface>".len()];
        // The first line lost its indentation to the search; the others keep theirs.
        let lines: Vec<&str> = block.lines().map(str::trim_end).collect();
        blocks.push(format!("  {}", lines.join("\n")));
        rest = &rest[end..];
    }
    blocks
}

fn introspect(address: &str, path: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = zbus::connection::Builder::address(address)
            .unwrap()
            .build()
            .await
            .unwrap();
        let proxy = zbus::fdo::IntrospectableProxy::builder(&conn)
            .destination(gadgetd_dbus::names::BUS_NAME)
            .unwrap()
            .path(path)
            .unwrap()
            .build()
            .await
            .unwrap();
        proxy.introspect().await.unwrap()
    })
}

#[test]
fn introspection_xml_matches_the_live_agent() {
    let bus = Bus::start();
    let agent = Agent::start(&bus);
    let me = std::process::id().to_string();
    let object = gadget("trace_open");
    let mut run = agent.ctl_spawn(&[
        "run",
        object.to_str().unwrap(),
        "-o",
        "json",
        "-p",
        &format!("targ_pid={me}"),
    ]);
    let mut id = String::new();
    for _ in 0..200 {
        let list = json_lines(&agent.ctl(&["list", "-o", "json"]));
        if let Some(first) = list.first() {
            id = first["id"].as_str().unwrap().to_string();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!id.is_empty(), "the run never showed up in list");

    let mut blocks =
        gadgetd_interfaces(&introspect(&bus.address, gadgetd_dbus::names::MANAGER_PATH));
    blocks.extend(gadgetd_interfaces(&introspect(
        &bus.address,
        &gadgetd_dbus::names::run_path(&id),
    )));
    let _ = agent.ctl(&["stop", &id]);
    let _ = run.wait();
    assert!(
        blocks
            .iter()
            .any(|b| b.contains("org.gadgetd.Agent1.Manager")),
        "no Manager interface served"
    );
    assert!(
        blocks.iter().any(|b| b.contains("org.gadgetd.Agent1.Run")),
        "no Run interface served"
    );

    let live = format!(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \
         \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n\
         <!-- gadgetd's D-Bus API: {manager} (Manager, Images) and {run_prefix}/<id> (Run). \
         Generated from a live agent by tests/tests/contract.rs. -->\n<node>\n{}\n</node>\n",
        blocks.join("\n"),
        manager = gadgetd_dbus::names::MANAGER_PATH,
        run_prefix = gadgetd_dbus::names::RUN_PATH_PREFIX,
    );
    let committed_path = repo_root().join("dbus/org.gadgetd.Agent1.xml");
    if std::env::var_os("GADGETD_UPDATE_XML").is_some() {
        std::fs::write(&committed_path, &live).unwrap();
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert_eq!(
        committed, live,
        "dbus/org.gadgetd.Agent1.xml differs from the live agent; regenerate with GADGETD_UPDATE_XML=1"
    );
}
