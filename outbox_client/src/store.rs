//! [`Store`]: the SQL API, one method per function, on any
//! [`GenericClient`] — a `Client` or the caller's own `Transaction`, so an
//! enqueue commits or rolls back with the caller's business rows. Each
//! method sends its statement unnamed, with its types (one round trip, and
//! safe behind a transaction-mode pooler), through the one function per
//! call in [`crate::call`], the code the relay runs too.

use crate::call::Statement::Typed;
use crate::inspect::{self, MessageFilter, MessageInfo};
use crate::outboxes::Statements;
use crate::types::{Claim, FailOutcome, LeaseToken, NewMessage, Topic, TopicStats};
use crate::{call, sql, Error};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio_postgres::GenericClient;

/// The outbox's SQL API for Rust. Methods are named as the SQL functions
/// they call.
///
/// ```no_run
/// # async fn demo(mut client: tokio_postgres::Client) -> Result<(), outbox_client::Error> {
/// use outbox_client::{NewMessage, Store, Topic};
/// let tx = client.transaction().await?;
/// tx.execute("UPDATE orders SET status = 'paid' WHERE id = 42", &[]).await?;
/// let msg = NewMessage::new(Topic::new("orders.paid")?, &serde_json::json!({"id": 42}))?.with_key("order-42");
/// Store.enqueue(&tx, &msg).await?;
/// tx.commit().await?; // the event exists if and only if the payment does
/// # Ok(()) }
/// ```
///
/// `Store` is the default outbox; [`Store::for_outbox`] is a named one
/// (`outbox.create_outbox('billing')`), with the same methods.
#[derive(Debug, Clone, Copy)]
pub struct Store {
    statements: &'static Statements,
}

/// The default outbox's store, so `Store.enqueue(..)` reads as the SQL call.
#[allow(non_upper_case_globals)]
pub const Store: Store = Store {
    statements: &Statements::DEFAULT,
};

impl Default for Store {
    fn default() -> Self {
        Store
    }
}

impl Store {
    /// The named outbox `name`, created with `outbox.create_outbox(name)`:
    /// its calls go to schema `outbox_<name>`. Fails with
    /// [`Error::InvalidInput`] for a name `create_outbox` would refuse.
    ///
    /// ```no_run
    /// # async fn demo(client: tokio_postgres::Client) -> Result<(), outbox_client::Error> {
    /// use outbox_client::{NewMessage, Store, Topic};
    /// let billing = Store::for_outbox("billing")?;
    /// let msg = NewMessage::new(Topic::new("invoice.sent")?, &serde_json::json!({"id": 7}))?;
    /// billing.enqueue(&client, &msg).await?;
    /// # Ok(()) }
    /// ```
    pub fn for_outbox(name: &str) -> Result<Store, Error> {
        Ok(Store {
            statements: Statements::for_outbox(Some(name))?,
        })
    }

    /// The statements this store sends (its outbox's).
    pub fn statements(&self) -> &'static Statements {
        self.statements
    }

    /// `outbox.enqueue()`: add one message in the client's transaction.
    pub async fn enqueue(
        &self,
        client: &impl GenericClient,
        msg: &NewMessage,
    ) -> Result<i64, Error> {
        call::enqueue(
            client,
            Typed(self.statements.enqueue),
            self.statements.enqueue_dedup,
            msg,
        )
        .await
    }

    /// `outbox.enqueue_batch()`: many messages of one topic in one statement.
    /// `deliver_at` and `max_attempts` apply to the whole batch.
    pub async fn enqueue_batch(
        &self,
        client: &impl GenericClient,
        topic: &Topic,
        messages: &[NewMessage],
        deliver_at: Option<DateTime<Utc>>,
        max_attempts: Option<i32>,
    ) -> Result<Vec<i64>, Error> {
        let statement = Typed(self.statements.enqueue_batch);
        let dedup = self.statements.enqueue_batch_dedup;
        call::enqueue_batch(
            client,
            statement,
            dedup,
            topic,
            messages,
            deliver_at,
            max_attempts,
        )
        .await
    }

    /// `outbox.claim()`: lease up to `batch_size` ready messages.
    ///
    /// Each row is decoded on its own: the ones this client cannot decode
    /// (JSON that `jsonb` accepts but `serde_json` refuses) come back in
    /// [`Claim::undeliverable`] instead of failing the call, and must be
    /// dead-lettered with `fail(.., &u.error(), None, true)` — see [`Claim`].
    /// An error means nothing usable came back (the rows claimed, if any,
    /// are redelivered when their lease expires).
    pub async fn claim(
        &self,
        client: &impl GenericClient,
        owner: &str,
        batch_size: i32,
        lease: Duration,
        topics: Option<&[String]>,
    ) -> Result<Claim, Error> {
        call::claim(
            client,
            Typed(self.statements.claim),
            owner,
            batch_size,
            lease,
            topics,
        )
        .await
    }

    /// `outbox.complete_batch()`: returns how many the token still held.
    pub async fn complete_batch(
        &self,
        client: &impl GenericClient,
        ids: &[i64],
        token: LeaseToken,
    ) -> Result<u64, Error> {
        call::complete_batch(client, Typed(self.statements.complete_batch), ids, token).await
    }

    /// `outbox.release_batch()`: back to ready without spending an attempt.
    pub async fn release_batch(
        &self,
        client: &impl GenericClient,
        ids: &[i64],
        token: LeaseToken,
    ) -> Result<u64, Error> {
        call::release_batch(client, Typed(self.statements.release_batch), ids, token).await
    }

    /// `outbox.extend_batch()`: hold the messages for `lease` from now.
    pub async fn extend_batch(
        &self,
        client: &impl GenericClient,
        ids: &[i64],
        token: LeaseToken,
        lease: Duration,
    ) -> Result<u64, Error> {
        call::extend_batch(
            client,
            Typed(self.statements.extend_batch),
            ids,
            token,
            lease,
        )
        .await
    }

    /// `outbox.fail()`: the database schedules the retry or dead-letters it.
    pub async fn fail(
        &self,
        client: &impl GenericClient,
        id: i64,
        token: LeaseToken,
        error: &str,
        retry_in: Option<Duration>,
        permanent: bool,
    ) -> Result<FailOutcome, Error> {
        call::fail(
            client,
            Typed(self.statements.fail),
            id,
            token,
            error,
            retry_in,
            permanent,
        )
        .await
    }

    /// `outbox.stats()`.
    pub async fn stats(&self, client: &impl GenericClient) -> Result<Vec<TopicStats>, Error> {
        call::stats(client, Typed(self.statements.stats)).await
    }

    /// `outbox.list_messages()`: messages in every state, oldest id first
    /// (admins). Page on with `filter.after(last.id)`.
    pub async fn list_messages(
        &self,
        client: &impl GenericClient,
        filter: &MessageFilter,
    ) -> Result<Vec<MessageInfo>, Error> {
        inspect::list_messages(client, Typed(self.statements.list_messages), filter).await
    }

    /// `outbox.get_message()`: `None` when the message is nowhere any more
    /// (published and not kept, or rolled back); an id never issued is an
    /// error (`P0002`).
    pub async fn get_message(
        &self,
        client: &impl GenericClient,
        id: i64,
    ) -> Result<Option<MessageInfo>, Error> {
        inspect::get_message(client, Typed(self.statements.get_message), id).await
    }

    /// `outbox.cleanup()`: remove up to `max_rows` of each kind of
    /// housekeeping row (dedup keys no message holds, history past
    /// `outbox.retention`); returns how many went.
    pub async fn cleanup(&self, client: &impl GenericClient, max_rows: i32) -> Result<u64, Error> {
        inspect::cleanup(client, Typed(self.statements.cleanup), max_rows).await
    }

    /// Fails with [`Error::ExtensionMissing`] unless `CREATE EXTENSION outbox` ran.
    pub async fn check_extension(&self, client: &impl GenericClient) -> Result<(), Error> {
        call::check_extension(client, Typed(&sql::EXTENSION_PRESENT)).await
    }
}
