//! The gadgetd D-Bus contract, shared by the agent, `gadgetctl` and third-party tools.
//!
//! * [`names`]: bus name, object paths, interfaces, default endpoints.
//! * [`proxy`]: typed zbus proxies for the manager, run and image interfaces.
//! * [`types`]: wire structs that cross the bus.
//! * [`stream`]: the newline-delimited JSON event stream sent over the fd that
//!   `Run`/`Attach` return (events never travel in D-Bus messages).
//! * [`connect`]: endpoint selection (`--address`, `GADGETD_ADDRESS`, system
//!   bus, then the peer-to-peer socket).
//!
//! The introspection XML of the interfaces is in `dbus/org.gadgetd.Agent1.xml`.

pub mod connect;
pub mod containers;
pub mod gadgets;
pub mod images;
pub mod names;
pub mod proxy;
pub mod signatures;
pub mod stream;
pub mod types;

pub use connect::{Endpoint, connect};
pub use images::ImagesProxy;
pub use proxy::{ManagerProxy, RunProxy};
pub use signatures::SignaturesProxy;
