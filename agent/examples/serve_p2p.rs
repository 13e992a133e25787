//! Embeds the gadgetd service: serves the D-Bus API on a peer-to-peer
//! socket only (no bus, no systemd), with its own state directory, until
//! Ctrl-C. Then, from another shell:
//!
//!     sudo cargo run -p gadgetd --example serve_p2p -- /tmp/gadgetd-example.sock /tmp/gadgetd-example
//!     sudo gadgetctl --address /tmp/gadgetd-example.sock run build/gadgets/trace_open.o --timeout 5s

use gadgetd::service::{self, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: serve_p2p SOCKET STATE_DIR";
    let socket = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let state_dir = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let config = Config {
        bus: None,
        listen: Some(socket.into()),
        state_dir: state_dir.into(),
        runtimes: Vec::new(),
        images: gadgetd::images::service::Options::default(),
        group: service::authz::DEFAULT_GROUP.into(),
        journal_namespace: None,
        memory_log_lines: 1000,
        log_rate: service::detached::RateLimit::default(),
        idle_exit: None,
        metrics_listen: None,
    };
    service::serve(config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
