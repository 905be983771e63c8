//! How the relay's tasks ended, for `Relay::run`'s return value.

use crate::Error;
use tokio::task::JoinError;

/// How the relay's tasks ended: the first error, the first panic.
#[derive(Default)]
pub(super) struct Ending {
    error: Option<Error>,
    panic: Option<Box<dyn std::any::Any + Send>>,
}

impl Ending {
    /// Note one task's end; true if the relay must stop because of it.
    pub(super) fn record(&mut self, joined: Result<Result<(), Error>, JoinError>) -> bool {
        match joined {
            Ok(Ok(())) => false,
            Ok(Err(e)) => {
                self.error.get_or_insert(e);
                true
            }
            Err(e) if e.is_panic() => {
                tracing::error!(error = %e, "a relay task panicked; shutting the relay down");
                self.panic.get_or_insert(e.into_panic());
                true
            }
            Err(_) => false, // aborted by the hard phase: expected
        }
    }

    pub(super) fn finish(self) -> Result<(), Error> {
        if let Some(panic) = self.panic {
            std::panic::resume_unwind(panic);
        }
        self.error.map_or(Ok(()), Err)
    }
}
