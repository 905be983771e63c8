//! [`PgBouncer`]: a real PgBouncer (the Debian package) in transaction
//! mode in front of a test cluster, for the tests that produce and relay
//! through a pooler as most production PostgreSQL is reached.

use crate::cluster::{run_command, Cluster, RunAs};
use crate::SUPERUSER;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary of Debian's `pgbouncer` package (`make setup` installs it).
pub const PGBOUNCER_BIN: &str = "/usr/sbin/pgbouncer";

/// A running PgBouncer, `pool_mode = transaction`, listening on
/// `127.0.0.1:`[`port`](Self::port) for every database of its cluster, as
/// [`SUPERUSER`] (trusted). Its pool is two server connections per
/// database and user, handed out round robin, so one client's transactions
/// land on different server connections whenever both are open: anything
/// session-scoped (a named prepared statement, `SET`, `LISTEN`) breaks as it
/// would in production. Stopped when dropped.
pub struct PgBouncer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl PgBouncer {
    /// Start one in front of `cluster`.
    ///
    /// # Panics
    ///
    /// If PgBouncer is not installed or does not start accepting
    /// connections within 30 s, with its log.
    pub fn start(cluster: &Cluster) -> PgBouncer {
        assert!(
            Path::new(PGBOUNCER_BIN).exists(),
            "{PGBOUNCER_BIN} is missing: install the pgbouncer package (make setup does)"
        );
        let run_as = RunAs::detect().unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::Builder::new()
            .prefix("outbox-pgbouncer-")
            .tempdir()
            .expect("a temporary directory for pgbouncer");
        let port = free_port();
        let ini = dir.path().join("pgbouncer.ini");
        let log = dir.path().join("pgbouncer.log");
        std::fs::write(
            dir.path().join("users.txt"),
            format!("\"{SUPERUSER}\" \"\"\n"),
        )
        .expect("write users.txt");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 * = host={socket} port={pg_port}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {users}\n\
                 pool_mode = transaction\n\
                 default_pool_size = 2\n\
                 server_round_robin = 1\n\
                 max_client_conn = 200\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 logfile = {log}\n\
                 pidfile = {pid}\n",
                socket = cluster.socket_dir().display(),
                pg_port = cluster.port(),
                users = dir.path().join("users.txt").display(),
                log = log.display(),
                pid = dir.path().join("pgbouncer.pid").display(),
            ),
        )
        .expect("write pgbouncer.ini");
        if let Some(user) = &run_as.user {
            // PgBouncer refuses to run as root, like PostgreSQL.
            run_command(
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{user}:"))
                    .arg(dir.path()),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let child = run_as
            .command(Path::new(PGBOUNCER_BIN))
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {PGBOUNCER_BIN}: {e}"));
        let bouncer = PgBouncer { child, dir, port };
        bouncer.wait_until_listening(&log);
        bouncer
    }

    fn wait_until_listening(&self, log: &PathBuf) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "pgbouncer did not listen on port {} within 30 s; its log:\n{}",
                self.port,
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq connection string for database `db` through it.
    pub fn connstr(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={SUPERUSER} dbname={db} sslmode=disable",
            self.port
        )
    }

    /// A `tokio_postgres` configuration for database `db` through it.
    pub fn config(&self, db: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(SUPERUSER)
            .dbname(db)
            .connect_timeout(Duration::from_secs(30));
        config
    }

    /// Its log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // pgbouncer's own pid (its pidfile), not runuser's, which need not
        // pass the signal on; then runuser's, in case pgbouncer never wrote it.
        let pidfile = std::fs::read_to_string(self.dir.path().join("pgbouncer.pid"));
        for pid in [
            pidfile.unwrap_or_default().trim().to_owned(),
            self.child.id().to_string(),
        ] {
            if !pid.is_empty() {
                let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
            }
        }
        let _ = self.child.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port")
}
