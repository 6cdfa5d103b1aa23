//! The transit domain's calls to the backend (docs/protocol/sync.md, "Transit"): buy a
//! product for the phone's key, fetch what an offline validator needs (a validator's taps and
//! an inspector's inspections go up in `uploads`). Built on the device's
//! backend transport (`crate::net`); used by the FFI and the CLI alike.

use std::sync::{Arc, Mutex};

use http::Method;
use serde::{Deserialize, Serialize};

use super::phone::Phone;
use super::validator::Validator;
use super::wire::CredentialFields;
use super::TransitError;
use super::{Category, Product};
use crate::net::protocol::API_PREFIX;
use crate::net::{blocking, BackendClient, BackendError};
use crate::vault::Vault;

/// A validator renews its token when it expires within this (a week: validators fetch their
/// feed every few minutes while online, and may be offline for days).
pub const VALIDATOR_TOKEN_RENEW_WITHIN_SECS: u64 = 7 * 86_400;

/// `POST /v1/transit/orders`: order a product, with a credential for this phone once paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialOrder {
    /// Product.
    pub product: Product,
    /// Passenger category.
    pub category: Category,
    /// Route, for a single-route pass; 0 otherwise.
    #[serde(default)]
    pub route: u16,
    /// The phone's P-256 public key, hex (SEC1).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^(0[23][0-9a-fA-F]{64}|04[0-9a-fA-F]{128})$")
    )]
    pub device_public_key: String,
    /// Pass month `YYYY-MM` for monthly passes; ignored otherwise.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^([0-9]{4}-(0[1-9]|1[0-2]))?$"))]
    pub month: String,
    /// The citizen ID of a dependant (a child, an elderly parent) whose pass this is, bought
    /// by their guardian for the guardian's phone; `None` for the buyer's own card. The
    /// operator records guardianship; the dependant's entitlements apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9]{12}$"))]
    pub dependant: Option<String>,
    /// When the phone signed `proof`, unix seconds on the backend's clock as the phone knows
    /// it: the backend accepts a proof [`ORDER_PROOF_WINDOW_SECS`] either side of its time.
    #[serde(default)]
    pub signed_at: u64,
    /// The phone's signature (P-256, raw r||s, hex) over [`CredentialOrder::proof_message`]
    /// with the key the order names: proof that the buyer holds it, so nobody can have
    /// credentials issued (and then denied) for keys that are not theirs or do not exist.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-fA-F]{128}$"))]
    pub proof: String,
}

/// How far an order's `signed_at` may be from the backend's clock.
pub const ORDER_PROOF_WINDOW_SECS: u64 = 600;

impl CredentialOrder {
    /// An order for `product` in `category`, for no route, month or dependant, not yet signed
    /// ([`CredentialOrder::signed_by`]; buying signs it).
    pub fn new(product: Product, category: Category) -> CredentialOrder {
        CredentialOrder {
            product,
            category,
            route: 0,
            device_public_key: String::new(),
            month: String::new(),
            dependant: None,
            signed_at: 0,
            proof: String::new(),
        }
    }

    /// This order for the software key `key` (tests and tools holding a raw key), signed at
    /// `signed_at`.
    pub fn signed_with(
        mut self,
        key: &crate::crypto::p256::SoftwareKey,
        signed_at: u64,
    ) -> CredentialOrder {
        self.device_public_key = crate::hex::encode(key.public_key());
        self.signed_at = signed_at;
        self.proof = key
            .sign(&self.proof_message())
            .map(|sig| crate::hex::encode(&sig))
            .unwrap_or_default();
        self
    }

    /// The bytes a phone signs to prove it holds `device_public_key`: the order tag, then each
    /// field the order asks for, one per line, then `signed_at`.
    pub fn proof_message(&self) -> Vec<u8> {
        let mut m = crate::transit::wire::ORDER_TAG.to_vec();
        let fields = format!(
            "\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.product as u8,
            self.category as u8,
            self.route,
            self.month,
            self.dependant.as_deref().unwrap_or(""),
            self.device_public_key.to_ascii_lowercase(),
            self.signed_at
        );
        m.extend_from_slice(fields.as_bytes());
        m
    }

    /// This order for `phone`'s key, signed by it at device time `now` (corrected by the
    /// phone's clock offset).
    pub fn signed_by(mut self, phone: &Phone, now: u64) -> Result<CredentialOrder, TransitError> {
        self.device_public_key = crate::hex::encode(&phone.device_public_key());
        self.signed_at = phone.corrected_now(now);
        self.proof = crate::hex::encode(&phone.prove_order(&self.proof_message())?);
        Ok(self)
    }
}

/// `POST /v1/transit/credentials/renew`: a fresh credential for a pass the phone holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenewalRequest {
    /// The credential held (hex), expired or not: the issuer's statement of the pass.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-fA-F]{248}$"))]
    pub credential: String,
    /// When the phone signed `proof` (the backend's clock as the phone knows it).
    pub signed_at: u64,
    /// The credential's key's signature (raw r||s, hex) over [`RenewalRequest::proof_message`].
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-fA-F]{128}$"))]
    pub proof: String,
}

impl RenewalRequest {
    /// The renewal of `credential` (held by `phone`), signed by its key at `signed_at` (the
    /// backend's clock as the phone knows it).
    pub fn signed_by(
        phone: &Phone,
        credential: &[u8],
        signed_at: u64,
    ) -> Result<RenewalRequest, TransitError> {
        let mut request = RenewalRequest {
            credential: crate::hex::encode(credential),
            signed_at,
            proof: String::new(),
        };
        request.proof = crate::hex::encode(&phone.prove_order(&request.proof_message())?);
        Ok(request)
    }

    /// The renewal tag, then the credential in lower-case hex and `signed_at`, one per line.
    pub fn proof_message(&self) -> Vec<u8> {
        let mut m = crate::transit::wire::RENEW_TAG.to_vec();
        m.extend_from_slice(
            format!(
                "\n{}\n{}",
                self.credential.to_ascii_lowercase(),
                self.signed_at
            )
            .as_bytes(),
        );
        m
    }
}

/// Renew a credential this long before it ends: earlier than the phone's expiry warning
/// (a day), so a rider who syncs daily never sees one.
pub const RENEW_BEFORE_SECS: u64 = 48 * 3600;

/// What became of one credential's renewal.
#[derive(Debug)]
pub struct Renewal {
    /// The card whose credential it was.
    pub card_id: u64,
    /// The new credential's fields, or why the backend would not renew it.
    pub outcome: Result<CredentialFields, BackendError>,
}

/// A credential for the phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialResponse {
    /// The 124-byte signed credential, hex.
    pub credential: String,
    /// The card (account) number in it.
    pub card_id: u64,
    /// What it cost, VND.
    pub price_vnd: u64,
    /// Pass validity, unix seconds.
    pub pass_valid_from: u32,
    /// Pass validity, unix seconds.
    pub pass_valid_until: u32,
    /// Whether it is a dependant's credential (held beside the owner's).
    #[serde(default)]
    pub dependant: bool,
}

/// Where a sales order stands (`OrderResponse::status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Waiting for the payment provider: open `payment_url`, then collect.
    AwaitingPayment,
    /// Paid (or free): collect the credential, or the credit is on the card.
    Paid,
    /// The payment failed: order again.
    Failed,
    /// The buyer cancelled the payment.
    Cancelled,
    /// The buyer's bank took the money and the payment provider holds it for review: do not
    /// pay again; the pass comes once it is confirmed, or the money goes back.
    UnderReview,
    /// Refunded: the pass is cancelled.
    Refunded,
}

/// `POST /v1/transit/orders` and `POST /v1/transit/topups`: an order with its price; the pass
/// (or credit) exists once the payment provider confirms it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderResponse {
    /// The order's id (also the payment provider's order reference).
    pub order_id: String,
    /// Where it stands.
    pub status: OrderStatus,
    /// The price, VND.
    pub price_vnd: u64,
    /// Where the buyer pays (the provider's checkout); empty once paid or at no price.
    #[serde(default)]
    pub payment_url: String,
    /// The card it is for.
    pub card_id: u64,
    /// The pass's validity (0 for a top-up), unix seconds.
    #[serde(default)]
    pub pass_valid_from: u32,
    /// The pass's validity (0 for a top-up), unix seconds.
    #[serde(default)]
    pub pass_valid_until: u32,
    /// Whether the pass is a dependant's, held on the buyer's phone.
    #[serde(default)]
    pub dependant: bool,
    /// When the provider stops taking payment for it (unix seconds).
    #[serde(default)]
    pub expires_at: u64,
}

/// `POST /v1/transit/topups`: prepaid credit for pay-as-you-go fares on the caller's card, or
/// on a dependant's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopUpRequest {
    /// VND, between [`MIN_TOP_UP_VND`] and [`MAX_TOP_UP_VND`].
    #[cfg_attr(feature = "openapi", schema(minimum = 10000, maximum = 2000000))]
    pub amount_vnd: u64,
    /// The card to credit: the caller's when absent, or a dependant's whose guardianship the
    /// operator recorded for the caller's account (else 403 `not_guardian`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_id: Option<u64>,
}

/// The smallest top-up, VND.
pub const MIN_TOP_UP_VND: u64 = 10_000;
/// The largest top-up, VND.
pub const MAX_TOP_UP_VND: u64 = 2_000_000;

/// `GET /v1/transit/balance`: the caller's prepaid balance (or a dependant card's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BalanceResponse {
    /// The card.
    pub card_id: u64,
    /// Credit bought minus fares charged, VND (negative: owed).
    pub balance_vnd: i64,
    /// How far below zero the balance may go before the card is denied, VND.
    pub credit_limit_vnd: u64,
    /// Whether the card is denied for the balance owed (a top-up lifts it).
    pub denied: bool,
}

/// What a purchase made: the order, and the installed credential's fields once it was paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// The order as the backend answered it.
    pub order: OrderResponse,
    /// The credential installed, when the order was paid at once and collected; `None` while
    /// it awaits payment, or when its collection failed (collect it with the order's id).
    pub credential: Option<CredentialFields>,
}

/// `GET /v1/transit/feed`: what an offline validator needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidatorFeed {
    /// Issuer keys to trust.
    pub issuer_keys: Vec<super::issuer::TrustedIssuerKey>,
    /// The signed deny list, hex.
    pub deny_list: String,
    /// Pay-as-you-go cards that reached today's cap (Hanoi day): their rides today are free,
    /// and validators say so. Informational: charges never depend on it.
    #[serde(default)]
    pub capped_cards: Vec<u64>,
    /// When today ends in Hanoi (unix seconds): the capped cards stop being shown as such.
    #[serde(default)]
    pub capped_until: u64,
}

/// Taps per upload (the server takes at most 10,000).
pub const TAP_UPLOAD_CHUNK: usize = 5_000;

/// `POST /v1/transit/taps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TapUpload {
    /// The validator's taps, as exported.
    #[cfg_attr(feature = "openapi", schema(max_items = 10000))]
    pub taps: Vec<super::validator::Tap>,
    /// The validator's log held nothing more when these were exported: a metro entry gate's
    /// entries are then complete up to the export (the entry feed's `complete_until`).
    #[serde(default)]
    pub drained: bool,
    /// Seconds between the export and this upload's sending (the backend dates the export by
    /// its own clock from it).
    #[serde(default)]
    pub exported_secs_ago: u64,
}

/// The answer to a tap upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TapReceipt {
    /// Taps stored now.
    pub stored: u32,
    /// Taps already stored (uploaded before).
    pub duplicates: u32,
    /// Highest tap sequence the upload carried: the validator acknowledges up to it, after it
    /// has moved the `reused` taps.
    pub acknowledged_seq: u64,
    /// Pay-as-you-go fares charged for these taps, VND, after caps.
    pub charged_vnd: u64,
    /// Taps the validator accepted that the backend did not charge: no or forged evidence,
    /// revoked or invalid at the QR's time, or a QR already used (replayed or relayed).
    #[serde(default)]
    pub not_charged: u32,
    /// Fares stored for every tap of the upload, VND: those charged now and those an earlier
    /// upload of the same taps charged (a retry whose first answer was lost reports what the
    /// first would have).
    #[serde(default)]
    pub stored_charged_vnd: u64,
    /// What is stored for each tap of the upload, duplicates included, in upload order.
    #[serde(default)]
    pub taps: Vec<TapOutcome>,
    /// Taps not stored because the backend holds another tap under the same sequence number
    /// from this validator (one restored from a backup, or reinstalled with its token, counts
    /// again from an old number). The validator moves them to numbers from `next_free_seq` on
    /// before it acknowledges, and uploads them again (the library's `upload_and_acknowledge`
    /// does both).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reused: Vec<u64>,
    /// With `reused`: the first sequence number above every tap the backend holds from this
    /// validator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_free_seq: Option<u64>,
}

/// What the backend holds for one uploaded tap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TapOutcome {
    /// The tap's sequence number on its validator.
    pub seq: u64,
    /// The backend's verdict on it (`charged`, `refused_by_validator`, `replayed`, ...).
    pub verdict: String,
    /// The fare stored for it, VND (a metro exit: its journey's fare).
    pub charged_vnd: u64,
    /// Stored by an earlier upload.
    pub duplicate: bool,
}

impl TapReceipt {
    /// Adds `other` (a later part of the same upload) to this sum.
    pub(super) fn absorb(&mut self, other: &TapReceipt) {
        // The backend's counts, summed without trusting them not to overflow.
        self.stored = self.stored.saturating_add(other.stored);
        self.duplicates = self.duplicates.saturating_add(other.duplicates);
        self.acknowledged_seq = self.acknowledged_seq.max(other.acknowledged_seq);
        self.charged_vnd = self.charged_vnd.saturating_add(other.charged_vnd);
        self.not_charged = self.not_charged.saturating_add(other.not_charged);
        self.stored_charged_vnd = self
            .stored_charged_vnd
            .saturating_add(other.stored_charged_vnd);
        self.taps.extend(other.taps.iter().cloned());
        self.reused.extend(other.reused.iter().copied());
        self.next_free_seq = self.next_free_seq.max(other.next_free_seq);
    }
}

/// `POST /v1/transit/inspections`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InspectionUpload {
    /// The inspector's recorded inspections, as exported.
    #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
    pub inspections: Vec<super::inspection::Inspection>,
}

/// The answer to an inspection upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InspectionReceipt {
    /// Inspections stored now.
    pub stored: u32,
    /// Inspections already stored.
    pub duplicates: u32,
    /// Highest sequence the upload carried: the inspector acknowledges up to it, after it has
    /// moved the `reused` inspections.
    pub acknowledged_seq: u64,
    /// Inspections not stored because the backend holds another inspection under the same
    /// number from this inspector (one restored from a backup counts again from an old
    /// number): the inspector moves them to numbers from `next_free_seq` on and uploads them
    /// again (the library's `upload_inspections` does both).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reused: Vec<u64>,
    /// With `reused`: the first number above every inspection stored from this inspector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_free_seq: Option<u64>,
}

/// Inspections per upload request.
pub const INSPECTION_UPLOAD_CHUNK: usize = 1_000;

/// Transit's calls to the backend: purchases, the validator feed and the entry feed, tap and
/// inspection uploads. A view of a [`BackendClient`] (its connection, retries and cancellation),
/// cheap to make for each call: `TransitClient::new(&client).upload_taps(...)`.
#[derive(Clone, Copy)]
pub struct TransitClient<'a> {
    pub(super) backend: &'a BackendClient,
}

impl<'a> TransitClient<'a> {
    /// Transit's calls over `backend`.
    pub fn new(backend: &'a BackendClient) -> TransitClient<'a> {
        TransitClient { backend }
    }
}

impl TransitClient<'_> {
    /// Orders a transit product for this device's phone key (the order must be signed: see
    /// [`CredentialOrder::signed_by`]); returns its price, status and where to pay. Retried
    /// with the same idempotency key, it is the same order.
    pub async fn order(
        self,
        vault: Arc<Vault>,
        order: &CredentialOrder,
    ) -> Result<OrderResponse, BackendError> {
        let body = serde_json::to_vec(order).map_err(|e| BackendError::Protocol {
            detail: e.to_string(),
        })?;
        self.backend
            .request(
                vault,
                Method::POST,
                &format!("{API_PREFIX}/transit/orders"),
                Some(body),
            )
            .await
    }

    /// Where order `order_id` stands (after the buyer paid, or to show its status).
    pub async fn order_status(
        self,
        vault: Arc<Vault>,
        order_id: &str,
    ) -> Result<OrderResponse, BackendError> {
        self.backend
            .request(
                vault,
                Method::GET,
                &format!("{API_PREFIX}/transit/orders/{}", path_segment(order_id)?),
                None,
            )
            .await
    }

    /// The credential of paid order `order_id` (the same one however often it is asked for);
    /// refused with `payment_pending` (retry soon), `payment_under_review` (the money taken and
    /// held by the provider: do not pay again, ask again later), `payment_failed`,
    /// `order_expired` or `pass_cancelled`.
    pub async fn collect(
        self,
        vault: Arc<Vault>,
        order_id: &str,
    ) -> Result<CredentialResponse, BackendError> {
        self.backend
            .request(
                vault,
                Method::POST,
                &format!(
                    "{API_PREFIX}/transit/orders/{}/credential",
                    path_segment(order_id)?
                ),
                Some(b"{}".to_vec()),
            )
            .await
    }

    /// Orders `amount_vnd` of prepaid credit for pay-as-you-go fares on this account's card, or
    /// on dependant card `card_id` (a guardian paying a child's fares, or the debt that denied
    /// its card; another card is refused `not_guardian`, and an answer for another card, an
    /// older backend's, is a protocol error); paid like any order.
    pub async fn top_up(
        self,
        vault: Arc<Vault>,
        amount_vnd: u64,
        card_id: Option<u64>,
    ) -> Result<OrderResponse, BackendError> {
        let request = TopUpRequest {
            amount_vnd,
            card_id,
        };
        let body = serde_json::to_vec(&request).map_err(|e| BackendError::Protocol {
            detail: e.to_string(),
        })?;
        let order: OrderResponse = self
            .backend
            .request(
                vault,
                Method::POST,
                &format!("{API_PREFIX}/transit/topups"),
                Some(body),
            )
            .await?;
        for_card(order, card_id, |o| o.card_id)
    }

    /// This account's prepaid balance, or dependant card `card_id`'s (refused and checked as
    /// [`TransitClient::top_up`]).
    pub async fn balance(
        self,
        vault: Arc<Vault>,
        card_id: Option<u64>,
    ) -> Result<BalanceResponse, BackendError> {
        let query = card_id.map_or(String::new(), |card| format!("?card_id={card}"));
        let balance: BalanceResponse = self
            .backend
            .request(
                vault,
                Method::GET,
                &format!("{API_PREFIX}/transit/balance{query}"),
                None,
            )
            .await?;
        for_card(balance, card_id, |b| b.card_id)
    }

    /// What an offline validator needs: issuer keys and the signed deny list. A validator
    /// whose token expires within [`VALIDATOR_TOKEN_RENEW_WITHIN_SECS`] renews it first.
    pub async fn validator_feed(self, vault: Arc<Vault>) -> Result<ValidatorFeed, BackendError> {
        self.renew_validator_token_if_due(vault.clone()).await?;
        self.backend
            .request(
                vault,
                Method::GET,
                &format!("{API_PREFIX}/transit/feed"),
                None,
            )
            .await
    }

    /// Renews the validator's token when it expires soon (or its expiry is not known). The new
    /// token is stored before it is used; the backend honours the old one for days after, so a
    /// lost answer or a crash before the store costs nothing: the next call renews again.
    async fn renew_validator_token_if_due(&self, vault: Arc<Vault>) -> Result<(), BackendError> {
        // One renewal at a time in this process: two at once would both present the old
        // token, the second would replace the first's new token, and storing them in the
        // wrong order would keep the replaced one (which the backend takes for a copy).
        static RENEWING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one = RENEWING.lock().await;
        let v = vault.clone();
        let registration = blocking(move || BackendClient::registration(&v))
            .await?
            .ok_or(BackendError::NotRegistered)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if registration
            .token_expires_at
            .is_some_and(|t| t > now + VALIDATOR_TOKEN_RENEW_WITHIN_SECS)
        {
            return Ok(());
        }
        let renewed: crate::net::protocol::ValidatorTokenResponse = self
            .backend
            .request(
                vault.clone(),
                Method::POST,
                &format!("{API_PREFIX}/transit/validators/token"),
                None,
            )
            .await?;
        let stored = crate::net::Registration {
            token: renewed.token,
            token_expires_at: Some(renewed.expires_at),
            ..registration
        };
        blocking(move || Ok(vault.put_doc(&stored)?)).await
    }

    /// The metro entries still open on the network after `cursor`, for an exit gate.
    pub async fn entry_feed(
        self,
        vault: Arc<Vault>,
        cursor: u64,
    ) -> Result<super::metro::EntryFeed, BackendError> {
        self.backend
            .request(
                vault,
                Method::GET,
                &format!("{API_PREFIX}/transit/entries?after={cursor}"),
                None,
            )
            .await
    }

    /// The cards inside the network now, as keyed tags, for an entry gate.
    pub async fn inside_feed(
        self,
        vault: Arc<Vault>,
    ) -> Result<super::metro::InsideFeed, BackendError> {
        self.backend
            .request(
                vault,
                Method::GET,
                &format!("{API_PREFIX}/transit/inside"),
                None,
            )
            .await
    }

    /// Brings a gate's feed up to date at device time `now`. An exit gate reads the entry feed
    /// from its cursor, a page at a time, and applies each page (durably, with the cursor);
    /// returns how many entries are open. An entry gate takes in the cards inside the network;
    /// returns how many are inside. Call it every few seconds while online.
    pub async fn refresh_entries(
        self,
        vault: Arc<Vault>,
        gate: Arc<Mutex<Validator>>,
        now: u64,
    ) -> Result<usize, BackendError> {
        if gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_entry_gate()
        {
            let feed = self.inside_feed(vault).await?;
            return blocking(move || {
                gate.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .apply_inside_feed(&feed, now)
                    .map_err(device_side)
            })
            .await;
        }
        loop {
            let cursor = gate
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry_feed_status(now)
                .cursor;
            let feed = self.entry_feed(vault.clone(), cursor).await?;
            let more = feed.complete_until == 0 && !feed.entries.is_empty();
            let g = gate.clone();
            let open = blocking(move || {
                g.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .apply_entry_feed(&feed, now)
                    .map_err(device_side)
            })
            .await?;
            if !more {
                return Ok(open);
            }
        }
    }
}

/// A transit failure met while finishing a backend call on the device: the vault's own, or
/// what the backend sent that this device cannot use.
pub(super) fn device_side(e: TransitError) -> BackendError {
    match e {
        TransitError::Vault(v) => BackendError::Vault(v),
        other => BackendError::Protocol {
            detail: other.to_string(),
        },
    }
}

/// An id as one URL path segment, or a protocol error for one that cannot be (a slash, a
/// query).
fn path_segment(id: &str) -> Result<&str, BackendError> {
    if !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(id)
    } else {
        Err(BackendError::Protocol {
            detail: format!("{id:?} is not an order id"),
        })
    }
}

fn unhex(text: &str) -> Result<Vec<u8>, BackendError> {
    crate::hex::decode(text).ok_or_else(|| BackendError::Protocol {
        detail: "the backend sent a credential that is not hex".into(),
    })
}

/// `answer` if it is for the card asked for: a backend that does not know dependants' cards
/// answers for the caller's own, and its top-up must not be paid as the dependant's.
fn for_card<T>(answer: T, asked: Option<u64>, card_of: fn(&T) -> u64) -> Result<T, BackendError> {
    match asked {
        Some(card) if card_of(&answer) != card => Err(BackendError::Protocol {
            detail: "the backend answered for another card: it cannot serve a dependant's".into(),
        }),
        _ => Ok(answer),
    }
}

impl TransitClient<'_> {
    /// Orders `order`'s product for `phone`'s device key (the order is signed by the phone)
    /// and, when it is paid at once (a free product, a stored payment method), collects and
    /// installs its credential (as the owner's, or as a dependant's when the order names one).
    /// Otherwise the buyer pays at the answer's `payment_url` and the app calls
    /// [`TransitClient::collect_and_install`]. The order is made once however often its
    /// request is retried. A paid order whose collection then fails on the network (the
    /// connection dropped, an answer cut short) is still answered, without its credential, so
    /// the app keeps its id and collects it later; any other failure is the error.
    pub async fn buy_and_install(
        self,
        vault: Arc<Vault>,
        phone: Arc<Phone>,
        order: CredentialOrder,
    ) -> Result<Purchase, BackendError> {
        let order = order
            .signed_by(&phone, crate::net::now_secs())
            .map_err(device_side)?;
        let placed = self.order(vault.clone(), &order).await?;
        let credential = match placed.status {
            OrderStatus::Paid => {
                match self
                    .collect_and_install(vault, phone, &placed.order_id)
                    .await
                {
                    Ok(fields) => Some(fields),
                    // The network, not the order: collected later by its id.
                    Err(BackendError::Unavailable { .. } | BackendError::Protocol { .. }) => {
                        log::warn!("a paid order could not be collected yet");
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => None,
        };
        Ok(Purchase {
            order: placed,
            credential,
        })
    }

    /// Collects paid order `order_id`'s credential and installs it on `phone` (beside the
    /// owner's when it is a dependant's); returns its fields. A credential the phone refuses
    /// is reported, not installed.
    pub async fn collect_and_install(
        self,
        vault: Arc<Vault>,
        phone: Arc<Phone>,
        order_id: &str,
    ) -> Result<CredentialFields, BackendError> {
        let bought = self.collect(vault, order_id).await?;
        let credential = unhex(&bought.credential)?;
        blocking(move || {
            if bought.dependant {
                phone.install_dependant_credential(&credential)
            } else {
                phone.install_credential(&credential)
            }
            .map_err(device_side)
        })
        .await
    }

    /// Renews the credential `phone` holds for `card_id` (free, while its pass holds) and
    /// installs the new one; returns its fields. Refused with a typed error once the pass has
    /// ended (`pass_ended`), was cancelled, or its entitlement or guardianship was withdrawn,
    /// or for a revoked device.
    pub async fn renew(
        self,
        vault: Arc<Vault>,
        phone: Arc<Phone>,
        card_id: u64,
    ) -> Result<CredentialFields, BackendError> {
        let (held, _, owner) = phone
            .held_credential(card_id)
            .ok_or_else(|| device_side(TransitError::NoCredential))?;
        self.renew_credential(vault, phone, held, owner).await
    }

    /// Renews `held`, a credential of `phone` (the owner's when `owner`), and installs the
    /// answer.
    async fn renew_credential(
        self,
        vault: Arc<Vault>,
        phone: Arc<Phone>,
        held: Vec<u8>,
        owner: bool,
    ) -> Result<CredentialFields, BackendError> {
        let request =
            RenewalRequest::signed_by(&phone, &held, phone.corrected_now(crate::net::now_secs()))
                .map_err(device_side)?;
        let body = serde_json::to_vec(&request).map_err(|e| BackendError::Protocol {
            detail: e.to_string(),
        })?;
        let renewed: CredentialResponse = self
            .backend
            .request(
                vault,
                Method::POST,
                &format!("{API_PREFIX}/transit/credentials/renew"),
                Some(body),
            )
            .await?;
        let credential = unhex(&renewed.credential)?;
        blocking(move || {
            phone
                .install_renewed(&credential, &held, owner)
                .map_err(device_side)
        })
        .await
    }

    /// Renews every credential `phone` holds that ends within `within_secs` of `now` (the
    /// device's time, corrected by the phone's clock offset as its QRs are, since `not_after`
    /// is on the backend's clock) ([`RENEW_BEFORE_SECS`] unless the app says otherwise; one
    /// call for the app, after each sync); returns what became of each. A refused renewal leaves the credential as it was;
    /// the others go on.
    pub async fn renew_due(
        self,
        vault: Arc<Vault>,
        phone: Arc<Phone>,
        now: u64,
        within_secs: u64,
    ) -> Vec<Renewal> {
        // Passes bought ahead that have started are put in place first; a failure leaves
        // them waiting, renewed below as what they are.
        let _ = phone.start_due_passes(now);
        let now = phone.corrected_now(now);
        let soon = now.saturating_add(within_secs);
        let due: Vec<u64> = phone
            .credentials()
            .into_iter()
            .filter(|f| u64::from(f.not_after) < soon)
            .map(|f| f.card_id)
            .collect();
        // A pass bought ahead is renewed once it starts within the window, so that it holds a
        // live credential when it does (bought a week ahead, its first one has lapsed).
        let ahead: Vec<CredentialFields> = phone
            .upcoming_credentials()
            .into_iter()
            .filter(|f| u64::from(f.pass_valid_from) < soon && u64::from(f.not_after) < soon)
            .collect();
        let mut renewals = Vec::with_capacity(due.len() + ahead.len());
        for card_id in due {
            let outcome = self.renew(vault.clone(), phone.clone(), card_id).await;
            renewals.push(Renewal { card_id, outcome });
        }
        for pass in ahead {
            let card_id = pass.card_id;
            let outcome = match phone.upcoming_credential(&pass) {
                Some((bytes, _, owner)) => {
                    self.renew_credential(vault.clone(), phone.clone(), bytes, owner)
                        .await
                }
                None => Err(device_side(TransitError::NoCredential)),
            };
            renewals.push(Renewal { card_id, outcome });
        }
        renewals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_for_another_card_is_refused_not_taken_for_the_dependants() {
        let card = |b: &BalanceResponse| b.card_id;
        let own = BalanceResponse {
            card_id: 7,
            balance_vnd: 0,
            credit_limit_vnd: 20_000,
            denied: false,
        };
        assert_eq!(for_card(own.clone(), None, card), Ok(own.clone()));
        assert_eq!(for_card(own.clone(), Some(7), card), Ok(own.clone()));
        assert!(matches!(
            for_card(own, Some(8), card),
            Err(BackendError::Protocol { .. })
        ));
    }
}
