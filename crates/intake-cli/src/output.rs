//! Standard output that survives a closed pipe.
//!
//! Rust ignores SIGPIPE, so writing to a pipe whose reader is gone (`intake status … |
//! head -1`) fails with `BrokenPipe`, and `println!` panics on that (exit 101). Every line
//! the commands print goes through [`outln!`](crate::outln) instead: the first `BrokenPipe`
//! marks standard output closed and every later line is dropped, quietly. The command goes
//! on to its end and exits with its own code (a FAILED request still exits 1), as if its
//! output had been read. Decision: not exit at once with 0 or 141, so that `--wait` still
//! reports the outcome in its exit code, and no `unsafe` is needed to reset SIGPIPE (the
//! workspace forbids `unsafe`).

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes one line to standard output; a closed pipe makes this and every later write a
/// no-op. Other write errors are ignored likewise (there is nowhere left to report them).
pub fn write_line(args: fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = result {
        if e.kind() == io::ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
        }
    }
}

/// Writes bytes as they are (e.g. an LDJSON answer), with the same closed-pipe rule.
pub fn write_raw(bytes: &[u8]) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
        }
    }
}

/// Prints a value (e.g. a JSON document) on one line.
pub fn println(value: &impl fmt::Display) {
    write_line(format_args!("{value}"));
}

/// `println!` that a closed standard output does not turn into a panic.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
