//! Packs a compiled gadget into an image (this host's architecture) and
//! writes it as an OCI archive, ready for `gadgetctl image import` or
//! `skopeo copy oci-archive:FILE ...`. No root, no network.
//!
//!     make gadgets
//!     cargo run -p gadgetd-images --example build_archive -- \
//!         build/gadgets/trace_open.o gadgets/trace_open/gadget.yaml localhost/me/trace_open:v1 /tmp/trace_open.tar

use std::path::Path;

use gadgetd_images::archive;
use gadgetd_images::format::{self, ArchBuild, BuildInfo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [object, definition, name, out] = args.as_slice() else {
        return Err("usage: build_archive OBJECT.o GADGET.yaml NAME:TAG OUT.tar".into());
    };
    let read = |p: &str| std::fs::read(p).map_err(|e| format!("cannot read {p}: {e}"));
    let image = format::assemble(
        &[ArchBuild {
            arch: format::host_arch().into(),
            program: read(object)?,
        }],
        &BuildInfo {
            definition: read(definition)?,
            ..Default::default()
        },
    );
    archive::write_file(
        Path::new(out),
        &image.blobs,
        &[(Some(name.clone()), image.index.clone())],
        0,
    )?;
    println!(
        "{name} {} ({} blobs) -> {out}",
        image.index.digest,
        image.blobs.len()
    );
    Ok(())
}
