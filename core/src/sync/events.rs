//! What a sync tells its observer as it goes, and what it reports when done.

/// Progress, for a foreign observer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// Mutations pushed so far, of those pending at the start.
    Pushed {
        /// Acknowledged so far.
        done: i64,
        /// Pending at the start.
        total: i64,
    },
    /// Changes pulled so far in a collection.
    Pulled {
        /// The collection.
        collection: String,
        /// Received so far.
        received: i64,
        /// What this collection's pull will have received when done, as the server counted it
        /// after the latest page (`received` plus what waits, at most 10,000 more); `None` from
        /// a server that does not count.
        total: Option<i64>,
    },
    /// A request failed and will be retried after a delay.
    Retrying {
        /// The attempt that failed (1-based).
        attempt: i64,
        /// Delay before the next, ms.
        delay_ms: i64,
        /// What failed.
        reason: String,
    },
}

/// Receives progress. Called on the sync's task; must return quickly and must not call back
/// into the sync client.
pub trait SyncObserver: Send + Sync {
    /// One progress event.
    fn on_event(&self, event: &SyncEvent);
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Mutations acknowledged as applied.
    pub pushed: i64,
    /// Mutations the server had already applied (an earlier delivery).
    pub duplicates: i64,
    /// Mutations older than the server's copy (last-writer-wins).
    pub superseded_on_server: i64,
    /// Mutations refused for good (kept in `sync.rejected`).
    pub rejected: i64,
    /// Changes received.
    pub pulled: i64,
    /// Changes applied.
    pub applied: i64,
    /// Changes older than the local copy.
    pub superseded_locally: i64,
    /// Changes of unknown collections or unreadable payloads.
    pub skipped: i64,
    /// Failed requests that were retried.
    pub retries: i64,
    /// Server clock minus device clock, ms (from the fastest exchange).
    pub clock_offset_ms: Option<i64>,
    /// Wall time of the sync, ms.
    pub elapsed_ms: i64,
}
