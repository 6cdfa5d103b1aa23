//! Transit's rules as plain functions over typed facts: what a scan proves, what the backend
//! makes of a tap (its verdict and any fraud it shows), and how a metro journey is priced. The
//! stores look the facts up and record the outcome inside their transactions; nothing here
//! touches storage.

use std::collections::HashMap;
use thudo_core::sync::protocol::ServerErrorCode;

use serde::{Deserialize, Serialize};
use thudo_core::transit::issuer::TrustedIssuerKey;
use thudo_core::transit::tariff::{Mode, Tariff};
use thudo_core::transit::validator::{self, DenyList, Tap};
use thudo_core::transit::wire::Payload;
use thudo_core::transit::Product;

use super::fares::FarePolicy;
pub use super::fraud::{notice_text, FraudAction, FraudKind, FraudPolicy};
use crate::storage::code_of;

/// How far a validator's tap time may be from the phone's signed QR time before the backend
/// treats the scan as not fresh (a validator's default window is 45 s back, 15 s ahead; this
/// allows for a validator clock that drifted while offline).
pub const MAX_TAP_QR_SKEW_SECS: u64 = 600;
/// Longest scanned text the backend looks at (a transit QR is 299 characters).
const MAX_SCAN_LEN: usize = 1024;

/// What the backend established about one uploaded tap from its evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// No scanned text came with the tap.
    Missing,
    /// The scanned text is not a transit QR, or a signature does not verify: the reason.
    Forged(String),
    /// Both signatures verify; the credential was or was not valid at the QR's time.
    Verified(VerifiedScan),
}

/// The facts of a scan whose two signatures the backend verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedScan {
    /// The card, from the issuer-signed credential.
    pub card_id: u64,
    /// The product.
    pub product: thudo_core::transit::Product,
    /// The phone's signed QR time.
    pub qr_timestamp: u32,
    /// The phone's QR counter.
    pub qr_counter: u32,
    /// SHA-256 of the phone's compressed key (as the deny list names devices).
    pub device_key_hash: [u8; 32],
    /// Why the credential was not valid at the QR's time on this validator, if it was not.
    pub invalid: Option<String>,
    /// Whether the pass itself (its windows, its route) was valid at the QR's time: `invalid`
    /// says so too, except at an exit gate, which lets out on the phone's proof alone.
    pub pass_valid: bool,
    /// The pass the credential names, as the issuer signed it.
    pub pass: PassTerms,
}

/// The pass a credential names: what tells it from the card's other passes of its product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassTerms {
    /// The rider category's wire code.
    pub category: u8,
    /// The route or line it names (0: none).
    pub route: u16,
    /// First second of its window (unix).
    pub valid_from: i64,
    /// Last second of its window (unix).
    pub valid_until: i64,
}

/// The backend's verdict on one uploaded tap (stored with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TapVerdict {
    /// The validator refused it: nothing to charge.
    RefusedByValidator,
    /// Accepted with no scan to check.
    NoEvidence,
    /// The scan is not a transit QR or a signature does not verify.
    Forged,
    /// The credential was not valid at the QR's time here.
    Invalid,
    /// The card or the phone's key was denied at the QR's time.
    Revoked,
    /// The QR was used on another validator before.
    Relayed,
    /// The QR was used on this validator before.
    Replayed,
    /// A first, valid use: charged (pay-as-you-go) or ridden on a pass.
    Charged,
}

pub use thudo_core::transit::TRAVEL_TOGETHER_SECS;

/// The least time between two rides of one person on two vehicles: alighting and boarding
/// another takes longer than this.
pub const MIN_TRAVEL_SECS: u64 = 60;

impl TapVerdict {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TapVerdict::RefusedByValidator => "refused_by_validator",
            TapVerdict::NoEvidence => "no_evidence",
            TapVerdict::Forged => "forged",
            TapVerdict::Invalid => "invalid",
            TapVerdict::Revoked => "revoked",
            TapVerdict::Relayed => "relayed",
            TapVerdict::Replayed => "replayed",
            TapVerdict::Charged => "charged",
        }
    }
}

/// What a tap shows that the operator should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Its kind.
    pub kind: FraudKind,
    /// The card, when the evidence verified.
    pub card_id: Option<u64>,
    /// The validator that used the QR first, for a relay.
    pub first_validator_id: Option<String>,
    /// Details.
    pub detail: String,
}

/// Judges one uploaded tap. `revoked` and `first_use_by` (the validator that used this QR
/// before, if any) are looked up for a verified scan. Only a verified, valid, unrevoked first
/// use is [`TapVerdict::Charged`].
pub fn judge_tap(
    accepted: bool,
    evidence: &Evidence,
    revoked: bool,
    first_use_by: Option<&str>,
    validator_id: &str,
) -> (TapVerdict, Option<Finding>) {
    let finding = |kind, card_id, first: Option<&str>, detail: &str| {
        Some(Finding {
            kind,
            card_id,
            first_validator_id: first.map(str::to_owned),
            detail: detail.to_owned(),
        })
    };
    match (evidence, accepted) {
        (_, false) => (TapVerdict::RefusedByValidator, None),
        (Evidence::Missing, true) => (
            TapVerdict::NoEvidence,
            finding(
                FraudKind::AcceptedWithoutEvidence,
                None,
                None,
                "accepted with no scan",
            ),
        ),
        (Evidence::Forged(why), true) => (
            TapVerdict::Forged,
            finding(FraudKind::ForgedEvidence, None, None, why),
        ),
        (Evidence::Verified(s), true) => match (&s.invalid, revoked, first_use_by) {
            (Some(_), _, _) => (TapVerdict::Invalid, None),
            (None, true, _) => (TapVerdict::Revoked, None),
            (None, false, Some(first)) if first != validator_id => (
                TapVerdict::Relayed,
                finding(
                    FraudKind::SuspectedRelay,
                    Some(s.card_id),
                    Some(first),
                    "one QR accepted by two validators",
                ),
            ),
            (None, false, Some(_)) => (TapVerdict::Replayed, None),
            (None, false, None) => (TapVerdict::Charged, None),
        },
    }
}

/// Why a pass's credential is not renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalRefusal {
    /// The pass's window has ended.
    Ended,
    /// The pass was cancelled (refunded).
    Cancelled,
}

impl RenewalRefusal {
    /// The error code the phone gets.
    pub fn code(self) -> ServerErrorCode {
        match self {
            RenewalRefusal::Ended => ServerErrorCode::PassEnded,
            RenewalRefusal::Cancelled => ServerErrorCode::PassCancelled,
        }
    }

    /// The message.
    pub fn message(self) -> &'static str {
        match self {
            RenewalRefusal::Ended => "the pass has ended: buy a new one",
            RenewalRefusal::Cancelled => "the pass was cancelled",
        }
    }
}

/// Whether a pass valid until `valid_until` (and cancelled at `cancelled_at`, if it was) may
/// have its credential renewed at `now`.
pub fn renewal_refusal(
    valid_until: i64,
    cancelled_at: Option<i64>,
    now: i64,
) -> Option<RenewalRefusal> {
    if cancelled_at.is_some_and(|at| at <= now) {
        Some(RenewalRefusal::Cancelled)
    } else if now > valid_until {
        Some(RenewalRefusal::Ended)
    } else {
        None
    }
}

/// One pass of a card as sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoldPass {
    /// What a credential names of it.
    pub terms: PassTerms,
    /// When it was paid for and opened (unix).
    pub created_at: i64,
    /// When it was cancelled (refunded), if it was.
    pub cancelled_at: Option<i64>,
}

/// Whether a ride at `qr_ts` on a credential naming `terms` came after its pass was refunded:
/// a pass of the card and product with those very terms was cancelled by then, and none with
/// them was held at that time (bought before it and not cancelled by it; a pass bought again
/// after a refund has the same terms, and covers only from its purchase). The refund returned
/// the price while the credential rides on until it ends (at most 72 h, the validators
/// offline), so such a ride is charged as pay-as-you-go. A ride under terms the backend sold
/// no pass for is not.
pub fn rides_refunded_pass(passes: &[SoldPass], terms: &PassTerms, qr_ts: i64) -> bool {
    let mut refunded = false;
    for pass in passes.iter().filter(|p| p.terms == *terms) {
        match pass.cancelled_at {
            Some(at) if at <= qr_ts => refunded = true,
            _ if pass.created_at <= qr_ts => return false,
            _ => {}
        }
    }
    refunded
}

/// What became of a metro journey (stored with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JourneyStatus {
    /// Entered; no exit yet.
    Open,
    /// Entry and exit: priced by the two stations.
    Closed,
    /// Its time ran out with no exit: the line's maximum.
    NoExit,
    /// An exit with no entry yet.
    NoEntry,
    /// An exit whose entry never came: the line's maximum.
    NoEntryCharged,
}

impl JourneyStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            JourneyStatus::Open => "open",
            JourneyStatus::Closed => "closed",
            JourneyStatus::NoExit => "no_exit",
            JourneyStatus::NoEntry => "no_entry",
            JourneyStatus::NoEntryCharged => "no_entry_charged",
        }
    }

    /// From the stored text.
    pub fn parse(text: &str) -> Option<JourneyStatus> {
        [
            JourneyStatus::Open,
            JourneyStatus::Closed,
            JourneyStatus::NoExit,
            JourneyStatus::NoEntry,
            JourneyStatus::NoEntryCharged,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// What a journey becomes when its time runs out, if anything.
    pub fn when_time_runs_out(self) -> Option<JourneyStatus> {
        match self {
            JourneyStatus::Open => Some(JourneyStatus::NoExit),
            JourneyStatus::NoEntry => Some(JourneyStatus::NoEntryCharged),
            _ => None,
        }
    }
}

/// A journey's two ends as stored: stations and the phone's signed times.
#[derive(Debug, Clone, Copy)]
pub struct JourneyEnds {
    /// Entry station.
    pub entry: Option<u16>,
    /// Exit station.
    pub exit: Option<u16>,
    /// Entry time.
    pub entry_at: Option<i64>,
    /// Exit time.
    pub exit_at: Option<i64>,
}

/// A journey's full fare before caps as `status`, on local day `day`, and whether it was
/// priced from two stations. A journey longer than the fare table allows is charged the
/// maximum, like one without an exit; passes ride free.
pub fn journey_fare(
    fares: &FarePolicy,
    day: &str,
    status: JourneyStatus,
    ends: JourneyEnds,
    product: Product,
) -> (u64, bool) {
    let overtime = matches!((ends.entry_at, ends.exit_at), (Some(a), Some(b))
        if b.saturating_sub(a) > fares.max_journey_secs(day) as i64);
    let (full, priced) = match (status, ends.entry, ends.exit) {
        (JourneyStatus::Closed, Some(a), Some(b)) if !overtime => fares.metro_fare(day, a, b),
        (JourneyStatus::Closed, Some(a), Some(b)) => (
            fares
                .metro_max_fare(day, a)
                .max(fares.metro_max_fare(day, b)),
            false,
        ),
        (_, Some(s), None) | (_, None, Some(s)) => (fares.metro_max_fare(day, s), false),
        _ => (0, false),
    };
    if product == Product::PayAsYouGo {
        (full, priced)
    } else {
        (0, priced)
    }
}

/// What a tap's scan proves, checked against the issuer keys the backend trusts. The card,
/// product and times come from the signed scan; of the validator's own fields only its time
/// is used, and only to keep a ride its clock accepted (a credential in force at the tap's time
/// but not at the QR's, within the skew allowed).
/// `mode` is the validator's as the operator bound it (a gate: the metro), never its claim.
/// At an exit gate the pass's windows and route are not checked: they were at the entry, and a
/// pass that ends during a ride still gets its rider out.
pub fn check_evidence(
    tap: &Tap,
    trusted: &HashMap<u16, TrustedIssuerKey>,
    bound_route: Option<u16>,
    exit: bool,
    tariff: &Tariff,
    mode: Mode,
) -> Evidence {
    let Some(text) = tap.qr.as_deref() else {
        return Evidence::Missing;
    };
    if text.len() > MAX_SCAN_LEN {
        return Evidence::Forged("scan too long".into());
    }
    let Ok(p) = Payload::from_qr_text(text) else {
        return Evidence::Forged("not a transit QR".into());
    };
    let at = u64::from(p.timestamp);
    if let Err(reason) = validator::verify_signatures(&p, trusted, at) {
        return Evidence::Forged(code_of(&reason));
    }
    let f = &p.fields;
    let route = bound_route.unwrap_or(tap.route);
    // In its windows at the QR's time or at the validator's, which judged it (within the skew
    // allowed below): a credential that ends between the two was accepted, so its ride is
    // charged, not left free.
    let windows = validator::check_windows(f, at)
        .or_else(|reason| validator::check_windows(f, tap.at).map_err(|_| reason));
    let pass = match windows {
        Err(reason) => Err(code_of(&reason)),
        Ok(()) if !tariff.rides(f.product, f.route, mode, route) => Err("wrong_route".into()),
        Ok(()) => Ok(()),
    };
    let invalid = if at.abs_diff(tap.at) > MAX_TAP_QR_SKEW_SECS {
        Some("not_fresh_at_tap".into())
    } else if exit {
        None
    } else {
        pass.clone().err()
    };
    Evidence::Verified(VerifiedScan {
        card_id: f.card_id,
        product: f.product,
        qr_timestamp: p.timestamp,
        qr_counter: p.counter,
        device_key_hash: DenyList::device_hash(&f.device_public_key),
        invalid,
        pass_valid: pass.is_ok(),
        pass: PassTerms {
            category: f.category as u8,
            route: f.route,
            valid_from: i64::from(f.pass_valid_from),
            valid_until: i64::from(f.pass_valid_until),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(invalid: Option<&str>) -> Evidence {
        Evidence::Verified(VerifiedScan {
            card_id: 7,
            product: Product::PayAsYouGo,
            qr_timestamp: 1,
            qr_counter: 1,
            device_key_hash: [0; 32],
            invalid: invalid.map(str::to_owned),
            pass_valid: invalid.is_none(),
            pass: PassTerms::default(),
        })
    }

    #[test]
    fn only_a_verified_valid_unrevoked_first_use_is_charged() {
        let judge =
            |accepted, e: &Evidence, revoked, first| judge_tap(accepted, e, revoked, first, "v1");
        assert_eq!(
            judge(true, &verified(None), false, None),
            (TapVerdict::Charged, None)
        );
        assert_eq!(
            judge(false, &verified(None), false, None).0,
            TapVerdict::RefusedByValidator
        );
        assert_eq!(
            judge(true, &verified(Some("expired")), false, None).0,
            TapVerdict::Invalid
        );
        assert_eq!(
            judge(true, &verified(None), true, None).0,
            TapVerdict::Revoked
        );
        assert_eq!(
            judge(true, &verified(None), false, Some("v1")),
            (TapVerdict::Replayed, None)
        );
        let (verdict, finding) = judge(true, &verified(None), false, Some("v2"));
        assert_eq!(verdict, TapVerdict::Relayed);
        let finding = finding.expect("a relay is a fraud record");
        assert_eq!(
            (finding.kind, finding.card_id),
            (FraudKind::SuspectedRelay, Some(7))
        );
        assert_eq!(finding.first_validator_id.as_deref(), Some("v2"));
        let (verdict, finding) = judge(true, &Evidence::Missing, false, None);
        assert_eq!(verdict, TapVerdict::NoEvidence);
        assert_eq!(
            finding.map(|f| f.kind),
            Some(FraudKind::AcceptedWithoutEvidence)
        );
        let (verdict, finding) = judge(true, &Evidence::Forged("bad".into()), false, None);
        assert_eq!(verdict, TapVerdict::Forged);
        assert_eq!(finding.map(|f| f.kind), Some(FraudKind::ForgedEvidence));
    }

    /// A pay-as-you-go credential ending at `t`; a QR signed at `t + 10`, accepted by a
    /// validator whose clock says `t` (the validator takes QRs up to 15 s ahead of its clock): the
    /// ride is charged.
    #[test]
    fn a_credential_in_force_at_the_validators_time_is_charged() {
        use thudo_core::crypto::p256::SoftwareKey;
        use thudo_core::transit::issuer::{CredentialRequest, IssuerKey};
        use thudo_core::transit::{wire, Category};
        let t: u32 = 1_800_000_000;
        let (issuer, _) = IssuerKey::generate(1, t - 86_400, t + 86_400).unwrap();
        let (device, _) = SoftwareKey::generate().unwrap();
        let credential = issuer
            .issue(
                &CredentialRequest {
                    card_id: 7,
                    product: Product::PayAsYouGo,
                    category: Category::Standard,
                    route: 0,
                    pass_valid_from: t - 3_600,
                    pass_valid_until: t + 86_400,
                    device_public_key: device.public_key().to_vec(),
                    lifetime_secs: 60,
                    with_holder: false,
                },
                t - 60,
            )
            .unwrap();
        let trusted = HashMap::from([(1, issuer.trusted().clone())]);
        let tariff = thudo_core::transit::tariff::shipped();
        let judged = |qr_at: u32, tap_at: u64| {
            let message = wire::tap_message(&credential, qr_at, 1);
            let signature = device.sign(&message).unwrap();
            let tap = Tap {
                seq: 1,
                at: tap_at,
                route: 32,
                accepted: true,
                reason: thudo_core::transit::validator::Reason::Ok,
                card_id: None,
                product: None,
                qr_timestamp: None,
                qr_counter: None,
                qr: Some(wire::qr_text(&credential, qr_at, 1, &signature)),
                gate: None,
            };
            match check_evidence(&tap, &trusted, None, false, tariff, Mode::Bus) {
                Evidence::Verified(scan) => scan.invalid,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(judged(t - 5, u64::from(t)), None);
        assert_eq!(judged(t + 10, u64::from(t)), None, "the validator's time");
        assert_eq!(
            judged(t + 10, u64::from(t + 10)).as_deref(),
            Some("credential_expired")
        );
    }

    #[test]
    fn a_ride_after_its_pass_was_refunded_is_charged() {
        let month = PassTerms {
            category: 0,
            route: 0,
            valid_from: 0,
            valid_until: 10_000,
        };
        let pass = |terms, created_at, cancelled_at| SoldPass {
            terms,
            created_at,
            cancelled_at,
        };
        // Bought at 100, refunded at 500: rides before it are the pass's, from it on charged.
        let refunded = [pass(month, 100, Some(500))];
        assert!(!rides_refunded_pass(&refunded, &month, 499));
        assert!(rides_refunded_pass(&refunded, &month, 500));
        // Bought again at 600 with the same terms: it covers from its purchase, not before.
        let again = [pass(month, 100, Some(500)), pass(month, 600, None)];
        assert!(rides_refunded_pass(&again, &month, 550));
        assert!(!rides_refunded_pass(&again, &month, 700));
        // Another pass of the card's (another route, category or window) covers nothing here:
        // refunding route 32's pass charges its rides though route 33's is kept.
        let route_33 = PassTerms { route: 33, ..month };
        let route_32 = PassTerms { route: 32, ..month };
        let two = [pass(route_32, 100, Some(500)), pass(route_33, 100, None)];
        assert!(rides_refunded_pass(&two, &route_32, 700));
        assert!(!rides_refunded_pass(&two, &route_33, 700));
        // Terms no pass was sold under, or cancelled after the ride: not charged.
        assert!(!rides_refunded_pass(&[], &month, 700));
        assert!(!rides_refunded_pass(
            &[pass(month, 100, Some(900))],
            &month,
            800
        ));
    }

    #[test]
    fn a_pass_renews_until_it_ends_or_is_cancelled() {
        assert_eq!(renewal_refusal(200, None, 150), None);
        assert_eq!(renewal_refusal(200, None, 200), None, "its last second");
        assert_eq!(renewal_refusal(200, None, 201), Some(RenewalRefusal::Ended));
        assert_eq!(renewal_refusal(200, Some(160), 159), None);
        assert_eq!(
            renewal_refusal(200, Some(160), 160),
            Some(RenewalRefusal::Cancelled)
        );
        assert_eq!(RenewalRefusal::Ended.code(), ServerErrorCode::PassEnded);
    }

    #[test]
    fn codes_read_back() {
        for k in [
            FraudKind::SuspectedRelay,
            FraudKind::RepeatedExit,
            FraudKind::DoubleEntry,
            FraudKind::ImpossibleTravel,
            FraudKind::DependantAlone,
            FraudKind::QrMadeAhead,
        ] {
            assert_eq!(FraudKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for s in [JourneyStatus::Open, JourneyStatus::NoEntryCharged] {
            assert_eq!(JourneyStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(JourneyStatus::Closed.when_time_runs_out(), None);
        assert_eq!(
            JourneyStatus::Open.when_time_runs_out(),
            Some(JourneyStatus::NoExit)
        );
    }
}
