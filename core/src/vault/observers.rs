//! Change observers: told, on a notifier thread of their own, of the collections committed
//! transactions wrote.

use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex};

use super::lock;

/// Called after transactions commit, with the collections they wrote (sorted, each once), on
/// the store's notifier thread. It may read the store.
pub type ChangeObserver = Arc<dyn Fn(&[String]) + Send + Sync>;

type ObserverList = Arc<Mutex<(u64, Vec<(u64, ChangeObserver)>)>>;

/// What the notifier thread has yet to tell: the union of the collections written since it
/// last told the observers. Bounded by the number of collections, however many transactions
/// commit while an observer is slow.
#[derive(Default)]
struct Pending {
    collections: BTreeSet<String>,
    closed: bool,
}

type PendingQueue = Arc<(Mutex<Pending>, Condvar)>;

/// The observers of a store (the vault, the document library): told of committed changes.
///
/// Observers run on one notifier thread per store, never on the writer's: a writer may hold
/// its own locks (a validator logging a tap, a phone storing its state), and an observer that
/// called back into that object would otherwise deadlock. Changes coalesce: while observers
/// are busy, the transactions that commit are merged into one call naming every collection
/// they wrote, so a burst of writes (a sync applying thousands of records, a validator logging
/// taps) costs a screen one refresh, and memory stays bounded. The thread starts with the
/// first change that has an observer and ends when the store is dropped.
#[derive(Default)]
pub struct ChangeObservers {
    list: ObserverList,
    queue: Mutex<Option<PendingQueue>>,
}

impl ChangeObservers {
    /// Adds `observer`; returns the id to remove it with.
    pub fn add(&self, observer: ChangeObserver) -> u64 {
        let mut inner = lock(&self.list);
        inner.0 += 1;
        let id = inner.0;
        inner.1.push((id, observer));
        id
    }

    /// Removes the observer `id`; returns whether it was there.
    pub fn remove(&self, id: u64) -> bool {
        let mut inner = lock(&self.list);
        let before = inner.1.len();
        inner.1.retain(|(i, _)| *i != id);
        inner.1.len() != before
    }

    /// Queues `changed` (nothing when empty or nobody observes) for the observers; returns at
    /// once.
    pub fn notify(&self, changed: &[String]) {
        if changed.is_empty() || lock(&self.list).1.is_empty() {
            return;
        }
        let mut queue = lock(&self.queue);
        if queue.is_none() {
            let pending: PendingQueue = Arc::default();
            let (list, shared) = (self.list.clone(), pending.clone());
            let started = std::thread::Builder::new()
                .name("thudo-changes".into())
                .spawn(move || run(&list, &shared));
            match started {
                Ok(_) => *queue = Some(pending),
                // No thread to be had: tell them here rather than not at all.
                Err(_) => return deliver(&self.list, changed),
            }
        }
        if let Some(pending) = queue.as_ref() {
            lock(&pending.0).collections.extend(changed.iter().cloned());
            pending.1.notify_one();
        }
    }
}

impl Drop for ChangeObservers {
    fn drop(&mut self) {
        if let Some(pending) = lock(&self.queue).take() {
            lock(&pending.0).closed = true;
            pending.1.notify_one();
        }
    }
}

/// The notifier thread: waits for changes, takes all that are pending, tells the observers.
fn run(list: &ObserverList, pending: &PendingQueue) {
    let (state, wake) = (&pending.0, &pending.1);
    loop {
        let changed: Vec<String> = {
            let mut guard = lock(state);
            while guard.collections.is_empty() && !guard.closed {
                guard = match wake.wait(guard) {
                    Ok(g) => g,
                    Err(poisoned) => poisoned.into_inner(),
                };
            }
            if guard.collections.is_empty() {
                return;
            }
            std::mem::take(&mut guard.collections).into_iter().collect()
        };
        deliver(list, &changed);
    }
}

fn deliver(list: &ObserverList, changed: &[String]) {
    // A copy, so an observer may add or remove observers.
    let observers: Vec<ChangeObserver> = lock(list).1.iter().map(|(_, o)| o.clone()).collect();
    for observer in observers {
        observer(changed);
    }
}
