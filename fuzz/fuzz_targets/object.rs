//! The ELF/BTF object parser and classifier: what `gadgetctl describe` and
//! every run do first with an object a caller hands in. Any input must give
//! a gadget or an error, never a panic (a panic inside aya-obj is caught
//! and turned into an error by the runtime).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = gadgetd_runtime::Gadget::from_object(data.to_vec(), None) {
        let _ = (g.name(), g.description(), g.fields(), g.params().len());
        let _ = g.kind();
    }
});
