//! Running SQL scripts through `psql`, as the examples and docs do.

use super::{Cluster, SUPERUSER};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// `psql` used by [`Cluster::psql`] when `<pg bin>/psql` does not exist.
const FALLBACK_PSQL: &str = "/usr/bin/psql";

impl Cluster {
    /// Runs the SQL script `sql` with `psql -X -v ON_ERROR_STOP=1` against
    /// database `db` as [`SUPERUSER`] over the unix socket, and returns its
    /// exit status and output. The script is read from standard input, so
    /// several statements and psql meta-commands (`\set`, `\gset`, ...) work;
    /// each statement runs in its own transaction unless the script says
    /// `BEGIN`. Blocks the calling thread (see
    /// [`TestDb::psql`](crate::TestDb::psql) for an async variant).
    ///
    /// ```no_run
    /// let out = outbox_tests::Cluster::shared().psql("postgres", "SELECT 40 + 2;");
    /// assert!(out.status.success());
    /// assert!(String::from_utf8_lossy(&out.stdout).contains("42"));
    /// ```
    pub fn psql(&self, db: &str, sql: &str) -> Output {
        let psql = self.psql_path();
        let mut child = Command::new(&psql)
            .arg("-X")
            .args(["-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                db,
                "-f",
                "-",
            ])
            .env("PGAPPNAME", "outbox_tests_psql")
            .env("PGCONNECT_TIMEOUT", "30")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("outbox_tests: cannot run {}: {e}", psql.display()));
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let script = sql.to_owned();
        // Written from another thread so a big script cannot deadlock against
        // psql filling the stdout pipe.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(script.as_bytes());
        });
        let output = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("outbox_tests: waiting for psql failed: {e}"));
        let _ = writer.join();
        output
    }

    /// Like [`psql`](Self::psql), but panics (with stdout, stderr and the
    /// query) unless psql succeeds; returns psql's standard output.
    ///
    /// ```no_run
    /// let out = outbox_tests::Cluster::shared()
    ///     .psql_ok("postgres", "\\pset tuples_only on\nSELECT current_user;");
    /// assert_eq!(out.trim(), "postgres");
    /// ```
    #[track_caller]
    pub fn psql_ok(&self, db: &str, sql: &str) -> String {
        let out = self.psql(db, sql);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            panic!(
                "outbox_tests: psql on database {db:?} failed ({})\n--- script ---\n{sql}\n\
                 --- stdout ---\n{stdout}\n--- stderr ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        stdout
    }

    fn psql_path(&self) -> PathBuf {
        let own = self.pg_bin.join("psql");
        if own.exists() {
            own
        } else {
            PathBuf::from(FALLBACK_PSQL)
        }
    }
}
