//! [`RelayProcess`]: the real `outbox-relay` binary as a child process, for
//! end-to-end tests (so SIGTERM and SIGKILL are the real thing). Its stdout
//! (the stdout publisher's JSON lines, read as the broker) and its log are
//! collected while it runs; it is killed when dropped.

use crate::wait_until;
use crate::TestDb;
use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// How long a relay may take to publish what a test waits for, or to exit.
pub const RELAY_PATIENCE: Duration = Duration::from_secs(60);

/// target/<profile>/outbox-relay, next to the test binary's deps/ folder.
///
/// # Panics
///
/// If it was not built (`cargo build -p outbox_relay --bins`; make test does).
pub fn relay_binary() -> PathBuf {
    built_binary("outbox-relay")
}

/// target/<profile>/`name`: a binary of `outbox_relay` (`outbox-relay`,
/// `outbox`).
///
/// # Panics
///
/// If it was not built (`cargo build -p outbox_relay --bins`; make test does).
pub fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p outbox_relay --bins` (make test does)",
        bin.display()
    );
    bin
}

/// A running `outbox-relay`.
pub struct RelayProcess {
    /// The process; tests that signal or wait on it use it directly.
    pub child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    log: Arc<Mutex<String>>,
    log_done: JoinHandle<()>,
}

impl RelayProcess {
    /// `outbox-relay --database-url <db>` with the stdout publisher (unless
    /// `extra` names one) and debug logging, plus `extra`.
    pub fn start(db: &TestDb, extra: &[&str]) -> RelayProcess {
        let url = db.connstr();
        RelayProcess::spawn(&[&["--database-url", url.as_str()][..], extra].concat())
    }

    /// `outbox-relay` with exactly `args` (plus the stdout publisher and
    /// debug logging unless given). The caller's PGSSL* variables are
    /// removed, so the machine's environment cannot change a test.
    pub fn spawn(args: &[&str]) -> RelayProcess {
        let mut command = Command::new(relay_binary());
        if !args.contains(&"--publisher") {
            command.args(["--publisher", "stdout"]);
        }
        if !args.contains(&"--log") {
            command.args(["--log", "info,outbox_relay=debug"]);
        }
        let mut child = command
            .args(args)
            .env_remove("PGSSLMODE")
            .env_remove("PGSSLROOTCERT")
            .env_remove("PGSSLCERT")
            .env_remove("PGSSLKEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start outbox-relay");
        let stdout: Arc<Mutex<Vec<String>>> = Arc::default();
        let log: Arc<Mutex<String>> = Arc::default();
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let sink = stdout.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                sink.lock().expect("stdout lines").push(line);
            }
        });
        let mut err = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let sink = log.clone();
        let log_done = tokio::spawn(async move {
            while let Ok(Some(line)) = err.next_line().await {
                let mut log = sink.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        RelayProcess {
            child,
            stdout,
            log,
            log_done,
        }
    }

    /// Every line the relay wrote to stdout so far.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lock().expect("stdout lines").clone()
    }

    /// What the stdout publisher published so far, in order.
    ///
    /// # Panics
    ///
    /// On a line that is not JSON (the stdout publisher writes one object a line).
    pub fn published(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// The ids published so far, in order (duplicates kept).
    ///
    /// Reads only each line's id: a payload may hold what
    /// `serde_json::Value` refuses (nesting past 128 levels), and the relay
    /// publishes it as it is.
    pub fn ids(&self) -> Vec<i64> {
        self.lines()
            .iter()
            .map(|l| {
                let line: serde_json::Map<String, Value> = serde_json::from_str(&id_prefix(l))
                    .unwrap_or_else(|e| panic!("a JSON line with an id ({e}): {l:.200}"));
                line["id"].as_i64().expect("an id")
            })
            .collect()
    }

    /// The log (stderr) so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Wait until every id of `want` was published.
    pub async fn wait_for_ids(&self, want: &HashSet<i64>) {
        wait_until(RELAY_PATIENCE, || async {
            want.is_subset(&self.ids().into_iter().collect())
        })
        .await;
    }

    /// Wait for the process to exit by itself; its status and whole log.
    pub async fn exit(mut self) -> (ExitStatus, String) {
        let status = tokio::time::timeout(RELAY_PATIENCE, self.child.wait())
            .await
            .expect("relay exits")
            .expect("wait for outbox-relay");
        let _ = tokio::time::timeout(RELAY_PATIENCE, &mut self.log_done).await;
        (status, self.log())
    }

    /// SIGTERM, then the exit status and the whole log.
    pub async fn terminate(self) -> (ExitStatus, String) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        self.exit().await
    }
}

/// The stdout publisher's line cut to its leading `{"id":N` and closed: the
/// id comes first (its field order), whatever the payload after it holds.
fn id_prefix(line: &str) -> String {
    let end = line.find(',').unwrap_or(line.len());
    format!("{}}}", &line[..end])
}
