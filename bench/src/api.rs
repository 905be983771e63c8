//! The outbox's SQL API as the newer workloads call it directly (claim,
//! complete, fail, enqueue), outside the relay: the claim-cost workload times
//! single calls, and setting up blocked keys needs a claim followed by a
//! chosen `fail`. Only documented functions are called, so the statements
//! work against every storage version.

use anyhow::Result;
use serde_json::Value;
use tokio_postgres::{Client, Statement};

/// Lease token as text: the bench does not need the uuid type itself.
const CLAIM: &str =
    "SELECT id, lease_token::text FROM outbox.claim($1::text, $2::int, '5 minutes')";
const COMPLETE: &str = "SELECT outbox.complete_batch($1::bigint[], $2::text::uuid)";
/// Every message of one claim failed as retryable, due again after `$3`.
const FAIL_ALL: &str = "SELECT count(*) FROM unnest($1::bigint[]) AS t(id) \
    CROSS JOIN LATERAL outbox.fail(t.id, $2::text::uuid, 'bench: held back on purpose', \
        retry_in => $3::text::interval) AS f WHERE f.state = 'retrying'";
const ENQUEUE_KEYLESS: &str =
    "SELECT cardinality(outbox.enqueue_batch('bench', array_fill($1::jsonb, ARRAY[$2::int])))";
const ENQUEUE_KEYED: &str = "SELECT cardinality(outbox.enqueue_batch('bench', \
    array_fill($1::jsonb, ARRAY[cardinality($2::text[])]), keys => $2::text[]))";

/// Messages per enqueue_batch call when filling.
const CHUNK: usize = 10_000;

/// What one claim handed out.
pub struct Claimed {
    pub ids: Vec<i64>,
    pub token: Option<String>,
}

/// One connection's prepared API statements.
pub struct Api {
    claim: Statement,
    complete: Statement,
    fail_all: Statement,
    keyless: Statement,
    keyed: Statement,
}

impl Api {
    pub async fn new(c: &Client) -> Result<Api> {
        Ok(Api {
            claim: c.prepare(CLAIM).await?,
            complete: c.prepare(COMPLETE).await?,
            fail_all: c.prepare(FAIL_ALL).await?,
            keyless: c.prepare(ENQUEUE_KEYLESS).await?,
            keyed: c.prepare(ENQUEUE_KEYED).await?,
        })
    }

    pub async fn claim(&self, c: &Client, owner: &str, batch: i32) -> Result<Claimed> {
        let rows = c.query(&self.claim, &[&owner, &batch]).await?;
        Ok(Claimed {
            ids: rows.iter().map(|r| r.get(0)).collect(),
            token: rows.first().map(|r| r.get(1)),
        })
    }

    /// Complete everything `claimed` holds; how many were completed.
    pub async fn complete(&self, c: &Client, claimed: &Claimed) -> Result<i64> {
        let Some(token) = &claimed.token else {
            return Ok(0);
        };
        let n: i32 = c
            .query_one(&self.complete, &[&claimed.ids, token])
            .await?
            .get(0);
        Ok(i64::from(n))
    }

    /// Fail everything `claimed` holds, due again after `retry_in` (an
    /// interval in text, e.g. `'1 day'`); how many are now retrying.
    pub async fn fail_all(&self, c: &Client, claimed: &Claimed, retry_in: &str) -> Result<i64> {
        let Some(token) = &claimed.token else {
            return Ok(0);
        };
        Ok(
            c.query_one(&self.fail_all, &[&claimed.ids, token, &retry_in])
                .await?
                .get(0),
        )
    }

    /// `n` keyless messages of `payload`, in calls of [`CHUNK`].
    pub async fn fill_keyless(&self, c: &Client, payload: &Value, n: usize) -> Result<()> {
        let mut left = n;
        while left > 0 {
            let k = i32::try_from(left.min(CHUNK))?;
            c.query_one(&self.keyless, &[payload, &k]).await?;
            left -= k as usize;
        }
        Ok(())
    }

    /// One message of `payload` per key, in calls of [`CHUNK`].
    pub async fn fill_keyed(&self, c: &Client, payload: &Value, keys: &[String]) -> Result<()> {
        for chunk in keys.chunks(CHUNK) {
            c.query_one(&self.keyed, &[payload, &chunk]).await?;
        }
        Ok(())
    }

    /// Claim and complete until claims come back empty: drains everything
    /// ready. Returns how many were completed. Stops after three empty claims
    /// in a row (a storage that leases per partition may answer one claim
    /// from an empty partition).
    pub async fn drain_ready(&self, c: &Client) -> Result<i64> {
        let (mut done, mut empty) = (0, 0);
        while empty < 3 {
            let claimed = self.claim(c, "bench-drain", 10_000).await?;
            if claimed.ids.is_empty() {
                empty += 1;
                continue;
            }
            empty = 0;
            done += self.complete(c, &claimed).await?;
        }
        Ok(done)
    }
}

/// Put the outbox back to empty between workloads: its message tables are
/// truncated (that also drops retrying heads that no claim would hand out
/// soon), then anything a claim still hands out is drained through the API.
pub async fn reset_outbox(admin: &Client) -> Result<()> {
    crate::footprint::empty_outbox(admin, &[]).await?;
    let api = Api::new(admin).await?;
    api.drain_ready(admin).await?;
    crate::footprint::vacuum_outbox(admin, &[]).await?;
    admin.batch_execute("CHECKPOINT").await?;
    Ok(())
}
