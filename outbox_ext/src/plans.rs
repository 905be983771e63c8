//! Prepared statements kept for the life of the backend.
//!
//! Each query in `sql/queries/` is planned once per session (SPI_prepare +
//! SPI_keepplan) and reused; PostgreSQL's plan cache still re-plans it if the
//! tables change. Keyed by the query text's address (every query is a
//! `&'static str` from `include_str!`) and the outbox of the call
//! (outboxes.rs): a named outbox's plan is prepared from the text with
//! `outbox._in_outbox()` applied, once per session, so the per-call cost is
//! the same lookup as the default outbox's.

use pgrx::pg_sys::Oid;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult, SpiTupleTable};
use pgrx::{datum::DatumWithOid, PgOid};
use std::cell::RefCell;
use std::collections::hash_map::{Entry, HashMap};

thread_local! {
    static KEPT: RefCell<HashMap<(usize, Oid), OwnedPreparedStatement>> = RefCell::new(HashMap::new());
}

/// A query file and its parameter types.
pub struct Query {
    /// The SQL text, from `include_str!`.
    pub sql: &'static str,
    /// One OID per `$n`.
    pub args: &'static [PgOid],
}

impl Query {
    /// Run the kept plan for this query (preparing it on first use) and hand
    /// the result to `read` while the SPI connection is open.
    pub fn run<'conn, R>(
        &'static self,
        client: &mut SpiClient<'conn>,
        args: &[DatumWithOid],
        read: impl FnOnce(SpiTupleTable<'conn>) -> SpiResult<R>,
    ) -> SpiResult<R> {
        let schema = crate::outboxes::current();
        let key = (self.sql.as_ptr() as usize, schema);
        KEPT.with(|kept| {
            let mut kept = kept.borrow_mut();
            let plan = match kept.entry(key) {
                Entry::Occupied(kept) => kept.into_mut(),
                Entry::Vacant(slot) => {
                    let sql = in_outbox(client, self.sql, schema)?;
                    slot.insert(client.prepare_mut(&*sql, self.args)?.keep())
                }
            };
            let table = client.update(&*plan, None, args)?;
            read(table)
        })
    }
}

/// The query text for the outbox in `schema`: as written for the default
/// outbox, or renamed by `outbox._in_outbox()` (the rule's one home,
/// sql/outboxes.sql) for a named one.
fn in_outbox(
    client: &mut SpiClient<'_>,
    sql: &'static str,
    schema: Oid,
) -> SpiResult<std::borrow::Cow<'static, str>> {
    let Some(name) = crate::outboxes::named_schema(schema) else {
        return Ok(sql.into());
    };
    let args: [DatumWithOid; 2] = [sql.into(), name.as_str().into()];
    let renamed = client
        .select("SELECT outbox._in_outbox($1, $2::name)", Some(1), &args)?
        .first()
        .get_one::<String>()?;
    Ok(renamed.unwrap_or_else(|| sql.to_owned()).into())
}
