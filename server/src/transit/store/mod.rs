//! Transit's stores: validators and their enrolment, taps and inspections with their fares
//! and fraud records, metro journeys, the deny list, and riders' entitlements and dependants.
//! One trait per concern, each implemented once over the storage engines in its own file;
//! the rules they apply are [`super::rules`].

mod credentials;
mod fraud;
mod journeys;
mod ledger;
mod riders;
mod sales;
mod tap_facts;
mod taps;
mod validators;

use thudo_core::transit::validator::Tap;

use super::fares::FarePolicy;
use super::rules::{Evidence, FraudKind};
use crate::devices::store::{Device, DeviceStore};
use crate::secrets::CitizenKey;
use crate::storage::migrations::ConcernSchema;
use crate::storage::settings::SettingsStore;
use crate::storage::Result;

pub use credentials::{deny_device_keys, ALWAYS_TAKEN, LISTED_RESERVE, MAX_LISTED};
pub use sales::return_device_orders;
pub use tap_facts::QR_ORDER_SLACK_SECS;

/// An enrolled validator (a bus or a metro gate), as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ValidatorRecord {
    /// Validator id.
    pub id: String,
    /// The name the validator gave itself at enrolment.
    pub name: String,
    /// The operator's label of the enrolment ("bus 32, front door").
    pub label: String,
    /// The route it is bound to (a bus), if any: fares use it, not what the validator says.
    pub route: Option<u16>,
    /// The gate it is bound to (a metro station gate), if any.
    pub gate: Option<String>,
    /// An inspector's device: it reads the feed and uploads inspections, never taps.
    pub inspector: bool,
    /// When it enrolled (unix seconds).
    pub enrolled_at: i64,
    /// When the operator decommissioned it; its calls are refused from then on.
    pub decommissioned_at: Option<i64>,
}

/// How long a validator's token is valid: it renews well before (its feed fetch does).
pub const VALIDATOR_TOKEN_SECS: i64 = 30 * 86_400;
/// How long a renewed token stays honoured after its renewal (a lost answer, a validator that
/// died before storing the new token, offline for days).
pub const VALIDATOR_TOKEN_GRACE_SECS: i64 = 7 * 86_400;
/// How long after a validator's new token was first used the token it replaced is still
/// only refused (401), not taken for a copy: a call begun with it before the renewal may be
/// retried that long (six attempts, each up to its timeout, with backoff up to a minute).
pub const VALIDATOR_RETRY_WINDOW_SECS: i64 = 15 * 60;

/// An operator-issued enrolment, stored by the hash of its single-use code.
#[derive(Debug, Clone)]
pub struct NewEnrolment {
    /// SHA-256 of the code.
    pub code_hash: [u8; 32],
    /// The operator's label.
    pub label: String,
    /// Route binding.
    pub route: Option<u16>,
    /// Gate binding.
    pub gate: Option<String>,
    /// For an inspector's device (see [`ValidatorRecord::inspector`]).
    pub inspector: bool,
    /// Last second the code may be used.
    pub expires_at: i64,
}

/// What became of an enrolment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrolOutcome {
    /// Enrolled now.
    Enrolled(ValidatorRecord),
    /// No such code.
    Unknown,
    /// The code was used already (single use).
    Used,
    /// The code expired.
    Expired,
}

/// One uploaded tap: the validator's claim and what its evidence shows.
#[derive(Debug, Clone)]
pub struct CheckedTap {
    /// As the validator logged it.
    pub tap: Tap,
    /// What the backend verified.
    pub evidence: Evidence,
}

/// The result of storing an upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapTotals {
    /// Stored now.
    pub stored: u32,
    /// Uploaded before.
    pub duplicates: u32,
    /// Highest sequence stored.
    pub highest_seq: u64,
    /// Charged now, VND.
    pub charged_vnd: u64,
    /// Taps the validator accepted that the backend does not charge (no or bad evidence,
    /// revoked, invalid, replayed, relayed).
    pub not_charged: u32,
    /// The pay-as-you-go cards charged now (their prepaid balances to check).
    pub paid_cards: Vec<u64>,
    /// Fares stored for every tap of the upload, charged now or before, VND.
    pub stored_charged_vnd: u64,
    /// What is stored for each tap, in the order stored.
    pub outcomes: Vec<thudo_core::transit::backend::TapOutcome>,
    /// Taps not stored because their sequence is stored for another tap (see
    /// [`TapReceipt::reused`](thudo_core::transit::backend::TapReceipt::reused)).
    pub reused: Vec<u64>,
    /// With `reused`: the first sequence above every tap stored from the validator.
    pub next_free_seq: Option<u64>,
}

/// Something an operator should look at: evidence that a device lied or a QR was relayed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FraudRecord {
    /// Its kind.
    pub kind: FraudKind,
    /// The validator that uploaded the tap.
    pub validator_id: String,
    /// Its tap sequence.
    pub seq: u64,
    /// The card, when the evidence verified.
    pub card_id: Option<u64>,
    /// The validator that used the QR first, for a relay.
    pub first_validator_id: Option<String>,
    /// Details.
    pub detail: String,
    /// When recorded (unix seconds).
    pub recorded_at: i64,
    /// Its number, growing: ask for the next page `after` the last one's.
    pub id: u64,
}

/// An entitlement to a reduced or free passenger category, held by the backend.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Entitlement {
    /// The category (never `standard`, which needs none).
    #[schema(value_type = crate::schema::ReducedCategory)]
    pub category: thudo_core::transit::Category,
    /// First second it applies (unix).
    pub valid_from: i64,
    /// Last second it applies (unix); after `valid_from`.
    pub valid_until: i64,
    /// Where the proof is kept (a case number, a document reference); never the document: 1
    /// to 200 characters, not blank, no control character.
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub evidence_ref: String,
}

/// One uploaded inspection: the inspector's record and what its scan shows here.
#[derive(Debug, Clone)]
pub struct CheckedInspection {
    /// As the inspector recorded it.
    pub inspection: thudo_core::transit::inspection::Inspection,
    /// What the backend verified of its scan (at the inspection's time).
    pub evidence: Evidence,
}

/// Inspections for the operator's fraud statistics. The inspector's outcome is its own
/// observation; `verified_*` counts only inspections whose scan verified here.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct InspectionStats {
    /// Inspections stored.
    pub inspections: u64,
    /// The inspector found a valid ticket (tapped here when paired).
    pub valid: u64,
    /// A valid ticket that did not tap on the paired vehicle.
    pub not_tapped: u64,
    /// The ticket was not valid.
    pub invalid: u64,
    /// Not-tapped findings whose scan verified as a valid ticket here: rides not paid for.
    pub verified_not_tapped: u64,
    /// Findings of a valid ticket whose scan did not verify as one here (forged, missing,
    /// invalid): to look at.
    pub disputed: u64,
}

/// The transit tables.
pub const SCHEMA: ConcernSchema = ConcernSchema {
    concern: "transit",
    sqlite: &[
        include_str!("../schema/sqlite/0001_base.sql"),
        include_str!("../schema/sqlite/0002_passes_and_credentials.sql"),
        include_str!("../schema/sqlite/0003_sales.sql"),
        include_str!("../schema/sqlite/0004_fraud_policy.sql"),
        include_str!("../schema/sqlite/0005_validator_tokens.sql"),
        include_str!("../schema/sqlite/0006_ledger_by_order.sql"),
        include_str!("../schema/sqlite/0007_qr_use_keys.sql"),
        include_str!("../schema/sqlite/0008_inspectors.sql"),
        include_str!("../schema/sqlite/0009_validator_token_forks.sql"),
        include_str!("../schema/sqlite/0010_payments_under_review.sql"),
        include_str!("../schema/sqlite/0011_deny_list_by_until.sql"),
        include_str!("../schema/sqlite/0012_payment_follow_ups.sql"),
        include_str!("../schema/sqlite/0013_orders_by_device.sql"),
        include_str!("../schema/sqlite/0014_repeat_checks.sql"),
        include_str!("../schema/sqlite/0015_replaced_validator_tokens.sql"),
    ],
    postgres: &[
        include_str!("../schema/postgres/0001_base.sql"),
        include_str!("../schema/postgres/0002_passes_and_credentials.sql"),
        include_str!("../schema/postgres/0003_sales.sql"),
        include_str!("../schema/postgres/0004_fraud_policy.sql"),
        include_str!("../schema/postgres/0005_validator_tokens.sql"),
        include_str!("../schema/postgres/0006_ledger_by_order.sql"),
        include_str!("../schema/postgres/0007_qr_use_keys.sql"),
        include_str!("../schema/postgres/0008_inspectors.sql"),
        include_str!("../schema/postgres/0009_validator_token_forks.sql"),
        include_str!("../schema/postgres/0010_payments_under_review.sql"),
        include_str!("../schema/postgres/0011_deny_list_by_until.sql"),
        include_str!("../schema/postgres/0012_payment_follow_ups.sql"),
        include_str!("../schema/postgres/0013_orders_by_device.sql"),
        include_str!("../schema/postgres/0014_repeat_checks.sql"),
        include_str!("../schema/postgres/0015_replaced_validator_tokens.sql"),
    ],
};

/// Validators: enrolment by an operator's single-use code, tokens, decommissioning.
pub trait ValidatorStore: Send + Sync + 'static {
    /// Stores an enrolment.
    fn create_enrolment(&self, enrolment: &NewEnrolment) -> Result<()>;
    /// Uses an enrolment code once: enrols a validator under `token_hash`.
    fn enrol_validator(
        &self,
        code_hash: &[u8; 32],
        name: &str,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<EnrolOutcome>;
    /// The validator holding a token at `now` (its current one before it expires, or the one
    /// it replaced within its grace; decommissioned ones included: the caller refuses them).
    /// The current token's first use ends the grace of the one it replaced; that one presented
    /// after it shows a copy, and decommissions the validator (returned decommissioned).
    fn validator_by_token(
        &self,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<ValidatorRecord>>;
    /// Replaces the token a validator presented (`presented`, its current one or the one it
    /// replaced) with `new`, valid until `expires_at`. The current one, if presented, stays
    /// honoured for [`VALIDATOR_TOKEN_GRACE_SECS`], until the new one is first used
    /// ([`ValidatorStore::validator_by_token`] ends its grace then); if the replaced one was
    /// presented (the answer to an earlier renewal was lost, so the new one was never used), it
    /// keeps its grace. Whether a token was renewed.
    fn renew_validator_token(
        &self,
        presented: &[u8; 32],
        new: &[u8; 32],
        expires_at: i64,
        now: i64,
    ) -> Result<bool>;
    /// Every validator, oldest first.
    fn validators(&self) -> Result<Vec<ValidatorRecord>>;
    /// Decommissions a validator; false when there is none with this id.
    fn decommission_validator(&self, id: &str, now: i64) -> Result<bool>;
}

/// Taps and inspections as uploaded, with the fares charged and fraud recorded.
pub trait TapStore: Send + Sync + 'static {
    /// Stores a validator's taps once each (by validator and sequence) and charges
    /// pay-as-you-go fares under the caps, only for taps whose evidence verified, valid at the
    /// QR's time, not revoked then, and whose QR no validator used before (a second use on
    /// another validator is a suspected relay, recorded for the operator).
    /// `complete_at`: when the validator's log held nothing more than these (a metro entry
    /// gate's entries are complete up to then).
    fn record_taps(
        &self,
        validator: &ValidatorRecord,
        taps: &[CheckedTap],
        fares: &FarePolicy,
        complete_at: Option<i64>,
    ) -> Result<TapTotals>;
    /// Stores an inspector's inspections once each (by inspector and sequence): how many were
    /// stored now, how many were stored before, the highest sequence sent, and the numbers
    /// stored for other inspections (made at another time: a restored inspector) with the
    /// first number free.
    fn record_inspections(
        &self,
        inspector: &ValidatorRecord,
        inspections: &[CheckedInspection],
    ) -> Result<thudo_core::transit::backend::InspectionReceipt>;
    /// The inspection statistics.
    fn inspection_stats(&self) -> Result<InspectionStats>;
    /// Fares charged to a card, VND, per day `YYYY-MM-DD` (Hanoi time): bus rides and metro
    /// journeys.
    fn charges(&self, card_id: u64) -> Result<Vec<(String, u64)>>;
    /// The cards charged at least `cap_vnd` on local day `day` (bus rides and metro journeys),
    /// at most 100,000.
    fn capped_cards(&self, day: &str, cap_vnd: u64) -> Result<Vec<u64>>;
    /// Fraud records numbered above `after`, oldest first, at most `limit`.
    fn fraud_records(&self, after: u64, limit: usize) -> Result<Vec<FraudRecord>>;
    /// Acts on the fraud records not acted on yet (at most 1,000, oldest first) as the
    /// operator's policy says: a warning or a penalty fare published to the rider's phone, the
    /// card denied; each record is acted on once, on whichever instance gets it first.
    fn act_on_fraud(&self, fares: &FarePolicy, now: i64) -> Result<FraudActions>;
}

/// What [`TapStore::act_on_fraud`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FraudActions {
    /// Records acted on.
    pub acted: u32,
    /// Warnings published.
    pub warned: u32,
    /// Penalty fares charged.
    pub fined: u32,
    /// Cards denied.
    pub denied: u32,
    /// The new deny-list version, if a card was denied.
    pub deny_version: Option<u32>,
}

/// Metro journeys: settled when their time runs out, fed to exit gates while open.
pub trait JourneyStore: Send + Sync + 'static {
    /// Settles the metro journeys whose time ran out at `now`: an entry with no exit, and an
    /// exit with no entry, are charged their line's maximum fare (a late tap corrects it).
    /// Returns how many were settled (at most 1,000 per call).
    fn settle_journeys(&self, now: i64, fares: &FarePolicy) -> Result<u32>;
    /// The entries after `cursor` not yet paired with an exit and at most `honoured_secs` old
    /// (at most `limit`, oldest first), for exit gates, with the time up to which every entry
    /// gate's log was drained.
    fn entry_feed(
        &self,
        cursor: u64,
        now: i64,
        honoured_secs: u64,
        limit: usize,
    ) -> Result<thudo_core::transit::metro::EntryFeed>;
    /// The cards inside the network at `now` (an open entry at most `honoured_secs` old, at
    /// most `limit`), with the time up to which every exit gate's log was drained.
    fn cards_inside(&self, now: i64, honoured_secs: u64, limit: usize) -> Result<(Vec<u64>, u64)>;
}

/// Passes sold, the credentials issued for them (which key and card each binds, until when),
/// and the deny list.
pub trait CredentialStore: Send + Sync + 'static {
    /// Revokes cards and device keys (SHA-256 of the compressed key) from `at` on; returns the
    /// new deny-list version, always above every version published before. Each entry is
    /// listed until nothing it could hold can still ride ([`deny_until`]).
    fn deny(&self, cards: &[u64], device_key_hashes: &[[u8; 32]], at: i64) -> Result<u32>;
    /// The deny list at `now`: version, cards, device key hashes (entries whose credentials
    /// and passes have all ended are no longer listed; they stay denied for new purchases).
    fn deny_list(&self, now: i64) -> Result<(u32, Vec<u64>, Vec<[u8; 32]>)>;
    /// Records a credential issued to `device`, within the limits: the key is the device's
    /// own (no other account's, not denied), the card is not denied, the device holds at most
    /// [`MAX_LIVE_KEYS_PER_DEVICE`] keys with a live credential, and the account ordered at
    /// most [`MAX_ORDERS_PER_HOUR`] credentials in the last hour. Nothing is recorded when a
    /// limit refuses it.
    fn record_credential(
        &self,
        device: &Device,
        issued: &IssuedCredential,
        new_pass: Option<&Pass>,
        now: i64,
    ) -> Result<IssueOutcome>;
    /// The pass whose terms a credential carries (its card, product, category, route and
    /// window), if one was sold.
    fn pass_for(&self, terms: &Pass) -> Result<Option<PassRecord>>;
    /// The account riding on `card_id` if `account_id` may hold its passes: the account's own
    /// card, or a dependant's whose guardianship the operator recorded.
    fn rider_of_card(&self, account_id: &str, card_id: u64) -> Result<Option<Rider>>;
    /// The transit keys a device bought credentials for.
    fn device_keys(&self, device_id: &str) -> Result<Vec<[u8; 32]>>;
}

/// Who rides on a card an account holds passes for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rider {
    /// The account whose card it is.
    pub account_id: String,
    /// A dependant's card, and the operator did not record that the dependant travels alone:
    /// its credentials ride only with the holder's own ticket (format version 2).
    pub with_holder: bool,
}

/// Keys with a live credential one device may hold (a new phone key, a key rotation).
pub const MAX_LIVE_KEYS_PER_DEVICE: usize = 3;
/// Credentials one account may order in an hour (retries of one order are not orders).
pub const MAX_ORDERS_PER_HOUR: usize = 20;
/// How long a denied entry stays listed after the last credential or pass it could hold ends:
/// a validator whose clock lags still refuses it.
pub const DENY_MARGIN_SECS: i64 = 3_600;

/// Until when a denied entry is listed: the end of the last credential issued for the key or
/// card (none is issued after the denial, so nothing rides on it later), and at least a whole
/// credential lifetime after the denial (a purchase that checked just before it may still be
/// issued), plus [`DENY_MARGIN_SECS`]. A list therefore holds at most a credential lifetime and
/// the margin (73 h) of denials.
pub fn deny_until(last_end: Option<i64>, at: i64) -> i64 {
    let lifetime = i64::from(thudo_core::transit::issuer::MAX_CREDENTIAL_LIFETIME_SECS);
    last_end.unwrap_or(0).max(at + lifetime) + DENY_MARGIN_SECS
}

/// A credential as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCredential {
    /// SHA-256 of the phone's compressed key.
    pub key_hash: [u8; 32],
    /// The card it rides on.
    pub card_id: u64,
    /// The product.
    pub product: thudo_core::transit::Product,
    /// The pass's last second.
    pub pass_until: i64,
    /// The credential's last second.
    pub not_after: i64,
}

/// A pass's terms: what was sold, to whom, for when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    /// The card it rides on.
    pub card_id: u64,
    /// The product.
    pub product: thudo_core::transit::Product,
    /// The passenger category.
    pub category: thudo_core::transit::Category,
    /// The route of a single-route pass; 0 otherwise.
    pub route: u16,
    /// First second it is valid.
    pub valid_from: i64,
    /// Last second it is valid.
    pub valid_until: i64,
}

/// A pass as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassRecord {
    /// Its id.
    pub id: String,
    /// The account that bought it.
    pub account_id: String,
    /// When it was cancelled (a refund), if it was.
    pub cancelled_at: Option<i64>,
}

/// What became of a credential to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueOutcome {
    /// Recorded: it may be handed out.
    Recorded,
    /// The device was revoked meanwhile.
    DeviceRevoked,
    /// Another account's phone holds this key.
    KeyTaken,
    /// The key is on the deny list.
    KeyDenied,
    /// The card is on the deny list.
    CardDenied,
    /// The device holds [`MAX_LIVE_KEYS_PER_DEVICE`] other live keys.
    TooManyKeys,
    /// The account ordered [`MAX_ORDERS_PER_HOUR`] credentials in the last hour.
    TooManyOrders,
}

/// Riders: entitlements to reduced categories and guardians' dependants.
pub trait RiderStore: Send + Sync + 'static {
    /// Grants a citizen an entitlement.
    fn grant_entitlement(&self, citizen: &CitizenKey, entitlement: &Entitlement) -> Result<()>;
    /// A citizen's entitlements.
    fn entitlements(&self, citizen: &CitizenKey) -> Result<Vec<Entitlement>>;
    /// Records that `guardian` may hold `dependant`'s passes and see their trips (creating
    /// either account if new); `travels_alone`: the dependant may ride on the guardian's phone
    /// without the guardian (else a ride alone is a `dependant_alone` record). Recording it
    /// again updates `travels_alone` only.
    fn add_dependant(
        &self,
        guardian: &CitizenKey,
        dependant: &CitizenKey,
        travels_alone: bool,
    ) -> Result<()>;
    /// Ends a guardianship; false when there was none.
    fn remove_dependant(&self, guardian: &CitizenKey, dependant: &CitizenKey) -> Result<bool>;
    /// The account and card of `dependant_citizen_id`, if it is a dependant of account
    /// `guardian_account`.
    fn dependant_of(
        &self,
        guardian_account: &str,
        dependant: &CitizenKey,
    ) -> Result<Option<(String, u64)>>;
    /// The entitlement of an account to `category` in force at `at`, the one lasting longest.
    fn entitlement_at(
        &self,
        account_id: &str,
        category: thudo_core::transit::Category,
        at: i64,
    ) -> Result<Option<Entitlement>>;
}

/// What an order buys.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OrderPurpose {
    /// A pass (its terms are the order's).
    Pass,
    /// Prepaid credit for pay-as-you-go fares on the order's card.
    TopUp,
}

/// How long past its payment window an unpaid order still waits for the provider's
/// notification (a payment made in time, told late): the phone hears "pending" until then and
/// "expired" after, and a pass payment told later goes back ([`SalesStore::record_payment`]).
pub const LATE_NOTICE_SECS: i64 = 15 * 60;

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Waiting for the provider's notification.
    AwaitingPayment,
    /// Paid: the pass exists (or the credit was added).
    Paid,
    /// The provider reported a failed payment (the buyer may order again).
    Failed,
    /// The buyer cancelled at the provider.
    Cancelled,
    /// The buyer's bank took the money but the provider holds the payment for review: the
    /// phone is told to wait, not to pay again; a later confirmation opens the pass.
    UnderReview,
    /// Paid and then refunded by the operator: the pass is cancelled.
    Refunded,
}

/// An order as made: what is bought, for whom, at what price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// Its id (the provider's order reference).
    pub id: String,
    /// The buyer's account.
    pub account_id: String,
    /// The buyer's device (the only one that collects the credential).
    pub device_id: String,
    /// What it buys.
    pub purpose: OrderPurpose,
    /// The card the pass rides on, or the credit is for.
    pub card_id: u64,
    /// The pass's terms, for a pass.
    pub pass: Option<Pass>,
    /// The phone key (uncompressed SEC1) its credential binds, for a pass.
    pub device_key: Option<Vec<u8>>,
    /// Whether the pass is a dependant's, held on the buyer's phone.
    pub dependant: bool,
    /// The price, VND (0: confirmed at once, with no provider).
    pub amount_vnd: u64,
    /// The payment provider's name.
    pub provider: String,
    /// When it was made (unix seconds).
    pub created_at: i64,
    /// When the checkout ends (unix seconds).
    pub expires_at: i64,
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    /// As made.
    pub order: NewOrder,
    /// Where it stands.
    pub status: OrderStatus,
    /// The provider's transaction reference of its payment.
    pub provider_ref: Option<String>,
    /// The credential handed out for it (the first one; a retried collection gets it again).
    pub credential: Option<Vec<u8>>,
}

/// Whether an order was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderAdmission {
    /// Stored, awaiting payment; or, at no price, paid at once.
    Admitted(OrderStatus),
    /// The account made [`MAX_ORDERS_PER_HOUR`] orders in the last hour.
    TooManyOrders,
    /// The card is denied (by the operator, or owing more than the credit limit: a top-up
    /// lifts that).
    CardDenied {
        /// Why: `None` by the operator, `Some("balance")` for a balance owed.
        reason: Option<String>,
    },
}

/// What became of a provider's notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentRecord {
    /// Recorded now: a payment (the pass exists, or the credit was added), a failure, a
    /// cancellation or money held for review. `refund_due`: paid for a pass that had ended (a late payment) or for
    /// an order already paid (paid twice): recorded, with its refund.
    Recorded {
        /// The order's status now.
        status: OrderStatus,
    },
    /// This outcome (this provider transaction) was recorded before: nothing changed.
    AlreadyRecorded,
    /// No such order.
    UnknownOrder,
    /// Not the order's amount: nothing recorded.
    WrongAmount,
}

/// One ledger entry: the ledger is appended to, never changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    /// When (unix seconds).
    pub at: i64,
    /// The local day (Hanoi) it counts on, `YYYY-MM-DD`.
    pub day: String,
    /// `order`, `payment`, `payment_failed`, `payment_cancelled`, `payment_under_review`
    /// (money taken that the provider holds for review; not a sale), `refund` (made by an
    /// operator), `refund_due` (a payment not kept: paid twice, too late, or for a pass the
    /// card holds already; to be returned in the provider's portal).
    #[schema(
        pattern = "^(order|payment|payment_failed|payment_cancelled|payment_under_review|refund|refund_due)$"
    )]
    pub entry: String,
    /// The order.
    pub order_id: String,
    /// What the order buys.
    pub purpose: OrderPurpose,
    /// The card.
    pub card_id: u64,
    /// The product, for a pass.
    pub product: Option<thudo_core::transit::Product>,
    /// The category, for a pass.
    pub category: Option<thudo_core::transit::Category>,
    /// VND: the price for an order, the amount taken for a payment or held for review, the
    /// amount returned (or to return) for a refund, 0 for a failure or cancellation.
    pub amount_vnd: u64,
    /// The provider's transaction reference.
    pub provider_ref: Option<String>,
}

/// One line of a day's reconciliation: one product (or top-ups) and category.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct ReconciliationLine {
    /// `monthly_all_routes`, ..., `top_up`; `pay_as_you_go` for fares charged.
    pub product: String,
    /// The passenger category (none for top-ups and fares: fares do not depend on it).
    pub category: Option<thudo_core::transit::Category>,
    /// Payments taken.
    pub sales: u64,
    /// Their sum, VND.
    pub sales_vnd: u64,
    /// Refunds made.
    pub refunds: u64,
    /// Their sum, VND.
    pub refunds_vnd: u64,
    /// Payments not kept, owed back to the buyer (`refund_due`).
    pub refunds_due: u64,
    /// Their sum, VND.
    pub refunds_due_vnd: u64,
    /// Pay-as-you-go fares charged (bus rides and metro journeys).
    pub charges: u64,
    /// Their sum, VND.
    pub charged_vnd: u64,
}

/// A day's sales, refunds and fares, by product and category, with the ledger's own sums.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Reconciliation {
    /// The local day, `YYYY-MM-DD`.
    pub day: String,
    /// One line per product and category with anything that day.
    pub lines: Vec<ReconciliationLine>,
    /// Sum of the lines' sales, VND.
    pub sales_vnd: u64,
    /// Sum of the lines' refunds, VND.
    pub refunds_vnd: u64,
    /// Sum of the lines' payments not kept, VND: money to return in the provider's portal.
    pub refunds_due_vnd: u64,
    /// Those payments, one by one (the order and the provider's transaction to return).
    pub to_return: Vec<LedgerEntry>,
    /// Payments the provider holds for review (the buyer's money taken, not confirmed) and has
    /// not settled since, whatever day they were reported, one by one: to follow up in the
    /// provider's portal.
    pub under_review: Vec<LedgerEntry>,
    /// Sum of the lines' fares, VND.
    pub charged_vnd: u64,
    /// Orders made that day and their value, VND (paid or not).
    pub orders: u64,
    /// Their value, VND.
    pub ordered_vnd: u64,
    /// Payments that failed or were cancelled that day.
    pub unpaid: u64,
}

/// Sales: orders with a price, the provider's confirmations, refunds, prepaid balances and the
/// ledger they all write to.
pub trait SalesStore: Send + Sync + 'static {
    /// Stores an order (and its ledger entry) within the limits; one at no price is paid at
    /// once (its pass made).
    fn create_order(&self, order: &NewOrder, day: &str) -> Result<OrderAdmission>;
    /// An order.
    fn order(&self, id: &str) -> Result<Option<OrderRecord>>;
    /// Orders the provider may have settled without telling, due to be asked about by `now`:
    /// at a price, made at `since` or later, their checkout over, not paid or refunded; the
    /// oldest first, at most `limit`, each with how often it was asked about before.
    fn orders_to_follow_up(
        &self,
        since: i64,
        now: i64,
        limit: u32,
    ) -> Result<Vec<(OrderRecord, u32)>>;
    /// Notes that the provider was asked about `order_id` (`asked` times in all), and when to
    /// ask next (`None`: never again).
    fn followed_up(&self, order_id: &str, asked: u32, next_at: Option<i64>) -> Result<()>;
    /// Records a provider's notification once: a payment of the order's amount makes its pass
    /// (or adds its credit, lifting a denial for the balance owed past `credit_limit_vnd` in
    /// the same transaction), a failure or cancellation is noted, money held for review puts
    /// the order under review (listed until that transaction is settled); the same
    /// transaction sent again with the same outcome changes nothing. A pass paid after its
    /// order expired (past [`LATE_NOTICE_SECS`]), unless that transaction was held for review
    /// within it with no failure before, or paid after the pass ended, is returned: the order
    /// is refunded.
    fn record_payment(
        &self,
        notification: &crate::payments::Notification,
        credit_limit_vnd: u64,
        now: i64,
        day: &str,
    ) -> Result<PaymentRecord>;
    /// Keeps the first credential handed out for a paid order; returns the one kept, or `None`
    /// when the order is no longer paid (refunded meanwhile).
    fn keep_credential(&self, order_id: &str, credential: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Refunds a paid pass order: the pass is cancelled (its renewals refused), the refund
    /// entered. `None` when there is no such paid pass order (a top-up is never refunded here).
    fn refund(&self, order_id: &str, now: i64, day: &str) -> Result<Option<OrderStatus>>;
    /// Settles transaction `provider_ref` of order `order_id`, held for review, as `result`
    /// says (an operator's reading of the provider's portal), recorded as
    /// [`SalesStore::record_payment`] records the provider's notification of the order's
    /// amount; `None` unless that transaction is held for review and unsettled when the
    /// order's lock is taken (an empty reference names a review without one).
    fn settle_review(
        &self,
        order_id: &str,
        provider_ref: &str,
        result: crate::payments::PaymentResult,
        credit_limit_vnd: u64,
        now: i64,
        day: &str,
    ) -> Result<Option<PaymentRecord>>;
    /// Returns a paid pass order whose credential was never collected and no longer can be
    /// (the guardianship or the entitlement it needs ended after the payment): the pass
    /// cancelled, the order refunded, the payment listed to return in the provider's portal
    /// (`refund_due`). False when it is not such an order (unpaid, collected, a top-up).
    fn return_uncollectable(&self, order_id: &str, now: i64, day: &str) -> Result<bool>;
    /// A card's prepaid balance, VND: credit bought minus fares charged (negative: owed).
    fn balance(&self, card_id: u64) -> Result<i64>;
    /// Whether the card is denied for the balance it owes.
    fn balance_denied(&self, card_id: u64) -> Result<bool>;
    /// Denies each of `cards` owing more than `credit_limit_vnd` and lifts the balance denial
    /// of each that no longer does; returns the new deny-list version if it changed.
    fn enforce_balances(
        &self,
        cards: &[u64],
        credit_limit_vnd: u64,
        now: i64,
    ) -> Result<Option<u32>>;
    /// The ledger's entries of local day `day`, oldest first.
    fn ledger(&self, day: &str) -> Result<Vec<LedgerEntry>>;
    /// Local day `day`'s reconciliation.
    fn reconciliation(&self, day: &str) -> Result<Reconciliation>;
}

/// Everything transit's routes need from storage.
pub trait TransitStore:
    ValidatorStore
    + TapStore
    + JourneyStore
    + CredentialStore
    + RiderStore
    + SalesStore
    + SettingsStore
    + DeviceStore
{
}

impl<T> TransitStore for T where
    T: ValidatorStore
        + TapStore
        + JourneyStore
        + CredentialStore
        + RiderStore
        + SalesStore
        + SettingsStore
        + DeviceStore
{
}
