//! Crashing and restarting the soak's own cluster with `pg_ctl`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Cluster;

/// Stops and starts the soak's own cluster (`pg_ctl`, as the server's OS
/// user when we are root, as the harness does).
pub struct PgControl {
    pg_ctl: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    cwd: PathBuf,
    prefix: Vec<String>,
}

impl PgControl {
    pub fn new(cluster: &Cluster) -> PgControl {
        PgControl {
            pg_ctl: cluster.pg_bin().join("pg_ctl"),
            data_dir: cluster.data_dir().to_owned(),
            log_path: cluster.log_path().to_owned(),
            cwd: cluster.base_dir().to_owned(),
            prefix: run_as_prefix(),
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let (program, rest) = match self.prefix.split_first() {
            Some((first, rest)) => (Path::new(first), rest),
            None => (self.pg_ctl.as_path(), &[][..]),
        };
        let mut cmd = Command::new(program);
        cmd.args(rest);
        if !self.prefix.is_empty() {
            cmd.arg(&self.pg_ctl);
        }
        let out = cmd
            .args(args)
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_path)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// A crash: no shutdown checkpoint, connections dropped mid-flight.
    pub fn stop_immediate(&self) -> Result<(), String> {
        self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "60"])
    }

    /// Start and wait until it accepts connections (after crash recovery).
    pub fn start(&self) -> Result<(), String> {
        self.pg_ctl(&["start", "-w", "-t", "120"])
    }

    /// Starts the server unless it is running (the end of the fault phase).
    pub fn ensure_running(&self) -> Result<(), String> {
        if self.pg_ctl(&["status"]).is_ok() {
            return Ok(());
        }
        self.start()
    }
}

/// `runuser -u postgres --` when we are root (PostgreSQL refuses root).
fn run_as_prefix() -> Vec<String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Vec::new();
    }
    let user = std::env::var("OUTBOX_PG_OS_USER").unwrap_or_else(|_| "postgres".to_owned());
    match ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .iter()
        .find(|p| Path::new(p).exists())
    {
        Some(runuser) => vec![runuser.to_string(), "-u".into(), user, "--".into()],
        None => vec!["sudo".into(), "-n".into(), "-u".into(), user, "--".into()],
    }
}
