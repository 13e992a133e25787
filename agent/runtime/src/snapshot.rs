//! Running snapshotters: every `iter/*` program is attached and read once.
//! Task iterators see every process of the agent's pid namespace (the host's,
//! for the service). Network iterators see the sockets of the network
//! namespace that creates the iterator, so they are created once per network
//! namespace of interest, from a short-lived thread that joined it, and each
//! row is tagged with that namespace's inode.

use std::io::Read;
use std::os::fd::AsFd;

use aya::Ebpf;
use aya::programs::Iter;

use super::decode::Decoder;
use super::error::{GadgetError, Result, chain};
use super::kinds::{Snapshotter, is_net_iter};
use super::map_elem_iter;

/// A network namespace to iterate in: its inode and an open handle.
pub struct Netns {
    pub inode: u64,
    pub file: std::fs::File,
}

/// The agent's own network namespace.
pub fn own_netns() -> std::io::Result<Netns> {
    open_netns("/proc/self/ns/net")
}

fn open_netns(path: &str) -> std::io::Result<Netns> {
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::File::open(path)?;
    let inode = file.metadata()?.ino();
    Ok(Netns { inode, file })
}

/// Every network namespace on the host that a process lives in, plus those
/// bind-mounted under /run/netns (`ip netns add`), once each.
pub fn all_netns() -> Vec<Netns> {
    netns_paths()
        .values()
        .filter_map(|path| open_netns(path).ok())
        .collect()
}

/// The inode of every network namespace on the host that a process lives
/// in or that is bind-mounted under /run/netns, with one path that names
/// it. Only stats (opening every process's namespace would be wasteful).
pub fn netns_paths() -> std::collections::BTreeMap<u64, String> {
    use std::os::unix::fs::MetadataExt;
    let mut candidates: Vec<String> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                candidates.push(format!("/proc/{}/ns/net", name.to_string_lossy()));
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir("/run/netns") {
        candidates.extend(
            dir.flatten()
                .map(|e| e.path().to_string_lossy().into_owned()),
        );
    }
    let mut out = std::collections::BTreeMap::new();
    for path in candidates {
        if let Ok(meta) = std::fs::metadata(&path) {
            out.entry(meta.ino()).or_insert(path);
        }
    }
    out
}

/// Opens the network namespace at `path` (`/proc/PID/ns/net`, `/run/netns/NAME`).
pub fn open_netns_at(path: &str) -> std::io::Result<Netns> {
    open_netns(path)
}

/// Loads every iterator program (the kernel checks its target type here).
/// aya gets only the target's id from the kernel's BTF
/// ([`super::bare_loader::kernel_function`]), not its parse of it all.
pub fn load_programs(ebpf: &mut Ebpf, snap: &Snapshotter) -> Result<()> {
    for (name, kind) in &snap.programs {
        let err = |reason: String| GadgetError::Program {
            program: name.clone(),
            section: format!("iter/{kind}"),
            reason,
        };
        // The kernel BTF names each iterator type's target `bpf_iter_<type>`.
        let btf =
            super::bare_loader::kernel_function(&format!("bpf_iter_{kind}"))?.ok_or_else(|| {
                err(format!(
                    "this kernel has no `{kind}` iterator (no bpf_iter_{kind} in its BTF)"
                ))
            })?;
        let prog: &mut Iter = ebpf
            .program_mut(name)
            .ok_or_else(|| err("aya did not load this program from the object".into()))?
            .try_into()
            .map_err(|e| err(chain(&e)))?;
        prog.load(kind, &btf).map_err(|e| err(chain(&e)))?;
    }
    Ok(())
}

/// Raw rows of a snapshot: fixed-size records, each with the network
/// namespace it came from (network iterators only).
#[derive(Default)]
pub struct Rows {
    pub size: usize,
    pub bytes: Vec<u8>,
    pub netns: Vec<Option<u64>>,
    /// Iterator outputs whose length was not a multiple of the row size.
    pub malformed: u64,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.netns.len()
    }

    #[cfg_attr(not(feature = "bench-internals"), allow(dead_code))]
    pub fn is_empty(&self) -> bool {
        self.netns.is_empty()
    }

    pub fn row(&self, i: usize) -> &[u8] {
        &self.bytes[i * self.size..(i + 1) * self.size]
    }

    /// Appends rows `order` as one JSON array line.
    pub fn write_json(&self, decoder: &Decoder, order: &[usize], out: &mut Vec<u8>) {
        out.push(b'[');
        for (n, &i) in order.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let at = out.len();
            decoder.write_fields(self.row(i), out);
            if out.len() == at {
                out.push(b'{');
            }
            if let Some(inode) = self.netns[i] {
                out.extend_from_slice(if out.len() == at + 1 {
                    b"\"netns_id\":"
                } else {
                    b",\"netns_id\":"
                });
                out.extend_from_slice(itoa::Buffer::new().format(inode).as_bytes());
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]\n");
    }
}

impl Rows {
    /// Adds the rows an iterator wrote (a trailing partial row counts as malformed).
    fn push_all(&mut self, bytes: &[u8], netns: Option<u64>) {
        if self.size == 0 {
            return;
        }
        let chunks = bytes.chunks_exact(self.size);
        self.malformed += (!chunks.remainder().is_empty()) as u64;
        for row in chunks {
            self.bytes.extend_from_slice(row);
            self.netns.push(netns);
        }
    }
}

/// Runs each iterator once (network ones once per namespace in `netns`).
pub fn collect(
    ebpf: &mut Ebpf,
    snap: &Snapshotter,
    row_size: usize,
    netns: &[Netns],
) -> Result<Rows> {
    let mut rows = Rows {
        size: row_size,
        ..Rows::default()
    };
    for (name, kind) in &snap.programs {
        let err = |reason: String| GadgetError::Program {
            program: name.clone(),
            section: format!("iter/{kind}"),
            reason,
        };
        if let Some((_, map)) = snap.map_targets.iter().find(|(p, _)| p == name) {
            let bytes = map_elem_iter::run(ebpf, name, map).map_err(err)?;
            rows.push_all(&bytes, None);
            continue;
        }
        let prog: &mut Iter = ebpf
            .program_mut(name)
            .ok_or_else(|| err("program missing".into()))?
            .try_into()
            .map_err(|e| err(chain(&e)))?;
        let targets: Vec<Option<&Netns>> = if is_net_iter(kind) {
            netns.iter().map(Some).collect()
        } else {
            vec![None]
        };
        for target in targets {
            let id = prog.attach().map_err(|e| err(chain(&e)))?;
            let link = prog.take_link(id).map_err(|e| err(chain(&e)))?;
            let bytes = match target {
                None => read_iter(link).map_err(err)?,
                Some(ns) => {
                    // setns(2) changes only the calling thread: use a scratch thread.
                    let res = std::thread::scope(|s| {
                        s.spawn(|| -> std::result::Result<Vec<u8>, String> {
                            nix::sched::setns(
                                ns.file.as_fd(),
                                nix::sched::CloneFlags::CLONE_NEWNET,
                            )
                            .map_err(|e| format!("joining network namespace {}: {e}", ns.inode))?;
                            read_iter(link)
                        })
                        .join()
                    });
                    match res {
                        Ok(Ok(b)) => b,
                        Ok(Err(e)) if e.starts_with("joining") => {
                            tracing::debug!(error = %e, "skipping a network namespace that went away");
                            continue;
                        }
                        Ok(Err(e)) => return Err(err(e)),
                        Err(_) => return Err(err("iterator thread panicked".into())),
                    }
                }
            };
            rows.push_all(&bytes, target.map(|ns| ns.inode));
        }
    }
    Ok(rows)
}

/// Creates the iterator (in the calling thread's namespaces) and reads it to the end.
fn read_iter(link: aya::programs::iter::IterLink) -> std::result::Result<Vec<u8>, String> {
    let mut file = link.into_file().map_err(|e| chain(&e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("reading the iterator: {e}"))?;
    Ok(bytes)
}
