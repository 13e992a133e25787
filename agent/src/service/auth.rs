//! Who is calling. On a bus the daemon vouches for the sender's uid; on the
//! peer-to-peer socket the kernel does (SO_PEERCRED).
//! What the caller may do is decided in `authz`.

use zbus::message::Header;
use zbus::{Connection, fdo};

/// The authenticated caller of a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub pid: Option<u32>,
}

pub async fn caller(conn: &Connection, hdr: &Header<'_>) -> fdo::Result<Caller> {
    match hdr.sender() {
        Some(sender) => {
            let dbus = fdo::DBusProxy::new(conn).await?;
            let creds = dbus
                .get_connection_credentials(zbus::names::BusName::from(sender.to_owned()))
                .await?;
            let uid = creds.unix_user_id().ok_or_else(|| {
                fdo::Error::AccessDenied("the bus did not report the caller's uid".into())
            })?;
            Ok(Caller {
                uid,
                pid: creds.process_id(),
            })
        }
        None => {
            let creds = conn.peer_creds().await.map_err(|e| {
                fdo::Error::AccessDenied(format!("cannot read the peer's credentials: {e}"))
            })?;
            let uid = creds
                .unix_user_id()
                .ok_or_else(|| fdo::Error::AccessDenied("the peer's uid is unknown".into()))?;
            Ok(Caller {
                uid,
                pid: creds.process_id(),
            })
        }
    }
}
