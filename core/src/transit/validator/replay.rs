//! Replay memory: the QRs (card, timestamp, counter) used within the acceptance window, so the
//! same QR is never accepted twice. Bounded by the window and by a capacity.

use std::collections::{HashSet, VecDeque};

/// The QRs accepted (or refused as a passback) within the horizon, oldest first: forgotten once
/// older than the horizon, or oldest first beyond the capacity.
pub(super) struct ReplayCache {
    pub(super) seen: HashSet<(u64, u32, u32)>,
    pub(super) order: VecDeque<(u64, (u64, u32, u32))>,
    pub(super) capacity: usize,
}

impl ReplayCache {
    pub(super) fn contains(&self, key: &(u64, u32, u32)) -> bool {
        self.seen.contains(key)
    }

    pub(super) fn insert(&mut self, at: u64, key: (u64, u32, u32), horizon: u64) {
        while let Some((t, k)) = self.order.front() {
            if *t + horizon < at || self.order.len() >= self.capacity {
                self.seen.remove(k);
                self.order.pop_front();
            } else {
                break;
            }
        }
        if self.seen.insert(key) {
            self.order.push_back((at, key));
        }
    }
}
