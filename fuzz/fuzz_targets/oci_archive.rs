//! The OCI archive reader (`gadgetctl image import`): a tar stream from
//! anyone, staged into a throw-away store on tmpfs.
#![no_main]

use std::sync::OnceLock;

use gadgetd_images::{archive, store::Store};
use libfuzzer_sys::fuzz_target;

fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = std::env::var_os("FUZZ_STORE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| format!("/dev/shm/gadgetd-fuzz-store-{}", std::process::id()).into());
        Store::open(&dir).expect("a store for the fuzzer")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = archive::check_complete(data);
    let mut staging = store().staging().expect("a staging area");
    let _ = archive::read(data, &mut staging);
});
