//! [`AfterCommit`]: a transaction that runs registered work only once it
//! has committed — invalidating a cache, waking an in-process worker,
//! metrics — never after a rollback or a failed commit.
//!
//! Hooks are a convenience, not a delivery path: they run in this process,
//! after the commit, and are lost if it dies in between. Anything another
//! system must see goes through the outbox (`Store.enqueue` on
//! [`AfterCommit::transaction`]), which commits with the business rows and
//! is relayed at least once whatever happens to this process.

use crate::Error;
use std::future::Future;
use std::pin::Pin;
use tokio_postgres::Transaction;

/// What a hook may fail with.
pub type HookError = Box<dyn std::error::Error + Send + Sync + 'static>;

type Hook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Result<(), HookError>> + Send>> + Send>;

/// A transaction with work to run once it has committed.
///
/// ```no_run
/// # async fn demo(mut client: tokio_postgres::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use outbox_client::{AfterCommit, NewMessage, Store, Topic};
/// let mut tx = AfterCommit::new(client.transaction().await?);
/// tx.transaction().execute("UPDATE orders SET status = 'paid' WHERE id = 42", &[]).await?;
/// let event = NewMessage::new(Topic::new("orders.paid")?, &serde_json::json!({"id": 42}))?;
/// Store.enqueue(tx.transaction(), &event).await?;
/// tx.after_commit(|| async {
///     println!("order 42 is paid: drop it from the cache");
///     Ok(())
/// });
/// tx.commit().await?; // commits, then runs the hook
/// # Ok(()) }
/// ```
pub struct AfterCommit<'a> {
    tx: Transaction<'a>,
    hooks: Vec<Hook>,
}

/// Why [`AfterCommit::commit`] failed: either nothing committed and no hook
/// ran, or everything committed and some hooks failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The transaction did not commit (a constraint checked at commit, a
    /// serialization failure, a lost connection, ...): no hook ran. A lost
    /// connection leaves it unknown whether the server committed, as with
    /// any COMMIT.
    #[error("the transaction did not commit, so no after-commit hook ran: {0}")]
    Commit(#[source] Error),
    /// The transaction committed and every hook ran; these failed (by their
    /// position in registration order).
    #[error("the transaction committed; {} of its after-commit hooks failed: {}", .0.len(), describe(.0))]
    Hooks(Vec<(usize, HookError)>),
}

fn describe(failed: &[(usize, HookError)]) -> String {
    failed
        .iter()
        .map(|(n, e)| format!("hook {n}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl<'a> AfterCommit<'a> {
    /// Wrap a transaction that has no hooks yet.
    pub fn new(tx: Transaction<'a>) -> Self {
        AfterCommit {
            tx,
            hooks: Vec::new(),
        }
    }

    /// The transaction, for statements and `Store` calls.
    pub fn transaction(&self) -> &Transaction<'a> {
        &self.tx
    }

    /// Run `hook` after the commit, after the hooks registered before it.
    pub fn after_commit<F, Fut>(&mut self, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), HookError>> + Send + 'static,
    {
        self.hooks.push(Box::new(move || Box::pin(hook())));
    }

    /// How many hooks are waiting for the commit.
    pub fn pending(&self) -> usize {
        self.hooks.len()
    }

    /// Commit, then run every hook in order. A failing hook does not stop
    /// the ones after it: they are independent, and the commit they wait
    /// for has happened.
    pub async fn commit(self) -> Result<(), CommitError> {
        self.tx
            .commit()
            .await
            .map_err(|e| CommitError::Commit(Error::from_db(e)))?;
        let mut failed = Vec::new();
        for (n, hook) in self.hooks.into_iter().enumerate() {
            if let Err(e) = hook().await {
                failed.push((n, e));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(CommitError::Hooks(failed))
        }
    }

    /// Roll back; the hooks are dropped without running. (Dropping an
    /// `AfterCommit` rolls back too, as dropping a `Transaction` does.)
    pub async fn rollback(self) -> Result<(), Error> {
        self.tx.rollback().await.map_err(Error::from_db)
    }
}
