//! Transit tickets for Kotlin and Swift: the phone that shows the QR, the validator on the bus,
//! and the issuer (for backends and tests).

use thudo_core::transit as core;
use thudo_core::transit::metro::GateDirection;
use thudo_core::transit::presentation::{self, Signal as VerdictSignal};
use thudo_core::transit::{issuer, phone, validator};
use thudo_core::transit::{Category as PassengerCategory, Product as TransitProduct};
use validator::Reason as VerdictReason;

use crate::signed;

mod history;
mod issuing;
mod showing;
mod validating;

pub use history::*;
pub use issuing::*;
pub use showing::*;
pub use validating::*;

/// Errors of transit calls.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum TransitError {
    /// A request or argument was rejected.
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What was wrong.
        reason: String,
    },
    /// No credential is installed on this phone.
    #[error("no credential installed")]
    NoCredential,
    /// The transit signer's key the held credentials bind is gone (a reset keystore, a restored backup):
    /// these cards' credentials can no longer be shown, and nothing was replaced. Call
    /// `discardLostTransitCredentials(vault, signer)`, open the phone again, and order the
    /// passes again for the new key; the backend does not move a pass to a new key, so a paid
    /// pass lost this way is refunded by the operator.
    #[error("device key lost; credentials of cards {cards:?} can no longer be shown")]
    SignerKeyLost {
        /// The cards whose credentials bind the lost key.
        cards: Vec<i64>,
    },
    /// The credential expired; go online to refresh it.
    #[error("credential expired at {not_after}")]
    CredentialExpired {
        /// When (unix seconds).
        not_after: i64,
    },
    /// The credential is malformed or for another device.
    #[error("invalid credential: {reason}")]
    InvalidCredential {
        /// What was wrong.
        reason: String,
    },
    /// A deny list or key was refused.
    #[error("invalid signed data: {reason}")]
    InvalidSignedData {
        /// What was wrong.
        reason: String,
    },
    /// The host signer failed.
    #[error("signer failed: {reason}")]
    Signer {
        /// What it reported.
        reason: String,
    },
    /// The vault under the call failed (closed, locked, its key lost, its disk): the same
    /// faults in every domain's error.
    #[error("{fault}")]
    Vault {
        /// What failed.
        fault: crate::VaultFault,
    },
    /// A bug in the library.
    #[error("internal error: {reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
}

impl From<core::TransitError> for TransitError {
    fn from(err: core::TransitError) -> Self {
        use core::TransitError as E;
        match err {
            E::InvalidRequest { reason } => TransitError::InvalidRequest { reason },
            E::NoCredential => TransitError::NoCredential,
            E::KeyLost { cards } => TransitError::SignerKeyLost {
                cards: cards.into_iter().map(crate::card_id_to_host).collect(),
            },
            E::CredentialExpired { not_after } => TransitError::CredentialExpired {
                not_after: not_after.into(),
            },
            E::InvalidCredential { reason } => TransitError::InvalidCredential { reason },
            E::InvalidSignedData { reason } => TransitError::InvalidSignedData { reason },
            E::Signer { reason } => TransitError::Signer { reason },
            E::Vault(e) => e.into(),
        }
    }
}

/// What a credential lets its holder ride (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum TransitProduct {
    /// Monthly pass, one route.
    MonthlySingleRoute,
    /// Monthly pass, all routes.
    MonthlyAllRoutes,
    /// Pay as you go.
    PayAsYouGo,
    /// Free travel.
    FreePass,
    /// Unlimited rides on one local day: on the line it names, or everywhere when it names
    /// none.
    DayPass,
    /// Unlimited rides on the metro line it names for seven local days.
    WeekPass,
}

/// Who rides (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum PassengerCategory {
    /// Standard fare.
    Standard,
    /// Students, industrial-zone workers.
    Priority,
    /// Group purchase (30+).
    Group,
    /// Aged 60 and over.
    Elderly,
    /// Under 6.
    Child,
    /// People with disabilities.
    Disability,
    /// People with merit to the revolution.
    Merit,
    /// Poor households.
    PoorHousehold,
}

/// Why a QR was accepted or rejected (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum VerdictReason {
    /// Valid.
    Ok,
    /// Not a transit QR or malformed.
    BadFormat,
    /// Issuer key not trusted.
    UnknownIssuer,
    /// Issuer key outside its window.
    IssuerKeyExpired,
    /// Issuer signature invalid.
    BadIssuerSignature,
    /// Device signature invalid.
    BadDeviceSignature,
    /// Card or device revoked.
    Revoked,
    /// Credential past not-after.
    CredentialExpired,
    /// Pass not started.
    NotYetValid,
    /// Pass ended.
    PassExpired,
    /// QR too old.
    Expired,
    /// QR from the future beyond tolerance.
    ClockSkew,
    /// Single-route pass on another route.
    WrongRoute,
    /// QR already used.
    Replayed,
    /// Same card accepted moments ago.
    Passback,
    /// Deny list too old and the validator fails closed: fetch the feed.
    DenyListStale,
    /// A metro exit gate knows no entry for this card and its entry feed is current: the rider
    /// goes to the staff gate.
    NoEntry,
    /// A dependant's ticket that rides with its holder, with no ticket of the same phone
    /// accepted here moments before: the holder taps their own first, then shows it again.
    HolderNotTapped,
    /// A metro entry gate's current feed has this card inside already (an entry and no exit):
    /// the rider goes to the staff gate.
    AlreadyInside,
}

/// Which way a metro gate lets riders through (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum GateDirection {
    /// Into the paid area: the journey starts.
    Entry,
    /// Out of the paid area: the journey ends and is priced.
    Exit,
}

/// Where a metro gate validator stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct MetroGate {
    /// The station's code in the operator's fare table (201 Cát Linh … 212 Yên Nghĩa on line
    /// 2A; 301 Nhổn … 308 Cầu Giấy on line 3).
    pub station: i32,
    /// Entry or exit.
    pub direction: GateDirection,
}

impl MetroGate {
    fn to_core(self) -> Result<core::metro::Gate, TransitError> {
        Ok(core::metro::Gate {
            station: arg("station", self.station.into())?,
            direction: self.direction,
        })
    }
}

/// How current a gate's feed is: an exit gate's knowledge of entries, an entry gate's of the
/// cards inside.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct EntryFeedStatus {
    /// Where an exit gate's next `refreshEntries` reads from.
    pub cursor: i64,
    /// Exit gate: every entry up to this time is known. Entry gate: every exit is. Unix
    /// seconds; 0: never refreshed.
    pub complete_until: i64,
    /// Exit gate: open entries held. Entry gate: cards inside.
    pub open_entries: i64,
    /// Whether a card with no known entry is refused now (`NO_ENTRY`); when false (the feed is
    /// old) such riders are let out and the backend prices their journey from the taps.
    pub refusing_unknown_exits: bool,
    /// Whether a card already inside is refused now at this entry gate (`ALREADY_INSIDE`);
    /// when false (the feed is old or missing) nobody is refused as inside, and the backend
    /// records a second entry as `double_entry`.
    pub refusing_cards_inside: bool,
}

// The transit types below keep their exact wire widths in core (the QR and credential formats
// are bytes on the road); the host sees them as signed numbers.

/// A validator's decision and the driver's screen line.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Verdict {
    /// Let the passenger in?
    pub accepted: bool,
    /// Why.
    pub reason: VerdictReason,
    /// The card, when the QR was well formed.
    pub card_id: Option<i64>,
    /// The product, when known.
    pub product: Option<TransitProduct>,
    /// The category, when known.
    pub category: Option<PassengerCategory>,
    /// One line for the driver (Vietnamese).
    pub display: String,
    /// Validator time of the decision (unix seconds).
    pub at: i64,
    /// The colour, beeps and lines every validator app shows and plays for it.
    pub presentation: VerdictPresentation,
}

impl From<validator::Verdict> for Verdict {
    fn from(v: validator::Verdict) -> Self {
        Verdict {
            accepted: v.accepted,
            reason: v.reason,
            card_id: v.card_id.map(crate::card_id_to_host),
            product: v.product,
            category: v.category,
            display: v.display,
            at: signed(v.at),
            presentation: v.presentation.into(),
        }
    }
}

/// Go, warn or stop (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum VerdictSignal {
    /// Let in: green, one short high beep.
    Go,
    /// Let in, with something to tell the rider (a pass ending soon): amber, two short beeps.
    Warn,
    /// Not let in: red, one long low tone.
    Stop,
}

/// One tone of a verdict's beep pattern.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VerdictBeep {
    /// Pitch, Hz.
    pub frequency_hz: i32,
    /// Length of the tone, ms.
    pub duration_ms: i32,
    /// Silence after it, ms.
    pub pause_ms: i32,
}

/// How a verdict is shown and heard, the same on every validator app (docs/protocol/transit-qr.md).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VerdictPresentation {
    /// Go, warn or stop.
    pub signal: VerdictSignal,
    /// Screen colour, `#RRGGBB`.
    pub colour: String,
    /// The beep pattern, in order.
    pub beeps: Vec<VerdictBeep>,
    /// What the line says as a stable key (`transit.welcome.pass_days_left`), to translate or
    /// voice in the app's language; every key and its arguments: docs/protocol/transit-qr.md.
    pub message_key: String,
    /// The key's arguments by name (`days` -> `2`).
    pub message_args: std::collections::HashMap<String, String>,
    /// One short line in Vietnamese.
    pub line_vi: String,
    /// The same in English.
    pub line_en: String,
}

impl From<presentation::Presentation> for VerdictPresentation {
    fn from(p: presentation::Presentation) -> Self {
        VerdictPresentation {
            signal: p.signal,
            colour: p.colour,
            beeps: p
                .beeps
                .into_iter()
                .map(|b| VerdictBeep {
                    frequency_hz: crate::small(b.frequency_hz),
                    duration_ms: crate::small(b.duration_ms),
                    pause_ms: crate::small(b.pause_ms),
                })
                .collect(),
            message_key: p.message_key,
            message_args: p.message_args.into_iter().collect(),
            line_vi: p.line_vi,
            line_en: p.line_en,
        }
    }
}

/// An issuer public key a validator trusts.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TrustedIssuerKey {
    /// Key id carried in credentials (0-65,535).
    pub key_id: i32,
    /// Uncompressed SEC1 P-256 key (65 bytes).
    pub public_key: crate::Bytes,
    /// Window start (unix seconds).
    pub valid_from: i64,
    /// Window end (unix seconds).
    pub valid_until: i64,
}

impl From<issuer::TrustedIssuerKey> for TrustedIssuerKey {
    fn from(k: issuer::TrustedIssuerKey) -> Self {
        TrustedIssuerKey {
            key_id: k.key_id.into(),
            public_key: crate::Bytes(k.public_key),
            valid_from: k.valid_from.into(),
            valid_until: k.valid_until.into(),
        }
    }
}

impl TryFrom<TrustedIssuerKey> for issuer::TrustedIssuerKey {
    type Error = TransitError;
    fn try_from(k: TrustedIssuerKey) -> Result<Self, TransitError> {
        Ok(issuer::TrustedIssuerKey {
            key_id: arg("key_id", k.key_id.into())?,
            public_key: k.public_key.0,
            valid_from: arg("valid_from", k.valid_from)?,
            valid_until: arg("valid_until", k.valid_until)?,
        })
    }
}

/// The keys a host gave, as core holds them.
pub(crate) fn trusted_keys(
    keys: Vec<TrustedIssuerKey>,
) -> Result<Vec<issuer::TrustedIssuerKey>, TransitError> {
    keys.into_iter().map(TryInto::try_into).collect()
}

/// A host number as core's width, or `InvalidRequest`.
fn arg<T: TryFrom<i64>>(what: &str, value: i64) -> Result<T, TransitError> {
    crate::fit(what, value).map_err(|reason| TransitError::InvalidRequest { reason })
}

/// The fields of an installed credential.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CredentialInfo {
    /// Card or account number.
    pub card_id: i64,
    /// Product.
    pub product: TransitProduct,
    /// Category.
    pub category: PassengerCategory,
    /// Route of a single-route pass, else 0.
    pub route: i32,
    /// Pass validity start (unix seconds).
    pub pass_valid_from: i64,
    /// Pass validity end (unix seconds).
    pub pass_valid_until: i64,
    /// Show offline until (unix seconds).
    pub not_after: i64,
    /// A dependant's ticket that rides only with the holder's own, tapped just before it on
    /// the same validator (tell the rider so).
    pub with_holder: bool,
}

impl From<core::wire::CredentialFields> for CredentialInfo {
    fn from(f: core::wire::CredentialFields) -> Self {
        CredentialInfo {
            card_id: crate::card_id_to_host(f.card_id),
            product: f.product,
            category: f.category,
            route: f.route.into(),
            pass_valid_from: f.pass_valid_from.into(),
            pass_valid_until: f.pass_valid_until.into(),
            not_after: f.not_after.into(),
            with_holder: f.with_holder,
        }
    }
}

/// The QR to show now.
#[derive(Debug, Clone, uniffi::Record)]
pub struct TransitQr {
    /// The QR text.
    pub text: String,
    /// QR version (at most 10).
    pub version: i32,
    /// Modules per side.
    pub size: i32,
    /// Row-major modules, true = dark.
    pub modules: Vec<bool>,
    /// An SVG rendering with quiet zone.
    pub svg: String,
    /// When it was made (unix seconds, device clock, like `refreshAt`).
    pub generated_at: i64,
    /// When to ask for the next one (unix seconds, device clock).
    pub refresh_at: i64,
    /// Seconds until the credential expires.
    pub credential_expires_in: i64,
    /// True within the warning period before expiry: refresh the credential online.
    pub expiry_warning: bool,
}

impl From<phone::TransitQr> for TransitQr {
    fn from(q: phone::TransitQr) -> Self {
        TransitQr {
            svg: q.image.svg(320),
            text: q.text,
            version: q.image.version.into(),
            size: crate::small(q.image.size),
            modules: q.image.modules,
            generated_at: signed(q.generated_at),
            refresh_at: signed(q.refresh_at),
            credential_expires_in: q.credential_expires_in,
            expiry_warning: q.expiry_warning,
        }
    }
}

crate::error_api!(TransitError, vault: "transit", internal: Internal, {
        InvalidRequest => ("transit.invalid_request", false),
        NoCredential => ("transit.no_credential", false),
        SignerKeyLost => ("transit.signer_key_lost", false),
        CredentialExpired => ("transit.credential_expired", false),
        InvalidCredential => ("transit.invalid_credential", false),
        InvalidSignedData => ("transit.invalid_signed_data", false),
        Signer => ("transit.signer", true),
        Internal => ("transit.internal", false),
});
