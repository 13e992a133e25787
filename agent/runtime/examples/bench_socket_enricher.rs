//! What the socket enricher costs and holds (docs/enrichment.md):
//!
//! * per socket, a TCP connect/close loop (socket, connect to a local
//!   listener, close) and a UDP loop (socket, connect, send, close), without
//!   and with the enricher loaded;
//! * the map at N open sockets (bound UDP sockets): entries and the kernel's
//!   memlock for the map.
//!
//!     sudo cargo run --release -p gadgetd-runtime --example bench_socket_enricher -- [ITERATIONS] [OPEN]

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Instant;

use gadgetd_runtime::socket_enricher;

fn tcp_loop(n: usize, port: u16) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        drop(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn udp_loop(n: usize, port: u16) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        let s = UdpSocket::bind(("127.0.0.1", 0)).expect("bind");
        s.connect(("127.0.0.1", port)).expect("connect");
        s.send(b"x").expect("send");
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// Median of `rounds` runs of `f`.
fn median(rounds: usize, mut f: impl FnMut() -> f64) -> f64 {
    let mut v: Vec<f64> = (0..rounds).map(|_| f()).collect();
    v.sort_by(f64::total_cmp);
    v[rounds / 2]
}

fn memlock(path: &std::path::Path) -> String {
    let out = std::process::Command::new("bpftool")
        .args(["map", "show", "pinned"])
        .arg(path)
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .skip_while(|w| *w != "memlock")
            .nth(1)
            .unwrap_or("?")
            .to_string(),
        Err(e) => format!("? (bpftool: {e})"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(5000), |a| a.parse())?;
    let open: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let tcp_port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            drop(s);
        }
    });
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    let udp_port = sink.local_addr()?.port();
    let rounds = 5;
    // Warm up, then without the enricher.
    tcp_loop(n / 10, tcp_port);
    let tcp_without = median(rounds, || tcp_loop(n, tcp_port));
    let udp_without = median(rounds, || udp_loop(n, udp_port));
    let enricher = socket_enricher::acquire()?;
    let swept = enricher.swept();
    let tcp_with = median(rounds, || tcp_loop(n, tcp_port));
    let udp_with = median(rounds, || udp_loop(n, udp_port));
    println!("socket enricher, {n} iterations, median of {rounds} rounds:");
    println!(
        "  TCP connect/close: {tcp_without:.2} µs without, {tcp_with:.2} µs with (+{:.2} µs)",
        tcp_with - tcp_without
    );
    println!(
        "  UDP socket/connect/send/close: {udp_without:.2} µs without, {udp_with:.2} µs with (+{:.2} µs)",
        udp_with - udp_without
    );
    println!("  sockets found by the start-up sweep: {swept}");
    let before = enricher.len();
    let mut held = Vec::with_capacity(open);
    for _ in 0..open {
        held.push(UdpSocket::bind(("127.0.0.1", 0))?);
    }
    let with_open = enricher.len();
    println!(
        "  {open} more open (bound) sockets: {before} -> {with_open} entries; map memlock {} (preallocated for {} entries)",
        memlock(&enricher.map_path()),
        16384
    );
    drop(held);
    println!("  after closing them: {} entries", enricher.len());
    Ok(())
}
