//! The definition (gadget.yaml) parser: a definition comes with every
//! image and every RunObject call.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(yaml) = std::str::from_utf8(data) {
        let _ = gadgetd_runtime::definition::Definition::parse(yaml);
    }
});
