//! Making a cluster: initdb, the harness's settings (fast or durable) and
//! the caller's, files such as TLS keys, and `pg_ctl start`, retried when
//! the port picked was taken meanwhile.

use super::cleanup::{self, Cleanup};
use super::conninfo::conf_string;
use super::{Cluster, ClusterOptions, RunAs, TemplateState, DEFAULT_PG_BIN, SUPERUSER};
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// How many times a start is retried when the TCP port picked turned out to be
/// taken by the time the server bound it.
const START_ATTEMPTS: u32 = 3;

impl Cluster {
    pub(super) fn start() -> Result<Cluster, String> {
        Cluster::start_with(&ClusterOptions::default())
    }

    /// initdb + start. All errors are returned as a finished panic message.
    pub(super) fn start_with(options: &ClusterOptions) -> Result<Cluster, String> {
        let pg_bin = options.pg_bin.clone().unwrap_or_else(|| {
            std::env::var_os("OUTBOX_PG_BIN")
                .map_or_else(|| PathBuf::from(DEFAULT_PG_BIN), PathBuf::from)
        });
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
        cleanup::register(Cleanup {
            watchdog: cleanup::spawn_watchdog(&base, &data_dir, &pg_ctl, &run_as, keep),
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
            let mut settings = harness_settings(&socket_dir, port, options.durable);
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
/// `postgresql.conf`), plus `OUTBOX_PG_SETTINGS`. `fsync` and
/// `full_page_writes` are off unless `durable`.
fn harness_settings(socket_dir: &Path, port: u16, durable: bool) -> String {
    let speed_only = if durable {
        ""
    } else {
        "fsync = off\nfull_page_writes = off\n"
    };
    let mut s = format!(
        "listen_addresses = '127.0.0.1'\n\
         port = {port}\n\
         unix_socket_directories = {}\n\
         {speed_only}\
         synchronous_commit = on\n\
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

/// Runs `cmd`, returning its output, or an error message with its output.
pub(crate) fn run(cmd: &mut Command) -> Result<Output, String> {
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

pub(super) fn read_lossy(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
