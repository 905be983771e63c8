//! Waiting on conditions instead of sleeping.

use std::future::Future;
use std::panic::Location;
use std::time::Duration;

use tokio::time::Instant;

/// How often [`wait_until`] and [`wait_for`] re-evaluate their condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Waits until `cond` yields true, evaluating it every [`POLL_INTERVAL`].
///
/// Tests wait on conditions, never on fixed sleeps: this returns as soon as
/// the condition holds and fails loudly when it never does.
///
/// # Panics
///
/// When `cond` is still false (or still running) once `timeout` has passed;
/// the message names the caller's source location.
///
/// ```no_run
/// # async fn demo(client: tokio_postgres::Client) {
/// use std::time::Duration;
///
/// outbox_tests::wait_until(Duration::from_secs(10), || async {
///     let row = client.query_one("SELECT count(*) FROM t", &[]).await.unwrap();
///     row.get::<_, i64>(0) == 3
/// })
/// .await;
/// # }
/// ```
#[track_caller]
pub fn wait_until<F, Fut>(timeout: Duration, mut cond: F) -> impl Future<Output = ()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let caller = Location::caller();
    async move {
        poll(timeout, caller, move || {
            let fut = cond();
            async move { fut.await.then_some(()) }
        })
        .await
    }
}

/// Waits until `f` yields `Some(value)` and returns the value, evaluating it
/// every [`POLL_INTERVAL`].
///
/// # Panics
///
/// When `f` still yields `None` (or is still running) once `timeout` has
/// passed; the message names the caller's source location.
///
/// ```no_run
/// # async fn demo(client: tokio_postgres::Client) {
/// use std::time::Duration;
///
/// let id: i32 = outbox_tests::wait_for(Duration::from_secs(10), || async {
///     client
///         .query_opt("SELECT id FROM t WHERE done", &[])
///         .await
///         .unwrap()
///         .map(|row| row.get(0))
/// })
/// .await;
/// # let _ = id;
/// # }
/// ```
#[track_caller]
pub fn wait_for<T, F, Fut>(timeout: Duration, f: F) -> impl Future<Output = T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(timeout, Location::caller(), f)
}

async fn poll<T, F, Fut>(timeout: Duration, caller: &'static Location<'static>, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, f()).await {
            Ok(Some(value)) => return value,
            Ok(None) => {}
            Err(_) => panic!(
                "outbox_tests: condition waited on at {caller} was still being evaluated when \
                 the {timeout:?} timeout ran out"
            ),
        }
        let now = Instant::now();
        if now >= deadline {
            panic!("outbox_tests: condition waited on at {caller} did not hold within {timeout:?}");
        }
        // The last evaluation happens at the deadline.
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}
