//! The crate's only `unsafe` code: two plain libc calls.
//!
//! Everything else in the harness is safe Rust; keeping the FFI here makes it
//! easy to audit.

/// True when the test process runs with effective uid 0 (root).
///
/// PostgreSQL refuses to run as root, so the harness then runs `initdb` and
/// `pg_ctl` as an unprivileged OS user (see [`crate::Cluster`]).
#[allow(unsafe_code)]
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid(2) takes no arguments, always succeeds and reads or
    // writes no memory of ours.
    unsafe { libc::geteuid() == 0 }
}

/// Registers `f` to run when the process exits normally (`exit(3)`, which is
/// also what returning from `main` and `std::process::exit` do — libtest uses
/// both). Returns false if the C library could not register it.
#[allow(unsafe_code)]
pub(crate) fn at_exit(f: extern "C" fn()) -> bool {
    // SAFETY: atexit(3) only stores the function pointer. `f` is a plain
    // `extern "C" fn()` without captured state, so it stays valid for the
    // whole life of the process. The callers' handlers catch every panic, so
    // no unwinding crosses the C frame that calls them.
    unsafe { libc::atexit(f) == 0 }
}
