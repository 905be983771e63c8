//! A throwaway PostgreSQL cluster, one per test binary process.

use std::ffi::OsString;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, Once, OnceLock};
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::sys;

/// Directory holding `initdb`, `pg_ctl`, `postgres` and `pg_config` unless the
/// environment variable `OUTBOX_PG_BIN` names another one.
pub const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The cluster's superuser, created by `initdb --username=postgres`.
///
/// Authentication is `trust`, so any role can log in without a password.
pub const SUPERUSER: &str = "postgres";

/// `psql` used by [`Cluster::psql`] when `<pg bin>/psql` does not exist.
const FALLBACK_PSQL: &str = "/usr/bin/psql";

/// How many times a start is retried when the TCP port picked turned out to be
/// taken by the time the server bound it.
const START_ATTEMPTS: u32 = 3;

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
/// can see), `synchronous_commit=on`, `max_connections=200`,
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
    ///     files: vec![],
    /// });
    /// # let _ = cluster;
    /// ```
    pub fn private_with(options: ClusterOptions) -> &'static Cluster {
        match Cluster::start_with(&options) {
            Ok(cluster) => Box::leak(Box::new(cluster)),
            Err(message) => panic!("{message}"),
        }
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
        if let Err(e) = run(&mut restart) {
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
        read_lossy(&self.log_path)
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

    /// A libpq key/value connection string for database `db` as
    /// [`SUPERUSER`] over the unix socket, e.g.
    /// `host=/tmp/outbox-pg-x/sock port=40123 user=postgres dbname=app`.
    ///
    /// ```no_run
    /// let cs = outbox_tests::Cluster::shared().connstr("postgres");
    /// assert!(cs.contains("dbname=postgres"));
    /// ```
    pub fn connstr(&self, db: &str) -> String {
        format!(
            "host={} port={} user={} dbname={}",
            libpq_value(&self.socket_dir.to_string_lossy()),
            self.port,
            SUPERUSER,
            libpq_value(db)
        )
    }

    /// A URL for database `db` as [`SUPERUSER`] over TCP:
    /// `postgres://postgres@127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{}",
            self.port,
            percent_encode(db)
        )
    }

    /// A `tokio_postgres` configuration for database `db` as role `user`,
    /// over the unix socket.
    pub fn config(&self, db: &str, user: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.socket_dir)
            .port(self.port)
            .user(user)
            .dbname(db)
            .application_name("outbox_tests")
            .connect_timeout(Duration::from_secs(30));
        config
    }

    /// Connects to database `db` as role `user` over the unix socket and
    /// spawns the connection task on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or if the connection fails.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// let client = outbox_tests::Cluster::shared()
    ///     .connect("postgres", outbox_tests::SUPERUSER)
    ///     .await;
    /// let row = client.query_one("SELECT 1::int4", &[]).await.unwrap();
    /// assert_eq!(row.get::<_, i32>(0), 1);
    /// # }
    /// ```
    pub async fn connect(&self, db: &str, user: &str) -> Client {
        self.connect_with_task(db, user).await.0
    }

    /// Like [`connect`](Self::connect), also returning the connection task so
    /// the caller can wait until the connection is really closed.
    pub(crate) async fn connect_with_task(
        &self,
        db: &str,
        user: &str,
    ) -> (Client, tokio::task::JoinHandle<()>) {
        let (client, connection) = match self.config(db, user).connect(NoTls).await {
            Ok(pair) => pair,
            Err(e) => panic!(
                "outbox_tests: cannot connect to database {db:?} as role {user:?} via {}: {}\n\
                 --- server log {} ---\n{}",
                self.socket_dir.display(),
                crate::describe_error(&e),
                self.log_path.display(),
                self.log_contents()
            ),
        };
        let db = db.to_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!(
                    "outbox_tests: connection to database {db:?} ended with an error: {}",
                    crate::describe_error(&e)
                );
            }
        });
        (client, task)
    }

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

    fn start() -> Result<Cluster, String> {
        Cluster::start_with(&ClusterOptions::default())
    }

    /// initdb + start. All errors are returned as a finished panic message.
    fn start_with(options: &ClusterOptions) -> Result<Cluster, String> {
        let pg_bin = std::env::var_os("OUTBOX_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PG_BIN));
        for tool in ["initdb", "pg_ctl", "postgres"] {
            if !pg_bin.join(tool).exists() {
                return Err(format!(
                    "outbox_tests: {} does not exist; install PostgreSQL 15 or point \
                     OUTBOX_PG_BIN at the directory holding initdb, pg_ctl and postgres",
                    pg_bin.join(tool).display()
                ));
            }
        }
        let run_as = RunAs::detect()?;
        let keep = std::env::var("OUTBOX_PG_KEEP").is_ok_and(|v| v == "1");

        let tmp_root = std::env::var_os("OUTBOX_PG_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let base = tempfile::Builder::new()
            .prefix("outbox-pg-")
            .tempdir_in(&tmp_root)
            .map_err(|e| {
                format!(
                    "outbox_tests: cannot make a temporary directory in {}: {e}",
                    tmp_root.display()
                )
            })?
            // Removed by the exit handler / watchdog below, not by TempDir.
            .keep();
        let data_dir = base.join("data");
        let socket_dir = base.join("sock");
        let log_path = data_dir.join("server.log");
        std::fs::create_dir(&socket_dir)
            .map_err(|e| format!("outbox_tests: cannot create {}: {e}", socket_dir.display()))?;
        if let Some(user) = &run_as.user {
            // The server's OS user must own its data and socket directories.
            run(Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:"))
                .arg(&base))?;
        }

        let pg_ctl = pg_bin.join("pg_ctl");
        register_cleanup(Cleanup {
            watchdog: spawn_watchdog(&base, &data_dir, &pg_ctl, &run_as, keep),
            base: base.clone(),
            data_dir: data_dir.clone(),
            pg_ctl: pg_ctl.clone(),
            run_as: run_as.clone(),
            keep,
        });

        let mut initdb = run_as.command(&pg_bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data_dir)
            .args([
                "--auth=trust",
                &format!("--username={SUPERUSER}"),
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ])
            .current_dir(&base)
            .env("LC_ALL", "C");
        run(&mut initdb)?;

        let conf = data_dir.join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| f.write_all(b"\n# outbox_tests harness\ninclude 'harness.conf'\n"))
            .map_err(|e| format!("outbox_tests: cannot edit {}: {e}", conf.display()))?;
        write_options_files(&data_dir, options, &run_as)?;

        let mut last_error = String::new();
        for _attempt in 0..START_ATTEMPTS {
            let port = free_port()?;
            let mut settings = harness_settings(&socket_dir, port);
            for line in &options.settings {
                settings.push_str(line);
                settings.push('\n');
            }
            let harness_conf = data_dir.join("harness.conf");
            std::fs::write(&harness_conf, settings).map_err(|e| {
                format!("outbox_tests: cannot write {}: {e}", harness_conf.display())
            })?;
            let mut start = run_as.command(&pg_ctl);
            start
                .args(["start", "-w", "-t", "60", "-D"])
                .arg(&data_dir)
                .arg("-l")
                .arg(&log_path)
                .current_dir(&base)
                .stdin(Stdio::null());
            match run(&mut start) {
                Ok(_) => {
                    return Ok(Cluster {
                        base,
                        data_dir,
                        socket_dir,
                        log_path,
                        port,
                        pg_bin,
                        create_db: tokio::sync::Mutex::new(TemplateState::default()),
                    })
                }
                Err(e) => {
                    let log = read_lossy(&log_path);
                    last_error = format!(
                        "outbox_tests: cannot start PostgreSQL in {}: {e}\n--- server log {} ---\n{log}",
                        data_dir.display(),
                        log_path.display()
                    );
                    let port_taken =
                        log.contains("could not bind") || log.contains("Address already in use");
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        Err(last_error)
    }
}

/// [`ClusterOptions::files`] and [`ClusterOptions::hba`] into `data_dir`,
/// owned by the server's OS user.
fn write_options_files(
    data_dir: &Path,
    options: &ClusterOptions,
    run_as: &RunAs,
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut files: Vec<(&str, &[u8], u32)> = options
        .files
        .iter()
        .map(|(name, contents, mode)| (name.as_str(), contents.as_slice(), *mode))
        .collect();
    if let Some(hba) = &options.hba {
        files.push(("pg_hba.conf", hba.as_bytes(), 0o600));
    }
    for (name, contents, mode) in files {
        let path = data_dir.join(name);
        std::fs::write(&path, contents)
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)))
            .map_err(|e| format!("outbox_tests: cannot write {}: {e}", path.display()))?;
        if let Some(user) = &run_as.user {
            run(Command::new("chown").arg(format!("{user}:")).arg(&path))?;
        }
    }
    Ok(())
}

/// The harness's `postgresql.conf` settings (`harness.conf`, included from
/// `postgresql.conf`), plus `OUTBOX_PG_SETTINGS`.
fn harness_settings(socket_dir: &Path, port: u16) -> String {
    let mut s = format!(
        "listen_addresses = '127.0.0.1'\n\
         port = {port}\n\
         unix_socket_directories = {}\n\
         fsync = off\n\
         synchronous_commit = on\n\
         full_page_writes = off\n\
         max_connections = 200\n\
         shared_buffers = 128MB\n\
         timezone = 'UTC'\n\
         logging_collector = off\n\
         log_min_messages = warning\n\
         log_line_prefix = '%m [%p] %q%d %a '\n",
        conf_string(&socket_dir.to_string_lossy())
    );
    if let Ok(extra) = std::env::var("OUTBOX_PG_SETTINGS") {
        for line in extra.split(';').map(str::trim).filter(|l| !l.is_empty()) {
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}

/// Who runs the server binaries: the current user, or — when the tests run as
/// root, which PostgreSQL refuses — an unprivileged OS user via `runuser`
/// (or `sudo` where `runuser` is missing).
#[derive(Debug, Clone)]
struct RunAs {
    /// The OS user when switching, None when running as ourselves.
    user: Option<String>,
    /// Command prefix, e.g. `runuser -u postgres --`.
    prefix: Vec<OsString>,
}

impl RunAs {
    fn detect() -> Result<RunAs, String> {
        if !sys::is_root() {
            return Ok(RunAs {
                user: None,
                prefix: Vec::new(),
            });
        }
        let user = std::env::var("OUTBOX_PG_OS_USER").unwrap_or_else(|_| "postgres".to_owned());
        let exists = Command::new("id")
            .arg("-u")
            .arg(&user)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !exists {
            return Err(format!(
                "outbox_tests: running as root, and PostgreSQL refuses to run as root, but the OS \
                 user {user:?} to run it as does not exist (set OUTBOX_PG_OS_USER or create it)"
            ));
        }
        let find = |names: &[&str]| names.iter().map(PathBuf::from).find(|p| p.exists());
        let prefix: Vec<OsString> = if let Some(runuser) =
            find(&["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"])
        {
            vec![
                runuser.into(),
                "-u".into(),
                user.clone().into(),
                "--".into(),
            ]
        } else if let Some(sudo) = find(&["/usr/bin/sudo", "/bin/sudo"]) {
            vec![
                sudo.into(),
                "-n".into(),
                "-u".into(),
                user.clone().into(),
                "--".into(),
            ]
        } else {
            return Err(
                "outbox_tests: running as root, but neither runuser nor sudo was found to run \
                     PostgreSQL as an unprivileged user"
                    .to_owned(),
            );
        };
        Ok(RunAs {
            user: Some(user),
            prefix,
        })
    }

    fn command(&self, program: &Path) -> Command {
        match self.prefix.split_first() {
            None => Command::new(program),
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(program);
                cmd
            }
        }
    }
}

/// What the exit handler must undo for one cluster.
struct Cleanup {
    base: PathBuf,
    data_dir: PathBuf,
    pg_ctl: PathBuf,
    run_as: RunAs,
    keep: bool,
    watchdog: Option<Child>,
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
fn register_cleanup(cleanup: Cleanup) {
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

fn spawn_watchdog(
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

/// Runs `cmd`, returning its output, or an error message with its output.
fn run(cmd: &mut Command) -> Result<Output, String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{shown} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, String> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("outbox_tests: cannot find a free TCP port: {e}"))
}

fn read_lossy(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// A `postgresql.conf` string literal.
fn conf_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// A libpq connection-string value, quoted when needed.
fn libpq_value(s: &str) -> String {
    if !s.is_empty() && !s.contains([' ', '\'', '\\', '\t', '\n']) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// Percent-encodes everything but unreserved URL characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(libpq_value("abc"), "abc");
        assert_eq!(libpq_value("a b'c"), r"'a b\'c'");
        assert_eq!(conf_string("/tmp/it's"), "'/tmp/it''s'");
        assert_eq!(percent_encode("t_1_2"), "t_1_2");
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
    }
}
