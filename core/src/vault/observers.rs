//! Change observers: told, on a notifier thread of their own, of the collections each
//! committed transaction wrote.

use std::sync::{Arc, Mutex};

use super::lock;

/// Called after a transaction commits, with the collections it wrote (sorted, each once), on
/// the store's notifier thread, in commit order. It may read the store.
pub type ChangeObserver = Arc<dyn Fn(&[String]) + Send + Sync>;

type ObserverList = Arc<Mutex<(u64, Vec<(u64, ChangeObserver)>)>>;

/// The observers of a store (the vault, the document library): told of each committed change.
///
/// Observers run on one notifier thread per store, never on the writer's: a writer may hold
/// its own locks (a validator logging a tap, a phone storing its state), and an observer that
/// called back into that object would otherwise deadlock. The thread starts with the first
/// change that has an observer and ends when the store is dropped.
#[derive(Default)]
pub struct ChangeObservers {
    list: ObserverList,
    queue: Mutex<Option<std::sync::mpsc::Sender<Vec<String>>>>,
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
            let (sender, receiver) = std::sync::mpsc::channel::<Vec<String>>();
            let list = self.list.clone();
            let started = std::thread::Builder::new()
                .name("thudo-changes".into())
                .spawn(move || {
                    for changed in receiver {
                        deliver(&list, &changed);
                    }
                });
            match started {
                Ok(_) => *queue = Some(sender),
                // No thread to be had: tell them here rather than not at all.
                Err(_) => return deliver(&self.list, changed),
            }
        }
        if let Some(sender) = queue.as_ref() {
            let _ = sender.send(changed.to_vec());
        }
    }
}

fn deliver(list: &ObserverList, changed: &[String]) {
    // A copy, so an observer may add or remove observers.
    let observers: Vec<ChangeObserver> = lock(list).1.iter().map(|(_, o)| o.clone()).collect();
    for observer in observers {
        observer(changed);
    }
}
