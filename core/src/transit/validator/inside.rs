//! An entry gate's view of the cards inside the network ([`InsideFeed`]): a card already
//! inside (an entry and no exit within the journey time) is refused at another entry while the
//! feed is current, so one ticket does not let a second person in behind the first.

use std::collections::HashSet;

use super::Validator;
use crate::transit::metro::{InsideFeed, InsideKey, INSIDE_TAG_LEN};
use crate::transit::{invalid, TransitError};

/// The last inside feed an entry gate took in. Kept in memory only: after a restart the gate
/// refuses nobody as inside until it has fetched one (riders are never stranded by it).
#[derive(Default)]
pub(super) struct Inside {
    key: Option<InsideKey>,
    cards: HashSet<[u8; INSIDE_TAG_LEN]>,
    /// How far the feed's exits lagged the backend's clock when it answered.
    lag_secs: u64,
    fetched_at: u64,
    exits_complete_until: u64,
}

impl Validator {
    /// An entry gate takes in the cards inside the network (`GET /v1/transit/inside`) at
    /// validator time `now`, in place of the ones it held; returns how many are inside. A feed
    /// whose key or tags are not what the protocol says is refused whole; a validator that is
    /// no entry gate refuses it.
    pub fn apply_inside_feed(
        &mut self,
        feed: &InsideFeed,
        now: u64,
    ) -> Result<usize, TransitError> {
        if !self.is_entry_gate() {
            return Err(invalid("only an entry gate keeps the cards inside"));
        }
        let salt: [u8; 32] = crate::hex::decode(&feed.salt)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| invalid("the inside feed's salt is not 32 bytes of hex"))?;
        let mut cards = HashSet::with_capacity(feed.cards.len());
        for card in &feed.cards {
            let tag: [u8; INSIDE_TAG_LEN] = crate::hex::decode(card)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| invalid("an inside feed's tag is not 8 bytes of hex"))?;
            cards.insert(tag);
        }
        // Its age is counted on the backend's clock (the gate's may be off): the exits' lag at
        // the answer, then this gate's elapsed time.
        let backend_now = if feed.now > 0 { feed.now } else { now };
        self.inside = Inside {
            key: Some(InsideKey::new(&salt)),
            cards,
            lag_secs: match feed.exits_complete_until {
                0 => u64::MAX,
                until => backend_now.saturating_sub(until),
            },
            fetched_at: now,
            exits_complete_until: feed.exits_complete_until,
        };
        Ok(self.inside.cards.len())
    }

    /// Cards inside, as the last feed said, and up to when exits were known then.
    pub(super) fn inside_counts(&self) -> (usize, u64) {
        (self.inside.cards.len(), self.inside.exits_complete_until)
    }

    /// Whether the inside feed is recent enough to refuse by: exits known up to at most
    /// `max_entry_feed_age_secs` ago. A rider who left after that and comes back at once is
    /// the only one it can wrongly refuse (the staff gate lets them in).
    pub(super) fn inside_feed_current(&self, now: u64) -> bool {
        // A clock that went back counts as the whole time since the fetch having passed.
        let elapsed = now.checked_sub(self.inside.fetched_at).unwrap_or(u64::MAX);
        self.inside.key.is_some()
            && self.inside.lag_secs.saturating_add(elapsed)
                <= u64::from(self.config.max_entry_feed_age_secs)
    }

    /// Whether `card_id` is inside the network by a current feed.
    pub(super) fn known_inside(&self, card_id: u64, now: u64) -> bool {
        self.inside_feed_current(now)
            && self
                .inside
                .key
                .as_ref()
                .is_some_and(|key| self.inside.cards.contains(&key.tag(card_id)))
    }
}
