//! What an exit gate keeps of the entries its backend reports: each card's newest entry (and
//! whether an exit used it), stored one record per card, and the feed's position and status.
//! Taking in a feed is in `entry_feed`.

use crate::transit::metro::GateEntry;
use crate::vault::WriteOp;

/// An exit gate's open entries, one record per card.
pub(super) const ENTRY_COLLECTION: &str = "transit.entry";

/// An entry as an exit gate keeps it. A used entry stays (marked) until its journey time ends,
/// so the same entry delivered again never lets a second rider out.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(super) struct HeldEntry {
    pub(super) entry: GateEntry,
    pub(super) used: bool,
}

pub(super) fn held_entry_op(held: HeldEntry) -> WriteOp {
    WriteOp::Put {
        collection: ENTRY_COLLECTION.into(),
        id: held.entry.card_id.to_string(),
        index: Vec::new(),
        // Three numbers and a flag: serialising cannot fail.
        body: serde_json::to_vec(&held).unwrap_or_default(),
    }
}

/// Where an exit gate's entry feed stands, stored with its entries.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct EntryFeedPosition {
    pub(super) cursor: u64,
    pub(super) complete_until: u64,
    /// How old the entries were complete at the last fetch, by the backend's clock.
    pub(super) lag_secs: u64,
    /// When that fetch was taken in, by this gate's clock.
    pub(super) fetched_at: u64,
}

/// How current a gate's feed is: an exit gate's knowledge of entries, or an entry gate's of the
/// cards inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFeedStatus {
    /// The cursor to fetch from (exit gates).
    pub cursor: u64,
    /// Exit gate: entries are known up to this time. Entry gate: exits are. Unix seconds; 0:
    /// never fetched.
    pub complete_until: u64,
    /// Exit gate: open entries held. Entry gate: cards inside.
    pub open_entries: usize,
    /// Whether exits with no known entry are refused now (an exit gate whose feed is recent
    /// enough).
    pub refusing_unknown_exits: bool,
    /// Whether cards already inside are refused now (an entry gate whose feed is recent
    /// enough).
    pub refusing_cards_inside: bool,
}
