//! Why a QR was accepted or rejected: the reason codes that verdicts, taps and inspections
//! carry, and their one-byte codes in the compact tap log.
//!
//! A leaf of the transit modules (it imports none of them): the presentation, the inspection
//! and the validator all name reasons without depending on one another.

/// Why a QR was accepted or rejected. The snake_case names are the JSON reason codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Valid: let the passenger in.
    Ok,
    /// Not a transit QR, bad base45, wrong length or version, unknown codes.
    BadFormat,
    /// The issuer key id is not trusted here.
    UnknownIssuer,
    /// The issuer key is trusted but outside its validity window.
    IssuerKeyExpired,
    /// The issuer's signature does not verify.
    BadIssuerSignature,
    /// The phone's signature does not verify (or its key is not a P-256 point).
    BadDeviceSignature,
    /// The card or device is on the deny list.
    Revoked,
    /// The credential is past its not-after time: the phone must refresh it online.
    CredentialExpired,
    /// The pass has not started yet.
    NotYetValid,
    /// The pass has ended.
    PassExpired,
    /// The QR is older than the acceptance window (a screenshot or a stale screen).
    Expired,
    /// The QR's time is ahead of the validator's by more than the tolerance.
    ClockSkew,
    /// A single-route pass shown on another route.
    WrongRoute,
    /// This exact QR was already used.
    Replayed,
    /// The same card was accepted moments ago (passing the phone back).
    Passback,
    /// The deny list is older than the configured age and the validator is set to fail
    /// closed: it refuses everyone until it gets a fresh list.
    DenyListStale,
    /// A metro exit gate knows of no entry for this card within the journey time, and its
    /// entry feed is current (the rider goes to the staff gate).
    NoEntry,
    /// A dependant's ticket that rides with its holder, shown with no ticket of the same phone
    /// accepted on this validator moments before: the holder taps their own first.
    HolderNotTapped,
    /// A metro entry gate's current inside feed has this card inside the network already (an
    /// entry and no exit): one ticket lets one person in (the rider goes to the staff gate).
    AlreadyInside,
}

/// Reasons as one byte in the compact tap log (the order of [`Reason`]'s variants; never
/// renumbered).
pub(crate) const REASON_CODES: [Reason; 19] = [
    Reason::Ok,
    Reason::BadFormat,
    Reason::UnknownIssuer,
    Reason::IssuerKeyExpired,
    Reason::BadIssuerSignature,
    Reason::BadDeviceSignature,
    Reason::Revoked,
    Reason::CredentialExpired,
    Reason::NotYetValid,
    Reason::PassExpired,
    Reason::Expired,
    Reason::ClockSkew,
    Reason::WrongRoute,
    Reason::Replayed,
    Reason::Passback,
    Reason::DenyListStale,
    Reason::NoEntry,
    Reason::HolderNotTapped,
    Reason::AlreadyInside,
];
