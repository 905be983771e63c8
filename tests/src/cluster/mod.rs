//! A throwaway PostgreSQL cluster: one shared per test binary process,
//! private ones for tests that restart the server or need TLS, and the
//! benchmark's durable one. The one implementation; split by concern:
//! `start` (initdb, settings, start), `run_as` (PostgreSQL refuses root),
//! `cleanup` (at exit, or by a watchdog when the process is killed),
//! `conninfo` (connection strings and clients), `psql`.

mod cleanup;
mod conninfo;
mod psql;
mod run_as;
mod start;

pub(crate) use run_as::RunAs;
pub(crate) use start::run as run_command;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Directory holding `initdb`, `pg_ctl`, `postgres` and `pg_config` unless the
/// environment variable `OUTBOX_PG_BIN` names another one.
pub const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The cluster's superuser, created by `initdb --username=postgres`.
///
/// Authentication is `trust`, so any role can log in without a password.
pub const SUPERUSER: &str = "postgres";

/// One throwaway PostgreSQL cluster: data directory, unix socket directory and
/// server log live in one temporary directory that is removed when the test
/// process exits.
///
/// Get it with [`Cluster::shared`]; most tests only need
/// [`TestDb`](crate::TestDb), which uses it.
///
/// The server listens on a unix socket in [`socket_dir`](Self::socket_dir)
/// and on TCP `127.0.0.1:`[`port`](Self::port), with `trust` authentication
/// for every role. Settings: `fsync=off`, `full_page_writes=off` (speed only:
/// the cluster never survives an OS crash, so this changes no behaviour a test
/// can see; [`ClusterOptions::durable`] keeps PostgreSQL's durable defaults,
/// for the benchmark), `synchronous_commit=on`, `max_connections=200`,
/// `shared_buffers=128MB`, `timezone='UTC'`, `log_min_messages=warning`, the
/// server log in [`log_path`](Self::log_path).
///
/// Environment knobs:
/// - `OUTBOX_PG_BIN`: directory of the PostgreSQL binaries (default
///   [`DEFAULT_PG_BIN`]).
/// - `OUTBOX_PG_TMPDIR`: where the temporary directory is made (default the
///   system temp dir; when running as root it must be reachable by the
///   `postgres` OS user).
/// - `OUTBOX_PG_OS_USER`: OS user that runs the server when the tests run as
///   root (default `postgres`).
/// - `OUTBOX_PG_SETTINGS`: extra `postgresql.conf` lines separated by `;`,
///   e.g. `shared_preload_libraries='outbox';wal_level=logical`.
/// - `OUTBOX_PG_KEEP=1`: keep the directory (data and log) after the run for
///   debugging; the server is still stopped.
#[derive(Debug)]
pub struct Cluster {
    base: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    pg_bin: PathBuf,
    /// Serializes `CREATE DATABASE` and remembers whether the extension
    /// template exists. An async mutex: it is held across awaits.
    pub(crate) create_db: tokio::sync::Mutex<TemplateState>,
}

/// What the harness knows about the template databases of a cluster.
#[derive(Debug, Default)]
pub(crate) struct TemplateState {
    /// `outbox_template` exists, has the extension and accepts no connections.
    pub(crate) extension_template_ready: bool,
}

static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// What a [`Cluster::private_with`] cluster has besides the harness's own
/// settings, e.g. TLS: `ssl = on`, certificate files, a `pg_hba.conf` with
/// `hostssl` lines.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Extra `postgresql.conf` lines, after the harness's (so they win),
    /// e.g. `ssl = on`.
    pub settings: Vec<String>,
    /// The whole `pg_hba.conf`, replacing initdb's (which trusts every local
    /// and 127.0.0.1 connection). The harness connects over the unix socket
    /// as [`SUPERUSER`], so keep a `local all all trust` line.
    pub hba: Option<String>,
    /// Files written into the data directory before the server starts, as
    /// (name relative to it, contents, mode), owned by the server's OS user:
    /// e.g. `server.key` with mode `0o600`, which PostgreSQL insists on.
    pub files: Vec<(String, Vec<u8>, u32)>,
    /// Keep PostgreSQL's durable defaults (`fsync`, `full_page_writes`)
    /// instead of the harness's speed-only `off`: for measurements, where a
    /// committed message must cost what it costs in production.
    pub durable: bool,
    /// The PostgreSQL binaries; default `OUTBOX_PG_BIN`, else
    /// [`DEFAULT_PG_BIN`].
    pub pg_bin: Option<PathBuf>,
}

impl Cluster {
    /// The cluster of this test process, started on first use.
    ///
    /// The first call runs `initdb` and starts the server (a few seconds);
    /// later calls, from any thread, return the same cluster at once. The
    /// server is stopped and its files removed when the process exits — also
    /// after failed tests; if the process is killed, a watchdog process stops
    /// it within about a second.
    ///
    /// # Panics
    ///
    /// If the cluster cannot be started, with the output of the failing
    /// command and the server log. Every later call panics with the same
    /// message.
    ///
    /// ```no_run
    /// let cluster = outbox_tests::Cluster::shared();
    /// println!("server log: {}", cluster.log_path().display());
    /// ```
    pub fn shared() -> &'static Cluster {
        match SHARED.get_or_init(Cluster::start) {
            Ok(cluster) => cluster,
            Err(message) => panic!("{message}"),
        }
    }

    /// A cluster of its own, for a test that restarts or stops the server
    /// (which would break every other test on the shared one). Cleaned up
    /// like the shared cluster: at exit, or by the watchdog.
    ///
    /// # Panics
    ///
    /// If the cluster cannot be started, with the failing command's output.
    pub fn private() -> &'static Cluster {
        Cluster::private_with(ClusterOptions::default())
    }

    /// Like [`private`](Self::private), with extra settings, a
    /// `pg_hba.conf` of its own and files in the data directory.
    ///
    /// # Panics
    ///
    /// If the cluster cannot be started, with the failing command's output
    /// and the server log.
    ///
    /// ```no_run
    /// use outbox_tests::{Cluster, ClusterOptions};
    /// let cluster = Cluster::private_with(ClusterOptions {
    ///     settings: vec!["log_connections = on".into()],
    ///     hba: Some("local all all trust\nhost all all 127.0.0.1/32 reject\n".into()),
    ///     ..ClusterOptions::default()
    /// });
    /// # let _ = cluster;
    /// ```
    pub fn private_with(options: ClusterOptions) -> &'static Cluster {
        Cluster::try_private_with(options).unwrap_or_else(|message| panic!("{message}"))
    }

    /// Like [`private_with`](Self::private_with), returning why the cluster
    /// could not start instead of panicking (for programs, such as the
    /// benchmark, that report errors themselves).
    pub fn try_private_with(options: ClusterOptions) -> Result<&'static Cluster, String> {
        Cluster::start_with(&options).map(|cluster| &*Box::leak(Box::new(cluster)))
    }

    /// `pg_ctl restart -m fast`: every connection is terminated and the
    /// server is accepting connections again when this returns.
    ///
    /// # Panics
    ///
    /// If the restart fails, with the server log.
    pub fn restart(&self) {
        let run_as = RunAs::detect().unwrap_or_else(|e| panic!("{e}"));
        let mut restart = run_as.command(&self.pg_bin.join("pg_ctl"));
        restart
            .args(["restart", "-m", "fast", "-w", "-t", "60", "-D"])
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_path)
            .current_dir(&self.base)
            .stdin(Stdio::null());
        if let Err(e) = start::run(&mut restart) {
            panic!("outbox_tests: restart failed: {e}\n{}", self.log_contents());
        }
    }

    /// The directory holding the server's unix socket (`.s.PGSQL.<port>`):
    /// libpq's `host`.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The server's port, on TCP `127.0.0.1` and in the unix socket's name.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server log file (`pg_ctl -l`).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The server log so far, for failure messages.
    pub fn log_contents(&self) -> String {
        start::read_lossy(&self.log_path)
    }

    /// The temporary directory holding everything of this cluster (data
    /// directory, socket directory).
    pub fn base_dir(&self) -> &Path {
        &self.base
    }

    /// The directory of the PostgreSQL binaries in use.
    pub fn pg_bin(&self) -> &Path {
        &self.pg_bin
    }

    /// `<sharedir>/extension/<name>.control` of the binaries in use, from
    /// `pg_config --sharedir` (falls back to the Debian path for PG 15).
    pub fn extension_control_file(&self, name: &str) -> PathBuf {
        let sharedir = Command::new(self.pg_bin.join("pg_config"))
            .arg("--sharedir")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/usr/share/postgresql/15".to_owned());
        Path::new(&sharedir)
            .join("extension")
            .join(format!("{name}.control"))
    }
}
