//! Transit tickets for Kotlin and Swift: the phone that shows the QR, the validator on the bus,
//! and the issuer (for backends and tests).

use std::sync::{Arc, Mutex};

use thudo_core::transit as core;
use thudo_core::transit::inspection::InspectionOutcome;
use thudo_core::transit::metro::GateDirection;
use thudo_core::transit::presentation::{self, Signal as VerdictSignal};
use thudo_core::transit::{issuer, phone, validator};
use thudo_core::transit::{Category as PassengerCategory, Product as TransitProduct};
use validator::Reason as VerdictReason;

use crate::vault::Vault;
use crate::{blocking, signed, unix_now, Internal};

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
    /// `discardLostTransitCredentials(vault, signer)`, open the phone again, and order or
    /// restore the passes for the new key.
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

impl From<Internal> for TransitError {
    fn from(Internal(reason): Internal) -> Self {
        TransitError::Internal { reason }
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

/// Why a host signer failed.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum SignerError {
    /// The platform refused or failed.
    #[error("{reason}")]
    Failed {
        /// What it reported.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for SignerError {
    fn from(err: uniffi::UnexpectedUniFFICallbackError) -> Self {
        SignerError::Failed {
            reason: format!("signer threw: {}", err.reason),
        }
    }
}

/// A P-256 signer the host app provides (Secure Enclave, StrongBox), for the device key.
#[uniffi::export(with_foreign)]
pub trait TransitSigner: Send + Sync {
    /// The public key, SEC1 (compressed or uncompressed).
    fn public_key(&self) -> Result<Vec<u8>, SignerError>;
    /// ECDSA P-256 / SHA-256 signature of `message`, raw r||s or DER.
    fn sign(&self, message: Vec<u8>) -> Result<Vec<u8>, SignerError>;
}

struct ForeignSigner(Arc<dyn TransitSigner>);

impl phone::Signer for ForeignSigner {
    fn public_key(&self) -> Result<Vec<u8>, String> {
        self.0.public_key().map_err(|e| e.to_string())
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        self.0.sign(message.to_vec()).map_err(|e| e.to_string())
    }
}

/// After `TransitError.SignerKeyLost`: removes the credentials bound to the lost key from `vault`
/// (the ones `signer`, or without one the vault's own key, cannot show) and returns their
/// cards; then open the phone again. The passes stay with the backend.
#[uniffi::export(async_runtime = "tokio")]
pub async fn discard_lost_transit_credentials(
    vault: Arc<Vault>,
    signer: Option<Arc<dyn TransitSigner>>,
) -> Result<Vec<i64>, TransitError> {
    let core_vault = vault.core();
    blocking(move || {
        let signer = signer.map(ForeignSigner);
        phone::discard_lost_credentials(
            &core_vault,
            signer.as_ref().map(|s| s as &dyn phone::Signer),
        )
        .map(|cards| cards.into_iter().map(crate::card_id_to_host).collect())
        .map_err(TransitError::from)
    })
    .await
}

/// The citizen's phone: shows a fresh signed QR every refresh period, offline.
#[derive(uniffi::Object)]
pub struct TransitPhone {
    pub(crate) inner: Arc<phone::Phone>,
}

impl TransitPhone {
    /// Installs `credential` one way or the other (owner's or dependant's), off the caller's
    /// thread.
    async fn install(
        &self,
        credential: Vec<u8>,
        how: fn(&phone::Phone, &[u8]) -> Result<core::wire::CredentialFields, core::TransitError>,
    ) -> Result<CredentialInfo, TransitError> {
        let inner = self.inner.clone();
        blocking(move || {
            how(&inner, &credential)
                .map(Into::into)
                .map_err(TransitError::from)
        })
        .await
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl TransitPhone {
    /// Opens the phone's transit state in `vault`. Without `signer`, the device key is made once
    /// and kept in the vault.
    #[uniffi::constructor]
    pub async fn open(
        vault: Arc<Vault>,
        signer: Option<Arc<dyn TransitSigner>>,
        refresh_secs: i32,
    ) -> Result<Arc<Self>, TransitError> {
        let refresh_secs = arg("refresh_secs", refresh_secs.into())?;
        let core_vault = vault.core();
        let signer: Option<Arc<dyn phone::Signer>> =
            signer.map(|s| Arc::new(ForeignSigner(s)) as Arc<dyn phone::Signer>);
        let options = phone::PhoneOptions {
            refresh_secs,
            ..Default::default()
        };
        blocking(move || {
            phone::Phone::open(core_vault, signer, options).map_err(TransitError::from)
        })
        .await
        .map(|p| Arc::new(TransitPhone { inner: Arc::new(p) }))
    }

    /// The device public key (33 bytes) to send with a credential request.
    pub fn device_public_key(&self) -> Vec<u8> {
        self.inner.device_public_key().to_vec()
    }

    /// Installs a dependant's credential (a child's or an elderly parent's pass on their own
    /// card, bound to this phone's key) beside the owner's; shown with `currentQrFor`.
    pub async fn install_dependant_credential(
        &self,
        credential: Vec<u8>,
    ) -> Result<CredentialInfo, TransitError> {
        self.install(credential, phone::Phone::install_dependant_credential)
            .await
    }

    /// Installs the phone owner's credential from the backend, in place of the one held; it
    /// must bind this phone's key.
    pub async fn install_credential(
        &self,
        credential: Vec<u8>,
    ) -> Result<CredentialInfo, TransitError> {
        self.install(credential, phone::Phone::install_credential)
            .await
    }

    /// The installed credential, if any. Async: it waits for a QR being signed (a hardware
    /// signature can take a few hundred ms).
    pub async fn credential(&self) -> Result<Option<CredentialInfo>, TransitError> {
        let inner = self.inner.clone();
        blocking(move || Ok(inner.credential().map(Into::into))).await
    }

    /// Every credential the phone holds: the owner's first, then dependants'.
    pub async fn credentials(&self) -> Result<Vec<CredentialInfo>, TransitError> {
        let inner = self.inner.clone();
        blocking(move || Ok(inner.credentials().into_iter().map(Into::into).collect())).await
    }

    /// Removes a dependant's credential (the owner's is replaced, never removed); returns
    /// whether there was one.
    pub async fn remove_credential(&self, card_id: i64) -> Result<bool, TransitError> {
        let inner = self.inner.clone();
        let card = crate::card_id_from_host(card_id);
        blocking(move || inner.remove_credential(card).map_err(TransitError::from)).await
    }

    /// The QR of card `card_id` (the owner's or a dependant's) at device time `now_unix`.
    pub async fn current_qr_for_at(
        &self,
        card_id: i64,
        now_unix: i64,
    ) -> Result<TransitQr, TransitError> {
        let now_unix = arg("now_unix", now_unix)?;
        let card = crate::card_id_from_host(card_id);
        let inner = self.inner.clone();
        blocking(move || {
            inner
                .current_qr_for(card, now_unix)
                .map(Into::into)
                .map_err(TransitError::from)
        })
        .await
    }

    /// The QR of card `card_id` to show now (system clock): the app shows the one the rider
    /// chose (a parent shows their own, then their child's).
    pub async fn current_qr_for(&self, card_id: i64) -> Result<TransitQr, TransitError> {
        self.current_qr_for_at(card_id, crate::now()).await
    }

    /// Server time minus device time in ms, as the last sync reported it
    /// (`SyncReport.clockOffsetMs`, given as it is): the QR then carries the server's time.
    pub async fn set_clock_offset_ms(&self, offset_ms: i64) -> Result<(), TransitError> {
        let inner = self.inner.clone();
        // To the nearest second, the QR's resolution.
        let offset_secs = offset_ms.saturating_add(500).div_euclid(1000);
        blocking(move || {
            inner
                .set_clock_offset(offset_secs)
                .map_err(TransitError::from)
        })
        .await
    }

    /// The QR to show at device time `now_unix` (tests and apps with their own clock).
    pub async fn current_qr_at(&self, now_unix: i64) -> Result<TransitQr, TransitError> {
        let now_unix = arg("now_unix", now_unix)?;
        let inner = self.inner.clone();
        blocking(move || {
            inner
                .current_qr(now_unix)
                .map(Into::into)
                .map_err(TransitError::from)
        })
        .await
    }

    /// The QR to show now (system clock).
    pub async fn current_qr(&self) -> Result<TransitQr, TransitError> {
        self.current_qr_at(crate::now()).await
    }
}

/// Validator settings.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ValidatorConfig {
    /// The route this bus serves.
    pub route: i32,
    /// Oldest QR accepted (seconds before the validator's clock).
    #[uniffi(default = 45)]
    pub max_age_secs: i64,
    /// Newest QR accepted (seconds after the validator's clock).
    #[uniffi(default = 15)]
    pub max_future_secs: i64,
    /// Same card refused for this long after an accept.
    #[uniffi(default = 120)]
    pub passback_secs: i64,
    /// A deny list issued longer ago than this is stale (0: never).
    #[uniffi(default = 86400)]
    pub max_deny_list_age_secs: i64,
    /// With a stale or missing deny list, refuse every scan (fail closed) instead of deciding
    /// with the list held (fail open, the default).
    #[uniffi(default = false)]
    pub fail_closed_when_stale: bool,
    /// The metro gate this validator is (`route` is then its line's route code: 902 for line
    /// 2A, 903 for line 3); null for a bus.
    #[uniffi(default = None)]
    pub gate: Option<MetroGate>,
    /// An exit gate refuses a card with no known entry only while its entry feed is complete
    /// up to at most this long ago (keep it below the shortest ride between two stations).
    #[uniffi(default = 60)]
    pub max_entry_feed_age_secs: i64,
    /// How long an exit gate honours an entry (a day: past the fare table's journey time the
    /// backend charges the maximum fare, but a slow rider is never kept in).
    #[uniffi(default = 86400)]
    pub entry_honoured_secs: i64,
}

/// A validator's tap log: numbers are never reused; junk is counted, not logged.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TapLogStatus {
    /// The next tap's sequence number.
    pub next_seq: i64,
    /// Every tap up to this one is stored at the backend.
    pub acked_seq: i64,
    /// Scans that were no transit QR at all (counted only).
    pub unreadable_scans: i64,
    /// Rejected scans beyond the log's bound between uploads (counted only).
    pub rejected_not_logged: i64,
    /// Rejected scans logged since the last upload (bounded; beyond it they are counted only).
    pub logged_rejected: i64,
}

impl From<validator::TapLogStatus> for TapLogStatus {
    fn from(s: validator::TapLogStatus) -> Self {
        TapLogStatus {
            next_seq: signed(s.next_seq),
            acked_seq: signed(s.acked_seq),
            unreadable_scans: signed(s.unreadable_scans),
            rejected_not_logged: signed(s.rejected_not_logged),
            logged_rejected: signed(s.logged_rejected),
        }
    }
}

/// How current a validator's deny list is.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DenyListStatus {
    /// Version in force (0: none yet).
    pub version: i64,
    /// When the backend issued it (unix seconds).
    pub issued_at: i64,
    /// Seconds since then.
    pub age_secs: i64,
    /// Older than the configured age, or none installed: fetch the feed.
    pub stale: bool,
    /// Signed by a key no longer trusted (the issuer rotated keys): still enforced; fetch the
    /// feed.
    pub needs_refresh: bool,
}

impl From<validator::DenyListStatus> for DenyListStatus {
    fn from(s: validator::DenyListStatus) -> Self {
        DenyListStatus {
            version: s.version.into(),
            issued_at: s.issued_at.into(),
            age_secs: signed(s.age_secs),
            stale: s.stale,
            needs_refresh: s.needs_refresh,
        }
    }
}

/// One tap of the log, for upload.
#[derive(Debug, Clone, uniffi::Record)]
pub struct TapRecord {
    /// Sequence number on this validator.
    pub seq: i64,
    /// Validator time (unix seconds).
    pub at: i64,
    /// Route.
    pub route: i32,
    /// Accepted?
    pub accepted: bool,
    /// Why.
    pub reason: VerdictReason,
    /// Card, when known.
    pub card_id: Option<i64>,
    /// The metro gate that took it; null on a bus.
    #[uniffi(default = None)]
    pub gate: Option<MetroGate>,
}

/// What an inspection found (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum InspectionOutcome {
    /// A valid ticket; tapped on the vehicle, when the inspector is paired with it.
    Valid,
    /// A valid ticket that did not tap on the paired vehicle.
    NotTapped,
    /// The ticket itself is not valid (`reason` says why).
    Invalid,
}

/// One ticket inspection, as the inspector's screen shows it and as it is uploaded.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TicketInspection {
    /// Number on this device, from 1, never reused; 0 when not recorded (an unreadable scan,
    /// or the log full).
    pub seq: i64,
    /// When (unix seconds).
    pub at: i64,
    /// What it found.
    pub outcome: InspectionOutcome,
    /// The ticket rule's verdict (`OK` for a valid ticket).
    pub reason: VerdictReason,
    /// The card, when the QR was readable.
    pub card_id: Option<i64>,
    /// The product, when readable.
    pub product: Option<TransitProduct>,
    /// The rider category, when readable.
    pub category: Option<PassengerCategory>,
    /// Last second of the pass (unix), when readable.
    pub pass_valid_until: Option<i64>,
    /// Whether the inspector had the vehicle's taps.
    pub paired: bool,
    /// The card's last tap on the paired vehicle within 3 hours (unix seconds).
    pub tapped_at: Option<i64>,
    /// The route the ticket was checked for (the paired vehicle's, else the device's).
    pub route: Option<i32>,
    /// Colour, beeps and lines for the inspector's screen.
    pub presentation: VerdictPresentation,
}

impl TicketInspection {
    fn from_core(i: core::inspection::Inspection, now: u64) -> Self {
        TicketInspection {
            presentation: i.presentation(now).into(),
            seq: signed(i.seq),
            at: signed(i.at),
            outcome: i.outcome,
            reason: i.reason,
            card_id: i.card_id.map(crate::card_id_to_host),
            product: i.product,
            category: i.category,
            pass_valid_until: i.pass_valid_until.map(i64::from),
            paired: i.paired,
            tapped_at: i.tapped_at.map(signed),
            route: i.route.map(i32::from),
        }
    }
}

fn tap_record(t: validator::Tap) -> TapRecord {
    TapRecord {
        seq: signed(t.seq),
        at: signed(t.at),
        route: t.route.into(),
        accepted: t.accepted,
        reason: t.reason,
        card_id: t.card_id.map(crate::card_id_to_host),
        gate: t.gate.map(|g| MetroGate {
            station: g.station.into(),
            direction: g.direction,
        }),
    }
}

/// The validator on a bus: decides offline, logs every tap durably.
#[derive(uniffi::Object)]
pub struct TransitValidator {
    pub(crate) inner: Arc<Mutex<validator::Validator>>,
}

impl TransitValidator {
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut validator::Validator) -> Result<T, core::TransitError> + Send + 'static,
    ) -> Result<T, TransitError> {
        let inner = self.inner.clone();
        blocking(move || {
            let mut v = inner.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut v).map_err(TransitError::from)
        })
        .await
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl TransitValidator {
    /// Opens a validator over `vault` (restoring its deny list and replay memory).
    #[uniffi::constructor]
    pub async fn open(
        vault: Arc<Vault>,
        trusted_keys: Vec<TrustedIssuerKey>,
        config: ValidatorConfig,
    ) -> Result<Arc<Self>, TransitError> {
        let core_vault = vault.core();
        let trusted_keys = self::trusted_keys(trusted_keys)?;
        let config = validator::ValidatorConfig {
            route: arg("route", config.route.into())?,
            max_age_secs: arg("max_age_secs", config.max_age_secs)?,
            max_future_secs: arg("max_future_secs", config.max_future_secs)?,
            passback_secs: arg("passback_secs", config.passback_secs)?,
            max_deny_list_age_secs: arg("max_deny_list_age_secs", config.max_deny_list_age_secs)?,
            fail_closed_when_stale: config.fail_closed_when_stale,
            gate: config.gate.map(MetroGate::to_core).transpose()?,
            max_entry_feed_age_secs: arg(
                "max_entry_feed_age_secs",
                config.max_entry_feed_age_secs,
            )?,
            entry_honoured_secs: arg("entry_honoured_secs", config.entry_honoured_secs)?,
            ..Default::default()
        };
        blocking(move || {
            validator::Validator::open(core_vault, trusted_keys, config).map_err(TransitError::from)
        })
        .await
        .map(|v| {
            Arc::new(TransitValidator {
                inner: Arc::new(Mutex::new(v)),
            })
        })
    }

    /// Decides on one scanned text at validator time `now_unix`. Synchronous, for the scanner's
    /// thread (never the UI thread): it returns once the tap is durable in the log (one commit,
    /// a few ms with fsync), so a power cut never loses a shown verdict. Worst case: it also
    /// waits for another call on this validator to finish its vault step (an upload reads or
    /// acknowledges at most 5,000 taps at a time, tens of ms; the network is never waited on
    /// under the lock).
    pub fn validate_at(&self, text: String, now_unix: i64) -> Result<Verdict, TransitError> {
        let now_unix = arg("now_unix", now_unix)?;
        let mut v = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(v.validate(&text, now_unix)?.into())
    }

    /// Decides on one scanned text now (system clock).
    pub fn validate(&self, text: String) -> Result<Verdict, TransitError> {
        self.validate_at(text, crate::now())
    }

    /// Inspects a scanned text at `now_unix` without using the ticket (an inspector's check):
    /// every rule about the ticket, no replay or passback, no tap logged. With `vehicle_taps`
    /// (the vehicle's `recentTaps`) the route is the vehicle's and a valid ticket that did not
    /// tap there in the last 3 hours is `NOT_TAPPED`. A readable scan's inspection is recorded
    /// durably for `TransitClient.uploadInspections` before it returns.
    pub async fn inspect_at(
        &self,
        text: String,
        now_unix: i64,
        vehicle_taps: Option<Vec<TapRecord>>,
    ) -> Result<TicketInspection, TransitError> {
        let now: u64 = arg("now_unix", now_unix)?;
        let taps: Option<Vec<validator::Tap>> = match vehicle_taps {
            None => None,
            Some(taps) => Some(
                taps.into_iter()
                    .map(|t| {
                        Ok(validator::Tap {
                            seq: arg("seq", t.seq)?,
                            at: arg("at", t.at)?,
                            route: arg("route", i64::from(t.route))?,
                            accepted: t.accepted,
                            reason: t.reason,
                            card_id: t.card_id.map(crate::card_id_from_host),
                            product: None,
                            qr_timestamp: None,
                            qr_counter: None,
                            qr: None,
                            gate: t.gate.map(MetroGate::to_core).transpose()?,
                        })
                    })
                    .collect::<Result<_, TransitError>>()?,
            ),
        };
        self.run(move |v| {
            let i = v.inspect(&text, now, taps.as_deref())?;
            Ok(TicketInspection::from_core(i, now))
        })
        .await
    }

    /// Inspects a scanned text now (system clock); see `inspectAt`.
    pub async fn inspect(
        &self,
        text: String,
        vehicle_taps: Option<Vec<TapRecord>>,
    ) -> Result<TicketInspection, TransitError> {
        self.inspect_at(text, crate::now(), vehicle_taps).await
    }

    /// The taps logged at or after `since_unix`, acknowledged or not, newest first (at most
    /// 20,000): what this vehicle hands an inspector pairing with it. Taps stay 3 hours after
    /// their upload.
    pub async fn recent_taps(&self, since_unix: i64) -> Result<Vec<TapRecord>, TransitError> {
        let since: u64 = arg("since_unix", since_unix.max(0))?;
        self.run(move |v| Ok(v.recent_taps(since)?.into_iter().map(tap_record).collect()))
            .await
    }

    /// The inspections recorded and not yet uploaded, oldest first.
    pub async fn export_inspections(&self) -> Result<Vec<TicketInspection>, TransitError> {
        let now = crate::unix_now();
        self.run(move |v| {
            Ok(v.export_inspections()?
                .into_iter()
                .map(|i| TicketInspection::from_core(i, now))
                .collect())
        })
        .await
    }

    /// Commits anything pending (the log's counters).
    pub async fn flush(&self) -> Result<(), TransitError> {
        self.run(|v| v.flush()).await
    }

    /// Installs a newer signed deny list; returns its version.
    pub async fn update_deny_list(&self, signed_list: Vec<u8>) -> Result<i64, TransitError> {
        // Not `signed`: the C header generated for Swift would not compile.
        self.run(move |v| v.update_deny_list(&signed_list).map(i64::from))
            .await
    }

    /// Takes the feed's pay-as-you-go cards that reached today's cap (`ValidatorFeed.cappedCards`
    /// until `cappedUntil`): their rides are let through in amber, "Cap reached today: this
    /// ride is free". Informational; call it with every feed.
    pub async fn set_capped_cards(
        &self,
        cards: Vec<i64>,
        until_unix: i64,
    ) -> Result<(), TransitError> {
        let cards: Vec<u64> = cards.into_iter().map(crate::card_id_from_host).collect();
        let until = arg("until_unix", until_unix.max(0))?;
        self.run(move |v| {
            v.set_capped_cards(&cards, until);
            Ok(())
        })
        .await
    }

    /// The deny list version in force.
    pub async fn deny_list_version(&self) -> Result<i64, TransitError> {
        self.run(|v| Ok(v.deny_list_version().into())).await
    }

    /// Replaces the trusted issuer keys with the feed's (previous, current and next keys with
    /// their windows): call it with every feed, before `updateDenyList`.
    pub async fn set_trusted_keys(&self, keys: Vec<TrustedIssuerKey>) -> Result<(), TransitError> {
        let keys = trusted_keys(keys)?;
        self.run(move |v| v.set_trusted_keys(keys)).await
    }

    /// How current the deny list is now (system clock): show it to the operator, fetch the
    /// feed when `stale` or `needs_refresh`.
    pub async fn deny_list_status(&self) -> Result<DenyListStatus, TransitError> {
        self.run(|v| Ok(v.deny_list_status(unix_now()).into()))
            .await
    }

    /// How current this gate's feed is now (system clock): an exit gate's entries, an entry
    /// gate's cards inside; keep it current with `TransitClient.refreshEntries`.
    pub async fn entry_feed_status(&self) -> Result<EntryFeedStatus, TransitError> {
        self.run(|v| {
            let s = v.entry_feed_status(unix_now());
            Ok(EntryFeedStatus {
                cursor: signed(s.cursor),
                complete_until: signed(s.complete_until),
                open_entries: signed(s.open_entries as u64),
                refusing_unknown_exits: s.refusing_unknown_exits,
                refusing_cards_inside: s.refusing_cards_inside,
            })
        })
        .await
    }

    /// The tap log's numbers and counters.
    pub async fn tap_log_status(&self) -> Result<TapLogStatus, TransitError> {
        self.run(|v| Ok(v.tap_log_status().into())).await
    }

    /// Taps not yet acknowledged, oldest first, at most 5,000 (the log is read page by page).
    pub async fn export_taps(&self) -> Result<Vec<TapRecord>, TransitError> {
        self.run(|v| Ok(v.export_taps()?.into_iter().map(tap_record).collect()))
            .await
    }

    /// Acknowledges taps up to `seq` after the backend stored them (deleted once outside the
    /// replay and passback windows); returns how many were newly acknowledged.
    pub async fn acknowledge_taps(&self, up_to_seq: i64) -> Result<i64, TransitError> {
        let up_to_seq = arg("up_to_seq", up_to_seq)?;
        self.run(move |v| v.acknowledge_taps(up_to_seq).map(signed))
            .await
    }
}

/// What to put in a credential, issuer side.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CredentialRequest {
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
    /// The phone's public key.
    pub device_public_key: crate::Bytes,
    /// Offline lifetime in seconds, at most 72 h.
    pub lifetime_secs: i64,
    /// A dependant's credential that rides only with its holder's own ticket (tapped on the
    /// same validator within two minutes before it): set for a guardian's phone unless the
    /// operator recorded that the dependant travels alone.
    #[uniffi(default = false)]
    pub with_holder: bool,
}

/// An issuer key: signs credentials and deny lists. For backends and tests; phones never hold
/// one.
#[derive(uniffi::Object)]
pub struct TransitIssuer {
    inner: issuer::IssuerKey,
}

#[uniffi::export]
impl TransitIssuer {
    /// A new random issuer key.
    #[uniffi::constructor]
    pub fn generate(
        key_id: i32,
        valid_from: i64,
        valid_until: i64,
    ) -> Result<Arc<Self>, TransitError> {
        let (inner, _) = issuer::IssuerKey::generate(
            arg("key_id", key_id.into())?,
            arg("valid_from", valid_from)?,
            arg("valid_until", valid_until)?,
        )?;
        Ok(Arc::new(TransitIssuer { inner }))
    }

    /// The key validators must trust.
    pub fn trusted_key(&self) -> TrustedIssuerKey {
        self.inner.trusted().clone().into()
    }

    /// Signs a credential at issuer time `now_unix`.
    pub fn issue(
        &self,
        request: CredentialRequest,
        now_unix: i64,
    ) -> Result<Vec<u8>, TransitError> {
        let request = issuer::CredentialRequest {
            card_id: crate::card_id_from_host(request.card_id),
            product: request.product,
            category: request.category,
            route: arg("route", request.route.into())?,
            pass_valid_from: arg("pass_valid_from", request.pass_valid_from)?,
            pass_valid_until: arg("pass_valid_until", request.pass_valid_until)?,
            device_public_key: request.device_public_key.0,
            lifetime_secs: arg("lifetime_secs", request.lifetime_secs)?,
            with_holder: request.with_holder,
        };
        Ok(self
            .inner
            .issue(&request, arg("now_unix", now_unix)?)?
            .to_vec())
    }

    /// Signs a deny list.
    pub fn sign_deny_list(
        &self,
        version: i64,
        issued_at: i64,
        cards: Vec<i64>,
    ) -> Result<Vec<u8>, TransitError> {
        let list = validator::DenyList {
            version: arg("version", version)?,
            issued_at: arg("issued_at", issued_at)?,
            cards: cards.into_iter().map(crate::card_id_from_host).collect(),
            devices: Vec::new(),
        };
        Ok(self.inner.sign_deny_list(&list)?)
    }
}

impl From<thudo_core::vault::VaultError> for TransitError {
    fn from(e: thudo_core::vault::VaultError) -> Self {
        TransitError::Vault { fault: e.into() }
    }
}

crate::error_api!(TransitError, vault: "transit", {
        InvalidRequest => ("transit.invalid_request", false),
        NoCredential => ("transit.no_credential", false),
        SignerKeyLost => ("transit.signer_key_lost", false),
        CredentialExpired => ("transit.credential_expired", false),
        InvalidCredential => ("transit.invalid_credential", false),
        InvalidSignedData => ("transit.invalid_signed_data", false),
        Signer => ("transit.signer", true),
        Internal => ("transit.internal", false),
});

crate::error_api!(SignerError, {
        Failed => ("signer.failed", false),
});

/// How a trip was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum TripMode {
    /// A validator on a bus route.
    Bus,
    /// A metro journey between two gates.
    Metro,
    /// A mode this library version does not know (a newer backend's).
    Other,
}

impl TripMode {
    fn from_wire(mode: &str) -> TripMode {
        match mode {
            "bus" => TripMode::Bus,
            "metro" => TripMode::Metro,
            _ => TripMode::Other,
        }
    }
}

/// One ride as the backend charged it, kept on the phone.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TransitTrip {
    /// `validator-id:seq` for a bus ride, `journey:N` for a metro journey.
    pub id: String,
    /// The card that rode.
    pub card_id: i64,
    /// Bus or metro.
    pub mode: TripMode,
    /// The route: a bus's, or the metro line's route code.
    pub route: Option<i32>,
    /// When (unix seconds): boarding, or the entry gate (the exit gate when no entry was
    /// found).
    pub at: i64,
    /// The station entered, for a metro journey (null when no entry tap was found).
    pub from_station: Option<String>,
    /// The station left, for a metro journey (null when no exit tap was found).
    pub to_station: Option<String>,
    /// When the journey ended at the exit gate (unix seconds).
    pub exit_at: Option<i64>,
    /// A tap is missing, so the journey was charged the line's maximum fare (a late tap
    /// corrects it).
    pub incomplete: bool,
    /// The local day `YYYY-MM-DD` it counts toward.
    pub day: String,
    /// The product used.
    pub product: TransitProduct,
    /// Charged, VND (0 on a pass, or once a cap is reached).
    pub fare_vnd: i64,
    /// The fare before caps, VND (0 on a pass).
    pub full_fare_vnd: i64,
    /// Whether a cap made this ride cheaper or free.
    pub capped: bool,
}

/// Progress toward one cap.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TransitCap {
    /// The card (null in records from before dependants).
    pub card_id: Option<i64>,
    /// The day `YYYY-MM-DD` or the month `YYYY-MM`.
    pub period: String,
    /// Paid in it, VND.
    pub paid_vnd: i64,
    /// The cap, VND.
    pub cap_vnd: i64,
    /// Further rides in the period are free.
    pub reached: bool,
}

/// What the operator told the rider about a flagged ride (a shared ticket, a card let in
/// twice, a dependant's ticket ridden without its holder).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TransitNotice {
    /// The operator's record of it (`fraud:N`).
    pub id: String,
    /// The card it is about.
    pub card_id: i64,
    /// What was found: `double_entry`, `repeated_exit`, `impossible_travel`,
    /// `dependant_alone`, ...
    pub kind: String,
    /// When (unix seconds).
    pub at: i64,
    /// A penalty fare charged for it, VND (0 for a warning).
    pub penalty_vnd: i64,
    /// What the rider reads, in Vietnamese.
    pub message_vi: String,
    /// The same in English.
    pub message_en: String,
}

/// The rider's trips and cap progress, as sync brought them (available offline).
#[derive(uniffi::Object)]
pub struct RiderHistory {
    vault: Arc<thudo_core::vault::Vault>,
}

#[uniffi::export(async_runtime = "tokio")]
impl RiderHistory {
    /// The history stored in `vault`.
    #[uniffi::constructor]
    pub fn new(vault: Arc<Vault>) -> Arc<Self> {
        Arc::new(RiderHistory {
            vault: vault.core(),
        })
    }

    /// Trips from local day `from_day` (`YYYY-MM-DD`) on, newest first: of every card this
    /// phone sees (its own and its dependants'), or of `card_id` only.
    #[uniffi::method(default(card_id = None))]
    pub async fn trips_from(
        &self,
        from_day: String,
        card_id: Option<i64>,
    ) -> Result<Vec<TransitTrip>, TransitError> {
        let vault = self.vault.clone();
        let card = card_id.map(crate::card_id_from_host);
        blocking(move || {
            Ok(core::trips::RiderHistory::new(&vault)
                .trips_from(&from_day, card)?
                .into_iter()
                .map(|t| TransitTrip {
                    capped: t.capped(),
                    id: t.id,
                    card_id: crate::card_id_to_host(t.card_id),
                    mode: TripMode::from_wire(&t.mode),
                    route: t.route.map(i32::from),
                    at: signed(t.at),
                    from_station: t.from_station,
                    to_station: t.to_station,
                    exit_at: t.exit_at.map(signed),
                    incomplete: t.incomplete,
                    day: t.day,
                    product: t.product,
                    fare_vnd: signed(t.fare_vnd),
                    full_fare_vnd: signed(t.full_fare_vnd),
                })
                .collect())
        })
        .await
    }

    /// The operator's notices about the cards this phone holds (warnings, penalty fares),
    /// newest first.
    pub async fn notices(&self) -> Result<Vec<TransitNotice>, TransitError> {
        let vault = self.vault.clone();
        blocking(move || {
            Ok(core::trips::RiderHistory::new(&vault)
                .notices()?
                .into_iter()
                .map(|n| TransitNotice {
                    id: n.id,
                    card_id: crate::card_id_to_host(n.card_id),
                    kind: n.kind,
                    at: signed(n.at),
                    penalty_vnd: signed(n.penalty_vnd),
                    message_vi: n.message_vi,
                    message_en: n.message_en,
                })
                .collect())
        })
        .await
    }

    /// Forgets, on this phone only, the trips of days before `before_day` (`YYYY-MM-DD`) and
    /// the caps of periods that ended before it; returns how many records went. Keep what the
    /// app shows (say, 90 days); sync does not bring them back.
    pub async fn forget_before(&self, before_day: String) -> Result<i64, TransitError> {
        let vault = self.vault.clone();
        blocking(move || {
            Ok(core::trips::RiderHistory::new(&vault).forget_before(&before_day)? as i64)
        })
        .await
    }

    /// Progress toward the cap of a day (`YYYY-MM-DD`) or a month (`YYYY-MM`) of the phone
    /// owner's card, or of `card_id` (a dependant's); null before anything was paid in it.
    #[uniffi::method(default(card_id = None))]
    pub async fn cap(
        &self,
        period: String,
        card_id: Option<i64>,
    ) -> Result<Option<TransitCap>, TransitError> {
        let vault = self.vault.clone();
        let card = card_id.map(crate::card_id_from_host);
        blocking(move || {
            Ok(core::trips::RiderHistory::new(&vault)
                .cap(&period, card)?
                .map(|c| TransitCap {
                    card_id: c.card_id.map(crate::card_id_to_host),
                    reached: c.reached(),
                    period: c.period,
                    paid_vnd: signed(c.paid_vnd),
                    cap_vnd: signed(c.cap_vnd),
                }))
        })
        .await
    }
}
