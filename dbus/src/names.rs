//! Names on the bus and on disk that outside tools rely on (see docs/dbus.md).

/// Well-known name of the agent on the system bus.
pub const BUS_NAME: &str = "org.gadgetd.Agent1";
/// The manager object.
pub const MANAGER_PATH: &str = "/org/gadgetd/Agent1";
/// Runs: Run, RunObject, RunDetached, Attach, Stop, ListRuns.
pub const MANAGER_INTERFACE: &str = "org.gadgetd.Agent1.Manager";
/// Images and registries.
pub const IMAGES_INTERFACE: &str = "org.gadgetd.Agent1.Images";
/// One object per run, below [`RUN_PATH_PREFIX`].
pub const RUN_INTERFACE: &str = "org.gadgetd.Agent1.Run";
/// Object path prefix of runs: `/org/gadgetd/Agent1/run/<id>`.
pub const RUN_PATH_PREFIX: &str = "/org/gadgetd/Agent1/run";
/// Default peer-to-peer socket (D-Bus protocol without a bus).
pub const DEFAULT_P2P_SOCKET: &str = "/run/gadgetd/gadgetd.sock";
/// Environment variable that selects the endpoint, like `--address`.
pub const ADDRESS_ENV: &str = "GADGETD_ADDRESS";

/// Object path of the run with id `id`. Run ids are lowercase hex, which is
/// always a valid path element.
pub fn run_path(id: &str) -> String {
    format!("{RUN_PATH_PREFIX}/{id}")
}

/// Error names the agent returns besides the standard `org.freedesktop.DBus.Error.*`.
pub mod errors {
    /// The image or object could not be parsed or loaded; the message says why.
    pub const INVALID_GADGET: &str = "org.gadgetd.Agent1.Error.InvalidGadget";
    /// No run with that id.
    pub const NO_SUCH_RUN: &str = "org.gadgetd.Agent1.Error.NoSuchRun";
}
