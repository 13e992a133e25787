//! The `gadgetd` D-Bus service: the manager object on the bus and on the
//! peer-to-peer socket, one object per run, events over passed fds.

pub(crate) mod activation;
pub(crate) mod attach;
pub(crate) mod auth;
pub mod authz;
pub(crate) mod batch_pool;
pub(crate) mod bus;
pub(crate) mod code_pages;
pub(crate) mod containers;
pub(crate) mod describe;
pub mod detached;
pub(crate) mod direct_out;
pub(crate) mod fdread;
pub(crate) mod image_calls;
pub(crate) mod images;
pub(crate) mod kind_options;
pub(crate) mod lifecycle;
pub mod limits;
pub(crate) mod listen;
pub(crate) mod logs;
pub(crate) mod manager;
pub(crate) mod netns_follow;
pub(crate) mod options_ext;
pub(crate) mod ownership;
pub(crate) mod policy;
pub(crate) mod record;
pub(crate) mod restore;
pub(crate) mod run;
pub(crate) mod scope;
pub(crate) mod signatures;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gadgetd_dbus::names;
use zbus::{Connection, connection};

pub use manager::Agent;
use manager::Manager;

/// Where to serve.
#[derive(Debug, Clone)]
pub struct Config {
    /// `None`: no bus; `Some("system")`: the system bus; else a D-Bus address.
    pub bus: Option<String>,
    /// The peer-to-peer socket to create, if any (an inherited socket from
    /// systemd, LISTEN_FDS, is always used when present).
    pub listen: Option<PathBuf>,
    pub state_dir: PathBuf,
    /// Container runtime sockets to watch.
    pub runtimes: Vec<gadgetd_containers::RuntimeEndpoint>,
    pub images: gadgetd_images::service::Options,
    /// Group whose members may use the p2p socket (and the shipped polkit rule).
    pub group: String,
    /// journald namespace to log detached runs to (None: the default journal).
    pub journal_namespace: Option<String>,
    /// Lines kept per detached run when journald is absent.
    pub memory_log_lines: usize,
    pub log_rate: detached::RateLimit,
    /// Exit after this long with no runs, no p2p clients and no calls.
    pub idle_exit: Option<Duration>,
    /// Serve Prometheus metrics over HTTP here (an inherited
    /// `gadgetd-metrics.socket` is always used); docs/metrics.md.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Serves until `shutdown` resolves, then stops every run.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.state_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the state directory {}: {e}",
            config.state_dir.display()
        )
    })?;
    let store = crate::state::Store::open(&config.state_dir)?;
    let journal = crate::journal::Journal::detect(
        config.journal_namespace.as_deref(),
        config.memory_log_lines,
    );
    let agent = Agent::new(
        authz::Authorizer::new(&config.group),
        store,
        journal,
        config.log_rate,
    );
    gadgetd_containers::supervise::start(config.runtimes.clone(), agent.containers.clone());
    let _ = agent
        .images
        .set(gadgetd_images::service::ImageService::open(
            &config.state_dir,
            &config.images,
        )?);
    let mut bus_conn = None;
    if let Some(bus) = &config.bus {
        let conn = bus_connection(bus, &agent).await?;
        agent.conns.add(conn.clone());
        tracing::info!(bus = %bus, name = names::BUS_NAME, "serving on the bus");
        bus_conn = Some(conn);
    }
    let inherited = activation::take();
    if let Some(l) = crate::metrics::http::listener(config.metrics_listen, inherited.metrics)? {
        tracing::info!(address = %l.describe(), "serving metrics on http://{}/metrics", l.describe());
        tokio::spawn(crate::metrics::http::serve(l, agent.clone()));
    }
    let listener = listen::listener(config.listen.as_deref(), inherited.p2p)?;
    if let Some(l) = &listener {
        tracing::info!(socket = %l.describe(), "serving on the peer-to-peer socket");
    }
    if bus_conn.is_none() && listener.is_none() {
        anyhow::bail!("nothing to serve on: give --bus-address, --system or --listen");
    }
    let restored = restore::restore(&agent).await?;
    tracing::info!(restored, db = %agent.state.path().display(), "state loaded");
    tokio::spawn(record::flush_counters(agent.clone()));
    tokio::spawn(agent.conns.clone().publish_counters(run::PUBLISH_EVERY));
    let bus_clients = usize::from(bus_conn.is_some());
    let accept = async {
        match listener {
            Some(l) => l.accept_loop(agent.clone()).await,
            None => std::future::pending().await,
        }
    };
    let status = lifecycle::status_line(&agent);
    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
    tokio::spawn(lifecycle::watchdog_and_status(agent.clone()));
    tracing::info!(journal = agent.journal.describe(), "ready");
    // Start-up code (option parsing, the database, bus handshakes) does not run again.
    code_pages::release_logged("start-up");
    tokio::select! {
        _ = shutdown => tracing::info!("shutting down: stopping every run"),
        r = accept => { r?; }
        _ = lifecycle::idle(agent.clone(), config.idle_exit, bus_clients) => {}
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    agent.stop_all(Duration::from_secs(5)).await;
    if let Some(conn) = bus_conn {
        let _ = conn.release_name(names::BUS_NAME).await;
    }
    Ok(())
}

async fn bus_connection(bus: &str, agent: &Arc<Agent>) -> anyhow::Result<Connection> {
    let builder = if bus == "system" {
        connection::Builder::system()?
    } else {
        connection::Builder::address(bus)?
    };
    builder
        .name(names::BUS_NAME)?
        .serve_at(names::MANAGER_PATH, Manager { agent: agent.clone() })?
        .serve_at(names::MANAGER_PATH, containers::ContainersIface { agent: agent.clone() })?
        .serve_at(names::MANAGER_PATH, crate::service::images::Images::new(agent, agent.images()))?
        .serve_at(names::MANAGER_PATH, signatures::Signatures::new(agent, agent.images()))?
        .serve_at(names::MANAGER_PATH, describe::Gadgets { agent: agent.clone() })?
        .serve_at(names::MANAGER_PATH, zbus::fdo::ObjectManager)?
        .build()
        .await
        .map_err(|e| anyhow::anyhow!("cannot own {} on {bus}: {e} (is another gadgetd running, or does the D-Bus policy allow it?)", names::BUS_NAME))
}

/// Serves one peer-to-peer client until it disconnects.
/// A client that does not finish the D-Bus handshake within
/// [`limits::HANDSHAKE_TIMEOUT`], or does not take one of the objects of
/// the current runs within [`limits::SLOW_PEER_TIMEOUT`], is disconnected.
pub async fn serve_peer(stream: tokio::net::UnixStream, agent: Arc<Agent>) -> anyhow::Result<()> {
    use std::os::fd::AsFd as _;
    let socket = stream.as_fd().try_clone_to_owned()?;
    let conn = tokio::time::timeout(limits::HANDSHAKE_TIMEOUT, handshake(stream, &agent))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "no D-Bus handshake within {} s; disconnected",
                limits::HANDSHAKE_TIMEOUT.as_secs()
            )
        })??;
    let id = agent.conns.add_peer(conn.clone(), socket);
    let runs: Vec<_> = agent.runs.lock().unwrap().values().cloned().collect();
    // Each object has the time limit to itself: a healthy client may take
    // a while for hundreds of runs, one that stopped reading stalls on one.
    let mut published = true;
    for r in &runs {
        let one = bus::publish_on(&conn, r, &agent.auth);
        if tokio::time::timeout(limits::SLOW_PEER_TIMEOUT, one)
            .await
            .is_err()
        {
            tracing::warn!(
                timeout_ms = limits::SLOW_PEER_TIMEOUT.as_millis() as u64,
                "peer-to-peer client stopped reading its messages; disconnected"
            );
            published = false;
            break;
        }
    }
    if published {
        // zbus has no "closed" future; a MessageStream ends when the socket does.
        let mut messages = zbus::MessageStream::from(&conn);
        while let Some(msg) = futures_lite_next(&mut messages).await {
            if msg.is_err() {
                break;
            }
        }
    }
    agent.conns.remove(id);
    Ok(())
}

async fn handshake(stream: tokio::net::UnixStream, agent: &Arc<Agent>) -> zbus::Result<Connection> {
    connection::Builder::unix_stream(stream)
        .server(zbus::Guid::generate())?
        .p2p()
        .serve_at(
            names::MANAGER_PATH,
            Manager {
                agent: agent.clone(),
            },
        )?
        .serve_at(
            names::MANAGER_PATH,
            containers::ContainersIface {
                agent: agent.clone(),
            },
        )?
        .serve_at(
            names::MANAGER_PATH,
            crate::service::images::Images::new(agent, agent.images()),
        )?
        .serve_at(
            names::MANAGER_PATH,
            signatures::Signatures::new(agent, agent.images()),
        )?
        .serve_at(
            names::MANAGER_PATH,
            describe::Gadgets {
                agent: agent.clone(),
            },
        )?
        .serve_at(names::MANAGER_PATH, zbus::fdo::ObjectManager)?
        .build()
        .await
}

async fn futures_lite_next(s: &mut zbus::MessageStream) -> Option<zbus::Result<zbus::Message>> {
    use std::pin::Pin;
    std::future::poll_fn(|cx| futures_core_poll(Pin::new(&mut *s), cx)).await
}

fn futures_core_poll(
    s: std::pin::Pin<&mut zbus::MessageStream>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Option<zbus::Result<zbus::Message>>> {
    use futures_core::Stream;
    s.poll_next(cx)
}
