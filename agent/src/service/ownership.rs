//! Who may do what to a run (docs/security.md, "Who may read what"):
//!
//! * its owner (the uid that started it) and root: everything;
//! * reading another user's run (its logs, its params, a live stream of
//!   it) needs `org.gadgetd.run-gadget`: whoever may run gadgets can see
//!   as much by tracing the host anyway, and anyone else learns only that
//!   the run exists (`ListRuns` stays open);
//! * stopping or removing another user's run needs
//!   `org.gadgetd.manage-runs` (admins; no group is granted it, and on the
//!   peer-to-peer socket, which has no polkit, only root has it).

use zbus::message::Header;
use zbus::{Connection, fdo};

use super::auth::Caller;
use super::authz::{ACTION_READ, ACTION_RUN, Authorizer};
use super::run::RunHandle;

/// polkit action for stopping and removing other users' runs.
pub const ACTION_MANAGE_RUNS: &str = "org.gadgetd.manage-runs";

/// What a caller wants to do to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Logs, params, a live stream.
    Read,
    /// Stop, remove.
    Control,
}

/// Checks `action` for the caller (as every method does), then whether the
/// caller may `access` `handle`; returns the caller.
pub async fn check(
    auth: &Authorizer,
    conn: &Connection,
    hdr: &Header<'_>,
    action: &str,
    handle: &RunHandle,
    access: Access,
) -> fdo::Result<Caller> {
    let caller = auth.check(conn, hdr, action).await?;
    if caller.uid == 0 || caller.uid == handle.owner {
        return Ok(caller);
    }
    match access {
        Access::Read => {
            if action != ACTION_RUN {
                auth.check(conn, hdr, ACTION_RUN)
                    .await
                    .map_err(|_| denied(&caller, handle, "read", ACTION_RUN))?;
            }
        }
        Access::Control => {
            // On the p2p socket there is no polkit subject: root only.
            if !caller.on_bus || auth.check(conn, hdr, ACTION_MANAGE_RUNS).await.is_err() {
                return Err(denied(
                    &caller,
                    handle,
                    "stop or remove",
                    ACTION_MANAGE_RUNS,
                ));
            }
        }
    }
    Ok(caller)
}

/// Whether the caller of a property read may see `handle`'s private
/// details (its params); without a message (a signal), no one may.
pub async fn may_read(
    auth: &Authorizer,
    conn: &Connection,
    hdr: Option<&Header<'_>>,
    handle: &RunHandle,
) -> bool {
    let Some(hdr) = hdr else { return false };
    check(auth, conn, hdr, ACTION_READ, handle, Access::Read)
        .await
        .is_ok()
}

fn denied(caller: &Caller, handle: &RunHandle, what: &str, action: &str) -> fdo::Error {
    fdo::Error::AccessDenied(format!(
        "uid {} may not {what} run {} of uid {}: that needs {action} (or being its owner or root)",
        caller.uid, handle.id, handle.owner
    ))
}
