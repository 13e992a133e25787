//! Typed client proxies. Third-party tools use these instead of hand-written calls.

use std::collections::HashMap;

use zbus::proxy;
use zbus::zvariant::{OwnedFd, OwnedObjectPath, Value};

use crate::types::RunSummary;

/// `org.gadgetd.Agent1.Manager` on `/org/gadgetd/Agent1`.
#[proxy(
    interface = "org.gadgetd.Agent1.Manager",
    default_service = "org.gadgetd.Agent1",
    default_path = "/org/gadgetd/Agent1"
)]
pub trait Manager {
    /// Runs a compiled gadget object read from `object` (an open fd: the
    /// caller's file permissions apply), with an optional definition YAML.
    /// Returns the run object and the read end of its event stream; the run
    /// stops when every attached stream is closed.
    ///
    /// Mutating calls allow interactive authorization: with a polkit agent
    /// in the caller's session, polkit may ask for a password.
    #[zbus(allow_interactive_auth)]
    fn run_object(
        &self,
        object: zbus::zvariant::Fd<'_>,
        definition: &str,
        params: HashMap<&str, &str>,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<(OwnedObjectPath, OwnedFd)>;

    /// Runs a local image (tag, digest or digest prefix; bare names get the
    /// default registry prefix), the host architecture's manifest. It does
    /// not pull: call `Images.Pull` first. Returns like `RunObject`.
    fn run(
        &self,
        image: &str,
        params: HashMap<&str, &str>,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<(OwnedObjectPath, OwnedFd)>;

    /// Another event stream of a live run. Several attachers may read at once.
    #[zbus(allow_interactive_auth)]
    fn attach(&self, id: &str) -> zbus::Result<OwnedFd>;

    /// `Attach` with options: `output-fd` (h), the caller's own output for
    /// its event lines (see `options::OUTPUT_FD`). Agents older than this
    /// call answer `UnknownMethod`: use `attach` then.
    #[zbus(allow_interactive_auth)]
    fn attach_with_options(
        &self,
        id: &str,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<OwnedFd>;

    /// Stops a run: programs are detached, streams end with reason `stopped`.
    #[zbus(allow_interactive_auth)]
    fn stop(&self, id: &str) -> zbus::Result<()>;

    /// Live and recently ended runs.
    fn list_runs(&self) -> zbus::Result<Vec<RunSummary>>;

    /// The logged events of a detached run, as an event stream (header,
    /// events, `lost` reports, end). Options: `follow` (b), `since-us` (t).
    fn logs(&self, id: &str, options: HashMap<&str, Value<'_>>) -> zbus::Result<OwnedFd>;

    /// Forgets an ended run.
    #[zbus(allow_interactive_auth)]
    fn remove(&self, id: &str) -> zbus::Result<()>;

    /// The agent's version.
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
}

/// `org.gadgetd.Agent1.Run` on `/org/gadgetd/Agent1/run/<id>`.
#[proxy(
    interface = "org.gadgetd.Agent1.Run",
    default_service = "org.gadgetd.Agent1"
)]
pub trait Run {
    fn stop(&self) -> zbus::Result<()>;

    #[zbus(property)]
    fn id(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn image(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn digest(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn detached(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn started_at(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn params(&self) -> zbus::Result<HashMap<String, String>>;
    #[zbus(property)]
    fn events_seen(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn events_lost(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn owner(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn exit_reason(&self) -> zbus::Result<String>;
}
