//! gadgetd: the privileged node agent that runs eBPF gadgets.

mod logging;

use std::path::PathBuf;

use clap::Parser;
use gadgetd::service::{self, Config};

/// Runs eBPF gadgets on this node and serves them over D-Bus.
#[derive(Parser, Debug)]
#[command(
    name = "gadgetd",
    version,
    about = "The eBPF gadget agent: runs gadgets on this node and serves them over D-Bus"
)]
struct Args {
    /// Serve on the bus at this D-Bus address instead of the system bus.
    #[arg(long, value_name = "ADDR", conflicts_with = "no_bus")]
    bus_address: Option<String>,
    /// Do not connect to any bus (serve only the peer-to-peer socket).
    #[arg(long)]
    no_bus: bool,
    /// Also listen on this peer-to-peer socket (D-Bus protocol without a bus).
    /// An inherited systemd socket (LISTEN_FDS) is always used.
    #[arg(long, value_name = "PATH")]
    listen: Option<PathBuf>,
    /// Where state and images live.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/gadgetd")]
    state_dir: PathBuf,
    /// Group whose members may run gadgets over the peer-to-peer socket
    /// (on the bus, polkit decides; the shipped rule names the same group).
    #[arg(long, value_name = "GROUP", default_value = service::authz::DEFAULT_GROUP)]
    group: String,
    /// Log detached runs to this journald namespace (`journalctl --namespace`).
    #[arg(long, value_name = "NAME")]
    journal_namespace: Option<String>,
    /// Events per second a detached run may log (more are dropped and reported).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    log_rate: u32,
    /// Events a detached run may log in a burst above --log-rate.
    #[arg(long, value_name = "N", default_value_t = 5000)]
    log_burst: u32,
    /// Without journald: lines kept in memory per detached run.
    #[arg(long, value_name = "N", default_value_t = 10000)]
    memory_log_lines: usize,
    /// Exit after this many seconds without runs, clients or calls (0: never).
    /// For bus and socket activation.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    idle_exit: u64,
    /// Log as JSON lines (structured) instead of text (on stderr).
    #[arg(long, env = "GADGETD_LOG_JSON")]
    log_json: bool,
    /// Where gadgetd's own log goes: journald (priorities and structured
    /// fields; the --journal-namespace one), stderr, or auto: journald when
    /// stderr is the journal (a systemd service), else stderr.
    #[arg(long, env = "GADGETD_LOG_TARGET", value_enum, default_value = "auto")]
    log_target: logging::Target,
    /// Serve Prometheus metrics on http://ADDR/metrics (an IP address and
    /// port, e.g. 127.0.0.1:2224). The systemd socket gadgetd-metrics.socket
    /// is used instead when it passes one.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Write the gadgetd(8) man page into DIR and exit (for packaging).
    #[arg(long, value_name = "DIR", hide = true)]
    generate_man: Option<PathBuf>,
    #[command(flatten)]
    containers: gadgetd::containers::RuntimeArgs,
    #[command(flatten)]
    images: gadgetd::images::service::Options,
}

fn write_man_page(dir: &std::path::Path) -> std::io::Result<()> {
    let cmd = <Args as clap::CommandFactory>::command().name("gadgetd");
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).section("8").render(&mut page)?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("gadgetd.8"), page)
}

/// Says why no bundled images will be imported from `path`: a warning when
/// the path was given (`--bundled-images`), a note for the packaged default.
fn check_bundled_images(path: &std::path::Path, given: bool) {
    let problem = match std::fs::metadata(path) {
        Err(e) => format!("cannot read it: {e}"),
        Ok(m) if m.is_dir() => match std::fs::read_dir(path) {
            Ok(rd) => {
                let is_tar =
                    |e: std::fs::DirEntry| e.path().extension().is_some_and(|x| x == "tar");
                if rd.flatten().any(is_tar) {
                    return;
                }
                "the directory has no *.tar archives".into()
            }
            Err(e) => format!("cannot list it: {e}"),
        },
        Ok(_) => return,
    };
    if given {
        tracing::warn!(path = %path.display(), problem = %problem,
            "--bundled-images: no bundled images imported");
    } else {
        tracing::info!(path = %path.display(), problem = %problem,
            "no bundled images at the default path (gadgetctl pulls images by name instead)");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn main() -> std::process::ExitCode {
    // One malloc arena: the event path barely allocates, and per-thread
    // arenas kept ~20 MiB of freed load-time memory (kernel BTF) resident.
    // A fixed mmap threshold: a block of 128 KiB or more (a load's kernel
    // BTF bytes, ~5.5 MiB; ring batch buffers) is its own mapping, returned
    // to the system when freed. glibc's default raises the threshold to the
    // largest block freed so far, after which such blocks come from the heap
    // and can stay resident.
    // SAFETY: called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(agent_main());
    // A blocking read stuck on a hung file system must not keep a stopped
    // agent alive (dropping the runtime would wait for it forever).
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

async fn agent_main() -> std::process::ExitCode {
    let matches = <Args as clap::CommandFactory>::command().get_matches();
    let args = match <Args as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let bundled_images_given = matches
        .value_source("bundled_images")
        .is_some_and(|s| s != clap::parser::ValueSource::DefaultValue);
    if let Some(dir) = &args.generate_man {
        return match write_man_page(dir) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gadgetd: writing the man page into {}: {e}", dir.display());
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Some(note) = logging::init(
        args.log_target,
        args.log_json,
        args.journal_namespace.as_deref(),
    ) {
        tracing::warn!("{note}");
    }
    check_bundled_images(&args.images.bundled_images, bundled_images_given);
    // Every run holds several fds (maps, links, perf buffers, streams).
    match service::limits::raise_nofile() {
        Ok(n) => tracing::debug!(nofile = n, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
    let bus = if args.no_bus {
        None
    } else {
        Some(args.bus_address.clone().unwrap_or_else(|| "system".into()))
    };
    let runtimes = match args.containers.endpoints() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gadgetd: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let config = Config {
        runtimes,
        bus,
        listen: args.listen.clone(),
        state_dir: args.state_dir.clone(),
        images: args.images.clone(),
        group: args.group.clone(),
        journal_namespace: args.journal_namespace.clone(),
        memory_log_lines: args.memory_log_lines,
        log_rate: service::detached::RateLimit {
            per_sec: args.log_rate.max(1),
            burst: args.log_burst.max(1),
        },
        idle_exit: (args.idle_exit > 0).then(|| std::time::Duration::from_secs(args.idle_exit)),
        metrics_listen: args.metrics_listen,
    };
    match service::serve(config, shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "gadgetd failed");
            std::process::ExitCode::FAILURE
        }
    }
}
