//! The benchmark's own throwaway PostgreSQL: durable settings (unlike the
//! test clusters, which turn fsync off), a socket in a private directory,
//! stopped when dropped.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Settings passed with `-c`, printed in the report next to every other
/// non-default setting. Durability is PostgreSQL's default on purpose: the
/// outbox's claim is that a committed message survives a crash.
pub const SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", "''"),
    ("synchronous_commit", "on"),
    ("fsync", "on"),
    ("full_page_writes", "on"),
    ("max_connections", "200"),
    ("shared_buffers", "1GB"),
    // Checkpoints come from the harness between runs (CHECKPOINT), not from
    // WAL volume or the clock in the middle of one.
    ("max_wal_size", "16GB"),
    ("checkpoint_timeout", "1h"),
];

/// A running cluster; stopped (fast) and deleted on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    pg_bin: PathBuf,
    as_postgres: bool,
}

/// PostgreSQL refuses to run as root: as root, run its programs as the
/// `postgres` OS user (which the Debian server package creates).
fn pg_command(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut c: Command, what: &str) -> Result<()> {
    let out = c
        .output()
        .with_context(|| format!("could not run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl Cluster {
    /// The socket's port number. Only names the socket file, which lives in
    /// this cluster's own directory, so it cannot clash with another server.
    pub const PORT: u16 = 5432;

    /// initdb and start, with [`SETTINGS`].
    pub fn start(pg_bin: &Path) -> Result<Cluster> {
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let dir = tempfile::Builder::new().prefix("outbox-bench-").tempdir()?;
        if as_postgres {
            let mut chown = Command::new("chown");
            chown.arg("postgres").arg(dir.path());
            run(chown, "chown postgres (the cluster directory)")?;
        }
        let data = dir.path().join("data");
        let mut initdb = pg_command(as_postgres, &pg_bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8"]);
        run(initdb, "initdb")?;
        let opts: Vec<String> = SETTINGS
            .iter()
            .map(|(k, v)| format!("-c {k}={v}"))
            .chain([
                format!("-k {}", dir.path().display()),
                format!("-p {}", Self::PORT),
            ])
            .collect();
        let mut start = pg_command(as_postgres, &pg_bin.join("pg_ctl"));
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("server.log"))
            .args(["-w", "-o"])
            .arg(opts.join(" "))
            .arg("start");
        run(start, "pg_ctl start")?;
        Ok(Cluster {
            dir,
            pg_bin: pg_bin.to_owned(),
            as_postgres,
        })
    }

    /// Connection settings for `db` as the superuser.
    pub fn config(&self, db: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host_path(self.dir.path())
            .port(Self::PORT)
            .user("postgres")
            .dbname(db)
            .application_name("outbox-bench");
        c
    }

    /// The directory holding the cluster, on the disk being measured.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut stop = pg_command(self.as_postgres, &self.pg_bin.join("pg_ctl"));
        stop.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "stop"]);
        let _ = stop.output();
    }
}
