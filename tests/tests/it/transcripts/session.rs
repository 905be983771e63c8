//! One psql session per transcript block, fed one statement at a time.
//!
//! Statement by statement, because a block may show a lease token and pass
//! it back a few lines later: the next statement can only be written once
//! the real token is known. After each statement the session echoes a
//! sentinel; everything psql printed before it is that statement's output.
//! stdout and stderr go to one file (dup'ed descriptors share the offset),
//! so an `ERROR` lands right after the statement it belongs to.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::NamedTempFile;

/// How long one statement may take; the longest `pg_sleep` in the
/// documents is 3 s.
const STATEMENT_PATIENCE: Duration = Duration::from_secs(90);
const SENTINEL: &str = "<<transcript statement done>>";

pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    reader: File,
    /// Keeps the output file alive; dropped (deleted) with the session.
    _output: NamedTempFile,
    /// Printed but not yet handed out; bytes, as a read may end inside a
    /// UTF-8 character.
    unread: Vec<u8>,
    stuck: bool,
}

impl Session {
    /// `psql -X -a` on `conninfo`: no psqlrc, every input line echoed as
    /// the transcripts show it; errors do not stop the session.
    pub fn open(psql: &Path, conninfo: &str) -> Session {
        let output = NamedTempFile::new().expect("a temporary file");
        let out = output.reopen().expect("reopen the output file");
        let reader = output.reopen().expect("reopen the output file");
        let mut child = Command::new(psql)
            // Without -f, psql does not prefix errors with psql:<stdin>:N:.
            .args(["-X", "-a", "-v", "ON_ERROR_STOP=0", "-d", conninfo])
            .env("LC_ALL", "C")
            .env("PGTZ", "UTC")
            // A statement that waits on a lock fails instead of hanging.
            .env("PGOPTIONS", "-c statement_timeout=60s")
            .stdin(Stdio::piped())
            .stdout(out.try_clone().expect("dup the output file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", psql.display()));
        let stdin = child.stdin.take();
        Session {
            child,
            stdin,
            reader,
            _output: output,
            unread: Vec::new(),
            stuck: false,
        }
    }

    /// Runs `sql` and returns what psql printed for it, without the echo of
    /// the statement itself (a connection error shows up here too).
    pub fn run(&mut self, sql: &str) -> String {
        let marker = format!("\\echo {SENTINEL}\n");
        let sent = self.stdin.as_mut().is_some_and(|stdin| {
            stdin.write_all(sql.as_bytes()).is_ok()
                && stdin.write_all(marker.as_bytes()).is_ok()
                && stdin.flush().is_ok()
        });
        let done = format!("\n{SENTINEL}\n").into_bytes();
        let deadline = Instant::now() + STATEMENT_PATIENCE;
        let printed = loop {
            let _ = self.reader.read_to_end(&mut self.unread);
            if let Some(at) = self.unread.windows(done.len()).position(|w| w == done) {
                let printed: Vec<u8> = self.unread.drain(..at + done.len()).collect();
                break String::from_utf8_lossy(&printed[..at + 1]).into_owned();
            }
            let exited = self.child.try_wait().ok().flatten().is_some();
            if !sent || exited || Instant::now() > deadline {
                // psql is gone or stuck: what it printed is all there is.
                let _ = self.reader.read_to_end(&mut self.unread);
                let mut rest = String::from_utf8_lossy(&self.unread).into_owned();
                self.unread.clear();
                if sent && !exited {
                    self.stuck = true;
                    rest.push_str(&format!("<no answer within {STATEMENT_PATIENCE:?}>\n"));
                }
                break rest;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let printed = printed.strip_prefix(sql).unwrap_or(&printed);
        printed.strip_suffix(&marker).unwrap_or(printed).to_owned()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.stdin.take()); // end of input: psql exits
        if self.stuck {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
