//! Prepared statements kept for the life of the backend.
//!
//! Each query in `sql/queries/` is planned once per session (SPI_prepare +
//! SPI_keepplan) and reused; PostgreSQL's plan cache still re-plans it if the
//! tables change. Keyed by the query text's address: every query is a
//! `&'static str` from `include_str!`.

use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult, SpiTupleTable};
use pgrx::{datum::DatumWithOid, PgOid};
use std::cell::RefCell;
use std::collections::hash_map::{Entry, HashMap};

thread_local! {
    static KEPT: RefCell<HashMap<usize, OwnedPreparedStatement>> = RefCell::new(HashMap::new());
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
        let key = self.sql.as_ptr() as usize;
        KEPT.with(|kept| {
            let mut kept = kept.borrow_mut();
            let plan = match kept.entry(key) {
                Entry::Occupied(kept) => kept.into_mut(),
                Entry::Vacant(slot) => slot.insert(client.prepare_mut(self.sql, self.args)?.keep()),
            };
            let table = client.update(&*plan, None, args)?;
            read(table)
        })
    }
}
