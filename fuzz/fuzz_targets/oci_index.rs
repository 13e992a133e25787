//! OCI index and manifest readers: blobs from registries and archives.
#![no_main]

use gadgetd_images::format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = format::parse_index(data) {
        for d in &index.manifests {
            let _ = (d.digest(), d.ref_name(), d.is_index(), format::check_size(d));
        }
        let _ = format::pick_platform(&index, "amd64");
        let _ = format::pick_platform(&index, "arm64");
    }
    if let Ok(m) = format::parse_manifest(data) {
        let _ = format::gadget_parts(&m);
    }
});
