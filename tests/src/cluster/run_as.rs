//! PostgreSQL refuses to run as root: as root, its programs run as an
//! unprivileged OS user. The one place that decides how.

use crate::sys;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Who runs the server binaries: the current user, or — when the tests run as
/// root, which PostgreSQL refuses — an unprivileged OS user via `runuser`
/// (or `sudo` where `runuser` is missing).
#[derive(Debug, Clone)]
pub(crate) struct RunAs {
    /// The OS user when switching, None when running as ourselves.
    pub(crate) user: Option<String>,
    /// Command prefix, e.g. `runuser -u postgres --`.
    pub(super) prefix: Vec<OsString>,
}

impl RunAs {
    pub(crate) fn detect() -> Result<RunAs, String> {
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

    pub(crate) fn command(&self, program: &Path) -> Command {
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
