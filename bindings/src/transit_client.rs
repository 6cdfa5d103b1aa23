//! Transit's calls to the backend as their own object: a purchase and renewals for a phone,
//! the validator feed and the entry feed for validators and gates, tap and inspection uploads.
//! It shares a `SyncClient`'s connection, retries and shutdown.

use std::sync::Arc;

use thudo_core::sync::client as core;
use thudo_core::transit::backend::TransitClient as CoreTransit;

use crate::cancel::{guard, CancelToken};
use crate::signed;
use crate::sync::{
    unhex, InspectionUploadReceipt, SyncClient, SyncError, TapUploadReceipt, ValidatorFeed,
};
use crate::transit::CredentialInfo;
use thudo_core::transit::backend::{OrderResponse, OrderStatus as TransitOrderStatus};
use thudo_core::transit::{Category as PassengerCategory, Product as TransitProduct};

use crate::transit::{TransitPhone, TransitValidator};
use crate::vault::Vault;

/// Where a transit order stands (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum TransitOrderStatus {
    /// Waiting for the payment: open `paymentUrl`, then `collectTransitOrder`.
    AwaitingPayment,
    /// Paid (or free): the credential is collected (or the credit is on the card).
    Paid,
    /// The payment failed: order again.
    Failed,
    /// The buyer cancelled the payment.
    Cancelled,
    /// The buyer's bank took the money and the payment provider holds it for review: tell
    /// the buyer not to pay again; the pass comes once it is confirmed, or the money goes back.
    UnderReview,
    /// Refunded: the pass is cancelled.
    Refunded,
}

/// A transit order: a pass or prepaid credit, with its price and where to pay.
#[derive(Debug, Clone, uniffi::Record)]
pub struct TransitOrder {
    /// The order's id (give it to `collectTransitOrder` and `transitOrder`).
    pub order_id: String,
    /// Where it stands.
    pub status: TransitOrderStatus,
    /// The price, VND.
    pub price_vnd: i64,
    /// The payment provider's checkout to open for the buyer; empty once paid.
    pub payment_url: String,
    /// The card it is for.
    pub card_id: i64,
    /// Pass validity (0 for a top-up), unix seconds.
    pub pass_valid_from: i64,
    /// Pass validity (0 for a top-up), unix seconds.
    pub pass_valid_until: i64,
    /// When the provider stops taking payment (unix seconds).
    pub expires_at: i64,
    /// The credential installed, when the order was paid at once (a free product) and
    /// collected; `null` while it awaits payment, or when its collection failed after payment
    /// (a dropped network): then call `collectTransitOrder` with `orderId`.
    pub credential: Option<CredentialInfo>,
}

impl TransitOrder {
    fn from_core(o: OrderResponse, credential: Option<CredentialInfo>) -> Self {
        TransitOrder {
            order_id: o.order_id,
            status: o.status,
            price_vnd: signed(o.price_vnd),
            payment_url: o.payment_url,
            card_id: crate::card_id_to_host(o.card_id),
            pass_valid_from: o.pass_valid_from.into(),
            pass_valid_until: o.pass_valid_until.into(),
            expires_at: signed(o.expires_at),
            credential,
        }
    }
}

/// A card's prepaid balance for pay-as-you-go fares.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TransitBalance {
    /// The card.
    pub card_id: i64,
    /// Credit bought minus fares charged, VND (negative: owed).
    pub balance_vnd: i64,
    /// How far below zero it may go before the card is denied, VND.
    pub credit_limit_vnd: i64,
    /// Denied for the balance owed: a top-up lifts it.
    pub denied: bool,
}

/// What became of one credential's renewal (`TransitClient.renewCredentials`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CredentialRenewal {
    /// The card whose credential it was.
    pub card_id: i64,
    /// The new credential's last second (unix), when renewed.
    pub not_after: Option<i64>,
    /// Why it was not renewed, when it was not: the server's code when it refused
    /// (`pass_ended`, `pass_cancelled`, `not_entitled`, `not_guardian`), else the library's
    /// (`sync.unavailable`, ...).
    pub refused: Option<String>,
}

/// Transit's calls over a [`SyncClient`]'s connection (made with `TransitClient(syncClient)`):
/// what a rider's phone, a validator, a gate and an inspector ask of the backend.
#[derive(uniffi::Object)]
pub struct TransitClient {
    inner: Arc<core::BackendClient>,
}

#[uniffi::export(async_runtime = "tokio")]
impl TransitClient {
    /// Transit's calls over `client`'s connection (its shutdown stops them too).
    #[uniffi::constructor]
    pub fn new(client: Arc<SyncClient>) -> Arc<Self> {
        Arc::new(TransitClient {
            inner: client.inner.clone(),
        })
    }

    /// Orders a product for `phone`'s device key. `month` is `YYYY-MM` for monthly passes.
    /// With `dependant_citizen_id`, the pass is a dependant's (a child's, an elderly parent's:
    /// the operator records guardianship, else `not_guardian`), on their own card with their
    /// entitlements, held on this phone beside the owner's (`TransitPhone.currentQrFor`).
    /// A free product is paid at once and its credential installed (`credential`); otherwise
    /// the app opens `paymentUrl` for the buyer and then calls `collectTransitOrder`. An order
    /// is not cancellable: once asked for, it runs to its end even if the caller stops waiting.
    #[uniffi::method(default(dependant_citizen_id = None))]
    #[allow(clippy::too_many_arguments)] // the order's fields, each with its own meaning
    pub async fn buy_transit_product(
        &self,
        vault: Arc<Vault>,
        phone: Arc<TransitPhone>,
        product: TransitProduct,
        category: PassengerCategory,
        route: i32,
        month: String,
        dependant_citizen_id: Option<String>,
    ) -> Result<TransitOrder, SyncError> {
        let route = crate::fit("route", route.into())
            .map_err(|reason| SyncError::InvalidArgument { reason })?;
        let order = thudo_core::transit::backend::CredentialOrder {
            route,
            month,
            dependant: dependant_citizen_id,
            ..thudo_core::transit::backend::CredentialOrder::new(product, category)
        };
        let client = self.inner.clone();
        let (vault, phone) = (vault.core(), phone.inner.clone());
        let r = tokio::spawn(async move {
            CoreTransit::new(&client)
                .buy_and_install(vault, phone, order)
                .await
        })
        .await
        .map_err(|e| SyncError::Internal {
            reason: format!("the purchase task failed: {e}"),
        })??;
        Ok(TransitOrder::from_core(
            r.order,
            r.credential.map(Into::into),
        ))
    }

    /// Collects paid order `order_id`'s credential and installs it on `phone` (the phone that
    /// ordered it); the same credential however often it is called. Refused with the server's
    /// code in `SyncError.Refused`: `payment_pending` (retryable: the provider has not
    /// confirmed yet), `payment_under_review` (the money taken and held by the provider: tell
    /// the buyer not to pay again, ask again later), `payment_failed`, `order_expired`,
    /// `pass_cancelled`.
    #[uniffi::method(default(cancel = None))]
    pub async fn collect_transit_order(
        &self,
        vault: Arc<Vault>,
        phone: Arc<TransitPhone>,
        order_id: String,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<CredentialInfo, SyncError> {
        let (vault, phone) = (vault.core(), phone.inner.clone());
        let collect = CoreTransit::new(&self.inner).collect_and_install(vault, phone, &order_id);
        Ok(guard(cancel).run(collect).await?.into())
    }

    /// Where order `order_id` stands (its status after the buyer paid).
    #[uniffi::method(default(cancel = None))]
    pub async fn transit_order(
        &self,
        vault: Arc<Vault>,
        order_id: String,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<TransitOrder, SyncError> {
        let order = CoreTransit::new(&self.inner).order_status(vault.core(), &order_id);
        Ok(TransitOrder::from_core(
            guard(cancel).run(order).await?,
            None,
        ))
    }

    /// Orders `amount_vnd` (10,000 to 2,000,000) of prepaid credit for pay-as-you-go fares on
    /// this account's card, or on dependant card `card_id` (a child's whose guardianship the
    /// operator recorded, else `not_guardian`; an older backend answering for the account's own
    /// card instead: `SyncError.Protocol`); paid like any order (`paymentUrl`). Once paid, a
    /// card denied for the balance it owed is lifted on the next deny list.
    #[uniffi::method(default(card_id = None, cancel = None))]
    pub async fn top_up(
        &self,
        vault: Arc<Vault>,
        amount_vnd: i64,
        card_id: Option<i64>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<TransitOrder, SyncError> {
        let amount: u64 = crate::fit("amount_vnd", amount_vnd)
            .map_err(|reason| SyncError::InvalidArgument { reason })?;
        let card = card_id.map(crate::card_id_from_host);
        let order = CoreTransit::new(&self.inner).top_up(vault.core(), amount, card);
        Ok(TransitOrder::from_core(
            guard(cancel).run(order).await?,
            None,
        ))
    }

    /// This account's prepaid balance, or dependant card `card_id`'s (a card the account holds
    /// no guardianship of: `not_guardian`; an older backend answering for the account's own
    /// card instead: `SyncError.Protocol`).
    #[uniffi::method(default(card_id = None, cancel = None))]
    pub async fn transit_balance(
        &self,
        vault: Arc<Vault>,
        card_id: Option<i64>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<TransitBalance, SyncError> {
        let card = card_id.map(crate::card_id_from_host);
        let b = guard(cancel)
            .run(CoreTransit::new(&self.inner).balance(vault.core(), card))
            .await?;
        Ok(TransitBalance {
            card_id: crate::card_id_to_host(b.card_id),
            balance_vnd: b.balance_vnd,
            credit_limit_vnd: signed(b.credit_limit_vnd),
            denied: b.denied,
        })
    }

    /// Renews, free, every credential `phone` holds that ends within `within_secs` (48 hours
    /// by default; the owner's and dependants'), while their passes hold: call it after each
    /// sync, and a rider who is online at least every three days never sees a credential end.
    /// Returns what became of each; a refused renewal (the pass ended, its entitlement or
    /// guardianship was withdrawn) leaves that credential as it was and carries the server's
    /// code (`pass_ended`, ...).
    #[uniffi::method(default(within_secs = 172800, cancel = None))]
    pub async fn renew_credentials(
        &self,
        vault: Arc<Vault>,
        phone: Arc<TransitPhone>,
        within_secs: i64,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Vec<CredentialRenewal>, SyncError> {
        let within: u64 = crate::fit("within_secs", within_secs)
            .map_err(|reason| SyncError::InvalidArgument { reason })?;
        let (vault, phone) = (vault.core(), phone.inner.clone());
        let renewals = guard(cancel)
            .run(async {
                Ok(CoreTransit::new(&self.inner)
                    .renew_due(vault, phone, crate::unix_now(), within)
                    .await)
            })
            .await?;
        Ok(renewals
            .into_iter()
            .map(|r| {
                let (not_after, refused) = match r.outcome {
                    Ok(fields) => (Some(i64::from(fields.not_after)), None),
                    // An answer without an error body keeps the code it always had.
                    Err(core::BackendError::Refused { wire_code, .. }) if wire_code.is_empty() => {
                        (None, Some("http_error".to_owned()))
                    }
                    Err(core::BackendError::Refused { wire_code, .. }) => (None, Some(wire_code)),
                    Err(core::BackendError::NotEntitled { .. }) => {
                        (None, Some("not_entitled".to_owned()))
                    }
                    Err(e) => (None, Some(SyncError::from(e).code())),
                };
                CredentialRenewal {
                    card_id: crate::card_id_to_host(r.card_id),
                    not_after,
                    refused,
                }
            })
            .collect())
    }

    /// Issuer keys and the signed deny list for an offline validator. `cancel` stops the call
    /// alone.
    #[uniffi::method(default(cancel = None))]
    pub async fn validator_feed(
        &self,
        vault: Arc<Vault>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<ValidatorFeed, SyncError> {
        let feed = guard(cancel)
            .run(CoreTransit::new(&self.inner).validator_feed(vault.core()))
            .await?;
        Ok(ValidatorFeed {
            issuer_keys: feed.issuer_keys.into_iter().map(Into::into).collect(),
            deny_list: crate::Bytes(unhex(&feed.deny_list)?),
            capped_cards: feed
                .capped_cards
                .into_iter()
                .map(crate::card_id_to_host)
                .collect(),
            capped_until: signed(feed.capped_until),
        })
    }

    /// Uploads the validator's tap log an upload's worth at a time (the log is read page by
    /// page, never whole) and acknowledges what the server stored after each; stops when the
    /// log is empty. A failure midway loses nothing: the rest goes next time. `cancel` stops
    /// the upload alone; taps the server stored but this validator did not yet acknowledge are
    /// sent again next time and counted as duplicates.
    #[uniffi::method(default(cancel = None))]
    pub async fn upload_taps(
        &self,
        vault: Arc<Vault>,
        validator: Arc<TransitValidator>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<TapUploadReceipt, SyncError> {
        let upload = CoreTransit::new(&self.inner)
            .upload_and_acknowledge(vault.core(), validator.inner.clone());
        Ok(guard(cancel).run(upload).await?.into())
    }

    /// Brings a metro gate's feed up to date; call it every few seconds while online. An exit
    /// gate reads the entries accepted at every gate of the network (each verified there) and
    /// returns how many are open. An entry gate reads the cards inside the network (as tags
    /// only it can test against a scanned card) and returns how many there are: while exits
    /// are known up to a minute ago, a card already inside is refused (`ALREADY_INSIDE`).
    /// Every gate should also `uploadTaps` every few seconds, even with nothing to send: an
    /// entry gate's uploads tell exit gates that the entries are complete, and an exit gate's
    /// tell entry gates that the exits are.
    #[uniffi::method(default(cancel = None))]
    pub async fn refresh_entries(
        &self,
        vault: Arc<Vault>,
        gate: Arc<TransitValidator>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<i64, SyncError> {
        let refresh = CoreTransit::new(&self.inner).refresh_entries(
            vault.core(),
            gate.inner.clone(),
            crate::unix_now(),
        );
        Ok(guard(cancel).run(refresh).await? as i64)
    }

    /// Uploads the inspections `inspector` recorded (an inspector's device, enrolled with an
    /// inspector's code) and acknowledges what the backend stored; the backend verifies each
    /// scan again. Inspections under numbers the backend holds for others (an inspector
    /// restored from a backup) are renumbered and uploaded again (`renumbered`).
    #[uniffi::method(default(cancel = None))]
    pub async fn upload_inspections(
        &self,
        vault: Arc<Vault>,
        inspector: Arc<TransitValidator>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<InspectionUploadReceipt, SyncError> {
        let upload =
            CoreTransit::new(&self.inner).upload_inspections(vault.core(), inspector.inner.clone());
        let r = guard(cancel).run(upload).await?;
        Ok(InspectionUploadReceipt {
            stored: r.stored.into(),
            duplicates: r.duplicates.into(),
            acknowledged_seq: signed(r.acknowledged_seq),
            renumbered: signed(r.reused.len()),
        })
    }
}
