//! Endpoint selection for clients: `--address`, `GADGETD_ADDRESS`, else the
//! system bus when the agent is reachable there, else the p2p socket.

use std::path::PathBuf;

use zbus::{Connection, connection};

use crate::names;

/// Where the agent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The system bus (honours `DBUS_SYSTEM_BUS_ADDRESS`).
    SystemBus,
    /// A bus at a D-Bus address such as `unix:path=/run/x/bus`.
    Bus(String),
    /// The agent's peer-to-peer socket: D-Bus protocol, no bus daemon.
    P2p(PathBuf),
}

impl Endpoint {
    /// Parses `--address`: `system`, a D-Bus address (`unix:path=...`,
    /// anything with `=`), or `p2p:PATH` / an absolute socket path.
    pub fn parse(address: &str) -> Endpoint {
        if address == "system" {
            Endpoint::SystemBus
        } else if let Some(path) = address.strip_prefix("p2p:") {
            Endpoint::P2p(path.into())
        } else if address.starts_with('/') {
            Endpoint::P2p(address.into())
        } else {
            Endpoint::Bus(address.to_string())
        }
    }

    /// Whether calls need a destination name (bus) or go straight to the peer.
    pub fn is_bus(&self) -> bool {
        !matches!(self, Endpoint::P2p(_))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::SystemBus => write!(f, "the system bus"),
            Endpoint::Bus(a) => write!(f, "the bus at {a}"),
            Endpoint::P2p(p) => write!(f, "the gadgetd socket {}", p.display()),
        }
    }
}

/// Connects to `endpoint`, or picks one when `None` (see the module docs).
pub async fn connect(endpoint: Option<Endpoint>) -> Result<(Connection, Endpoint), ConnectError> {
    let endpoint = match endpoint {
        Some(e) => e,
        None => match std::env::var(names::ADDRESS_ENV) {
            Ok(a) if !a.is_empty() => Endpoint::parse(&a),
            _ => return connect_default().await,
        },
    };
    let conn = open(&endpoint).await.map_err(|source| ConnectError {
        endpoint: endpoint.to_string(),
        source,
    })?;
    Ok((conn, endpoint))
}

async fn open(endpoint: &Endpoint) -> zbus::Result<Connection> {
    match endpoint {
        Endpoint::SystemBus => Connection::system().await,
        Endpoint::Bus(address) => {
            connection::Builder::address(address.as_str())?
                .build()
                .await
        }
        Endpoint::P2p(path) => {
            let stream = tokio::net::UnixStream::connect(path).await?;
            connection::Builder::unix_stream(stream).p2p().build().await
        }
    }
}

async fn connect_default() -> Result<(Connection, Endpoint), ConnectError> {
    let p2p = Endpoint::P2p(names::DEFAULT_P2P_SOCKET.into());
    if let Ok(conn) = open(&Endpoint::SystemBus).await
        && (agent_reachable_on_bus(&conn).await
            || !std::path::Path::new(names::DEFAULT_P2P_SOCKET).exists())
    {
        return Ok((conn, Endpoint::SystemBus));
    }
    let conn = open(&p2p).await.map_err(|source| ConnectError {
        endpoint: format!("the system bus or {p2p}"),
        source,
    })?;
    Ok((conn, p2p))
}

/// The agent owns its name, or the bus can start it.
async fn agent_reachable_on_bus(conn: &Connection) -> bool {
    let Ok(dbus) = zbus::fdo::DBusProxy::new(conn).await else {
        return false;
    };
    let name = zbus::names::BusName::try_from(names::BUS_NAME).expect("valid bus name");
    if dbus.name_has_owner(name.clone()).await.unwrap_or(false) {
        return true;
    }
    dbus.list_activatable_names()
        .await
        .map(|names| names.iter().any(|n| n.as_str() == names::BUS_NAME))
        .unwrap_or(false)
}

/// The agent could not be reached.
#[derive(Debug)]
pub struct ConnectError {
    pub endpoint: String,
    pub source: zbus::Error,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot reach gadgetd on {}: {} (is gadgetd running? choose another endpoint with --address or {})",
            self.endpoint,
            self.source,
            names::ADDRESS_ENV
        )
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_to_endpoints() {
        assert_eq!(Endpoint::parse("system"), Endpoint::SystemBus);
        assert_eq!(
            Endpoint::parse("/run/gadgetd/gadgetd.sock"),
            Endpoint::P2p("/run/gadgetd/gadgetd.sock".into())
        );
        assert_eq!(
            Endpoint::parse("p2p:rel.sock"),
            Endpoint::P2p("rel.sock".into())
        );
        assert_eq!(
            Endpoint::parse("unix:path=/tmp/bus"),
            Endpoint::Bus("unix:path=/tmp/bus".into())
        );
    }
}
