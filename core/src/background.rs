//! Blocking work (vault transactions, file and host I/O) run off the async executor.
//!
//! Every caller goes through one task type, a boxed closure, so tokio's task machinery is
//! compiled once instead of once per closure: about 2.5 KB of code per call site, over a
//! hundred call sites in the mobile library (docs/performance.md).

/// Why blocking work gave no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfinished {
    /// The work panicked (the panic was caught on the blocking pool).
    Panicked,
    /// The runtime shut down before the work ran.
    Cancelled,
}

/// Runs `work` on tokio's blocking pool and waits for its result. Must be awaited inside a
/// tokio runtime.
pub async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Unfinished> {
    let (answer, mut result) = tokio::sync::oneshot::channel();
    let job: Box<dyn FnOnce() + Send> = Box::new(move || {
        let _ = answer.send(work());
    });
    match tokio::task::spawn_blocking(job).await {
        Ok(()) => result.try_recv().map_err(|_| Unfinished::Cancelled),
        Err(join) if join.is_panic() => Err(Unfinished::Panicked),
        Err(_) => Err(Unfinished::Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gives_the_result_and_reports_a_panic() {
        assert_eq!(run_blocking(|| 6 * 7).await, Ok(42));
        let panicked = run_blocking(|| -> u8 { panic!("boom") }).await;
        assert_eq!(panicked, Err(Unfinished::Panicked));
    }
}
