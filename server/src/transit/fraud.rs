//! Fraud's vocabulary and the operator's policy: the kinds of record a tap or journey may show,
//! what follows each (a warning, a penalty fare, a denial) and what the rider reads. The rules
//! that find fraud are in `rules.rs`; the store records and acts on it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A kind of fraud record for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FraudKind {
    /// A validator accepted a tap with no scan.
    AcceptedWithoutEvidence,
    /// A validator accepted a scan that does not verify.
    ForgedEvidence,
    /// One QR accepted by two validators.
    SuspectedRelay,
    /// One journey let out at two exit gates.
    RepeatedExit,
    /// One card let in while it was inside already, or at two gates of one station at once.
    DoubleEntry,
    /// One card on two vehicles at once (two buses within [`MIN_TRAVEL_SECS`](super::rules::MIN_TRAVEL_SECS)).
    ImpossibleTravel,
    /// A dependant's ticket held on a guardian's phone, ridden with no tap of the holder's own
    /// ticket on the same validator within [`TRAVEL_TOGETHER_SECS`](thudo_core::transit::TRAVEL_TOGETHER_SECS) (the operator did not
    /// record that the dependant travels alone).
    DependantAlone,
    /// A QR made for a time out of step with the same phone's other QRs (more than
    /// [`QR_ORDER_SLACK_SECS`](super::store::QR_ORDER_SLACK_SECS) against its counter): the
    /// phone's clock set forward to make a QR for later, a screenshot for someone else.
    QrMadeAhead,
}

impl FraudKind {
    /// As stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            FraudKind::AcceptedWithoutEvidence => "accepted_without_evidence",
            FraudKind::ForgedEvidence => "forged_evidence",
            FraudKind::SuspectedRelay => "suspected_relay",
            FraudKind::RepeatedExit => "repeated_exit",
            FraudKind::DoubleEntry => "double_entry",
            FraudKind::ImpossibleTravel => "impossible_travel",
            FraudKind::DependantAlone => "dependant_alone",
            FraudKind::QrMadeAhead => "qr_made_ahead",
        }
    }

    /// From the stored text.
    pub fn parse(text: &str) -> Option<FraudKind> {
        [
            FraudKind::AcceptedWithoutEvidence,
            FraudKind::ForgedEvidence,
            FraudKind::SuspectedRelay,
            FraudKind::RepeatedExit,
            FraudKind::DoubleEntry,
            FraudKind::ImpossibleTravel,
            FraudKind::DependantAlone,
            FraudKind::QrMadeAhead,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// What follows a fraud record: the operator's policy, per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FraudAction {
    /// Kept for the operator to look at; nothing reaches the rider.
    Record,
    /// The rider's phone is told (a notice with the card, the finding and its time).
    Warn,
    /// A penalty fare is charged to the card (counted with its fares) and the rider told.
    Fare {
        /// The penalty, VND.
        vnd: u64,
    },
    /// The card is denied (on the next deny list) and the rider told.
    Deny,
}

impl FraudAction {
    /// As stored with the record.
    pub fn as_str(self) -> &'static str {
        match self {
            FraudAction::Record => "record",
            FraudAction::Warn => "warn",
            FraudAction::Fare { .. } => "fare",
            FraudAction::Deny => "deny",
        }
    }
}

/// The operator's policy: what follows each kind of fraud record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FraudPolicy(pub HashMap<FraudKind, FraudAction>);

impl Default for FraudPolicy {
    /// A validator's fault (no evidence, a forgery, a relay) is the operator's to look at; a
    /// rider's (let in twice, out twice, a ticket shared, a dependant alone, a QR made ahead)
    /// is warned. No fare
    /// or denial until the operator sets one.
    fn default() -> Self {
        FraudPolicy(HashMap::from([
            (FraudKind::RepeatedExit, FraudAction::Warn),
            (FraudKind::DoubleEntry, FraudAction::Warn),
            (FraudKind::ImpossibleTravel, FraudAction::Warn),
            (FraudKind::DependantAlone, FraudAction::Warn),
            (FraudKind::QrMadeAhead, FraudAction::Warn),
        ]))
    }
}

impl FraudPolicy {
    /// What follows a record of `kind` about a card (a record naming no card is recorded).
    pub fn action(&self, kind: FraudKind, card: Option<u64>) -> FraudAction {
        match card {
            None => FraudAction::Record,
            Some(_) => self.0.get(&kind).copied().unwrap_or(FraudAction::Record),
        }
    }
}

/// What the rider reads about a finding: Vietnamese, then English.
pub fn notice_text(kind: FraudKind, action: FraudAction) -> (String, String) {
    let (vi, en) = match kind {
        FraudKind::DoubleEntry => (
            "Thẻ được quẹt vào ga hai lần mà không có lượt ra",
            "The card entered twice without an exit",
        ),
        FraudKind::RepeatedExit => (
            "Một lượt vào nhưng thẻ được quẹt ra nhiều lần",
            "One entry, but the card left more than once",
        ),
        FraudKind::ImpossibleTravel => (
            "Thẻ được dùng trên hai xe cùng lúc",
            "The card was used on two vehicles at once",
        ),
        FraudKind::DependantAlone => (
            "Vé của người phụ thuộc được dùng mà không có người giám hộ",
            "A dependant's ticket was used without its holder",
        ),
        FraudKind::QrMadeAhead => (
            "Mã QR được tạo trước cho một thời điểm khác",
            "A QR was made ahead of time for later use",
        ),
        _ => ("Lượt đi cần được kiểm tra", "A ride needs checking"),
    };
    match action {
        FraudAction::Fare { vnd } => (
            format!("{vi}: phạt {vnd} đồng"),
            format!("{en}: a penalty of {vnd} VND"),
        ),
        FraudAction::Deny => (
            format!("{vi}: thẻ đã bị khóa"),
            format!("{en}: the card is blocked"),
        ),
        _ => (vi.to_owned(), en.to_owned()),
    }
}
