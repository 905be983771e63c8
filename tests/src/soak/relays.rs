//! The relay fleet: real `outbox-relay` processes, started, SIGKILLed,
//! SIGSTOPped and resumed by the fault injector, and restarted by a
//! supervisor when one exits on its own (counted: the report says how often).

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// How every relay of the soak runs.
#[derive(Debug, Clone)]
pub struct RelaySpec {
    /// The `outbox-relay` binary.
    pub bin: PathBuf,
    /// libpq key/value string without `application_name` (added per relay).
    pub database: String,
    /// The sink's URL.
    pub sink_url: String,
    /// `--lease`: short, so a SIGSTOP outlives it quickly.
    pub lease: Duration,
    pub poll_interval: Duration,
    pub batch_size: u32,
    pub concurrency: u32,
    /// Each relay's stderr goes to `relay-<n>.log` here (all generations).
    pub log_dir: PathBuf,
}

struct Slot {
    child: Option<Child>,
    generation: u32,
    /// SIGSTOPped and not yet resumed.
    stopped: bool,
}

/// A fixed number of relay slots, each running one process at a time.
pub struct Relays {
    spec: RelaySpec,
    slots: Mutex<Vec<Slot>>,
    /// Processes started, first starts included.
    pub starts: AtomicU64,
    /// Exits the soak did not cause (restarted by the supervisor).
    pub unexpected_exits: AtomicU64,
}

impl Relays {
    /// Starts `n` relays.
    pub async fn start(spec: RelaySpec, n: usize) -> Result<Relays, String> {
        let relays = Relays {
            spec,
            slots: Mutex::new(Vec::new()),
            starts: AtomicU64::new(0),
            unexpected_exits: AtomicU64::new(0),
        };
        {
            let mut slots = relays.slots.lock().await;
            for i in 0..n {
                let child = relays.spawn(i, 0)?;
                slots.push(Slot {
                    child: Some(child),
                    generation: 0,
                    stopped: false,
                });
            }
        }
        Ok(relays)
    }

    pub async fn count(&self) -> usize {
        self.slots.lock().await.len()
    }

    fn spawn(&self, i: usize, generation: u32) -> Result<Child, String> {
        let s = &self.spec;
        let log_path = s.log_dir.join(format!("relay-{i}.log"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let child = Command::new(&s.bin)
            .arg("--database-url")
            .arg(format!("{} application_name=soak-relay-{i}", s.database))
            .args(["--publisher", "http", "--http-url", &s.sink_url])
            .args(["--http-header", &format!("soak-relay: {i}")])
            .args(["--http-timeout", "5s", "--shutdown-grace", "5s"])
            .arg("--lease")
            .arg(format!("{}ms", s.lease.as_millis()))
            .arg("--poll-interval")
            .arg(format!("{}ms", s.poll_interval.as_millis()))
            .args(["--batch-size", &s.batch_size.to_string()])
            .args(["--concurrency", &s.concurrency.to_string()])
            .args(["--owner", &format!("soak-relay-{i}-g{generation}")])
            .args(["--log", "info"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", s.bin.display()))?;
        self.starts.fetch_add(1, Ordering::Relaxed);
        Ok(child)
    }

    /// SIGKILL relay `i` and wait for it to die; its slot stays empty until
    /// [`restart`](Self::restart). Returns the pid killed.
    pub async fn kill(&self, i: usize) -> Option<u32> {
        let mut slots = self.slots.lock().await;
        let slot = slots.get_mut(i)?;
        let mut child = slot.child.take()?;
        let pid = child.id();
        let _ = child.start_kill();
        let _ = child.wait().await;
        slot.stopped = false;
        pid
    }

    /// Starts a new process in slot `i` if it is empty.
    pub async fn restart(&self, i: usize) -> Result<(), String> {
        let mut slots = self.slots.lock().await;
        let Some(slot) = slots.get_mut(i) else {
            return Ok(());
        };
        if slot.child.is_none() {
            slot.generation += 1;
            slot.child = Some(self.spawn(i, slot.generation)?);
        }
        Ok(())
    }

    /// SIGSTOP relay `i`; returns its generation, for [`resume`](Self::resume).
    pub async fn pause(&self, i: usize) -> Option<u32> {
        let mut slots = self.slots.lock().await;
        let slot = slots.get_mut(i)?;
        let pid = slot.child.as_ref()?.id()?;
        signal("STOP", pid);
        slot.stopped = true;
        Some(slot.generation)
    }

    /// SIGCONT relay `i` if it is still the process of `generation`.
    pub async fn resume(&self, i: usize, generation: u32) {
        let mut slots = self.slots.lock().await;
        if let Some(slot) = slots.get_mut(i) {
            if slot.generation == generation && slot.stopped {
                if let Some(pid) = slot.child.as_ref().and_then(Child::id) {
                    signal("CONT", pid);
                }
                slot.stopped = false;
            }
        }
    }

    /// Resumes every stopped relay and fills every empty slot.
    pub async fn heal(&self) -> Result<(), String> {
        let n = self.count().await;
        for i in 0..n {
            let generation = self.slots.lock().await[i].generation;
            self.resume(i, generation).await;
            self.restart(i).await?;
        }
        Ok(())
    }

    /// Restarts relays that exited by themselves, every 200 ms, until
    /// `stop`. A relay exits on its own when it cannot reach PostgreSQL at
    /// start (it fails fast there) — e.g. started during a crash fault.
    pub async fn supervise(&self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = stop.cancelled() => return,
            }
            let mut slots = self.slots.lock().await;
            for (i, slot) in slots.iter_mut().enumerate() {
                let exited = match slot.child.as_mut().map(Child::try_wait) {
                    Some(Ok(Some(status))) => Some(status),
                    _ => None,
                };
                if let Some(status) = exited {
                    self.unexpected_exits.fetch_add(1, Ordering::Relaxed);
                    eprintln!("soak: relay {i} exited by itself ({status}); restarting it");
                    slot.generation += 1;
                    slot.stopped = false;
                    slot.child = self.spawn(i, slot.generation).ok();
                }
            }
        }
    }

    /// SIGTERM every relay and wait (bounded) for them to stop; returns the
    /// exits that were not clean.
    pub async fn terminate(&self) -> Vec<String> {
        let mut slots = self.slots.lock().await;
        let mut unclean = Vec::new();
        for slot in slots.iter_mut() {
            if let Some(pid) = slot.child.as_ref().and_then(Child::id) {
                signal("CONT", pid);
                signal("TERM", pid);
            }
        }
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(mut child) = slot.child.take() else {
                continue;
            };
            match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => unclean.push(format!("relay {i}: {status}")),
                Ok(Err(e)) => unclean.push(format!("relay {i}: {e}")),
                Err(_) => {
                    let _ = child.start_kill();
                    unclean.push(format!("relay {i}: did not stop within 30 s of SIGTERM"));
                }
            }
        }
        unclean
    }
}

/// `kill -<sig> <pid>`: the harness keeps `unsafe` (libc) out of here.
fn signal(sig: &str, pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
