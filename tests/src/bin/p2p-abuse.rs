//! What a hostile local user can do to gadgetd's peer-to-peer socket, for
//! tests/tests/security.rs (run as an unprivileged user with setpriv).
//! Prints one `key=value` line per measurement and holds what it opened
//! until stdin closes, so the test decides when it lets go.
//!
//! ```text
//! p2p-abuse idle SOCKET N            N connections that never say a word
//! p2p-abuse no-read SOCKET N         one handshaken connection that sends N
//!                                    Introspect calls and never reads a reply
//! p2p-abuse describe SOCKET PATH [N] DescribeObject with PATH's fd (a FIFO is
//!                                    opened without blocking) and an N-byte
//!                                    definition
//! p2p-abuse export SOCKET IMAGE N    N Exports whose fds are never read
//! p2p-abuse params SOCKET RUN_ID     the Params property of a run
//! ```

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use gadgetd_dbus::images::ImagesProxy;
use gadgetd_dbus::names;
use gadgetd_dbus::proxy::RunProxy;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    match arg(0) {
        "idle" => idle(arg(1), arg(2).parse().unwrap()),
        "no-read" => no_read(arg(1), arg(2).parse().unwrap()),
        "describe" => block_on(describe(arg(1), arg(2), arg(3).parse().unwrap_or(0))),
        "export" => block_on(export(arg(1), arg(2), arg(3).parse().unwrap())),
        "params" => block_on(params(arg(1), arg(2))),
        other => {
            eprintln!("p2p-abuse: unknown mode `{other}`");
            std::process::exit(2);
        }
    }
}

fn block_on(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Waits until the test closes our stdin.
fn hold() {
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// Whether the agent closed `s` (EOF) without our sending anything.
fn closed_by_peer(s: &UnixStream) -> bool {
    // The agent never sends first (the client starts the handshake), so
    // reading takes nothing away.
    let mut b = [0u8; 1];
    s.set_nonblocking(true).unwrap();
    match (&*s).read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

fn count_closed(conns: &[UnixStream]) -> usize {
    conns.iter().filter(|s| closed_by_peer(s)).count()
}

fn idle(socket: &str, n: usize) {
    let mut conns = Vec::new();
    let mut failed = 0;
    for _ in 0..n {
        match UnixStream::connect(socket) {
            Ok(s) => conns.push(s),
            Err(_) => failed += 1,
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "after_1s connected={} failed={failed} closed={}",
        conns.len(),
        count_closed(&conns)
    );
    // Past the agent's handshake limit (10 s).
    std::thread::sleep(Duration::from_secs(11));
    println!("after_12s closed={}", count_closed(&conns));
    hold();
}

/// The D-Bus handshake (EXTERNAL with our uid, fds agreed), by hand.
fn handshake(s: &mut UnixStream) {
    let uid = nix::unistd::getuid().as_raw().to_string();
    let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
    s.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
        .unwrap();
    let ok = read_line(s);
    assert!(ok.starts_with("OK "), "handshake: {ok}");
    s.write_all(b"NEGOTIATE_UNIX_FD\r\n").unwrap();
    let agree = read_line(s);
    assert!(agree.starts_with("AGREE_UNIX_FD"), "handshake: {agree}");
    s.write_all(b"BEGIN\r\n").unwrap();
}

fn read_line(s: &mut UnixStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        s.read_exact(&mut b).unwrap();
        line.push(b[0]);
    }
    String::from_utf8_lossy(&line).trim().to_string()
}

fn no_read(socket: &str, n: usize) {
    let mut s = UnixStream::connect(socket).unwrap();
    handshake(&mut s);
    s.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let mut sent = 0;
    'calls: for _ in 0..n {
        let msg = zbus::Message::method_call(names::MANAGER_PATH, "Introspect")
            .unwrap()
            .interface("org.freedesktop.DBus.Introspectable")
            .unwrap()
            .build(&())
            .unwrap();
        let mut bytes: &[u8] = msg.data();
        while !bytes.is_empty() {
            match s.write(bytes) {
                Ok(k) => bytes = &bytes[k..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // The agent stopped taking our calls: its replies fill the socket.
                    if start.elapsed() > Duration::from_secs(3) {
                        break 'calls;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break 'calls,
            }
        }
        sent += 1;
    }
    println!("sent={sent}");
    hold();
    // Whether the agent cut us off meanwhile (EOF after its queued replies).
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = Vec::new();
    let eof = s.read_to_end(&mut sink).is_ok();
    println!("disconnected={eof}");
}

async fn p2p(socket: &str) -> zbus::Connection {
    let s = tokio::net::UnixStream::connect(socket).await.unwrap();
    zbus::connection::Builder::unix_stream(s)
        .p2p()
        .build()
        .await
        .unwrap()
}

async fn describe(socket: &str, path: &str, definition_bytes: usize) {
    use std::os::unix::fs::OpenOptionsExt;
    let conn = p2p(socket).await;
    // O_RDWR|O_NONBLOCK: opening a FIFO this way never waits for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap();
    let proxy = gadgetd_dbus::gadgets::GadgetsProxy::builder(&conn)
        .build()
        .await
        .unwrap();
    let definition = format!("name: big\ndescription: {}\n", "x".repeat(definition_bytes));
    let definition = if definition_bytes == 0 {
        ""
    } else {
        &definition
    };
    let start = Instant::now();
    let r = proxy
        .describe_object(
            zbus::zvariant::Fd::from(file.as_fd()),
            definition,
            Default::default(),
        )
        .await;
    println!("ms={}", start.elapsed().as_millis());
    match r {
        Ok(json) => println!("ok={}", json.len()),
        Err(e) => println!("error={e}"),
    }
}

async fn export(socket: &str, image: &str, n: usize) {
    let conn = p2p(socket).await;
    let proxy = ImagesProxy::builder(&conn).build().await.unwrap();
    let mut held = Vec::new();
    for i in 0..n {
        match proxy.export(vec![image]).await {
            Ok(fd) => held.push(fd),
            Err(e) => println!("export{i}_error={e}"),
        }
    }
    println!("exports_held={}", held.len());
    tokio::task::spawn_blocking(hold).await.unwrap();
}

async fn params(socket: &str, id: &str) {
    let conn = p2p(socket).await;
    let run = RunProxy::builder(&conn)
        .path(names::run_path(id))
        .unwrap()
        .build()
        .await
        .unwrap();
    match run.params().await {
        Ok(p) => {
            let mut p: Vec<_> = p.into_iter().collect();
            p.sort();
            println!("params={p:?}");
        }
        Err(e) => println!("error={e}"),
    }
}
