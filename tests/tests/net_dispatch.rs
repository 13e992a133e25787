//! Socket filters behind the agent's network dispatcher
//! (`agent/runtime/src/net_dispatch.rs`): a gadget written in Inspektor
//! Gadget's style reads the packet's network namespace from `skb->cb[0]`
//! and finds the owner of the local socket with `gadget_socket_lookup(skb)`;
//! and a run follows network namespaces that appear after it started.

use std::collections::BTreeSet;
use std::time::Duration;

use gadgetd::testing::{Event, GadgetTest, Workload};
use gadgetd_tests::net::ip;
use gadgetd_tests::*;

fn ig_socket_owner() -> GadgetTest {
    require_root();
    GadgetTest::from_files(test_object("ig_socket_owner"), None).unwrap()
}

/// The packet fields of an event: (program, IP version, L4 protocol, source port, destination port).
fn packet(e: &Event) -> (u64, u64, u64, u64, u64) {
    let n = |k: &str| {
        e[k].as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {e:?}"))
    };
    (
        n("prog"),
        n("version"),
        n("l4proto"),
        n("sport"),
        n("dport"),
    )
}

/// The owner fields of an event: (pid, tid, comm, uid, gid, mount namespace).
fn owner(e: &Event) -> (u64, u64, String, u64, u64, u64) {
    let n = |k: &str| e[k].as_u64().unwrap();
    (
        n("proc.pid"),
        n("proc.tid"),
        e["proc.comm"].as_str().unwrap().to_string(),
        n("proc.creds.uid"),
        n("proc.creds.gid"),
        n("proc.mntns_id"),
    )
}

/// A python3 workload in a network namespace of its own: brings `lo` up,
/// drops to nobody/nogroup, binds its sockets, says ready, and on `go`
/// sends one UDP datagram over IPv4 and one over IPv6 and makes one TCP
/// connection, all between sockets it owns (ports 40901-40912).
fn workload(dir: &TempDir) -> (std::process::Child, std::path::PathBuf) {
    let (ready, go) = (dir.path().join("ready"), dir.path().join("go"));
    // nobody writes the readiness file.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let script = format!(
        "import socket,subprocess,os,time\n\
         subprocess.run(['ip','link','set','lo','up'],check=True)\n\
         os.setgid(65534); os.setuid(65534)\n\
         a=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); a.bind(('127.0.0.1',40901))\n\
         b=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); b.bind(('127.0.0.1',40902))\n\
         c=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM); c.bind(('::1',40903))\n\
         d=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM); d.bind(('::1',40904))\n\
         l=socket.socket(); l.bind(('127.0.0.1',40910)); l.listen()\n\
         t=socket.socket(); t.bind(('127.0.0.1',40911))\n\
         open('{r}','w').close()\n\
         while not os.path.exists('{g}'): time.sleep(0.01)\n\
         a.sendto(b'v4',('127.0.0.1',40902)); b.recv(16)\n\
         c.sendto(b'v6',('::1',40904)); d.recv(16)\n\
         t.connect(('127.0.0.1',40910)); s,_=l.accept(); t.send(b'tcp'); s.recv(16)\n\
         t.close(); s.close()\n\
         time.sleep(0.2)\n",
        r = ready.display(),
        g = go.display()
    );
    let child = Workload::new("python3")
        .args(["-c", &script])
        .in_new_netns()
        .spawn();
    wait_for("the workload's sockets", Duration::from_secs(10), || {
        ready.exists()
    });
    (child, go)
}

/// Checks the events of the workload's namespace: every packet of the
/// workload seen by both programs, each owned by the workload's process.
fn check_workload_events(capture: &gadgetd::testing::Capture, netns: u64, pid: u32, mntns: u64) {
    let ours = capture.all(|e| e["netns_id"] == netns);
    let nobody_owner = (
        pid as u64,
        pid as u64,
        "python3".to_string(),
        65534,
        65534,
        mntns,
    );
    // Every UDP packet; TCP's handshake (the first four packets on lo per
    // program: SYN and SYN-ACK, each out and in). The last ones come after
    // close, when the sockets have no owner any more.
    for prog in [1, 2] {
        let udp = ours
            .iter()
            .filter(|e| e["prog"] == prog && e["l4proto"] == 17);
        let handshake = ours
            .iter()
            .filter(|e| e["prog"] == prog && e["l4proto"] == 6)
            .take(4);
        for e in udp.chain(handshake) {
            assert_eq!(owner(e), nobody_owner, "owner of {e:?}");
        }
    }
    let udp: Vec<_> = ours
        .iter()
        .map(|e| packet(e))
        .filter(|p| p.2 == 17)
        .collect();
    // On lo each datagram passes twice (out, then in), seen by each program.
    let mut want = Vec::new();
    for prog in [1, 2] {
        for _ in 0..2 {
            want.push((prog, 4, 17, 40901, 40902));
            want.push((prog, 6, 17, 40903, 40904));
        }
    }
    let mut got = udp.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "UDP packets of the workload");
    let tcp: BTreeSet<_> = ours
        .iter()
        .map(|e| packet(e))
        .filter(|p| p.2 == 6)
        .collect();
    let want: BTreeSet<_> = [1, 2]
        .into_iter()
        .flat_map(|prog| [(prog, 4, 6, 40911, 40910), (prog, 4, 6, 40910, 40911)])
        .collect();
    assert_eq!(tcp, want, "TCP packets of the workload (both directions)");
    // Every packet says the namespace it was seen in.
    assert_eq!(
        capture.events.iter().find(|e| e["netns_id"] == 0),
        None,
        "an event without its namespace"
    );
}

/// A selected namespace (as a container selection picks it): the
/// IG-style gadget's two socket filters both see every packet with the
/// namespace in cb[0] and the process that owns each local socket.
#[test]
fn an_ig_style_socket_filter_sees_the_namespace_and_owner_of_each_packet() {
    let mut test = ig_socket_owner();
    let dir = TempDir::new("netdisp");
    let (mut child, go) = workload(&dir);
    let (pid, netns) = (child.id(), ns_of(child.id(), "net"));
    let capture = gadgetd_tests::net::trace_released_in(&mut test, netns, &go, &mut child);
    check_workload_events(&capture, netns, pid, own_ns("mnt"));
}

/// Every namespace of the host at once: one loaded gadget, one dispatcher
/// per namespace, and the workload's events still say its namespace.
#[test]
fn an_ig_style_socket_filter_tells_namespaces_apart_with_all_netns() {
    let mut test = ig_socket_owner();
    test.options.all_netns = true;
    let dir = TempDir::new("netdisp-all");
    let (mut child, go) = workload(&dir);
    let (pid, netns) = (child.id(), ns_of(child.id(), "net"));
    let capture = gadgetd_tests::net::trace_released(&test, &go, &mut child);
    check_workload_events(&capture, netns, pid, own_ns("mnt"));
}

/// Runs `ip ARGS`, panicking with its stderr on failure.
/// A network namespace `ip netns add` made (held by its bind mount under
/// /run/netns), with `lo` up; deleted on drop.
struct NamedNetns(String);

impl NamedNetns {
    fn add() -> NamedNetns {
        let ns = NamedNetns(format!("gdnd-{}", random_hex(4)));
        ip(&["netns", "add", &ns.0]);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }

    fn inode(&self) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(self.path()).unwrap())
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .output();
    }
}

/// Waits (on the run's runtime, whose tasks follow namespaces) until the
/// run's dispatchers are in namespace `inode` (`attached`) or not.
async fn wait_attached(
    net: &gadgetd::runtime::net_dispatch::NetDispatch,
    inode: u64,
    attached: bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while net.netns().contains(&inode) != attached {
        assert!(
            std::time::Instant::now() < deadline,
            "namespace {inode} attached should be {attached}; attached: {:?}",
            net.netns()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Events of the run until `n` of them are in namespace `netns` (5 s at most).
async fn events_in(run: &mut gadgetd::runtime::Running, netns: u64, n: usize) -> Vec<Event> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while got.len() < n {
        match tokio::time::timeout_at(deadline, run.next_record()).await {
            Ok(Ok(Some(gadgetd::runtime::Record::Event(e)))) if e["netns_id"] == netns => {
                got.push(e)
            }
            Ok(Ok(Some(_))) => {}
            other => panic!(
                "{} of {n} events in namespace {netns}, then {other:?}",
                got.len()
            ),
        }
    }
    got
}

/// A process in the namespace `ip netns exec NAME` enters: one UDP
/// datagram between two sockets it binds (40921 → 40922); its pid.
fn udp_in_named_netns(name: &str) -> u32 {
    let script = "import socket,os\n\
         a=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); a.bind(('127.0.0.1',40921))\n\
         b=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); b.bind(('127.0.0.1',40922))\n\
         a.sendto(b'x',('127.0.0.1',40922)); b.recv(8)\n\
         print(os.getpid())\n";
    let o = std::process::Command::new("ip")
        .args(["netns", "exec", name, "python3", "-c", script])
        .output()
        .unwrap();
    ok(&o, "python3 in the new namespace")
        .trim()
        .parse()
        .unwrap()
}

/// With every namespace of the host (`--all-netns`), a namespace created
/// after the run started (`ip netns add`, held by a bind mount; and
/// `unshare --net`, held by a process) is attached within a scan, its
/// packets say it and their owner, and it is detached when it goes.
#[test]
fn namespaces_created_after_the_start_are_followed_until_they_go() {
    let mut test = ig_socket_owner();
    test.options.all_netns = true;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut run = test.gadget.start(&test.options).unwrap();
        let net = run
            .net_dispatch()
            .expect("socket filters run behind dispatchers");
        assert!(net.netns().contains(&own_ns("net")), "{net:?}");

        // A bind-mounted namespace.
        let named = NamedNetns::add();
        let inode = named.inode();
        wait_attached(&net, inode, true).await;
        let pid = udp_in_named_netns(&named.0);
        let evs = events_in(&mut run, inode, 4).await;
        let mut packets: Vec<_> = evs.iter().map(packet).collect();
        packets.sort();
        assert_eq!(
            packets,
            [
                (1, 4, 17, 40921, 40922),
                (1, 4, 17, 40921, 40922),
                (2, 4, 17, 40921, 40922),
                (2, 4, 17, 40921, 40922)
            ]
        );
        for e in &evs {
            assert_eq!(e["proc.pid"], pid, "{e:?}");
            assert_eq!(e["proc.comm"], "python3", "{e:?}");
        }
        drop(named);
        wait_attached(&net, inode, false).await;

        // A namespace only a process holds.
        let mut child = Workload::new("sleep").arg("30").in_new_netns().spawn();
        let inode = ns_of(child.id(), "net");
        wait_attached(&net, inode, true).await;
        child.kill().unwrap();
        child.wait().unwrap();
        wait_attached(&net, inode, false).await;
    });
}

/// A run selecting a container by name that does not exist yet (podman):
/// its socket filters start attached nowhere, get the container's network
/// namespace when its runtime reports it started, see its packets with
/// their namespace and owner, and let the namespace go when it stops.
#[test]
fn a_container_started_after_the_run_gets_its_network_namespace_watched() {
    // Dropped last, in its order: the agent, its bus, podman.
    let Some(env) = gadgetd_tests::runtimes::podman_agent() else {
        return;
    };
    let (agent, p) = (&env.agent, &env.podman);
    let name = format!("gd-nd-{}", random_hex(4));
    let object = test_object("ig_socket_owner");
    let run = agent.ctl_spawn(&[
        "run",
        object.to_str().unwrap(),
        "--containername",
        &name,
        "-o",
        "json",
        "--timeout",
        "12s",
    ]);
    agent.wait_running(1);
    // The container listens on TCP 40950 and, once the agent had time to
    // hear of it, connects to itself (busybox nc has no UDP).
    p.run(
        &name,
        "nc -l -p 40950 >/dev/null & sleep 3; echo hello | nc -w1 127.0.0.1 40950; sleep 1",
    );
    let pid = p.pid(&name);
    let (netns, mntns) = (ns_of(pid, "net"), ns_of(pid, "mnt"));
    // The harness runs podman without networking: lo starts down.
    let o = std::process::Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-n",
            "ip",
            "link",
            "set",
            "lo",
            "up",
        ])
        .output()
        .unwrap();
    ok(&o, "nsenter ip link set lo up");
    let out = run.wait_with_output().unwrap();
    let evs = json_lines(&out);
    assert!(
        !evs.is_empty() && evs.iter().all(|e| e["netns_id"] == netns),
        "only the container's namespace {netns}: {evs:?} {}\n{}",
        stderr(&out),
        agent.log_text()
    );
    // Both programs see the connection both ways, each starting with the
    // client's SYN, whose socket is the container's nc.
    for prog in [1, 2] {
        let ours: Vec<_> = evs.iter().filter(|e| e["prog"] == prog).collect();
        assert!(ours.iter().all(|e| e["l4proto"] == 6 && e["version"] == 4));
        assert!(ours.iter().any(|e| e["sport"] == 40950), "{ours:?}");
        let syn = ours
            .first()
            .unwrap_or_else(|| panic!("program {prog}: {evs:?}"));
        assert_eq!(syn["dport"], 40950, "{syn:?}");
        assert_eq!(syn["proc.comm"], "nc", "{syn:?}");
        assert_eq!(syn["proc.mntns_id"], mntns, "{syn:?}");
        assert_eq!(syn["runtime.containerName"], name.as_str(), "{syn:?}");
    }
    let log = agent.log_text();
    assert!(
        log.contains("network namespace attached: a selected container started")
            && log.contains(&format!("netns={netns}")),
        "{log}"
    );
    // The container ended (its script did) before the run: its namespace went.
    assert!(
        log.contains("network namespace detached: its last selected container went"),
        "{log}"
    );
    p.remove(&name);
}

/// Bad input: a namespace whose process exited between discovery and
/// attach, and a pid reused by a process of another namespace, are named
/// in the error; nothing stays half-attached, and the run goes on to
/// attach a live namespace and see its packets.
#[test]
fn a_vanished_namespace_is_named_and_the_run_goes_on() {
    use gadgetd::runtime::follow_netns::attach_pid;
    let mut test = ig_socket_owner();
    // A container selection that matches nothing yet.
    test.options.netns_ids = Some(Vec::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut run = test.gadget.start(&test.options).unwrap();
        let net = run.net_dispatch().expect("socket filters run behind dispatchers");
        assert_eq!(net.netns(), Vec::<u64>::new(), "attached nowhere yet");

        let mut child = Workload::new("sleep").arg("30").in_new_netns().spawn();
        let (pid, inode) = (child.id(), ns_of(child.id(), "net"));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            attach_pid(&net, inode, pid).unwrap_err(),
            format!(
                "network namespace {inode} of process {pid}: cannot open /proc/{pid}/ns/net \
                 (No such file or directory (os error 2)); the process exited before it could be attached"
            )
        );
        let me = std::process::id();
        assert_eq!(
            attach_pid(&net, inode, me).unwrap_err(),
            format!(
                "network namespace {inode} of process {me}: the process is now in namespace {} \
                 (it exited and its pid was reused)",
                own_ns("net")
            )
        );
        assert_eq!(net.netns(), Vec::<u64>::new(), "nothing half-attached");

        let named = NamedNetns::add();
        let inode = named.inode();
        let file = std::fs::File::open(named.path()).unwrap();
        assert_eq!(net.attach(inode, &file), Ok(true));
        assert_eq!(net.attach(inode, &file), Ok(false), "once per namespace");
        let pid = udp_in_named_netns(&named.0);
        let evs = events_in(&mut run, inode, 4).await;
        assert!(evs.iter().all(|e| e["proc.pid"] == pid), "{evs:?}");
        assert!(net.detach(inode));
        assert!(!net.detach(inode));
    });
}

/// tc programs of a run selecting a container that does not exist yet
/// (podman): attached on the host side of the container's veth once it
/// starts and has one (the harness gives it one just after the start, as a
/// network plugin would), they count the test's datagrams to it on egress.
#[test]
fn tc_programs_follow_a_container_started_after_the_run() {
    // Dropped last, in its order: the agent, its bus, podman.
    let Some(env) = gadgetd_tests::runtimes::podman_agent() else {
        return;
    };
    let (agent, p) = (&env.agent, &env.podman);
    let name = format!("gd-ndtc-{}", random_hex(4));
    let port = 42_000 + (std::process::id() % 20_000) as u16;
    let object = test_object("tc_count");
    let run = agent.ctl_spawn(&[
        "run",
        object.to_str().unwrap(),
        "--containername",
        &name,
        "-p",
        &format!("targ_port={port}"),
        "-o",
        "json",
        "--timeout",
        "10s",
    ]);
    agent.wait_running(1);
    p.run(&name, "sleep 1000");
    let veth = gadgetd_tests::net::ContainerVeth::add(p.pid(&name), "gdndtc", 215);
    wait_for(
        "tc programs on the container's veth",
        Duration::from_secs(10),
        || {
            agent
                .log_text()
                .contains("tc programs attached on a selected container's veths")
        },
    );
    veth.send_to_container(port, 3, 100);
    let out = run.wait_with_output().unwrap();
    // Egress of the host-side veth only.
    gadgetd_tests::net::assert_tc_count_egress(&out, 3, 100);
    p.remove(&name);
}

/// The fields of an `ig_tc_owner` event: (ingress, L4 protocol, source port, destination port).
fn tc_packet(e: &Event) -> (u64, u64, u64, u64) {
    let n = |k: &str| {
        e[k].as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {e:?}"))
    };
    (n("ingress"), n("l4proto"), n("sport"), n("dport"))
}

/// A python3 script for a tc workload: drops to nobody/nogroup, binds
/// UDP sockets on `src` and `dst_bind`, says ready, and on `go` sends one
/// datagram from the first to `dst`; with `tcp`, also makes one TCP
/// connection between two sockets of its own on 127.0.0.1.
fn tc_script(
    dir: &TempDir,
    src: (&str, u16),
    dst: (&str, u16),
    dst_bind: bool,
    tcp: bool,
) -> String {
    let (ready, go) = (dir.path().join("ready"), dir.path().join("go"));
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut s = format!(
        "import socket,os,time\n\
         os.setgid(65534); os.setuid(65534)\n\
         a=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); a.bind(('{}',{}))\n",
        src.0, src.1
    );
    if dst_bind {
        s += &format!(
            "b=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); b.bind(('{}',{}))\n",
            dst.0, dst.1
        );
    }
    if tcp {
        s += "l=socket.socket(); l.bind(('127.0.0.1',40925)); l.listen()\n\
              t=socket.socket(); t.bind(('127.0.0.1',40926))\n";
    }
    s += &format!(
        "open('{}','w').close()\n\
         while not os.path.exists('{}'): time.sleep(0.01)\n\
         a.sendto(b'tc',('{}',{}))\n",
        ready.display(),
        go.display(),
        dst.0,
        dst.1
    );
    if dst_bind {
        s += "b.recv(16)\n";
    }
    if tcp {
        s += "t.connect(('127.0.0.1',40925)); c,_=l.accept(); t.send(b'tcp'); c.recv(16)\n\
              time.sleep(0.2); t.close(); c.close()\n";
    }
    s + "time.sleep(0.2)\n"
}

/// `--iface lo` in the agent's namespace: the tc dispatcher writes that
/// namespace into cb[0], so an IG-style tc gadget finds the owner of each
/// packet's local socket (`gadget_socket_lookup_with_direction`) on both
/// directions, for UDP and TCP.
#[test]
fn an_ig_style_tc_program_on_lo_sees_the_owner_of_each_packet() {
    require_root();
    let mut test = GadgetTest::from_files(test_object("ig_tc_owner"), None).unwrap();
    test.options.iface = Some("lo".into());
    let dir = TempDir::new("tcdisp-lo");
    let script = tc_script(&dir, ("127.0.0.1", 40921), ("127.0.0.1", 40922), true, true);
    let mut child = Workload::new("python3").args(["-c", &script]).spawn();
    let ready = dir.path().join("ready");
    wait_for("the workload's sockets", Duration::from_secs(10), || {
        ready.exists()
    });
    let pid = child.id();
    let capture = gadgetd_tests::net::trace_released(&test, &dir.path().join("go"), &mut child);
    let netns = own_ns("net");
    assert!(
        capture.events.iter().all(|e| e["netns_id"] == netns),
        "cb[0] is the agent's namespace: {:?}",
        capture.events
    );
    let nobody = (
        pid as u64,
        pid as u64,
        "python3".to_string(),
        65534,
        65534,
        own_ns("mnt"),
    );
    let udp: Vec<_> = capture
        .events
        .iter()
        .filter(|e| e["l4proto"] == 17)
        .collect();
    let mut seen: Vec<_> = udp.iter().map(|e| tc_packet(e)).collect();
    seen.sort();
    // On lo the datagram leaves (egress) and arrives (ingress) once each.
    assert_eq!(seen, [(0, 17, 40921, 40922), (1, 17, 40921, 40922)]);
    for e in &udp {
        assert_eq!(owner(e), nobody, "owner of {e:?}");
    }
    // TCP: the SYN and the SYN-ACK, each out and in (the sockets are open then).
    for ingress in [0, 1] {
        let handshake: Vec<_> = capture
            .events
            .iter()
            .filter(|e| e["l4proto"] == 6 && e["ingress"] == ingress)
            .take(2)
            .collect();
        let ports: Vec<_> = handshake
            .iter()
            .map(|e| (e["sport"].as_u64().unwrap(), e["dport"].as_u64().unwrap()))
            .collect();
        assert_eq!(ports, [(40926, 40925), (40925, 40926)], "{handshake:?}");
        for e in handshake {
            assert_eq!(owner(e), nobody, "owner of {e:?}");
        }
    }
}

/// A selected network namespace with a veth: the tc programs go on the
/// host side, and the dispatcher writes the selected namespace (not the
/// agent's) into cb[0], so the lookup finds the sending socket there.
#[test]
fn an_ig_style_tc_program_on_a_selected_namespace_veth_sees_its_owner() {
    require_root();
    let mut test = GadgetTest::from_files(test_object("ig_tc_owner"), None)
        .unwrap()
        .param("reverse", "true");
    let veth = gadgetd_tests::net::ContainerVeth::plan("gdtcd", 216);
    let (host_ip, ctr_ip) = (veth.host_ip.clone(), veth.ctr_ip.clone());
    let dir = TempDir::new("tcdisp-veth");
    let up = dir.path().join("up");
    // The workload waits for its veth before binding to its address.
    let script = format!(
        "import os,time\n\
         while not os.path.exists('{}'): time.sleep(0.01)\n{}",
        up.display(),
        tc_script(&dir, (&ctr_ip, 40931), (&host_ip, 40932), false, false)
    );
    let mut child = Workload::new("python3")
        .args(["-c", &script])
        .in_new_netns()
        .spawn();
    let pid = child.id();
    veth.connect(pid);
    std::fs::write(&up, b"").unwrap();
    let ready = dir.path().join("ready");
    wait_for("the workload's socket", Duration::from_secs(10), || {
        ready.exists()
    });
    let netns = ns_of(pid, "net");
    test.options.netns_ids = Some(vec![netns]);
    let sink = std::net::UdpSocket::bind((host_ip.as_str(), 40932)).unwrap();
    let capture = gadgetd_tests::net::trace_released(&test, &dir.path().join("go"), &mut child);
    let mut buf = [0u8; 16];
    assert_eq!(sink.recv(&mut buf).unwrap(), 2);
    // The datagram enters the host through the host side's ingress.
    let seen: Vec<_> = capture.events.iter().map(tc_packet).collect();
    assert_eq!(seen, [(1, 17, 40931, 40932)], "{:?}", capture.events);
    let e = &capture.events[0];
    assert_eq!(e["netns_id"], netns, "{e:?}");
    let nobody = (
        pid as u64,
        pid as u64,
        "python3".to_string(),
        65534,
        65534,
        own_ns("mnt"),
    );
    assert_eq!(owner(e), nobody, "{e:?}");
}
