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

/// An `h` option: the caller's fd, checked and opened as an output for
/// event lines (`direct_out::Output::open`; its errors name the problem).
pub fn output(key: &str, value: &OwnedValue) -> fdo::Result<super::direct_out::Output> {
    match &**value {
        zbus::zvariant::Value::Fd(fd) => {
            super::direct_out::Output::open(std::os::fd::AsFd::as_fd(fd))
                .map_err(fdo::Error::InvalidArgs)
        }
        _ => Err(fdo::Error::InvalidArgs(format!(
            "option {key} must be a file descriptor (h)"
        ))),
    }
}
