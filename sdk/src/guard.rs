//! Turns panics in plugin code into errors.
//!
//! Every call into a plugin runs inside [`call`]: a panic is caught before it can unwind across
//! the ABI, its message is kept, and the call returns an error naming what was being done. While
//! a guarded call runs, the default panic report on stderr is silenced (the error carries it).
//! The hook is per copy of the standard library, so a dynamic plugin installs its own.

use std::{
    any::Any,
    cell::{Cell, RefCell},
    panic::{self, AssertUnwindSafe},
    sync::Once,
};

use abi_stable::std_types::{RResult, RString};

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) > 0 {
                let location = info
                    .location()
                    .map(|l| format!(" (at {}:{})", l.file(), l.line()))
                    .unwrap_or_default();
                let text = format!("{}{location}", payload_text(info.payload()));
                LAST.with(|last| *last.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_string()
    }
}

/// How the error of a panicking plugin call begins (`plugin code crashed while <what>: <message>`),
/// so the host can tell a crash from an ordinary error.
pub const CRASH_PREFIX: &str = "plugin code crashed while ";

/// Runs `f`, turning an `Err` into an error message and a panic into an error that says the
/// plugin crashed while doing `what`.
pub fn call<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> RResult<T, RString> {
    install_hook();
    DEPTH.with(|d| d.set(d.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    match result {
        Ok(Ok(value)) => RResult::ROk(value),
        Ok(Err(message)) => RResult::RErr(message.into()),
        Err(payload) => {
            let message = LAST
                .with(|last| last.borrow_mut().take())
                .unwrap_or_else(|| payload_text(payload.as_ref()));
            RResult::RErr(format!("{CRASH_PREFIX}{what}: {message}").into())
        }
    }
}
