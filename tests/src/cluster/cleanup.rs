//! Stopping a cluster and removing its files when the test process ends:
//! at exit, or — when the process is killed — by a watchdog process.

use super::RunAs;
use crate::sys;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};

/// What the exit handler must undo for one cluster.
pub(super) struct Cleanup {
    pub(super) base: PathBuf,
    pub(super) data_dir: PathBuf,
    pub(super) pg_ctl: PathBuf,
    pub(super) run_as: RunAs,
    pub(super) keep: bool,
    pub(super) watchdog: Option<Child>,
}

impl Cleanup {
    fn run(mut self) {
        if self.data_dir.join("postmaster.pid").exists() {
            let _ = self
                .run_as
                .command(&self.pg_ctl)
                .args(["stop", "-m", "immediate", "-w", "-t", "30", "-D"])
                .arg(&self.data_dir)
                .current_dir("/")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if self.keep {
            eprintln!(
                "outbox_tests: OUTBOX_PG_KEEP=1, cluster files kept in {}",
                self.base.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.base);
        }
        // Last, so that the watchdog still covers us if we die above.
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

static CLEANUPS: Mutex<Vec<Cleanup>> = Mutex::new(Vec::new());
static AT_EXIT: Once = Once::new();

/// Cleanup, part 1 of 2: a `static` (the `OnceLock` holding the shared
/// cluster) is never dropped, so a Drop impl cannot stop the server. Instead
/// an `atexit(3)` handler stops it (`pg_ctl stop -m immediate`) and removes
/// its directory when the test binary exits — normally or via
/// `std::process::exit`, which is how libtest ends after failed tests.
pub(super) fn register(cleanup: Cleanup) {
    AT_EXIT.call_once(|| {
        if !sys::at_exit(run_cleanups_at_exit) {
            eprintln!("outbox_tests: atexit() failed; only the watchdog will stop the cluster");
        }
    });
    CLEANUPS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(cleanup);
}

extern "C" fn run_cleanups_at_exit() {
    // A panic must not unwind into the C library's exit().
    let _ = std::panic::catch_unwind(|| {
        let cleanups: Vec<Cleanup> = CLEANUPS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .drain(..)
            .collect();
        for cleanup in cleanups {
            cleanup.run();
        }
    });
}

/// Cleanup, part 2 of 2: exit handlers do not run when the test process is
/// killed (SIGKILL from a CI timeout, Ctrl-C, abort on a double panic), and
/// `pg_ctl` detaches the server from us, so it would live on. A tiny `sh`
/// watchdog polls, once a second, whether the test process still exists
/// (`kill -0`), and when it is gone stops the server and removes the
/// directory. It runs in its own process group and ignores SIGINT/SIGHUP, so
/// the Ctrl-C that kills the tests does not kill it too; its stdio is
/// `/dev/null` so it never holds a pipe that a caller of `cargo test` waits
/// on. The exit handler kills it after a normal cleanup.
const WATCHDOG_SCRIPT: &str = r#"trap '' HUP INT QUIT PIPE
parent=$1; base=$2; data=$3; keep=$4; shift 4
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
if [ -f "$data/postmaster.pid" ]; then
  "$@" stop -m immediate -w -t 30 -D "$data" >/dev/null 2>&1
fi
[ "$keep" = 1 ] || rm -rf "$base"
"#;

pub(super) fn spawn_watchdog(
    base: &Path,
    data_dir: &Path,
    pg_ctl: &Path,
    run_as: &RunAs,
    keep: bool,
) -> Option<Child> {
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG_SCRIPT)
        .arg("outbox-pg-watchdog") // $0
        .arg(std::process::id().to_string())
        .arg(base)
        .arg(data_dir)
        .arg(if keep { "1" } else { "0" })
        .args(&run_as.prefix)
        .arg(pg_ctl)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    match spawned {
        Ok(child) => Some(child),
        Err(e) => {
            eprintln!("outbox_tests: cannot start the cluster watchdog (sh): {e}");
            None
        }
    }
}
