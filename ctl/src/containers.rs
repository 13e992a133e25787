//! `gadgetctl containers`: what the agent's runtime watchers see.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::escape;
use gadgetd_dbus::Endpoint;
use gadgetd_dbus::containers::ContainersProxy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ContainersFormat {
    Columns,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct ContainersArgs {
    #[arg(short = 'o', long = "output", value_enum, default_value = "columns")]
    pub output: ContainersFormat,
}

async fn proxy(address: Option<&str>) -> Result<ContainersProxy<'static>> {
    let (conn, endpoint) = gadgetd_dbus::connect(address.map(Endpoint::parse)).await?;
    let builder = ContainersProxy::builder(&conn);
    let builder = if endpoint.is_bus() {
        builder
    } else {
        builder.destination(gadgetd_dbus::names::BUS_NAME)?
    };
    Ok(builder.build().await?)
}

/// Whether the agent sees no container at all (then the container columns
/// of events would stay empty). `false` when it cannot tell.
pub async fn host_has_none(address: Option<&str>) -> bool {
    match proxy(address).await {
        Ok(p) => p.list_containers().await.is_ok_and(|l| l.is_empty()),
        Err(_) => false,
    }
}

pub async fn containers(address: Option<&str>, args: ContainersArgs) -> Result<ExitCode> {
    let list = proxy(address).await?.list_containers().await?;
    let mut out = std::io::stdout().lock();
    if args.output == ContainersFormat::Json {
        for c in &list {
            serde_json::to_writer(&mut out, c)?;
            writeln!(out)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<14} {:<24} {:<11} {:>8} {:>11} {:<24} K8S",
        "ID", "NAME", "RUNTIME", "PID", "MNTNS", "IMAGE"
    )?;
    for c in &list {
        let id: String = c.id.chars().take(12).collect();
        let k8s = if c.k8s_pod_name.is_empty() {
            String::new()
        } else {
            format!(
                "{}/{}/{}",
                c.k8s_namespace, c.k8s_pod_name, c.k8s_container_name
            )
        };
        writeln!(
            out,
            "{:<14} {:<24} {:<11} {:>8} {:>11} {:<24} {}",
            escape::terminal(&id),
            escape::terminal(&c.name),
            escape::terminal(&c.runtime),
            c.pid,
            c.mntns,
            escape::terminal(&c.image),
            escape::terminal(&k8s)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
