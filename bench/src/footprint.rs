//! What the outbox occupies on disk and how many dead row versions it
//! carries, over every table that holds messages or their leases; and the
//! housekeeping between runs that has to name those tables (emptying them,
//! vacuuming them, switching the doorbell trigger off and on).
//!
//! The tables are found at run time, because storage changes between
//! versions: 0.1.0 has the table `outbox.messages` only; 0.2.0 has the log
//! (`outbox.log`, its segments `outbox.log_N` as partitions or inheritance
//! children), `outbox.partitions`, and the side table (`outbox.side`, with
//! `outbox.messages` now a view over both). A table that does not exist
//! simply contributes nothing, so the same binary measures either version.
//! This is the one place the benchmark looks at the extension's tables by
//! name; every workload itself goes through the SQL API.
//!
//! Depth comes from `outbox.stats()` (the API), not from counting a table.

use anyhow::{ensure, Context, Result};
use serde_json::{json, Map, Value};
use tokio_postgres::Client;

/// Every outbox table that holds messages or leases: the side table, the
/// log parent and its segments (by inheritance or by name), the partitions.
const TABLES: &str = "
SELECT c.relname::text,
       coalesce(s.n_dead_tup, 0)::bigint,
       pg_catalog.pg_table_size(c.oid)::bigint,
       pg_catalog.pg_indexes_size(c.oid)::bigint
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = 'outbox'
LEFT JOIN pg_catalog.pg_stat_user_tables AS s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p')
  AND (c.relname IN ('messages', 'side', 'partitions', 'log')
       OR c.relname LIKE 'log\\_%'
       OR c.oid IN (SELECT i.inhrelid FROM pg_catalog.pg_inherits AS i
                    WHERE i.inhparent = pg_catalog.to_regclass('outbox.log')))
ORDER BY 1";

/// The tables that hold messages themselves (not their leases): emptied
/// between runs, in the default outbox and in W8's named one
/// (`outbox_<name>`). The log's parent is enough: TRUNCATE goes down to its
/// segments.
const MESSAGE_TABLES: &str = "
SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname ~ '^outbox(_[a-z0-9_]+)?$'
WHERE c.relkind IN ('r', 'p') AND c.relname IN ('messages', 'side', 'log', 'dedup', 'published')
ORDER BY 1";

/// Plain tables of the outboxes (not partitioned parents): what VACUUM takes.
const VACUUM_TABLES: &str = "
SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname ~ '^outbox(_[a-z0-9_]+)?$'
WHERE c.relkind = 'r'
ORDER BY 1";

/// The tables carrying the doorbell trigger.
const DOORBELL_TABLES: &str = "
SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
FROM pg_catalog.pg_trigger AS t
JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = 'outbox'
WHERE t.tgname = 'doorbell' AND NOT t.tgisinternal AND t.tgparentid = 0
ORDER BY 1";

async fn names(admin: &Client, sql: &str) -> Result<Vec<String>> {
    Ok(admin
        .query(sql, &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Empty every table that holds messages, and `also` (bench tables), in
/// one TRUNCATE. Only between runs, while no relay holds a lease: the
/// partitions' cursors stay where they are, and the ids issued next are all
/// above them.
pub async fn empty_outbox(admin: &Client, also: &[&str]) -> Result<()> {
    let mut tables = names(admin, MESSAGE_TABLES).await?;
    ensure!(!tables.is_empty(), "found no outbox table to empty");
    tables.extend(also.iter().map(|t| (*t).to_owned()));
    admin
        .batch_execute(&format!("TRUNCATE {}", tables.join(", ")))
        .await
        .with_context(|| format!("TRUNCATE {}", tables.join(", ")))
}

/// VACUUM ANALYZE every outbox table and `also`.
pub async fn vacuum_outbox(admin: &Client, also: &[&str]) -> Result<()> {
    let mut tables = names(admin, VACUUM_TABLES).await?;
    tables.extend(also.iter().map(|t| (*t).to_owned()));
    // One statement per call: VACUUM refuses to run in the implicit
    // transaction of a multi-statement query.
    admin
        .batch_execute(&format!("VACUUM ANALYZE {}", tables.join(", ")))
        .await
        .context("VACUUM ANALYZE of the outbox")
}

/// Switch the doorbell trigger off or on, wherever the extension put it.
pub async fn set_doorbell(admin: &Client, enabled: bool) -> Result<()> {
    let tables = names(admin, DOORBELL_TABLES).await?;
    ensure!(
        !tables.is_empty(),
        "found no doorbell trigger in schema outbox"
    );
    let how = if enabled { "ENABLE" } else { "DISABLE" };
    for t in tables {
        admin
            .batch_execute(&format!("ALTER TABLE {t} {how} TRIGGER doorbell"))
            .await?;
    }
    Ok(())
}

/// Unfinished messages in every state, from the API.
const DEPTH: &str =
    "SELECT coalesce(sum(ready + scheduled + leased), 0)::bigint FROM outbox.stats()";

/// One table's reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub dead: i64,
    pub table_bytes: i64,
    pub index_bytes: i64,
}

/// One reading of all of them.
#[derive(Debug, Clone, Default)]
pub struct Footprint {
    pub tables: Vec<Table>,
}

impl Footprint {
    pub fn dead(&self) -> i64 {
        self.tables.iter().map(|t| t.dead).sum()
    }
    pub fn table_bytes(&self) -> i64 {
        self.tables.iter().map(|t| t.table_bytes).sum()
    }
    pub fn index_bytes(&self) -> i64 {
        self.tables.iter().map(|t| t.index_bytes).sum()
    }
}

/// Prepared once, read once a second during a run.
pub struct Reader {
    tables: tokio_postgres::Statement,
    depth: tokio_postgres::Statement,
}

impl Reader {
    pub async fn new(admin: &Client) -> Result<Reader> {
        Ok(Reader {
            tables: admin.prepare(TABLES).await?,
            depth: admin.prepare(DEPTH).await?,
        })
    }

    /// Sizes and dead tuples of every outbox table that exists now (the
    /// list is re-read each time: segments may appear during a run).
    pub async fn footprint(&self, admin: &Client) -> Result<Footprint> {
        let tables = admin
            .query(&self.tables, &[])
            .await?
            .iter()
            .map(|r| Table {
                name: r.get(0),
                dead: r.get(1),
                table_bytes: r.get(2),
                index_bytes: r.get(3),
            })
            .collect();
        Ok(Footprint { tables })
    }

    /// Messages not yet finished, in every state.
    pub async fn depth(&self, admin: &Client) -> Result<i64> {
        Ok(admin.query_one(&self.depth, &[]).await?.get(0))
    }
}

/// Per table, the largest dead-tuple count and sizes seen over `readings`
/// (each maximum on its own), as report JSON keyed by table name.
pub fn per_table_max<'a>(readings: impl IntoIterator<Item = &'a Footprint>) -> Value {
    let mut out = Map::new();
    for f in readings {
        for t in &f.tables {
            let e = out.entry(t.name.clone()).or_insert_with(
                || json!({"dead_tuples_max": 0, "table_bytes_max": 0, "index_bytes_max": 0}),
            );
            for (k, v) in [
                ("dead_tuples_max", t.dead),
                ("table_bytes_max", t.table_bytes),
                ("index_bytes_max", t.index_bytes),
            ] {
                if e[k].as_i64().unwrap_or(0) < v {
                    e[k] = v.into();
                }
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, dead: i64, size: i64) -> Table {
        Table {
            name: name.to_owned(),
            dead,
            table_bytes: size,
            index_bytes: size / 2,
        }
    }

    #[test]
    fn totals_add_every_table() {
        let f = Footprint {
            tables: vec![t("messages", 10, 100), t("log_0", 0, 1000)],
        };
        assert_eq!(f.dead(), 10);
        assert_eq!(f.table_bytes(), 1100);
        assert_eq!(f.index_bytes(), 550);
        assert_eq!(Footprint::default().dead(), 0);
    }

    #[test]
    fn per_table_maxima_are_taken_column_by_column() {
        let a = Footprint {
            tables: vec![t("messages", 10, 100)],
        };
        let b = Footprint {
            tables: vec![t("messages", 5, 400), t("log_1", 1, 8)],
        };
        let m = per_table_max([&a, &b]);
        assert_eq!(m["messages"]["dead_tuples_max"], 10);
        assert_eq!(m["messages"]["table_bytes_max"], 400);
        assert_eq!(m["log_1"]["index_bytes_max"], 4);
    }
}
