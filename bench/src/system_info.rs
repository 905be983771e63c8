//! What the figures were measured on: machine, PostgreSQL, its settings,
//! the peers' versions, and the disk's flush rate.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use tokio_postgres::Client;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Machine, PostgreSQL version, every non-default setting, peer versions.
pub async fn collect(admin: &Client) -> Result<Value> {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let version: String = admin.query_one("SELECT version()", &[]).await?.get(0);
    let settings: Vec<Value> = admin
        .query(
            "SELECT name, setting, coalesce(unit, ''), source FROM pg_settings \
             WHERE source NOT IN ('default', 'override', 'client') ORDER BY name",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            json!({
                "name": r.get::<_, String>(0),
                "setting": r.get::<_, String>(1),
                "unit": r.get::<_, String>(2),
                "source": r.get::<_, String>(3),
            })
        })
        .collect();
    let peers: Vec<Value> = crate::peers::versions(admin)
        .await?
        .into_iter()
        .map(|(n, v)| json!({"extension": n, "version": v}))
        .collect();
    Ok(json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "host": read("/proc/sys/kernel/hostname").trim(),
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "postgres": version,
        "settings": settings,
        "extensions": peers,
    }))
}

/// fdatasync calls per second on the cluster's disk, from pg_test_fsync's
/// "one 8kB write" section: the ceiling on commits of one session.
pub fn pg_test_fsync(pg_bin: &Path, dir: &Path, secs: u32) -> Result<f64> {
    let file = dir.join("pg_test_fsync.tmp");
    let out = Command::new(pg_bin.join("pg_test_fsync"))
        .arg("-s")
        .arg(secs.to_string())
        .arg("-f")
        .arg(&file)
        .output()
        .context("running pg_test_fsync")?;
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "pg_test_fsync failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_fdatasync(&text)
        .with_context(|| format!("no fdatasync rate in pg_test_fsync's output:\n{text}"))
}

fn parse_fdatasync(text: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.trim_start().starts_with("fdatasync"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn fdatasync_line_is_found() {
        let out = "Compare file sync methods using one 8kB write:\n\
            (in wal_sync_method preference order, except fdatasync is Linux's default)\n\
                    open_datasync                      1612.101 ops/sec     620 usecs/op\n\
                    fdatasync                          1553.224 ops/sec     644 usecs/op\n\
                    fsync                               832.003 ops/sec    1202 usecs/op\n";
        assert_eq!(super::parse_fdatasync(out), Some(1553.224));
    }
}
