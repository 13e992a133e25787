//! Runs a gadget image in-process, the seed's `RunOCI` shape: the image
//! from gadgetd's store (`/var/lib/gadgetd/images`), pulled when missing,
//! events printed as JSON lines until the timeout (or Ctrl-C).
//!
//!     sudo cargo run -p gadgetd-runtime --features oci --example run_image -- trace_open 5 targ_failed=true
//!
//! Arguments: REFERENCE [SECONDS [param=value]...]; SECONDS 0 runs until Ctrl-C.

use std::time::Duration;

use gadgetd_runtime::{Opts, Record, run_image};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: run_image REFERENCE [SECONDS [param=value]...]";
    let mut args = std::env::args().skip(1);
    let reference = args.next().ok_or(usage)?;
    let mut opts = Opts::default();
    if let Some(secs) = args.next() {
        let secs: u64 = secs.parse().map_err(|_| usage)?;
        opts.timeout = (secs > 0).then(|| Duration::from_secs(secs));
    }
    for kv in args {
        let (k, v) = kv.split_once('=').ok_or(usage)?;
        opts.run.params.insert(k.into(), v.into());
    }
    let run = run_image(&reference, &opts)?;
    eprintln!("running {} from {reference}", run.gadget().name());
    for record in run {
        match record? {
            Record::Event(event) => println!("{}", serde_json::Value::Object(event)),
            Record::Rows(rows) => println!("{}", serde_json::Value::from(rows)),
            Record::Lost(n) => eprintln!("lost {n} events"),
        }
    }
    Ok(())
}
