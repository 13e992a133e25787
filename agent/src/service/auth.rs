//! Who is calling, from a party the caller cannot impersonate.
//!
//! * On a bus the daemon stamps every message's `SENDER`, and we ask the bus
//!   daemon (`GetConnectionCredentials`) for that name's uid and pid.
//! * On the peer-to-peer socket there is no bus: a client writes its own
//!   headers, `SENDER` included, and any "bus" we asked would be the caller
//!   itself. The kernel's `SO_PEERCRED` of the connection (uid, gid, pid at
//!   connect time) is the only identity, whatever the headers say.
//!
//! Which of the two applies is a property of the connection
//! ([`Connection::is_bus`]), never of the message. What the caller may do is
//! decided in `authz`.

use zbus::message::Header;
use zbus::{Connection, fdo};

/// The authenticated caller of a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub pid: Option<u32>,
    /// Whether the identity came from a bus daemon (so polkit can be asked
    /// about the sender) rather than from the socket.
    pub on_bus: bool,
}

/// The caller of the message `hdr` received on `conn`.
///
/// Errors: `AccessDenied` when the bus or the kernel cannot say who it is.
pub async fn caller(conn: &Connection, hdr: &Header<'_>) -> fdo::Result<Caller> {
    if conn.is_bus() {
        // The bus daemon sets SENDER; a message without one did not come through it.
        let sender = hdr.sender().ok_or_else(|| {
            fdo::Error::AccessDenied("a bus message without a sender; refusing".into())
        })?;
        let dbus = fdo::DBusProxy::new(conn).await?;
        let creds = dbus
            .get_connection_credentials(zbus::names::BusName::from(sender.to_owned()))
            .await?;
        let uid = creds.unix_user_id().ok_or_else(|| {
            fdo::Error::AccessDenied("the bus did not report the caller's uid".into())
        })?;
        return Ok(Caller {
            uid,
            pid: creds.process_id(),
            on_bus: true,
        });
    }
    // zbus reads SO_PEERCRED from the socket itself (never from the peer).
    let creds = conn.peer_creds().await.map_err(|e| {
        fdo::Error::AccessDenied(format!(
            "cannot read the peer's credentials (SO_PEERCRED): {e}"
        ))
    })?;
    let uid = creds.unix_user_id().ok_or_else(|| {
        fdo::Error::AccessDenied("the kernel did not report the peer's uid".into())
    })?;
    Ok(Caller {
        uid,
        pid: creds.process_id(),
        on_bus: false,
    })
}
