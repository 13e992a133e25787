//! gadgetctl: run and manage eBPF gadgets through gadgetd.

mod build;
mod columns;
mod complete;
mod containers;
mod direct;
mod escape;
mod event_stream;
mod generate;
mod histogram;
mod images;
mod lifecycle;
mod output;
mod progress;
mod run_argv;
mod run_containers;
mod run_detach;
mod run_images;
mod run_kinds;
mod run_params;
mod seccomp;
mod shape;
mod signing;
mod sparse;
mod suggest;

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use gadgetd_dbus::types::options;
use gadgetd_dbus::{Endpoint, ManagerProxy};
use zbus::zvariant::Value;

use output::{Format, Printer};

#[derive(Parser, Debug)]
#[command(
    name = "gadgetctl",
    version,
    about = "Run and manage eBPF gadgets through gadgetd"
)]
struct Cli {
    /// Where gadgetd is: `system`, a D-Bus address (unix:path=...), or the
    /// path of its peer-to-peer socket. Default: the system bus, then
    /// /run/gadgetd/gadgetd.sock.
    #[arg(long, global = true, env = "GADGETD_ADDRESS", value_name = "ADDR")]
    address: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a gadget and print its events until it stops (Ctrl-C stops it).
    Run(Box<RunArgs>),
    /// List live runs (`-a`: also ended ones the agent keeps).
    #[command(alias = "ps")]
    List {
        #[arg(short = 'o', long = "output", value_enum, default_value = "columns")]
        output: ListFormat,
        /// Also runs that have ended (detached runs stay until `gadgetctl rm`).
        #[arg(short = 'a', long)]
        all: bool,
    },
    /// Stream the events of a live run (Ctrl-C detaches; the run goes on).
    Attach {
        /// Run id (or a unique prefix), or run name.
        #[arg(add = clap_complete::ArgValueCandidates::new(complete::runs))]
        id: String,
        #[arg(short = 'o', long = "output", value_enum, default_value = "columns")]
        output: Format,
        #[command(flatten)]
        shape: shape::ShapeArgs,
    },
    /// List the containers the agent sees (docker, podman, containerd, cri-o).
    Containers(containers::ContainersArgs),
    /// Stop runs; returns once they have stopped (a run that already ended is left as it is).
    Stop {
        /// Run ids or names.
        #[arg(required = true, add = clap_complete::ArgValueCandidates::new(complete::runs))]
        ids: Vec<String>,
    },
    /// Print a shell completion script (e.g. `gadgetctl completion bash > /etc/bash_completion.d/gadgetctl`);
    /// it completes run ids, local images and gadget parameters by asking gadgetd.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages into DIR (for packaging).
    #[command(hide = true)]
    GenerateMan { dir: std::path::PathBuf },
    /// Manage gadget images (build, list, rm, inspect, tag, push, pull, export, import).
    Image {
        #[command(subcommand)]
        command: images::ImageCommand,
    },
    #[command(flatten)]
    ImageAlias(images::Alias),
    /// Print the logged events of a detached run.
    Logs {
        #[command(flatten)]
        args: run_detach::LogsArgs,
        #[arg(short = 'o', long = "output", value_enum, default_value = "columns")]
        output: Format,
        #[command(flatten)]
        shape: shape::ShapeArgs,
    },
    /// Forget ended runs (their state; journal entries stay in the journal).
    Rm {
        /// Run ids or names.
        #[arg(required = true, add = clap_complete::ArgValueCandidates::new(complete::runs))]
        ids: Vec<String>,
        /// Stop live runs first.
        #[arg(short = 'f', long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ListFormat {
    Columns,
    Json,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// A gadget image ([REGISTRY/]NAME[:TAG], NAME@sha256:DIGEST, a digest
    /// prefix) or a compiled gadget object (FILE.o).
    #[arg(add = clap_complete::ArgValueCompleter::new(complete::gadgets))]
    gadget: PathBuf,
    /// Definition file (YAML). Default: FILE.yaml next to the object, if any.
    #[arg(long, value_name = "FILE")]
    definition: Option<PathBuf>,
    /// Stop after this long (e.g. 5s, 500ms, 2m).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "columns")]
    output: Format,
    /// Gadget parameter (repeatable).
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// A name for the run.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    containers: run_containers::ContainerFilterArgs,
    #[command(flatten)]
    images: run_images::RunImageArgs,
    #[command(flatten)]
    detach: run_detach::DetachArgs,
    #[command(flatten)]
    kinds: run_kinds::KindArgs,
    #[command(flatten)]
    shape: shape::ShapeArgs,
    #[command(flatten)]
    gadget_params: run_params::ParamArgs,
}

fn main() -> ExitCode {
    // `COMPLETE=SHELL gadgetctl -- WORDS`: the shell asks for completions.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command)
        .var("COMPLETE")
        .complete();
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(async_main()),
        Err(e) => {
            eprintln!("gadgetctl: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn async_main() -> ExitCode {
    if let Some(code) = run_params::gadget_help(<Cli as clap::CommandFactory>::command()).await {
        return code;
    }
    let cmd = <Cli as clap::CommandFactory>::command();
    let cli = Cli::parse_from(run_argv::reorder(&cmd, std::env::args_os().collect()));
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gadgetctl: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// D-Bus errors carry the agent's message after their name; show it plainly.
fn describe(e: &anyhow::Error) -> String {
    let text = if let Some(zbus::Error::MethodError(name, Some(msg), _)) =
        e.downcast_ref::<zbus::Error>()
    {
        format!("{msg} [{}]", name.as_str())
    } else if let Some(zbus::fdo::Error::AccessDenied(msg)) = e.downcast_ref::<zbus::fdo::Error>() {
        format!("access denied: {msg}")
    } else {
        causes_once(e)
    };
    // Agent messages quote names from the traced machine and the registry.
    escape::message(&text)
}

/// An error and its causes, each said once: a cause whose text its parent
/// already quotes (connection errors do) is not repeated.
fn causes_once(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

async fn manager(address: Option<&str>) -> Result<ManagerProxy<'static>> {
    let (conn, endpoint) = gadgetd_dbus::connect(address.map(Endpoint::parse)).await?;
    let builder = ManagerProxy::builder(&conn);
    let builder = if endpoint.is_bus() {
        builder
    } else {
        builder.destination(gadgetd_dbus::names::BUS_NAME)?
    };
    Ok(builder.build().await?)
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let address = cli.address.as_deref();
    match cli.command {
        Command::Completion { shell } => {
            complete::registration(shell)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::GenerateMan { dir } => {
            generate::man_pages(<Cli as clap::CommandFactory>::command(), &dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run(address, *args).await,
        Command::List { output, all } => list(address, output, all).await,
        Command::Containers(args) => containers::containers(address, args).await,
        Command::Attach { id, output, shape } => {
            let mut printer = Printer::shaped(output, shape::Shape::new(&shape)?, None);
            if output == Format::Columns && containers::host_has_none(address).await {
                printer.hide_enrichment();
            }
            let mgr = manager(address).await?;
            let stdout = std::io::stdout();
            let direct = printer.passes_through() && direct::wanted(stdout.as_fd());
            let fd = if direct {
                event_stream::widen_pipe(&stdout);
                let opts = HashMap::from([(
                    options::OUTPUT_FD,
                    Value::Fd(zbus::zvariant::Fd::from(stdout.as_fd())),
                )]);
                match mgr.attach_with_options(&id, opts).await {
                    Err(e) if direct::refused(&e) => None,
                    r => Some(r?),
                }
            } else {
                None
            };
            let (fd, direct) = match fd {
                Some(fd) => (fd, true),
                None => (mgr.attach(&id).await?, false),
            };
            event_stream::print(fd.into(), printer, None, direct).await
        }
        Command::Image { command } => images::image(address, command).await,
        Command::ImageAlias(a) => images::alias(address, a).await,
        Command::Stop { ids } => {
            lifecycle::stop(&manager(address).await?, &ids, lifecycle::STOP_WAIT).await
        }
        Command::Logs {
            args,
            output,
            shape,
        } => {
            let printer = Printer::shaped(output, shape::Shape::new(&shape)?, None);
            let mgr = manager(address).await?;
            let fd = mgr.logs(&args.id, args.options()?).await?;
            event_stream::print(fd.into(), printer, None, false).await
        }
        Command::Rm { ids, force } => {
            lifecycle::remove(&manager(address).await?, &ids, force).await
        }
    }
}

fn parse_params(params: &[String]) -> Result<HashMap<&str, &str>> {
    params
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .ok_or_else(|| anyhow!("--param `{kv}`: expected KEY=VALUE"))
        })
        .collect()
}

fn default_definition(object: &Path) -> Option<PathBuf> {
    let candidate = object.with_extension("yaml");
    candidate.exists().then_some(candidate)
}

async fn run(address: Option<&str>, args: RunArgs) -> Result<ExitCode> {
    // A missing file is named before anything is asked of the agent.
    let image = run_images::image_of(&args.gadget)?;
    let mut printer = Printer::shaped(
        args.output,
        shape::Shape::new(&args.shape)?,
        args.kinds.table_flag(),
    );
    if args.output == Format::Columns && containers::host_has_none(address).await {
        printer.hide_enrichment();
    }
    let mut params = parse_params(&args.params)?;
    let stdout = std::io::stdout();
    let mut direct =
        !args.detach.detach && printer.passes_through() && direct::wanted(stdout.as_fd());
    if direct {
        event_stream::widen_pipe(&stdout);
    }
    let mgr = manager(address).await?;
    // Gadget parameters given as flags: typed from the gadget's description.
    let flags: Vec<(String, String)>;
    let (path, fd) = if let Some(image) = image {
        if args.definition.is_some() {
            bail!("--definition applies to object files; an image carries its own definition");
        }
        run_images::check_spelling(address, image).await?;
        run_images::ensure_local(address, image, args.images.pull).await?;
        flags = if args.gadget_params.gadget_flags.is_empty() {
            Vec::new()
        } else {
            let desc = run_params::describe_image(address, image).await?;
            run_params::parse_flags(&desc, &args.gadget_params.gadget_flags)?
        };
        params.extend(flags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        direct::call(&mut direct, |d| {
            mgr.run(
                image,
                params.clone(),
                run_options(&args, d.then_some(&stdout)),
            )
        })
        .await?
    } else {
        let file = std::fs::File::open(&args.gadget)
            .with_context(|| format!("cannot open {}", args.gadget.display()))?;
        let definition = match args
            .definition
            .clone()
            .or_else(|| default_definition(&args.gadget))
        {
            Some(p) => std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read {}", p.display()))?,
            None => String::new(),
        };
        flags = if args.gadget_params.gadget_flags.is_empty() {
            Vec::new()
        } else {
            let desc =
                run_params::describe(mgr.inner().connection(), &args.gadget, &definition).await?;
            run_params::parse_flags(&desc, &args.gadget_params.gadget_flags)?
        };
        params.extend(flags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        direct::call(&mut direct, |d| {
            mgr.run_object(
                zbus::zvariant::Fd::from(file.as_fd()),
                &definition,
                params.clone(),
                run_options(&args, d.then_some(&stdout)),
            )
        })
        .await?
    };
    let id = path
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    if args.detach.detach {
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    event_stream::print(fd.into(), printer, Some((mgr, id)), direct).await
}

/// The `options` of a `Run`/`RunObject` call from the flags, with
/// `output-fd` when `output` (stdout) is to take the events directly.
fn run_options<'a>(
    args: &'a RunArgs,
    output: Option<&'a std::io::Stdout>,
) -> HashMap<&'static str, Value<'a>> {
    let mut opts: HashMap<&str, Value<'_>> = HashMap::new();
    args.kinds.add_options(&mut opts);
    if let Some(t) = args.timeout {
        opts.insert(options::TIMEOUT_MS, Value::U64(t.as_millis() as u64));
    }
    if let Some(n) = &args.name {
        opts.insert(options::NAME, Value::from(n.as_str()));
    }
    args.containers.add_to(&mut opts);
    args.detach.apply(&mut opts);
    if let Some(out) = output {
        opts.insert(
            options::OUTPUT_FD,
            Value::Fd(zbus::zvariant::Fd::from(out.as_fd())),
        );
    }
    opts
}

async fn list(address: Option<&str>, format: ListFormat, all: bool) -> Result<ExitCode> {
    let mgr = manager(address).await?;
    let runs = lifecycle::listed(mgr.list_runs().await?, all);
    let mut out = std::io::stdout().lock();
    if format == ListFormat::Json {
        for r in &runs {
            serde_json::to_writer(&mut out, r)?;
            writeln!(out)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<16} {:<24} {:<9} {:>10} {:>8} {:<20} IMAGE",
        "ID", "NAME", "STATE", "EVENTS", "LOST", "STARTED"
    )?;
    for r in &runs {
        let started = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_micros(r.started_at),
        );
        writeln!(
            out,
            "{:<16} {:<24} {:<9} {:>10} {:>8} {:<20} {}",
            escape::terminal(&r.id),
            escape::terminal(&r.name),
            escape::terminal(&r.state),
            r.events_seen,
            r.events_lost,
            started.to_string(),
            escape::terminal(&r.image)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
