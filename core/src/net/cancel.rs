//! Stopping one operation without touching the client: [`Cancel`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::BackendError;

/// Stops one operation without touching the client: cancel it by hand, or give it a deadline
/// (a background task's time budget). Cancelling drops the operation at its next await: a vault
/// transaction under way completes (each one is atomic), a request in flight is abandoned, and
/// a later call starts afresh (pushes are idempotent and cursors move only with what was
/// applied). Clones share one state.
#[derive(Clone, Debug)]
pub struct Cancel {
    flag: Arc<watch::Sender<bool>>,
    deadline: Option<Instant>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new()
    }
}

impl Cancel {
    /// A cancel that fires only when [`Cancel::cancel`] is called.
    pub fn new() -> Cancel {
        Cancel {
            flag: Arc::new(watch::channel(false).0),
            deadline: None,
        }
    }

    /// A cancel that also fires `budget` from now.
    pub fn with_timeout(budget: Duration) -> Cancel {
        Cancel {
            deadline: Instant::now().checked_add(budget),
            ..Cancel::new()
        }
    }

    /// Fires it: the operations it guards stop at their next await.
    pub fn cancel(&self) {
        self.flag.send_replace(true);
    }

    /// Whether it fired or its deadline passed.
    pub fn is_cancelled(&self) -> bool {
        *self.flag.borrow() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Completes when it fires or its deadline passes.
    pub async fn cancelled(&self) {
        let mut rx = self.flag.subscribe();
        let fired = async {
            let _ = rx.wait_for(|c| *c).await;
        };
        match self.deadline {
            Some(d) => {
                tokio::select! {
                    _ = fired => {}
                    _ = tokio::time::sleep_until(d.into()) => {}
                }
            }
            None => fired.await,
        }
    }

    /// Runs `work` until it ends or this fires, whichever is first ([`BackendError::Cancelled`]).
    pub async fn run<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        if self.is_cancelled() {
            return Err(BackendError::Cancelled);
        }
        tokio::select! {
            biased;
            _ = self.cancelled() => Err(BackendError::Cancelled),
            r = work => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_cancel_stops_its_operation_and_only_it() {
        runtime().block_on(async {
            let pending = || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, BackendError>(1)
            };
            // Fired by hand from elsewhere while the work waits.
            let cancel = Cancel::new();
            let firing = cancel.clone();
            let started = Instant::now();
            let (r, ()) = tokio::join!(cancel.run(pending()), async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                firing.cancel();
            });
            assert!(matches!(r, Err(BackendError::Cancelled)));
            assert!(started.elapsed() < Duration::from_secs(5));
            assert!(cancel.is_cancelled());
            // Once fired, work does not even start.
            assert!(matches!(
                cancel.run(async { Ok::<_, BackendError>(2) }).await,
                Err(BackendError::Cancelled)
            ));
            // A deadline fires by itself; work that ends first is not touched.
            let budget = Cancel::with_timeout(Duration::from_millis(30));
            assert_eq!(budget.run(async { Ok(3) }).await.unwrap(), 3);
            assert!(matches!(
                budget.run(pending()).await,
                Err(BackendError::Cancelled)
            ));
            assert!(budget.is_cancelled());
            // A new cancel is independent of a fired one.
            assert_eq!(Cancel::new().run(async { Ok(4) }).await.unwrap(), 4);
        });
    }
}
