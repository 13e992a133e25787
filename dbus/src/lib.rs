//! The gadgetd D-Bus contract, shared by the agent, `gadgetctl` and third-party tools.
//!
//! * [`names`]: bus name, object paths, interfaces, default endpoints.
//! * [`proxy`]: typed zbus proxies for the manager, run and image interfaces.
//! * [`types`]: wire structs that cross the bus.
//! * [`stream`]: the newline-delimited JSON event stream sent over the fd that
//!   `Run`/`Attach` return (events never travel in D-Bus messages).
//! * [`terminal`]: the characters a terminal acts on, which event lines
//!   and gadgetctl's output escape.
//! * [`connect`]: endpoint selection (`--address`, `GADGETD_ADDRESS`, system
//!   bus, then the peer-to-peer socket).
//!
//! The introspection XML of the interfaces is in `dbus/org.gadgetd.Agent1.xml`.

#[cfg(feature = "bus")]
pub mod connect;
#[cfg(feature = "bus")]
pub mod containers;
#[cfg(feature = "bus")]
pub mod gadgets;
#[cfg(feature = "bus")]
pub mod images;
#[cfg(feature = "bus")]
pub mod names;
#[cfg(feature = "bus")]
pub mod proxy;
#[cfg(feature = "bus")]
pub mod signatures;
pub mod stream;
pub mod terminal;
#[cfg(feature = "bus")]
pub mod types;

#[cfg(feature = "bus")]
pub use connect::{Endpoint, connect};
#[cfg(feature = "bus")]
pub use images::ImagesProxy;
#[cfg(feature = "bus")]
pub use proxy::{ManagerProxy, RunProxy};
#[cfg(feature = "bus")]
pub use signatures::SignaturesProxy;
