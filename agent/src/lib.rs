//! gadgetd: the systemd-integrated node agent that runs eBPF gadgets for
//! others, and its `gadgetd` binary. The [`service`] is the D-Bus API
//! (`org.gadgetd.Agent1` on the system bus or a peer-to-peer socket, events
//! over passed file descriptors), polkit authorization, the SQLite state of
//! detached runs and their journald logs, restored after a restart.
//!
//! The layers it is built on are their own crates, re-exported here under
//! their old module names: [`runtime`] (`gadgetd-runtime`: parse, load,
//! read, decode; embed this one to run gadgets in your own program),
//! [`images`] (`gadgetd-images`) and [`containers`] (`gadgetd-containers`).
//!
//! Runnable: `sudo cargo run -p gadgetd --example serve_p2p -- SOCKET
//! STATE_DIR` serves the API on a socket without a bus; the binary's
//! options are in `gadgetd --help` and docs/service.md.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use gadgetd::service::{self, Config};
//! let config = Config {
//!     bus: Some("system".into()),
//!     listen: Some("/run/gadgetd/gadgetd.sock".into()),
//!     state_dir: "/var/lib/gadgetd".into(),
//!     runtimes: gadgetd::containers::RuntimeArgs::default().endpoints()?,
//!     images: Default::default(),
//!     group: service::authz::DEFAULT_GROUP.into(),
//!     journal_namespace: None,
//!     memory_log_lines: 1000,
//!     log_rate: Default::default(),
//!     idle_exit: None,
//!     metrics_listen: None,
//! };
//! service::serve(config, std::future::pending()).await
//! # }
//! ```

pub(crate) mod journal;
pub mod metrics;
pub mod service;
pub(crate) mod state;

pub use gadgetd_containers as containers;
pub use gadgetd_images as images;
pub use gadgetd_runtime as runtime;
pub use gadgetd_runtime::testing;
