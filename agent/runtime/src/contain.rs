//! Panics inside dependencies become errors of the one call that hit them.
//!
//! A mutated object can make a dependency panic (aya-obj slices a program
//! by its symbol's size without checking it against the section: `range
//! end index … out of range`; in debug builds also `attempt to subtract
//! with overflow`). Parsing and loading run under [`contain`]: the panic
//! is caught with `catch_unwind`, the default hook's message and backtrace
//! are suppressed for that thread, and the caller gets an error naming the
//! panic and where it happened, which the agent logs in one line. Panics on
//! other threads, or outside `contain`, go to the previous hook unchanged.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use crate::error::{GadgetError, Result};

thread_local! {
    /// Whether this thread is inside [`contain`].
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
    /// The last contained panic on this thread: message and location.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Where a contained panic happened, for the error it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading the ELF object and its BTF: a [`GadgetError::NotElf`].
    Parse,
    /// Preparing and loading it into the kernel: a [`GadgetError::Load`].
    Load,
}

fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                return previous(info);
            }
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            CAUGHT.with(|c| *c.borrow_mut() = Some(format!("{message}{at}")));
        }));
    });
}

/// Runs `f`; a panic inside it becomes an error for `stage`, logged as one
/// warning line.
pub fn contain<T>(stage: Stage, f: impl FnOnce() -> Result<T>) -> Result<T> {
    install_hook();
    let outer = CONTAINED.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(outer));
    match result {
        Ok(r) => r,
        Err(_) => {
            let what = CAUGHT
                .with(|c| c.borrow_mut().take())
                .unwrap_or_else(|| "a panic without a message".into());
            tracing::warn!(panic = %what, ?stage, "a dependency panicked on this object; refused it");
            let text = format!(
                "the object broke the {} (it panicked: {what}); the object is malformed",
                match stage {
                    Stage::Parse => "ELF/BTF parser",
                    Stage::Load => "loader",
                }
            );
            Err(match stage {
                Stage::Parse => GadgetError::NotElf(text),
                Stage::Load => GadgetError::Load(text),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_naming_it_and_the_next_call_works() {
        let e = contain(Stage::Load, || -> Result<()> {
            let v: Vec<u8> = Vec::new();
            let end = std::hint::black_box(4usize);
            let _ = &v[..end];
            Ok(())
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("loading the object into the kernel failed: the object broke the loader (it panicked: range end index 4 out of range for slice of length 0 at agent/runtime/src/contain.rs:"), "{e}");
        let e = contain(Stage::Parse, || -> Result<()> { panic!("boom {}", 7) })
            .unwrap_err()
            .to_string();
        assert!(e.contains("ELF/BTF parser (it panicked: boom 7 at "), "{e}");
        assert_eq!(contain(Stage::Parse, || Ok(5)).unwrap(), 5);
        // Outside `contain`, panics are not swallowed.
        let outside = std::thread::spawn(|| panic!("not contained")).join();
        assert!(outside.is_err());
    }
}
