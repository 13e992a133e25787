//! Authorization of every method call (design.md, "Authorization").
//!
//! * Root (uid 0) is always allowed.
//! * On a bus: polkit decides, `CheckAuthorization` for the caller's
//!   system-bus-name, with user interaction when the caller set the D-Bus
//!   "allow interactive authorization" flag. Without a reachable polkit only
//!   root may change anything; reading stays open (its default is `yes`).
//! * On the peer-to-peer socket (no bus, so no polkit subject): the peer's
//!   uid from SO_PEERCRED must be root or a member of the gadget group.
//!
//! Denials are `org.freedesktop.DBus.Error.AccessDenied` naming the action.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zbus::message::Header;
use zbus::{Connection, fdo};
use zbus_polkit::policykit1::{AuthorityProxy, CheckAuthorizationFlags, Subject};

use super::auth::{self, Caller};

/// polkit action ids (design.md).
pub const ACTION_RUN: &str = "org.gadgetd.run-gadget";
/// RunObject: an arbitrary object file, deniable while signed images stay allowed.
pub const ACTION_RUN_OBJECT: &str = "org.gadgetd.run-object";
pub const ACTION_MANAGE_IMAGES: &str = "org.gadgetd.manage-images";
pub const ACTION_READ: &str = "org.gadgetd.read";

/// The group whose members may run gadgets (shipped polkit rule, p2p socket).
pub const DEFAULT_GROUP: &str = "gadget";

/// Decides whether a caller may perform an action; also notes when the agent
/// was last asked anything (for the idle exit).
#[derive(Clone)]
pub struct Authorizer {
    inner: Arc<Inner>,
}

struct Inner {
    group: String,
    last_call: Mutex<Instant>,
}

impl Default for Authorizer {
    fn default() -> Self {
        Authorizer::new(DEFAULT_GROUP)
    }
}

impl Authorizer {
    pub fn new(group: &str) -> Authorizer {
        Authorizer {
            inner: Arc::new(Inner {
                group: group.to_string(),
                last_call: Mutex::new(Instant::now()),
            }),
        }
    }

    pub fn group(&self) -> &str {
        &self.inner.group
    }

    /// How long since the last method call.
    pub fn idle_for(&self) -> Duration {
        self.inner.last_call.lock().unwrap().elapsed()
    }

    pub async fn check(
        &self,
        conn: &Connection,
        hdr: &Header<'_>,
        action: &str,
    ) -> fdo::Result<Caller> {
        *self.inner.last_call.lock().unwrap() = Instant::now();
        let caller = auth::caller(conn, hdr).await?;
        if caller.uid == 0 {
            return Ok(caller);
        }
        // Bus or socket is the connection's property, never the message's
        // (a p2p client writes its own SENDER header).
        if caller.on_bus {
            self.check_polkit(conn, hdr, action, &caller).await?;
        } else if action != ACTION_READ && !in_group(caller.uid, &self.inner.group) {
            return Err(fdo::Error::AccessDenied(format!(
                "uid {} is not allowed to {action}: it is neither root nor a member of group `{}`, which the gadgetd socket requires",
                caller.uid, self.inner.group
            )));
        }
        Ok(caller)
    }

    async fn check_polkit(
        &self,
        conn: &Connection,
        hdr: &Header<'_>,
        action: &str,
        caller: &Caller,
    ) -> fdo::Result<()> {
        let interactive = hdr
            .primary()
            .flags()
            .contains(zbus::message::Flags::AllowInteractiveAuth);
        let result = async {
            let authority = AuthorityProxy::builder(conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?;
            let subject = Subject::new_for_message_header(hdr)
                .map_err(|e| zbus::Error::Failure(e.to_string()))?;
            let flags = if interactive {
                CheckAuthorizationFlags::AllowUserInteraction.into()
            } else {
                enumflags2::BitFlags::empty()
            };
            authority
                .check_authorization(&subject, action, &HashMap::new(), flags, "")
                .await
        }
        .await;
        match result {
            Ok(r) if r.is_authorized => Ok(()),
            Ok(r) if r.is_challenge => Err(fdo::Error::AccessDenied(format!(
                "uid {} is not allowed to {action} without authenticating: call with interactive authorization and a polkit agent running (e.g. pkttyagent), or ask an admin to add the user to group `{}`",
                caller.uid, self.inner.group
            ))),
            Ok(_) => Err(fdo::Error::AccessDenied(format!(
                "uid {} is not allowed to {action}: polkit denied it (an admin can add the user to group `{}`)",
                caller.uid, self.inner.group
            ))),
            // Reading is allowed to anyone by default; keep it working without polkit.
            Err(_) if action == ACTION_READ => Ok(()),
            Err(e) => Err(fdo::Error::AccessDenied(format!(
                "uid {} is not allowed to {action}: polkit could not be asked ({e}); without polkit only root may do this",
                caller.uid
            ))),
        }
    }
}

/// Whether `uid`'s user is in `group` (primary or supplementary, per the
/// user database).
fn in_group(uid: u32, group: &str) -> bool {
    use nix::unistd::{Group, Uid, User, getgrouplist};
    let (Ok(Some(user)), Ok(Some(group))) =
        (User::from_uid(Uid::from_raw(uid)), Group::from_name(group))
    else {
        return false;
    };
    if user.gid == group.gid {
        return true;
    }
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return false;
    };
    getgrouplist(&name, user.gid).is_ok_and(|groups| groups.contains(&group.gid))
}
