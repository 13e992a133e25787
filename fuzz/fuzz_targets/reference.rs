//! Image references as users type them. A reference that normalizes must
//! normalize to itself again (the store keys images by that string).
#![no_main]

use gadgetd_images::reference::{normalize, store_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = normalize(input, "ghcr.io/gadgetd/gadget") {
        let name = store_name(&r);
        let again = normalize(&name, "ghcr.io/gadgetd/gadget")
            .unwrap_or_else(|e| panic!("{input:?} normalized to {name:?}, which fails: {e}"));
        assert_eq!(store_name(&again), name, "normalizing {input:?} is not stable");
    }
});
