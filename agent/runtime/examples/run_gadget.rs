//! Runs a gadget object in-process and prints its events: the library API
//! without the daemon.
//!
//!     make gadgets
//!     sudo cargo run -p gadgetd-runtime --example run_gadget -- build/gadgets/trace_open.o targ_pid=1234

use gadgetd_runtime::{Gadget, Record, RunOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: run_gadget OBJECT.o [param=value]...")?;
    let mut opts = RunOptions::default();
    for kv in args {
        let (k, v) = kv.split_once('=').ok_or("parameters are name=value")?;
        opts.params.insert(k.into(), v.into());
    }
    let gadget = Gadget::from_object(std::fs::read(&path)?, None)?;
    let mut run = gadget.start(&opts)?;
    eprintln!("running {} (Ctrl-C to stop)", gadget.name());
    loop {
        tokio::select! {
            record = run.next_record() => match record? {
                Some(Record::Event(event)) => println!("{}", serde_json::Value::Object(event)),
                Some(Record::Rows(rows)) => println!("{}", serde_json::Value::from(rows)),
                Some(Record::Lost(n)) => eprintln!("lost {n} events"),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // Profilers print their histograms when stopped.
    for record in run.finish()? {
        if let Record::Event(event) = record {
            println!("{}", serde_json::Value::Object(event));
        }
    }
    Ok(())
}
