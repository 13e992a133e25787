//! `gadgetctl build`: compile a gadget with clang as the calling user, once
//! per architecture, and package it as an image (an OCI archive that goes to
//! the agent's store, or to a file with `-o`).
//!
//! Both syntaxes work: `build [DIR]` (DIR/program.bpf.c, DIR/gadget.yaml)
//! and the seed's `build --prog foo.bpf.c --definition foo.yaml IMAGE`.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use gadgetd_images::archive;
use gadgetd_images::format::{self, ArchBuild, BuildInfo};
use zbus::zvariant::Fd;

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The eBPF program (default: DIR/program.bpf.c).
    #[arg(long, value_name = "F.bpf.c")]
    pub prog: Option<PathBuf>,
    /// The definition file (default: DIR/gadget.yaml when present).
    #[arg(long, value_name = "F.yaml")]
    pub definition: Option<PathBuf>,
    /// Image name (default: the definition's `name`, else DIR's name).
    #[arg(short = 't', long = "tag", value_name = "IMAGE")]
    pub tag: Option<String>,
    /// Architectures to build, comma-separated (default: every one the
    /// include directory has a vmlinux.h for).
    #[arg(long, value_delimiter = ',', value_name = "ARCH,...")]
    pub arch: Vec<String>,
    /// `org.opencontainers.image.authors` of the program layer.
    #[arg(long)]
    pub author: Option<String>,
    /// `org.opencontainers.image.description` (default: the definition's).
    #[arg(long)]
    pub description: Option<String>,
    /// Extra program-layer annotation (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// The gadget C headers (`gadget/*.h`, `vmlinux/`). Default:
    /// $GADGETD_INCLUDE, ./include, /usr/include (installed).
    #[arg(long = "include", short = 'I', value_name = "DIR")]
    pub include: Option<PathBuf>,
    /// Write the image to this OCI archive instead of importing it into gadgetd.
    #[arg(short = 'o', long = "output", value_name = "FILE.tar")]
    pub output: Option<PathBuf>,
    /// DIRs with program.bpf.c (default .; several make one archive or
    /// several images), or, with --prog, the IMAGE name.
    pub target: Vec<String>,
}

struct Plan {
    source: PathBuf,
    definition: Option<PathBuf>,
    name: String,
    include: PathBuf,
    arches: Vec<String>,
}

fn arch_define(arch: &str) -> Result<(&'static str, &'static str)> {
    // (libbpf's __TARGET_ARCH_ suffix, include/vmlinux subdirectory)
    match arch {
        "amd64" => Ok(("x86", "x86")),
        "arm64" => Ok(("arm64", "arm64")),
        other => bail!(
            "unsupported architecture `{other}` (supported: {})",
            format::ARCHES.join(", ")
        ),
    }
}

fn find_include(explicit: Option<&Path>) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => std::env::var_os("GADGETD_INCLUDE")
            .map(PathBuf::from)
            .into_iter()
            .chain([
                PathBuf::from("include"),
                // The packages install <gadget/*.h> and <gadget/vmlinux/...>.
                PathBuf::from("/usr/include"),
            ])
            .collect(),
    };
    candidates
        .iter()
        .find(|p| p.join("gadget/types.h").is_file())
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "gadget headers not found (looked for gadget/types.h in {}); pass --include DIR or set GADGETD_INCLUDE",
                candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })
}

fn plan(a: &BuildArgs, target: Option<&String>) -> Result<Plan> {
    let (dir, image) = match (&a.prog, target) {
        (Some(_), Some(t)) if !Path::new(t).is_dir() => (None, Some(t.clone())),
        (_, Some(t)) => (Some(PathBuf::from(t)), None),
        (_, None) => (Some(PathBuf::from(".")), None),
    };
    // Inspektor Gadget's build.yaml may name the program and the metadata file.
    let build_yaml = dir
        .as_ref()
        .map(|d| d.join("build.yaml"))
        .filter(|p| p.is_file())
        .map(|p| {
            std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))
        })
        .transpose()?
        .unwrap_or_default();
    if let Some(wasm) = top_level_value(&build_yaml, "wasm") {
        eprintln!(
            "gadgetctl: warning: build.yaml's wasm module `{}` is not built: gadgetd runs the eBPF program only",
            wasm.escape_debug()
        );
    }
    let source = match (&a.prog, &dir) {
        (Some(p), _) => p.clone(),
        (None, Some(d)) => d.join(
            top_level_value(&build_yaml, "ebpfsource").unwrap_or_else(|| "program.bpf.c".into()),
        ),
        (None, None) => unreachable!("no --prog means a directory"),
    };
    if !source.is_file() {
        bail!(
            "{} not found: give the program with --prog F.bpf.c or a directory holding program.bpf.c",
            source.display()
        );
    }
    let definition = match (&a.definition, &dir) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(d)) => Some(d.join(
            top_level_value(&build_yaml, "metadata").unwrap_or_else(|| "gadget.yaml".into()),
        ))
        .filter(|p| p.is_file()),
        (None, None) => None,
    };
    let include = find_include(a.include.as_deref())?;
    let arches = if a.arch.is_empty() {
        let found: Vec<String> = format::ARCHES
            .iter()
            .filter(|arch| {
                arch_define(arch).is_ok_and(|(_, sub)| {
                    ["vmlinux", "gadget/vmlinux"]
                        .iter()
                        .any(|d| include.join(d).join(sub).join("vmlinux.h").is_file())
                })
            })
            .map(|s| s.to_string())
            .collect();
        if found.is_empty() {
            vec![format::host_arch().to_string()]
        } else {
            found
        }
    } else {
        a.arch.clone()
    };
    let name = match a.tag.clone().or(image) {
        Some(n) => n,
        None => {
            // Inspektor Gadget's names are prose ("trace open"): only a name
            // that is a valid image name is used, else the directory's.
            let from_def = definition
                .as_ref()
                .and_then(|d| std::fs::read_to_string(d).ok())
                .and_then(|y| definition_name(&y))
                .filter(|n| valid_image_name(n));
            let from_dir = dir
                .as_ref()
                .and_then(|d| std::fs::canonicalize(d).ok())
                .and_then(|d| d.file_name().map(|n| image_name_from(&n.to_string_lossy())))
                .filter(|n| !n.is_empty());
            from_def
                .or(from_dir)
                .ok_or_else(|| anyhow!("cannot tell the image name; give it with -t IMAGE"))?
        }
    };
    Ok(Plan {
        source,
        definition,
        name,
        include,
        arches,
    })
}

/// The `name:` of a definition file (a top-level scalar; no YAML crate needed here).
fn definition_name(yaml: &str) -> Option<String> {
    top_level_value(yaml, "name")
}

/// A top-level `key: value` scalar of a simple YAML file (build.yaml, gadget.yaml).
fn top_level_value(yaml: &str, key: &str) -> Option<String> {
    yaml.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        .filter(|v| !v.is_empty())
}

/// An image name as `docker` accepts one: lowercase letters, digits and
/// `._-`, `/` between path components.
fn valid_image_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && part.starts_with(|c: char| c.is_ascii_alphanumeric())
        })
}

/// A valid image name from a directory name: lowercased, other characters as `-`.
fn image_name_from(dir: &str) -> String {
    let mapped: String = dir
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '.' | '_' | '-') => c,
            _ => '-',
        })
        .collect();
    mapped.trim_start_matches(['.', '_', '-']).to_string()
}

fn tool(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_string())
}

/// The clang to compile with: `$CLANG`, else the newest versioned `clang-N`
/// (N >= 15) on `PATH`, else `clang`. Gadgets written for Inspektor Gadget's
/// builder (clang 18+) use CO-RE intrinsics that clang 14 (Debian 12's
/// default `clang`) crashes on, so a newer one wins when it is installed.
fn clang() -> String {
    if let Ok(explicit) = std::env::var("CLANG") {
        return explicit;
    }
    newest_versioned_clang(std::env::var_os("PATH").as_deref()).unwrap_or_else(|| "clang".into())
}

fn newest_versioned_clang(path: Option<&std::ffi::OsStr>) -> Option<String> {
    const OLDEST: u32 = 15;
    let dirs = std::env::split_paths(path?);
    dirs.filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let major: u32 = name.strip_prefix("clang-")?.parse().ok()?;
            (major >= OLDEST).then_some((major, name))
        })
        .max()
        .map(|(_, name)| name)
}

/// The multiarch header directory (where `<asm/types.h>` lives on
/// Debian/Ubuntu) for `arch`, else the host's: clang does not search it for
/// `-target bpf`, and gadgets that include `<linux/*.h>` need it. The UAPI
/// `asm/` headers BPF programs use (types, errno, byte order) are the same on
/// amd64 and arm64, so a cross build can borrow the host's.
fn multiarch_include(arch: &str) -> Option<PathBuf> {
    let triple = |a: &str| match a {
        "amd64" | "x86_64" => Some("x86_64-linux-gnu"),
        "arm64" | "aarch64" => Some("aarch64-linux-gnu"),
        _ => None,
    };
    [triple(arch), triple(std::env::consts::ARCH)]
        .into_iter()
        .flatten()
        .map(|t| Path::new("/usr/include").join(t))
        .find(|dir| dir.is_dir())
}

/// Links the source directory and the headers into `work` as `src` and
/// `include`, so clang sees the same relative paths wherever the files are:
/// file names in BTF line info (and the source lines clang reads back through
/// them) then do not depend on the working directory, and the same sources
/// always give the same digest.
fn stage_sources(plan: &Plan, work: &Path) -> Result<PathBuf> {
    let canon = |p: &Path| {
        std::fs::canonicalize(p).with_context(|| format!("cannot resolve {}", p.display()))
    };
    let source = canon(&plan.source)?;
    let src_dir = source.parent().unwrap_or(Path::new("/"));
    std::os::unix::fs::symlink(src_dir, work.join("src"))?;
    std::os::unix::fs::symlink(canon(&plan.include)?, work.join("include"))?;
    let name = source
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file", source.display()))?;
    Ok(Path::new("src").join(name))
}

fn compile(plan: &Plan, source: &Path, work: &Path, arch: &str, out: &Path) -> Result<Vec<u8>> {
    let (define, _) = arch_define(arch)?;
    let clang = clang();
    let mut cmd = Command::new(&clang);
    cmd.current_dir(work)
        .args(["-g", "-O2", "-target", "bpf"])
        .arg(format!("-D__TARGET_ARCH_{define}"))
        // include/gadget: the installed layout's <vmlinux/...> and bare "types.h".
        .args(["-I", "include", "-I", "include/gadget", "-I", "src"]);
    if let Some(dir) = multiarch_include(arch) {
        cmd.arg("-idirafter").arg(dir);
    }
    let status = cmd
        .arg("-fdebug-compilation-dir=.")
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(out)
        .status()
        .with_context(|| format!("cannot run {clang} (install clang, or set CLANG)"))?;
    if !status.success() {
        bail!(
            "{clang} failed for {} ({arch}): see the errors above",
            plan.source.display()
        );
    }
    // Keep BTF (events are decoded from it), drop DWARF.
    let strip = tool("LLVM_STRIP", "llvm-strip");
    let status = Command::new(&strip)
        .arg("-g")
        .arg(out)
        .status()
        .with_context(|| format!("cannot run {strip} (install llvm, or set LLVM_STRIP)"))?;
    if !status.success() {
        bail!("{strip} -g {} failed", out.display());
    }
    std::fs::read(out).with_context(|| format!("cannot read {}", out.display()))
}

fn rfc3339(epoch: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch))
        .to_string()
}

pub async fn build(address: Option<&str>, a: BuildArgs) -> Result<ExitCode> {
    let targets: Vec<Option<&String>> = match (&a.prog, a.target.as_slice()) {
        (_, []) => vec![None],
        (Some(_), [one]) => vec![Some(one)],
        (Some(_), _) => bail!("with --prog, give at most one IMAGE name"),
        (None, dirs) => dirs.iter().map(Some).collect(),
    };
    if targets.len() > 1 && a.tag.is_some() {
        bail!(
            "-t names one image; build several directories without it (each is named after its definition)"
        );
    }
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .map(|s| s.parse::<u64>())
        .transpose()
        .context("SOURCE_DATE_EPOCH must be seconds")?;
    let mut blobs = BTreeMap::new();
    let mut images = Vec::new();
    for target in targets {
        let plan = plan(&a, target)?;
        let image = build_one(&a, &plan, epoch)?;
        blobs.extend(image.blobs);
        images.push((Some(plan.name.clone()), image.index));
    }
    let mut tar = Vec::new();
    archive::write(&mut tar, &blobs, &images, epoch.unwrap_or(0))?;
    if let Some(out) = &a.output {
        use std::io::Write as _;
        let mut f = gadgetd_images::atomic_file::AtomicFile::create(out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        f.write_all(&tar)
            .with_context(|| format!("cannot write {}", out.display()))?;
        f.commit()
            .with_context(|| format!("cannot write {}", out.display()))?;
        for (name, index) in &images {
            println!(
                "{} {} {}",
                name.as_deref().unwrap_or_default(),
                index.digest,
                out.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let tmp = tempdir()?;
    let archive_path = tmp.0.join("image.tar");
    std::fs::write(&archive_path, &tar)?;
    let file = std::fs::File::open(&archive_path)?;
    let proxy = crate::images::images_proxy(address).await?;
    let imported = proxy
        .import(Fd::from(file.as_fd()), Default::default())
        .await?;
    for (r, d) in imported {
        println!("{r} {d}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Compiles one gadget for every planned architecture and assembles its image.
fn build_one(a: &BuildArgs, plan: &Plan, epoch: Option<u64>) -> Result<format::BuiltImage> {
    let definition = match &plan.definition {
        Some(p) => std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
        None => Vec::new(),
    };
    let mut annotations = BTreeMap::new();
    for kv in &a.annotations {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--annotation `{kv}`: expected KEY=VALUE"))?;
        annotations.insert(k.to_string(), v.to_string());
    }
    let description = a
        .description
        .clone()
        .or_else(|| {
            let yaml = String::from_utf8_lossy(&definition).into_owned();
            yaml.lines()
                .find_map(|l| l.strip_prefix("description:"))
                .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        })
        .filter(|d| !d.is_empty());
    let info = BuildInfo {
        definition,
        authors: a.author.clone(),
        description,
        created: epoch.map(rfc3339),
        annotations,
    };
    let tmp = tempdir()?;
    let source = stage_sources(plan, &tmp.0)?;
    let mut builds = Vec::new();
    for arch in &plan.arches {
        let spin =
            crate::progress::spinner(format!("compiling {} for {arch}", plan.source.display()));
        let program = compile(
            plan,
            &source,
            &tmp.0,
            arch,
            &tmp.0.join(format!("{arch}.o")),
        );
        spin.finish_and_clear();
        builds.push(ArchBuild {
            arch: arch.clone(),
            program: program?,
        });
    }
    Ok(format::assemble(&builds, &info))
}

/// A private build directory, removed on drop.
struct TempDir(PathBuf);

fn tempdir() -> Result<TempDir> {
    let mut rnd = [0u8; 6];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut rnd)?;
    let p = std::env::temp_dir().join(format!(
        "gadgetctl-build-{}",
        rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    std::fs::create_dir(&p).with_context(|| format!("cannot create {}", p.display()))?;
    Ok(TempDir(p))
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_clang_15_or_later_on_path_is_chosen() {
        let root = std::env::temp_dir().join(format!("gadgetctl-clang-{}", std::process::id()));
        let (a, b) = (root.join("a"), root.join("b"));
        for (dir, names) in [
            (&a, &["clang-14", "clang-16", "clang-foo", "clang"][..]),
            (&b, &["clang-19", "clang-9", "clang-19.1"][..]),
        ] {
            std::fs::create_dir_all(dir).unwrap();
            for n in names {
                std::fs::write(dir.join(n), "").unwrap();
            }
        }
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(
            newest_versioned_clang(Some(&path)).as_deref(),
            Some("clang-19")
        );
        let only_a = std::env::join_paths([&a]).unwrap();
        assert_eq!(
            newest_versioned_clang(Some(&only_a)).as_deref(),
            Some("clang-16")
        );
        std::fs::remove_file(a.join("clang-16")).unwrap();
        assert_eq!(
            newest_versioned_clang(Some(&only_a)),
            None,
            "clang-14 is too old"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn image_names_from_inspektor_gadget_metadata_and_directories() {
        assert!(valid_image_name("trace_open"));
        assert!(valid_image_name("ghcr.io/me/trace-open.v2"));
        for bad in ["trace open", "Trace", "", "a//b", "-x", "a/_b"] {
            assert!(!valid_image_name(bad), "{bad}");
        }
        assert_eq!(image_name_from("My Gadget_2"), "my-gadget_2");
        assert_eq!(image_name_from(".hidden"), "hidden");
        assert_eq!(
            top_level_value("name: 'trace open'\ndescription: x\n", "name").as_deref(),
            Some("trace open")
        );
        assert_eq!(
            top_level_value(
                "ebpfsource: src/prog.bpf.c\nwasm: go/program.go\n",
                "ebpfsource"
            )
            .as_deref(),
            Some("src/prog.bpf.c")
        );
        assert_eq!(top_level_value("  name: nested\n", "name"), None);
        assert_eq!(top_level_value("names: x\n", "name"), None);
    }
}
