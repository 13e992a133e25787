//! Image subcommands: `image list|rm|inspect|export|import|...` and the
//! top-level aliases `build`, `tag`, `push`, `pull`, `login`, `logout`.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use gadgetd_dbus::images::image_options;
use gadgetd_dbus::{Endpoint, ImagesProxy};
use zbus::zvariant::{Fd, Value};

use crate::build::{self, BuildArgs};
use crate::escape;
use crate::progress;

/// Top-level shortcuts for image commands.
#[derive(Subcommand, Debug)]
pub enum Alias {
    /// Compile a gadget and store it as an image (= image build).
    Build(BuildArgs),
    /// Give an image another name (= image tag).
    Tag(TagArgs),
    /// Upload an image to its registry (= image push).
    Push(RefArg),
    /// Download an image from a registry (= image pull).
    Pull(RefArg),
    /// Store credentials for a registry (checked first).
    Login(LoginArgs),
    /// Forget the credentials of a registry.
    Logout {
        /// HOST[:PORT]
        registry: String,
    },
}

/// `gadgetctl image ...`
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List local images.
    #[command(alias = "ls")]
    List {
        #[arg(short = 'o', long = "output", value_enum, default_value = "columns")]
        output: crate::ListFormat,
    },
    /// Remove images (tags; by digest: every tag), freeing unused blobs.
    #[command(alias = "delete", alias = "rm")]
    Remove {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Show an image: manifest, definition, programs, maps, params.
    Inspect { image: String },
    /// Write images into one OCI archive (for air-gapped hosts).
    Export {
        /// IMAGE... FILE.tar
        #[arg(required = true, num_args = 2.., value_name = "IMAGE... FILE.tar")]
        items: Vec<String>,
    },
    /// Load images from an OCI archive (as written by export, build -o or skopeo).
    Import {
        file: PathBuf,
        /// Name the (single) imported image.
        #[arg(short = 't', long = "tag")]
        tag: Option<String>,
    },
    /// Compile a gadget and store it as an image.
    Build(BuildArgs),
    /// Give an image another name.
    Tag(TagArgs),
    /// Upload an image to its registry.
    Push(RefArg),
    /// Download an image (every architecture) from a registry.
    Pull(RefArg),
    /// Sign a local image (cosign format) and upload the signature.
    Sign(crate::signing::SignArgs),
    /// Check a local image's signatures against public keys (or the policy's).
    Verify(crate::signing::VerifyArgs),
    /// Write a new cosign key pair (cosign.key, cosign.pub).
    GenerateKeyPair(crate::signing::KeyPairArgs),
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Args, Debug)]
pub struct RefArg {
    /// [REGISTRY/]NAME[:TAG] or NAME@sha256:DIGEST
    pub image: String,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    #[arg(short = 'u', long = "username")]
    pub username: Option<String>,
    #[arg(short = 'p', long = "password", conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from stdin (first line).
    #[arg(long)]
    pub password_stdin: bool,
    /// HOST[:PORT]
    pub registry: String,
}

pub async fn images_proxy(address: Option<&str>) -> Result<ImagesProxy<'static>> {
    let (conn, endpoint) = gadgetd_dbus::connect(address.map(Endpoint::parse)).await?;
    let builder = ImagesProxy::builder(&conn);
    let builder = if endpoint.is_bus() {
        builder
    } else {
        builder.destination(gadgetd_dbus::names::BUS_NAME)?
    };
    Ok(builder.build().await?)
}

pub async fn alias(address: Option<&str>, cmd: Alias) -> Result<ExitCode> {
    match cmd {
        Alias::Build(a) => image(address, ImageCommand::Build(a)).await,
        Alias::Tag(a) => image(address, ImageCommand::Tag(a)).await,
        Alias::Push(a) => image(address, ImageCommand::Push(a)).await,
        Alias::Pull(a) => image(address, ImageCommand::Pull(a)).await,
        Alias::Login(a) => login(address, a).await,
        Alias::Logout { registry } => {
            images_proxy(address).await?.logout(&registry).await?;
            println!("logged out of {registry}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn image(address: Option<&str>, cmd: ImageCommand) -> Result<ExitCode> {
    match cmd {
        ImageCommand::Build(a) => build::build(address, a).await,
        ImageCommand::Sign(a) => crate::signing::sign(address, a).await,
        ImageCommand::Verify(a) => crate::signing::verify(address, a).await,
        ImageCommand::GenerateKeyPair(a) => crate::signing::generate_key_pair(a),
        ImageCommand::List { output } => list(address, output).await,
        ImageCommand::Remove { images } => {
            let proxy = images_proxy(address).await?;
            let (removed, freed) = proxy
                .remove(images.iter().map(String::as_str).collect())
                .await?;
            for r in removed {
                println!("removed {}", escape::terminal(&r));
            }
            eprintln!("freed {freed} bytes");
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Inspect { image } => {
            let json = images_proxy(address).await?.inspect(&image).await?;
            let v: serde_json::Value = serde_json::from_str(&json)?;
            let mut out = std::io::stdout().lock();
            let text = serde_json::to_string_pretty(&v)?;
            match writeln!(
                out,
                "{}",
                String::from_utf8_lossy(&escape::json(text.as_bytes()))
            ) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r?,
            }
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Tag(TagArgs { source, target }) => {
            let full = images_proxy(address).await?.tag(&source, &target).await?;
            println!("{full}");
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Pull(RefArg { image }) => {
            let (reference, digest) = pull(address, &image).await?;
            println!("{reference} {digest}");
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Push(RefArg { image }) => {
            let proxy = images_proxy(address).await?;
            let (mine, theirs) = progress::channel()?;
            let follow = tokio::spawn(progress::follow(mine));
            let result = proxy
                .push(&image, HashMap::new(), Fd::from(theirs.as_fd()))
                .await;
            drop(theirs);
            let _ = follow.await;
            println!("{}", result?);
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Export { mut items } => {
            let file = PathBuf::from(items.pop().expect("clap requires two items"));
            export(address, &items, &file).await
        }
        ImageCommand::Import { file, tag } => {
            let f = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let mut opts: HashMap<&str, Value<'_>> = HashMap::new();
            if let Some(t) = &tag {
                opts.insert(image_options::TAG, Value::from(t.as_str()));
            }
            let imported = images_proxy(address)
                .await?
                .import(Fd::from(f.as_fd()), opts)
                .await?;
            for (r, d) in imported {
                println!(
                    "{} {}",
                    escape::terminal(if r.is_empty() { "<none>" } else { &r }),
                    escape::terminal(&d)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Pulls with progress bars; returns (reference, digest).
pub async fn pull(address: Option<&str>, image: &str) -> Result<(String, String)> {
    let proxy = images_proxy(address).await?;
    let (mine, theirs) = progress::channel()?;
    let follow = tokio::spawn(progress::follow(mine));
    let result = proxy
        .pull(image, HashMap::new(), Fd::from(theirs.as_fd()))
        .await;
    drop(theirs);
    let _ = follow.await;
    Ok(result?)
}

async fn export(
    address: Option<&str>,
    images: &[String],
    file: &std::path::Path,
) -> Result<ExitCode> {
    let fd = images_proxy(address)
        .await?
        .export(images.iter().map(String::as_str).collect())
        .await?;
    let mut src = std::fs::File::from(std::os::fd::OwnedFd::from(fd));
    // Never a partial archive under the final name: written unnamed, named
    // only when whole (a killed gadgetctl leaves nothing behind).
    let mut dst = gadgetd_images::atomic_file::AtomicFile::create(file)
        .with_context(|| format!("cannot create {}", file.display()))?;
    let n = std::io::copy(&mut src, &mut dst).context("reading the archive from gadgetd")?;
    // The stream has no length up front: only a tar with its end blocks
    // after whole members is complete (gadgetd never writes them after an
    // error, and a killed agent cannot).
    use std::io::Seek as _;
    let whole = dst
        .file()
        .rewind()
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            gadgetd_images::archive::check_complete(std::io::BufReader::new(dst.file()))
                .map_err(anyhow::Error::from)
        });
    if let Err(e) = whole {
        anyhow::bail!(
            "the export broke off after {n} bytes ({e:#}); {} was not written",
            file.display()
        );
    }
    dst.commit()
        .with_context(|| format!("cannot write {}", file.display()))?;
    eprintln!("wrote {} ({n} bytes)", file.display());
    Ok(ExitCode::SUCCESS)
}

async fn list(address: Option<&str>, format: crate::ListFormat) -> Result<ExitCode> {
    let images = images_proxy(address).await?.list().await?;
    let mut out = std::io::stdout().lock();
    if format == crate::ListFormat::Json {
        for i in &images {
            serde_json::to_writer(&mut out, i)?;
            writeln!(out)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<56} {:<14} {:>10} {:<14} CREATED",
        "REFERENCE", "DIGEST", "SIZE", "ARCH"
    )?;
    for i in &images {
        let reference = if i.reference.is_empty() {
            "<none>"
        } else {
            &i.reference
        };
        let short: String = i
            .digest
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        writeln!(
            out,
            "{:<56} {short:<14} {:>10} {:<14} {}",
            escape::terminal(reference),
            i.size,
            escape::terminal(&i.architectures.join(",")),
            escape::terminal(&i.created)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn read_password_from_tty() -> Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    eprint!("Password: ");
    std::io::stderr().flush()?;
    let saved = tcgetattr(stdin.as_fd())?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &quiet)?;
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &saved)?;
    eprintln!();
    r?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn login(address: Option<&str>, a: LoginArgs) -> Result<ExitCode> {
    let interactive = std::io::stdin().is_terminal();
    let username = match a.username {
        Some(u) => u,
        None if interactive && !a.password_stdin => {
            eprint!("Username: ");
            std::io::stderr().flush()?;
            let mut u = String::new();
            std::io::stdin().lock().read_line(&mut u)?;
            u.trim().to_string()
        }
        None => bail!("give the user name with -u USER"),
    };
    let password = match (a.password, a.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut p = String::new();
            std::io::stdin().lock().read_line(&mut p)?;
            p.trim_end_matches(['\r', '\n']).to_string()
        }
        (None, false) if interactive => read_password_from_tty()?,
        (None, false) => bail!("give the password with -p PASS or --password-stdin"),
    };
    images_proxy(address)
        .await?
        .login(&a.registry, &username, &password)
        .await?;
    println!(
        "login succeeded: credentials for {} stored by gadgetd",
        a.registry
    );
    Ok(ExitCode::SUCCESS)
}
