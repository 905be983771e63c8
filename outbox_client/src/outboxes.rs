//! The statements of one outbox: the default outbox's ([`Statements::DEFAULT`],
//! the constants of [`crate::sql`]) or a named outbox's (created with
//! `outbox.create_outbox(name)`, in schema `outbox_<name>`), which are the
//! same statements with each `outbox.` function call read as
//! `outbox_<name>.`. Built once per name and process, then shared.

use crate::sql::{self, Sql};
use crate::Error;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Every statement of the SQL API that works on one outbox.
#[derive(Debug)]
pub struct Statements {
    /// The outbox's schema: `outbox`, or `outbox_<name>`.
    pub schema: &'static str,
    /// [`sql::ENQUEUE`] in this outbox.
    pub enqueue: &'static Sql,
    /// [`sql::ENQUEUE_DEDUP`] in this outbox.
    pub enqueue_dedup: &'static Sql,
    /// [`sql::ENQUEUE_BATCH`] in this outbox.
    pub enqueue_batch: &'static Sql,
    /// [`sql::ENQUEUE_BATCH_DEDUP`] in this outbox.
    pub enqueue_batch_dedup: &'static Sql,
    /// [`sql::CLAIM`] in this outbox.
    pub claim: &'static Sql,
    /// [`sql::COMPLETE_BATCH`] in this outbox.
    pub complete_batch: &'static Sql,
    /// [`sql::RELEASE_BATCH`] in this outbox.
    pub release_batch: &'static Sql,
    /// [`sql::EXTEND_BATCH`] in this outbox.
    pub extend_batch: &'static Sql,
    /// [`sql::FAIL`] in this outbox.
    pub fail: &'static Sql,
    /// [`sql::STATS`] in this outbox.
    pub stats: &'static Sql,
    /// [`sql::LIST_MESSAGES`] in this outbox.
    pub list_messages: &'static Sql,
    /// [`sql::GET_MESSAGE`] in this outbox.
    pub get_message: &'static Sql,
    /// [`sql::CLEANUP`] in this outbox.
    pub cleanup: &'static Sql,
}

impl Statements {
    /// The default outbox's statements (schema `outbox`).
    pub const DEFAULT: Statements = Statements {
        schema: "outbox",
        enqueue: &sql::ENQUEUE,
        enqueue_dedup: &sql::ENQUEUE_DEDUP,
        enqueue_batch: &sql::ENQUEUE_BATCH,
        enqueue_batch_dedup: &sql::ENQUEUE_BATCH_DEDUP,
        claim: &sql::CLAIM,
        complete_batch: &sql::COMPLETE_BATCH,
        release_batch: &sql::RELEASE_BATCH,
        extend_batch: &sql::EXTEND_BATCH,
        fail: &sql::FAIL,
        stats: &sql::STATS,
        list_messages: &sql::LIST_MESSAGES,
        get_message: &sql::GET_MESSAGE,
        cleanup: &sql::CLEANUP,
    };

    /// `sql`, written against the default outbox, for this outbox: each
    /// `outbox.` read as `outbox_<name>.` (unchanged for the default). For
    /// statements that name only per-outbox objects, as every statement
    /// here and the operator CLI's do; the shared ones
    /// (`outbox.create_outbox`, the grants) stay in schema `outbox`.
    pub fn qualify(&self, sql: &str) -> String {
        if self.schema == "outbox" {
            sql.to_owned()
        } else {
            sql.replace("outbox.", &format!("{}.", self.schema))
        }
    }

    /// The statements of the named outbox `name` (`None`: the default).
    /// The name is checked by the rule `outbox.create_outbox` applies
    /// ([`outbox_rules::outbox_name`]), so it is a plain identifier before
    /// it goes into a statement. Whether the outbox exists is the server's
    /// answer to the first call (SQLSTATE 3F000, schema does not exist).
    pub fn for_outbox(name: Option<&str>) -> Result<&'static Statements, Error> {
        static DEFAULT: Statements = Statements::DEFAULT;
        static NAMED: OnceLock<Mutex<HashMap<String, &'static Statements>>> = OnceLock::new();
        let Some(name) = name else {
            return Ok(&DEFAULT);
        };
        outbox_rules::outbox_name(name)?;
        let mut named = NAMED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(*named
            .entry(name.to_owned())
            .or_insert_with(|| Box::leak(Box::new(named_statements(name)))))
    }
}

/// [`Statements::DEFAULT`] for schema `outbox_<name>`. Leaked once per name:
/// a process uses a handful of outboxes, and the statements live as long as
/// the process anyway.
fn named_statements(name: &str) -> Statements {
    let schema: &'static str = Box::leak(format!("outbox_{name}").into_boxed_str());
    let d = &Statements::DEFAULT;
    let named = Statements {
        schema,
        ..Statements::DEFAULT
    };
    let rename = |s: &'static Sql| -> &'static Sql {
        let text = named.qualify(s.text);
        Box::leak(Box::new(Sql {
            text: Box::leak(text.into_boxed_str()),
            params: s.params,
        }))
    };
    Statements {
        enqueue: rename(d.enqueue),
        enqueue_dedup: rename(d.enqueue_dedup),
        enqueue_batch: rename(d.enqueue_batch),
        enqueue_batch_dedup: rename(d.enqueue_batch_dedup),
        claim: rename(d.claim),
        complete_batch: rename(d.complete_batch),
        release_batch: rename(d.release_batch),
        extend_batch: rename(d.extend_batch),
        fail: rename(d.fail),
        stats: rename(d.stats),
        list_messages: rename(d.list_messages),
        get_message: rename(d.get_message),
        cleanup: rename(d.cleanup),
        ..named
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_outbox_calls_its_own_schema() {
        let s = Statements::for_outbox(Some("billing")).unwrap();
        assert_eq!(s.schema, "outbox_billing");
        for sql in [
            s.enqueue,
            s.claim,
            s.fail,
            s.stats,
            s.list_messages,
            s.cleanup,
        ] {
            assert!(sql.text.contains("outbox_billing."), "{}", sql.text);
            assert!(!sql.text.contains(" outbox."), "{}", sql.text);
        }
        assert!(std::ptr::eq(
            s,
            Statements::for_outbox(Some("billing")).unwrap()
        ));
        assert_eq!(
            Statements::for_outbox(None).unwrap().claim.text,
            sql::CLAIM.text
        );
        assert!(Statements::for_outbox(Some("Billing; DROP")).is_err());
    }
}
