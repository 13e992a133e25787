//! Network set-ups the tests share: `ip`, a veth into a container's network
//! namespace as a network plugin makes one, UDP datagrams to count.

use crate::ok;

/// Runs `ip ARGS`; a failure fails the test with ip's output.
pub fn ip(args: &[&str]) {
    let o = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    ok(&o, &format!("ip {}", args.join(" ")));
}

/// A veth whose host end `host` (`10.SUBNET.N.1/24`) is in the test's
/// network namespace and whose other end is `eth0` (`10.SUBNET.N.2/24`) in
/// the namespace of a container's process, both up: what a network plugin
/// gives a container that the harness runs without networking. `N` comes
/// from the test's pid, so parallel test binaries differ. Deleting the host
/// end on drop removes both.
pub struct ContainerVeth {
    pub host: String,
    pub host_ip: String,
    pub ctr_ip: String,
}

impl ContainerVeth {
    /// Into the network namespace of process `pid`: [`ContainerVeth::plan`]
    /// and [`ContainerVeth::connect`].
    pub fn add(pid: u32, tag: &str, subnet: u8) -> ContainerVeth {
        let veth = ContainerVeth::plan(tag, subnet);
        veth.connect(pid);
        veth
    }

    /// The names and addresses only (for a workload that must know them
    /// before it runs); the host end is named `{tag}{id}` (at most 15
    /// bytes: keep `tag` to 7).
    pub fn plan(tag: &str, subnet: u8) -> ContainerVeth {
        let id = std::process::id() % 100_000;
        let net = (id % 200) as u8;
        ContainerVeth {
            host: format!("{tag}{id}"),
            host_ip: format!("10.{subnet}.{net}.1"),
            ctr_ip: format!("10.{subnet}.{net}.2"),
        }
    }

    /// Makes the veth, its far end `eth0` in the namespace of process
    /// `pid`, addresses set, both ends and that namespace's `lo` up.
    pub fn connect(&self, pid: u32) {
        let (host, pid) = (self.host.as_str(), pid.to_string());
        ip(&[
            "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", &pid,
        ]);
        ip(&["addr", "add", &format!("{}/24", self.host_ip), "dev", host]);
        ip(&["link", "set", host, "up"]);
        for args in [
            vec!["addr", "add", &format!("{}/24", self.ctr_ip), "dev", "eth0"],
            vec!["link", "set", "eth0", "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            let o = std::process::Command::new("nsenter")
                .args(["-t", &pid, "-n", "ip"])
                .args(&args)
                .output()
                .unwrap();
            ok(&o, &format!("nsenter ip {}", args.join(" ")));
        }
    }

    /// `count` UDP datagrams of `size` bytes from the host end to the
    /// container's `port` (nothing needs to listen: tc counts them on the way).
    pub fn send_to_container(&self, port: u16, count: usize, size: usize) {
        let ip = |a: &str| a.parse::<std::net::IpAddr>().unwrap();
        send_udp(
            ip(&self.host_ip),
            (ip(&self.ctr_ip), port).into(),
            count,
            size,
        );
    }
}

impl Drop for ContainerVeth {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host])
            .output();
    }
}

/// `count` UDP datagrams of `size` bytes from a socket bound to `from` (any
/// port) to `to` (nothing needs to listen).
pub fn send_udp(from: std::net::IpAddr, to: std::net::SocketAddr, count: usize, size: usize) {
    let sock = std::net::UdpSocket::bind((from, 0)).unwrap();
    let payload = vec![3u8; size];
    for _ in 0..count {
        sock.send_to(&payload, to).unwrap();
    }
}

/// Lets a packet-sending workload go (it waits for the file `go` to
/// exist) and waits for it to exit successfully.
pub fn release(go: &std::path::Path, workload: &mut std::process::Child) {
    std::fs::write(go, b"").unwrap();
    assert!(workload.wait().unwrap().success());
}

/// `test` traced while the packet workload `workload` is released (see
/// [`release`]); its capture.
pub fn trace_released(
    test: &gadgetd::testing::GadgetTest,
    go: &std::path::Path,
    workload: &mut std::process::Child,
) -> gadgetd::testing::Capture {
    test.trace(|| release(go, workload)).unwrap()
}

/// [`trace_released`] with the gadget on the network namespace `netns`
/// only (as for a selected container): every event must come from it.
pub fn trace_released_in(
    test: &mut gadgetd::testing::GadgetTest,
    netns: u64,
    go: &std::path::Path,
    workload: &mut std::process::Child,
) -> gadgetd::testing::Capture {
    test.options.netns_ids = Some(vec![netns]);
    let capture = trace_released(test, go, workload);
    assert!(
        capture.events.iter().all(|e| e["netns_id"] == netns),
        "only the selected namespace: {:?}",
        capture.events
    );
    capture
}

/// Checks the output of a `tc_count` run (tests/bpf/tc_count.bpf.c, one
/// event source per attach style 1 to 7) that saw `n` UDP datagrams of
/// `payload` bytes leave the host end of a container's veth: `n` events
/// from each egress source (tc/egress, tcx/egress, classifier/egress/…:
/// 2, 4 and 6), none from the others, each the whole IPv4 frame.
pub fn assert_tc_count_egress(out: &std::process::Output, n: usize, payload: usize) {
    let evs = crate::json_lines(out);
    let per_source: Vec<usize> = (1..=7)
        .map(|s| evs.iter().filter(|e| e["source"] == s).count())
        .collect();
    assert_eq!(per_source, [0, n, 0, n, 0, n, 0], "{}", crate::stderr(out));
    assert!(
        evs.iter().all(|e| e["len"] == 14 + 20 + 8 + payload),
        "{evs:?}"
    );
}
