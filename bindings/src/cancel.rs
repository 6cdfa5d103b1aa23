//! Stopping one long call: the token a host passes to a network call or a long vault operation.

use std::sync::Arc;
use std::time::Duration;

use thudo_core::sync::client::Cancel;

/// Stops one long call (`sync`, `uploadTaps`, `validatorFeed`) without touching the client: call
/// `cancel()` (from any thread), or make it with a time budget that fires by itself (a
/// background task's deadline). The call ends with `SyncException.Cancelled` /
/// `SyncError.Cancelled`; what was acknowledged or applied before stays, and the next call goes
/// on from there. One token may guard several calls; once fired it stays fired.
#[derive(uniffi::Object, Default)]
pub struct CancelToken {
    inner: Cancel,
}

#[uniffi::export]
impl CancelToken {
    /// A token that fires when `cancel()` is called.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(CancelToken::default())
    }

    /// A token that also fires by itself `budget_ms` from now: give it a little less than the
    /// platform allows (an iOS refresh task has about 30 s, a WorkManager run 10 minutes).
    #[uniffi::constructor]
    pub fn with_timeout_ms(budget_ms: i64) -> Arc<Self> {
        Arc::new(CancelToken {
            inner: Cancel::with_timeout(Duration::from_millis(budget_ms.max(0) as u64)),
        })
    }

    /// Fires the token: the calls it guards stop at their next step.
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// Whether it fired (or its time budget ran out).
    pub fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }
}

/// The cancel guarding a call: the token's, or one that never fires.
pub(crate) fn guard(token: Option<Arc<CancelToken>>) -> Cancel {
    token.map(|t| t.inner.clone()).unwrap_or_default()
}
