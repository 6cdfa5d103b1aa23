//! An exit gate's entry feed: the entries its backend reports taken in (kept per card while
//! they can still end in an exit, stored with the feed's position), restored at start-up, and
//! how current they are (an exit with no known entry is refused only while the feed is recent).

use std::collections::HashMap;

use super::entries::{
    held_entry_op, EntryFeedPosition, EntryFeedStatus, HeldEntry, ENTRY_COLLECTION,
};
use super::{Validator, STATE_COLLECTION};
use crate::transit::metro::{EntryFeed, GateEntry};
use crate::transit::TransitError;
use crate::vault::WriteOp;

/// The exit gate's entry feed position, in the state collection.
const ENTRY_FEED_STATE: &str = "entry_feed";

impl Validator {
    pub(super) fn restore_entries(&mut self) -> Result<(), TransitError> {
        if let Some(record) = self.readable(STATE_COLLECTION, ENTRY_FEED_STATE)? {
            if let Ok(position) = serde_json::from_slice::<EntryFeedPosition>(&record.body) {
                self.entry_feed = position;
            }
        }
        // An entry damaged on disk is left out (its rider is let out by the staff), never the
        // gate kept shut.
        let mut position = 0;
        loop {
            let page = self
                .vault
                .list_page_lossy(ENTRY_COLLECTION, position, 1_000, false)?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            position = *last;
            for (_, record) in &page {
                if let Some(held) = record
                    .as_ref()
                    .and_then(|r| serde_json::from_slice::<HeldEntry>(&r.body).ok())
                {
                    self.entries.insert(held.entry.card_id, held);
                }
            }
        }
    }

    /// An exit gate takes in the entries its backend reports (`GET /v1/transit/entries` from
    /// [`EntryFeedStatus::cursor`]) at validator time `now`: the newest entry per card is kept
    /// while it can still end in an exit, older ones are dropped, and the feed's position is
    /// stored with them (one transaction). Returns how many entries are open. A feed that goes
    /// back in time changes nothing; a validator that is no exit gate refuses it.
    pub fn apply_entry_feed(&mut self, feed: &EntryFeed, now: u64) -> Result<usize, TransitError> {
        if !self.is_exit_gate() {
            return Err(crate::transit::invalid("only an exit gate keeps entries"));
        }
        self.flush()?;
        let honoured = u64::from(self.config.entry_honoured_secs);
        // Entries expire by the backend's clock when the feed gives it: a gate whose own clock
        // jumped ahead (a GPS or RTC fault) must not drop every rider inside for good.
        let clock = if feed.now > 0 { feed.now } else { now };
        let open = |e: &GateEntry| e.at.saturating_add(honoured) >= clock;
        let mut changed: HashMap<u64, GateEntry> = HashMap::new();
        for entry in feed.entries.iter().filter(|e| open(e)) {
            let newest = self
                .entries
                .get(&entry.card_id)
                .is_none_or(|held| held.entry.at < entry.at);
            if newest && changed.get(&entry.card_id).is_none_or(|c| c.at < entry.at) {
                changed.insert(entry.card_id, *entry);
            }
        }
        let expired: Vec<u64> = self
            .entries
            .values()
            .filter(|h| !open(&h.entry) && !changed.contains_key(&h.entry.card_id))
            .map(|h| h.entry.card_id)
            .collect();
        // Completeness moves forward only, and its age is counted on the backend's clock
        // (the gate's own may be off): the lag at the answer, then this gate's elapsed time.
        let position = if feed.complete_until > self.entry_feed.complete_until {
            let backend_now = if feed.now > 0 { feed.now } else { now };
            EntryFeedPosition {
                cursor: self.entry_feed.cursor.max(feed.cursor),
                complete_until: feed.complete_until,
                lag_secs: backend_now.saturating_sub(feed.complete_until),
                fetched_at: now,
            }
        } else {
            EntryFeedPosition {
                cursor: self.entry_feed.cursor.max(feed.cursor),
                ..self.entry_feed.clone()
            }
        };
        let mut ops: Vec<WriteOp> = Vec::with_capacity(changed.len() + expired.len() + 1);
        for entry in changed.values() {
            ops.push(held_entry_op(HeldEntry {
                entry: *entry,
                used: false,
            }));
        }
        for card in &expired {
            ops.push(WriteOp::Delete {
                collection: ENTRY_COLLECTION.into(),
                id: card.to_string(),
            });
        }
        ops.push(WriteOp::Put {
            collection: STATE_COLLECTION.into(),
            id: ENTRY_FEED_STATE.into(),
            index: Vec::new(),
            body: serde_json::to_vec(&position)
                .map_err(|e| crate::transit::invalid(e.to_string()))?,
        });
        self.vault.write_batch(&ops)?;
        for card in expired {
            self.entries.remove(&card);
        }
        self.entries.extend(
            changed
                .into_iter()
                .map(|(card, entry)| (card, HeldEntry { entry, used: false })),
        );
        self.entry_feed = position;
        Ok(self.open_entries())
    }

    /// How current the gate's feed is at `now`: an exit gate's entries, an entry gate's cards
    /// inside.
    pub fn entry_feed_status(&self, now: u64) -> EntryFeedStatus {
        if self.is_entry_gate() {
            let (inside, exits_until) = self.inside_counts();
            return EntryFeedStatus {
                cursor: 0,
                complete_until: exits_until,
                open_entries: inside,
                refusing_unknown_exits: false,
                refusing_cards_inside: self.inside_feed_current(now),
            };
        }
        EntryFeedStatus {
            cursor: self.entry_feed.cursor,
            complete_until: self.entry_feed.complete_until,
            open_entries: self.open_entries(),
            refusing_unknown_exits: self.entry_feed_current(now),
            refusing_cards_inside: false,
        }
    }

    fn open_entries(&self) -> usize {
        self.entries.values().filter(|h| !h.used).count()
    }

    pub(super) fn entry_feed_current(&self, now: u64) -> bool {
        // A clock that went back counts as the whole time since the fetch having passed.
        let elapsed = now
            .checked_sub(self.entry_feed.fetched_at)
            .unwrap_or(u64::MAX);
        self.entry_feed.complete_until > 0
            && self.entry_feed.lag_secs.saturating_add(elapsed)
                <= u64::from(self.config.max_entry_feed_age_secs)
    }
}
