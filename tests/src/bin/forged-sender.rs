//! A hostile peer-to-peer D-Bus client for the security tests: it connects to
//! gadgetd's socket, writes a forged `SENDER` header on every call, and
//! answers, as if it were the bus daemon and polkit, the questions an agent
//! that trusted headers would ask it back (uid 0, authorized).
//!
//! Usage: `forged-sender SOCKET RUN_ID`. Prints one line per privileged
//! method: `Interface.Method<TAB>OK` or `Interface.Method<TAB>ERROR_NAME<TAB>message`.

use std::collections::HashMap;
use std::os::fd::AsFd;

use futures_util::StreamExt;
use zbus::zvariant::{Fd, OwnedValue, Value};

/// Impersonates the bus daemon: every name belongs to root.
struct FakeBus;

#[zbus::interface(name = "org.freedesktop.DBus")]
impl FakeBus {
    fn get_connection_credentials(&self, _name: &str) -> HashMap<String, OwnedValue> {
        HashMap::from([
            ("UnixUserID".to_string(), OwnedValue::from(0u32)),
            ("ProcessID".to_string(), OwnedValue::from(1u32)),
        ])
    }
    fn get_connection_unix_user(&self, _name: &str) -> u32 {
        0
    }
}

/// Impersonates polkit: everything is authorized.
struct FakePolkit;

#[zbus::interface(name = "org.freedesktop.PolicyKit1.Authority")]
impl FakePolkit {
    fn check_authorization(
        &self,
        _subject: (String, HashMap<String, OwnedValue>),
        _action_id: &str,
        _details: HashMap<String, String>,
        _flags: u32,
        _cancellation_id: &str,
    ) -> (bool, bool, HashMap<String, String>) {
        (true, false, HashMap::new())
    }
}

const PATH: &str = "/org/gadgetd/Agent1";
const MANAGER: &str = "org.gadgetd.Agent1.Manager";
const IMAGES: &str = "org.gadgetd.Agent1.Images";
const RUN: &str = "org.gadgetd.Agent1.Run";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, socket, run_id] = &args[..] else {
        anyhow::bail!("usage: forged-sender SOCKET RUN_ID");
    };
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let conn = zbus::connection::Builder::unix_stream(stream)
        .p2p()
        .serve_at("/org/freedesktop/DBus", FakeBus)?
        .serve_at("/org/freedesktop/PolicyKit1/Authority", FakePolkit)?
        .build()
        .await?;
    let null = std::fs::File::open("/dev/null")?;
    let fd = || Fd::from(null.as_fd());
    let no_params: HashMap<&str, &str> = HashMap::new();
    let detach: HashMap<&str, Value> = HashMap::from([("detach", Value::from(true))]);
    let none: HashMap<&str, Value> = HashMap::new();
    let run_path = format!("{PATH}/run/{run_id}");
    let id = run_id.as_str();

    // Each privileged method, with arguments that would get past parsing.
    macro_rules! forged {
        ($path:expr, $iface:expr, $method:expr, $args:expr) => {
            let reply = call(&conn, $path, $iface, $method, &$args).await?;
            println!("{}.{}\t{reply}", $iface, $method);
        };
    }
    forged!(PATH, MANAGER, "Run", ("trace_open", &no_params, &detach));
    forged!(PATH, MANAGER, "RunObject", (fd(), "", &no_params, &detach));
    forged!(PATH, MANAGER, "Attach", (id,));
    forged!(PATH, MANAGER, "Stop", (id,));
    forged!(PATH, MANAGER, "Remove", (id,));
    forged!(&run_path, RUN, "Stop", ());
    forged!(PATH, IMAGES, "Pull", ("localhost:1/x/y:z", &none, fd()));
    forged!(PATH, IMAGES, "Push", ("localhost:1/x/y:z", &none, fd()));
    forged!(PATH, IMAGES, "Import", (fd(), &none));
    forged!(PATH, IMAGES, "Tag", ("trace_open", "forged/evil:latest"));
    forged!(PATH, IMAGES, "Remove", (vec!["trace_open"],));
    forged!(PATH, IMAGES, "Login", ("localhost:1", "u", "p"));
    forged!(PATH, IMAGES, "Logout", ("localhost:1",));
    Ok(())
}

/// Sends one call with a forged SENDER and waits for its reply.
async fn call<B: serde::Serialize + zbus::zvariant::DynamicType>(
    conn: &zbus::Connection,
    path: &str,
    iface: &str,
    method: &str,
    args: &B,
) -> anyhow::Result<String> {
    let mut stream = zbus::MessageStream::from(conn);
    let msg = zbus::Message::method_call(path, method)?
        .interface(iface)?
        .sender(":1.1")?
        .build(args)?;
    let serial = msg.primary_header().serial_num();
    conn.send(&msg).await?;
    while let Some(reply) = stream.next().await {
        let reply = reply?;
        let hdr = reply.header();
        if hdr.reply_serial() != Some(serial) {
            continue;
        }
        return Ok(match hdr.error_name() {
            None => "OK".to_string(),
            Some(name) => {
                let text: String = reply.body().deserialize().unwrap_or_default();
                format!("{name}\t{}", text.replace(['\n', '\t'], " "))
            }
        });
    }
    anyhow::bail!("the connection closed before {iface}.{method} was answered")
}
