//! Typed reads of `a{sv}` option values, with errors naming the key.

use zbus::fdo;
use zbus::zvariant::OwnedValue;

pub fn flag(key: &str, value: &OwnedValue) -> fdo::Result<bool> {
    bool::try_from(value)
        .map_err(|_| fdo::Error::InvalidArgs(format!("option {key} must be a boolean (b)")))
}

pub fn uint(key: &str, value: &OwnedValue) -> fdo::Result<u64> {
    u64::try_from(value)
        .map_err(|_| fdo::Error::InvalidArgs(format!("option {key} must be a u64 (t)")))
}
