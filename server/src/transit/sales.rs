//! Sales: an order with a price, paid through the payment provider; the pass (or prepaid
//! credit) exists once the provider's signed notification confirms the payment, and the
//! credential binding it to the phone is collected after. Every order, payment, failure and
//! refund is a ledger entry; the operator reads each day's reconciliation.

use std::sync::Arc;
use thudo_core::sync::protocol::ErrorBody;
use thudo_core::sync::protocol::ServerErrorCode;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde_json::Value;
use thudo_core::crypto::p256;
use thudo_core::hex;
use thudo_core::sync::protocol::IDEMPOTENCY_KEY_HEADER;
use thudo_core::transit::backend::{
    BalanceResponse, CredentialOrder, CredentialResponse, OrderResponse, OrderStatus as WireStatus,
    TopUpRequest, MAX_TOP_UP_VND, MIN_TOP_UP_VND,
};
use thudo_core::transit::issuer::CredentialRequest;
use thudo_core::transit::Product;

use super::credentials::{
    check_signed, day_window, installs_holder_format, issue_and_record, lifetime, month_window,
};
use super::store::{
    NewOrder, OrderAdmission, OrderPurpose, OrderRecord, OrderStatus, Pass, PaymentRecord,
};
use super::TransitState;
use crate::devices::authenticate;
use crate::devices::store::Device;
use crate::http::{blocking, query_params, random_token, valid_citizen_id, ApiError, ApiResult};
use crate::http::{ClientAddress, JsonBody};
use crate::operators::{Operator, Role};
use crate::payments::vnpay::{Sandbox, SandboxOutcome};
use crate::payments::{
    Acknowledgement, Checkout, Notification, NotificationError, PaymentProvider, PaymentResult,
};
use crate::storage::sha256;

/// How far ahead of its first day a pass is sold (next month's from any day of this one).
pub const MAX_SOLD_AHEAD_SECS: i64 = 32 * 86_400;

/// How long the provider takes payment for an order.
pub const PAYMENT_WINDOW_SECS: i64 = 15 * 60;

/// How often a phone asks again about a payment held for review (the provider's review takes
/// hours, not seconds).
const REVIEW_RETRY_SECS: u64 = 15 * 60;

/// The payment provider and, on a test or demo server, the sandbox gateway.
#[derive(Clone)]
pub struct Payments {
    /// The provider buyers pay through.
    pub provider: Arc<dyn PaymentProvider>,
    /// The sandbox gateway holding the provider's secret: present only on a test or demo
    /// server, where `POST /test/payments/{order}` pays (or declines) an order through it.
    pub sandbox: Option<Arc<Sandbox>>,
    /// Pay every order through the sandbox as soon as it is made (the demo, app tests).
    pub auto_pay: bool,
    /// The provider's query API: orders whose notification never came are asked about there
    /// ([`super::follow_up`]); `None`: not asked (an operator reads the provider's portal).
    pub query_url: Option<String>,
}

impl Payments {
    /// A sandbox provider and its gateway (`auto_pay`: orders are paid when made).
    pub fn sandbox(auto_pay: bool) -> Payments {
        let (sandbox, provider) = Sandbox::pair(
            "https://sandbox.thudo.test/paymentv2/vpcpay.html",
            "https://thudo.test/paid",
        );
        Payments {
            provider: Arc::new(provider),
            sandbox: Some(sandbox),
            auto_pay,
            query_url: None,
        }
    }
}

fn status_on_wire(status: OrderStatus) -> WireStatus {
    match status {
        OrderStatus::AwaitingPayment => WireStatus::AwaitingPayment,
        OrderStatus::Paid => WireStatus::Paid,
        OrderStatus::Failed => WireStatus::Failed,
        OrderStatus::Cancelled => WireStatus::Cancelled,
        OrderStatus::UnderReview => WireStatus::UnderReview,
        OrderStatus::Refunded => WireStatus::Refunded,
    }
}

/// A retried order (its first answer lost, an `Idempotency-Key` sent again) is the same order.
fn order_id(device: &Device, headers: &HeaderMap) -> Result<String, ApiError> {
    match headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .map(|v| v.to_str().unwrap_or(""))
    {
        None => Ok(format!("o-{}", &random_token()?[..24])),
        Some(k)
            if (1..=64).contains(&k.len())
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            let digest = sha256(format!("{}\n{k}", device.id).as_bytes());
            Ok(format!("o-{}", &hex::encode(&digest)[..24]))
        }
        Some(_) => Err(ApiError::bad(
            "idempotency-key must be 1 to 64 letters, digits or '-'",
        )),
    }
}

/// The state's local day of `now`.
fn day_of(state: &TransitState, now: i64) -> String {
    state.fares.local_day_and_month(now.max(0) as u64).0
}

/// An order as the buyer sees it.
fn response(
    state: &TransitState,
    record: &OrderRecord,
    buyer: Option<Extension<ClientAddress>>,
) -> OrderResponse {
    let o = &record.order;
    let payment_url = if record.status == OrderStatus::AwaitingPayment {
        let description = match &o.pass {
            Some(p) => format!("Thudo {} {}", crate::storage::code_of(&p.product), o.id),
            None => format!("Thudo top up {}", o.id),
        };
        state.payments.provider.checkout_url(&Checkout {
            order_id: &o.id,
            amount_vnd: o.amount_vnd,
            description: &description,
            created_at: o.created_at,
            expires_at: o.expires_at,
            buyer_ip: buyer.map(|Extension(ClientAddress(ip))| ip),
        })
    } else {
        String::new()
    };
    OrderResponse {
        order_id: o.id.clone(),
        status: status_on_wire(record.status),
        price_vnd: o.amount_vnd,
        payment_url,
        card_id: o.card_id,
        pass_valid_from: o.pass.as_ref().map_or(0, |p| p.valid_from as u32),
        pass_valid_until: o.pass.as_ref().map_or(0, |p| p.valid_until as u32),
        dependant: o.dependant,
        expires_at: o.expires_at.max(0) as u64,
    }
}

/// Whether `retry` asks for what `earlier` (the order under the same key) bought: the same
/// purpose, card, product, category, route, holder, phone key and top-up amount, and a pass
/// starting within a day of it (a pass that starts at once starts when it is asked for; two
/// months' passes start weeks apart).
fn same_purchase(earlier: &NewOrder, retry: &NewOrder) -> bool {
    let same_pass = match (&earlier.pass, &retry.pass) {
        (None, None) => earlier.amount_vnd == retry.amount_vnd,
        (Some(a), Some(b)) => {
            (a.card_id, a.product, a.category, a.route)
                == (b.card_id, b.product, b.category, b.route)
                && (a.valid_from - b.valid_from).abs() <= 86_400
        }
        _ => false,
    };
    same_pass
        && earlier.purpose == retry.purpose
        && earlier.card_id == retry.card_id
        && earlier.dependant == retry.dependant
        && earlier.device_key == retry.device_key
}

/// Stores `order` (or finds it, for a retry) and, on a sandbox that pays at once, pays it.
async fn place(
    state: &TransitState,
    order: NewOrder,
    buyer: Option<Extension<ClientAddress>>,
) -> ApiResult<OrderResponse> {
    let storage = state.storage.clone();
    let id = order.id.clone();
    let day = day_of(state, order.created_at);
    let existing = blocking(move || Ok(storage.order(&id)?)).await?;
    let record = match existing {
        Some(earlier) if earlier.order.account_id != order.account_id => {
            return Err(ApiError::bad("this order id is taken"))
        }
        // A retry asks for the same thing; a key reused for another purchase must not answer
        // with the first order, which the buyer would pay for thinking it the second.
        Some(earlier) if !same_purchase(&earlier.order, &order) => {
            return Err(ApiError::bad(
                "this Idempotency-Key was used for another purchase: send a new key",
            ))
        }
        Some(earlier) => earlier,
        None => {
            let storage = state.storage.clone();
            let made = order.clone();
            let admission = blocking(move || Ok(storage.create_order(&made, &day)?)).await?;
            match admission {
                OrderAdmission::Admitted(_) => {}
                OrderAdmission::TooManyOrders => {
                    return Err(ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        ServerErrorCode::TooManyOrders,
                        "too many orders in the last hour",
                    )
                    .retry_after(600))
                }
                OrderAdmission::CardDenied { reason: Some(_) } => {
                    return Err(ApiError::forbidden(
                        ServerErrorCode::BalanceOwed,
                        "this card owes more than its credit: top it up first",
                    ))
                }
                OrderAdmission::CardDenied { reason: None } => {
                    return Err(ApiError::forbidden(
                        ServerErrorCode::CardDenied,
                        "this card is denied",
                    ))
                }
            }
            let read = || {
                let (storage, id) = (state.storage.clone(), order.id.clone());
                async move {
                    blocking(move || Ok(storage.order(&id)?))
                        .await?
                        .ok_or_else(|| {
                            ApiError::unavailable(ServerErrorCode::Storage, "the order vanished")
                        })
                }
            };
            // Two requests with one key at once: the one that lost the race to store its
            // order reads the other's, which answers it only if it asks the same thing (and
            // before the sandbox pays anything for it).
            let stored = read().await?;
            if !same_purchase(&stored.order, &order) {
                return Err(ApiError::bad(
                    "this Idempotency-Key was used for another purchase: send a new key",
                ));
            }
            if state.payments.auto_pay {
                if let Some(sandbox) = state.payments.sandbox.clone() {
                    let now = chrono::Utc::now().timestamp();
                    let query =
                        sandbox.notification(&order.id, order.amount_vnd, SandboxOutcome::Pay, now);
                    notify(state, &query).await;
                }
                read().await?
            } else {
                stored
            }
        }
    };
    Ok(Json(response(state, &record, buyer)))
}

/// `POST /v1/transit/orders`: orders a product for the caller's card (or a dependant's), in a
/// category the rider is entitled to, bound to the phone key its signature proves. Answers
/// with the price and where to pay; once paid, the credential is collected.
#[utoipa::path(
    post,
    path = "/v1/transit/orders",
    summary = "Order a product for the phone's key: its price and where to pay",
    description = "The pass exists once the payment provider confirms the payment (a product at no price is paid at once); the credential is then collected at /v1/transit/orders/{id}/credential. A category other than standard needs an entitlement in force (403 not_entitled). An Idempotency-Key makes a retried order the same order. 403 card_denied, balance_owed (top up first); 429 too_many_orders.",
    request_body(content = CredentialOrder, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = OrderResponse),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("device" = [])),
)]
pub(crate) async fn create_order(
    State(state): State<TransitState>,
    buyer: Option<Extension<ClientAddress>>,
    headers: HeaderMap,
    JsonBody(order): JsonBody<CredentialOrder>,
) -> ApiResult<OrderResponse> {
    let device = authenticate(&state.devices(), &headers).await?;
    let id = order_id(&device, &headers)?;
    let key = hex::decode(&order.device_public_key)
        .filter(|k| k.len() <= 65)
        .ok_or_else(|| ApiError::bad("device_public_key must be hex"))?;
    let uncompressed = p256::decompress(&key)
        .ok_or_else(|| ApiError::bad("device_public_key is not a P-256 point"))?;
    let now = chrono::Utc::now().timestamp();
    check_signed(
        &order.proof,
        order.signed_at,
        &uncompressed,
        &order.proof_message(),
        now,
    )?;
    // The rider: the buyer, or a dependant the operator recorded as theirs.
    let (rider_account, card_id) = match order.dependant.clone() {
        None => (device.account_id.clone(), device.card_id),
        Some(citizen) => {
            valid_citizen_id(&citizen)?;
            let citizen = state.secrets.citizen(&citizen);
            let storage = state.storage.clone();
            let guardian = device.account_id.clone();
            blocking(move || Ok(storage.dependant_of(&guardian, &citizen)?))
                .await?
                .ok_or_else(|| {
                    ApiError::forbidden(
                        ServerErrorCode::NotGuardian,
                        "the operator holds no guardianship of this citizen for this account",
                    )
                })?
        }
    };
    let now32 = now as u32;
    // Entitled now (else 403 not_entitled), as it must be when the credential is collected.
    lifetime(&state, &rider_account, order.category, now32).await?;
    let (from, until) = match order.product {
        Product::MonthlySingleRoute | Product::MonthlyAllRoutes => {
            month_window(&order.month, state.fares.utc_offset_secs)
                .ok_or_else(|| ApiError::bad("month must be YYYY-MM"))?
        }
        Product::PayAsYouGo | Product::FreePass => (now32 - 60, now32 + 365 * 86_400),
        Product::DayPass => day_window(now32, state.fares.utc_offset_secs)
            .ok_or_else(|| ApiError::bad("no day pass can be sold at this time"))?,
        Product::WeekPass => day_window(now32, state.fares.utc_offset_secs)
            .map(|(from, until)| (from, until + 6 * 86_400))
            .ok_or_else(|| ApiError::bad("no week ticket can be sold at this time"))?,
    };
    // A pass bought ahead needs the entitlement in force when it starts too: paid for a month
    // the entitlement does not reach, it could never be collected nor renewed.
    if from > now32 {
        lifetime(&state, &rider_account, order.category, from).await?;
    }
    if !state.fares.tariff.may_name(order.product, order.route) {
        return Err(ApiError::bad(if order.route == 0 {
            "this product names the route it rides"
        } else {
            "this product names no route"
        }));
    }
    if i64::from(until) < now {
        return Err(ApiError::bad("this pass has already ended"));
    }
    if i64::from(from) > now + MAX_SOLD_AHEAD_SECS {
        return Err(ApiError::bad(
            "a pass is sold at most a month before it starts",
        ));
    }
    // Priced by the tariff in force on its first day: a pass for next month pays next month's
    // fare, whatever the tariff today.
    let price = state
        .fares
        .price(order.product, order.category, order.route, from.max(now32))
        .ok_or_else(|| ApiError::bad("this product is not sold to this category"))?;
    let placed = NewOrder {
        id,
        account_id: device.account_id.clone(),
        device_id: device.id.clone(),
        purpose: OrderPurpose::Pass,
        card_id,
        pass: Some(Pass {
            card_id,
            product: order.product,
            category: order.category,
            route: order.route,
            valid_from: i64::from(from),
            valid_until: i64::from(until),
        }),
        device_key: Some(uncompressed.to_vec()),
        dependant: order.dependant.is_some(),
        amount_vnd: price,
        provider: state.payments.provider.name().to_owned(),
        created_at: now,
        expires_at: now + PAYMENT_WINDOW_SECS,
    };
    place(&state, placed, buyer).await
}

/// The card a top-up or a balance is for: the caller's, or a dependant's the account holds
/// guardianship of (else 403 `not_guardian`).
async fn paying_card(
    state: &TransitState,
    device: &Device,
    card: Option<u64>,
) -> Result<u64, ApiError> {
    let Some(card) = card.filter(|c| *c != device.card_id) else {
        return Ok(device.card_id);
    };
    let storage = state.storage.clone();
    let account = device.account_id.clone();
    blocking(move || Ok(storage.rider_of_card(&account, card)?))
        .await?
        .map(|_| card)
        .ok_or_else(|| {
            ApiError::forbidden(
                ServerErrorCode::NotGuardian,
                "the account holds no guardianship of that card",
            )
        })
}

/// `POST /v1/transit/topups`: prepaid credit for pay-as-you-go fares on the caller's card or
/// a dependant's, paid like any order; a card denied for the balance it owes is lifted once
/// paid.
#[utoipa::path(
    post,
    path = "/v1/transit/topups",
    summary = "Order prepaid credit for pay-as-you-go fares on the caller's card, or on a dependant's (403 not_guardian for another card)",
    request_body(content = TopUpRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = OrderResponse),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("device" = [])),
)]
pub(crate) async fn create_top_up(
    State(state): State<TransitState>,
    buyer: Option<Extension<ClientAddress>>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<TopUpRequest>,
) -> ApiResult<OrderResponse> {
    let device = authenticate(&state.devices(), &headers).await?;
    if !(MIN_TOP_UP_VND..=MAX_TOP_UP_VND).contains(&req.amount_vnd) {
        return Err(ApiError::bad(format!(
            "a top-up is {MIN_TOP_UP_VND} to {MAX_TOP_UP_VND} VND"
        )));
    }
    let card_id = paying_card(&state, &device, req.card_id).await?;
    let now = chrono::Utc::now().timestamp();
    let placed = NewOrder {
        id: order_id(&device, &headers)?,
        account_id: device.account_id.clone(),
        device_id: device.id.clone(),
        purpose: OrderPurpose::TopUp,
        card_id,
        pass: None,
        device_key: None,
        dependant: card_id != device.card_id,
        amount_vnd: req.amount_vnd,
        provider: state.payments.provider.name().to_owned(),
        created_at: now,
        expires_at: now + PAYMENT_WINDOW_SECS,
    };
    place(&state, placed, buyer).await
}

/// The caller's order, or 404 (another account's orders do not exist for it).
async fn own_order(
    state: &TransitState,
    device: &Device,
    id: String,
) -> Result<OrderRecord, ApiError> {
    let storage = state.storage.clone();
    blocking(move || Ok(storage.order(&id)?))
        .await?
        .filter(|o| o.order.account_id == device.account_id)
        .ok_or_else(|| ApiError::not_found("no such order"))
}

/// `GET /v1/transit/orders/{id}`: where the caller's order stands.
#[utoipa::path(
    get,
    path = "/v1/transit/orders/{id}",
    summary = "Where the caller's order stands",
    params(
        ("id" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$"),
    ),
    responses(
        (status = 200, description = "OK", body = OrderResponse),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
    security(("device" = [])),
)]
pub(crate) async fn get_order(
    State(state): State<TransitState>,
    buyer: Option<Extension<ClientAddress>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<OrderResponse> {
    let device = authenticate(&state.devices(), &headers).await?;
    let record = own_order(&state, &device, id).await?;
    Ok(Json(response(&state, &record, buyer)))
}

/// `POST /v1/transit/orders/{id}/credential`: the credential of a paid pass order, for the
/// phone that ordered it (the same one however often it is asked for).
#[utoipa::path(
    post,
    path = "/v1/transit/orders/{id}/credential",
    summary = "The credential of a paid pass order, for the phone that ordered it (the same one on every call)",
    description = "409 payment_pending or payment_under_review (Retry-After), 402 payment_failed, 410 order_expired, 403 pass_cancelled, other_device, not_entitled, device_revoked.",
    params(
        ("id" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$"),
    ),
    responses(
        (status = 200, description = "OK", body = CredentialResponse),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 402, description = "The payment failed (`payment_failed`)", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
        (status = 409, description = "Not paid yet (`payment_pending`), or the money taken and held for the provider's review (`payment_under_review`: do not pay again): ask again after Retry-After", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds"))),
        (status = 410, description = "The order expired unpaid (`order_expired`)", body = ErrorBody),
    ),
    security(("device" = [])),
)]
pub(crate) async fn collect_credential(
    State(state): State<TransitState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<CredentialResponse> {
    let device = authenticate(&state.devices(), &headers).await?;
    let record = own_order(&state, &device, id).await?;
    let order = &record.order;
    if order.device_id != device.id {
        return Err(ApiError::forbidden(
            ServerErrorCode::OtherDevice,
            "the credential is collected by the phone that ordered it",
        ));
    }
    let (Some(pass), Some(key)) = (order.pass.clone(), order.device_key.clone()) else {
        return Err(ApiError::not_found(
            "this order is a top-up: it has no credential",
        ));
    };
    let now = chrono::Utc::now().timestamp();
    match record.status {
        OrderStatus::Paid => {}
        OrderStatus::AwaitingPayment
            if now
                > order
                    .expires_at
                    .saturating_add(super::store::LATE_NOTICE_SECS) =>
        {
            return Err(ApiError::new(
                StatusCode::GONE,
                ServerErrorCode::OrderExpired,
                "the order was not paid in time: order again",
            ))
        }
        OrderStatus::AwaitingPayment => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ServerErrorCode::PaymentPending,
                "the payment is not confirmed yet",
            )
            .retry_after(5))
        }
        OrderStatus::UnderReview => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ServerErrorCode::PaymentUnderReview,
                "the bank took the payment and the provider is reviewing it: do not pay again",
            )
            .retry_after(REVIEW_RETRY_SECS))
        }
        OrderStatus::Failed | OrderStatus::Cancelled => {
            return Err(ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                ServerErrorCode::PaymentFailed,
                "the payment failed or was cancelled: order again",
            ))
        }
        OrderStatus::Refunded => {
            return Err(ApiError::forbidden(
                ServerErrorCode::PassCancelled,
                "the order was refunded and its pass cancelled",
            ))
        }
    }
    let answer = |credential: &[u8]| CredentialResponse {
        credential: hex::encode(credential),
        card_id: pass.card_id,
        price_vnd: order.amount_vnd,
        pass_valid_from: pass.valid_from as u32,
        pass_valid_until: pass.valid_until as u32,
        dependant: order.dependant,
    };
    if let Some(credential) = &record.credential {
        return Ok(Json(answer(credential)));
    }
    let storage = state.storage.clone();
    let (account, card) = (order.account_id.clone(), pass.card_id);
    let rider = blocking(move || Ok(storage.rider_of_card(&account, card)?)).await?;
    let Some(rider) = rider else {
        let refusal = (
            ServerErrorCode::NotGuardian,
            "the guardianship of this card was withdrawn",
        );
        return Err(uncollectable(&state, &order.id, refusal).await);
    };
    let now32 = now as u32;
    let lifetime_secs = match lifetime(&state, &rider.account_id, pass.category, now32).await {
        Err(e) if e.code() == ServerErrorCode::NotEntitled.as_str() => {
            let refusal = (
                ServerErrorCode::NotEntitled,
                "the entitlement this pass needs ended after it was paid",
            );
            return Err(uncollectable(&state, &order.id, refusal).await);
        }
        other => other?,
    };
    let request = CredentialRequest {
        card_id: pass.card_id,
        product: pass.product,
        category: pass.category,
        route: pass.route,
        pass_valid_from: pass.valid_from as u32,
        pass_valid_until: pass.valid_until as u32,
        device_public_key: key,
        lifetime_secs,
        with_holder: rider.with_holder && installs_holder_format(&headers),
    };
    let credential = issue_and_record(&state, &device, &request, None, now32).await?;
    let storage = state.storage.clone();
    let id = order.id.clone();
    let kept = blocking(move || Ok(storage.keep_credential(&id, &credential)?))
        .await?
        .ok_or_else(|| {
            ApiError::forbidden(
                ServerErrorCode::PassCancelled,
                "the order was refunded and its pass cancelled",
            )
        })?;
    Ok(Json(answer(&kept)))
}

/// The refusal of a paid pass that can no longer be collected, its payment returned: the order
/// refunded and the payment listed to return, never kept with nothing to show for it.
async fn uncollectable(
    state: &TransitState,
    order_id: &str,
    (code, why): (ServerErrorCode, &str),
) -> ApiError {
    let storage = state.storage.clone();
    let id = order_id.to_owned();
    let now = chrono::Utc::now().timestamp();
    let day = day_of(state, now);
    match blocking(move || Ok(storage.return_uncollectable(&id, now, &day)?)).await {
        Ok(true) => ApiError::forbidden(
            code,
            &format!("{why}: the order is cancelled and its payment will be returned"),
        ),
        Ok(false) => ApiError::forbidden(code, why),
        Err(e) => e,
    }
}

/// Reads and records a provider's notification; returns what to answer it.
async fn notify(state: &TransitState, query: &str) -> Acknowledgement {
    match state.payments.provider.read_notification(query) {
        Ok(notification) => record_notification(state, notification).await,
        Err(NotificationError::BadSignature) => Acknowledgement::BadSignature,
        Err(NotificationError::Malformed(_) | NotificationError::Refused(_)) => {
            Acknowledgement::Error
        }
    }
}

/// Records a provider's word about a payment (its notification, or its signed answer to a
/// query); returns what to answer it.
pub(crate) async fn record_notification(
    state: &TransitState,
    notification: Notification,
) -> Acknowledgement {
    let now = chrono::Utc::now().timestamp();
    let day = day_of(state, now);
    let storage = state.storage.clone();
    let limit = state.fares.credit_limit_vnd;
    let recorded =
        blocking(move || Ok(storage.record_payment(&notification, limit, now, &day)?)).await;
    match recorded {
        Ok(PaymentRecord::Recorded { .. }) => Acknowledgement::Recorded,
        Ok(PaymentRecord::AlreadyRecorded) => Acknowledgement::AlreadyRecorded,
        Ok(PaymentRecord::UnknownOrder) => Acknowledgement::UnknownOrder,
        Ok(PaymentRecord::WrongAmount) => Acknowledgement::WrongAmount,
        // The provider retries a notification answered with an error.
        Err(_) => Acknowledgement::Error,
    }
}

/// `GET /v1/payments/{provider}/notify`: the provider's server-to-server notification (its
/// signature is its authentication). Always 200 with the body the provider expects.
#[utoipa::path(
    get,
    path = "/v1/payments/{provider}/notify",
    summary = "The payment provider's signed server-to-server notification (VNPAY IPN: vnp_ parameters, HMAC-SHA512). Always 200 with the provider's acknowledgement: RspCode 00 recorded, 02 already recorded, 01 unknown order, 04 wrong amount, 97 bad signature, 99 error (the provider retries).",
    params(
        ("provider" = String, Path, pattern = "^vnpay$"),
    ),
    responses(
        (status = 200, description = "OK", body = crate::payments::vnpay::IpnAnswer),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
)]
pub(crate) async fn provider_notification(
    State(state): State<TransitState>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    if provider != state.payments.provider.name() {
        return Err(ApiError::not_found("no such payment provider"));
    }
    let ack = notify(&state, query.as_deref().unwrap_or("")).await;
    Ok(Json(state.payments.provider.acknowledge(ack)))
}

/// Settles order `order_id` through the sandbox gateway as the buyer chose: the gateway signs
/// its notification and this server reads and records it as it would the provider's. `None`
/// without a sandbox or such an order.
pub async fn settle_in_sandbox(
    state: &TransitState,
    order_id: &str,
    outcome: SandboxOutcome,
) -> Result<Option<Acknowledgement>, ApiError> {
    let Some(sandbox) = state.payments.sandbox.clone() else {
        return Ok(None);
    };
    let storage = state.storage.clone();
    let lookup = order_id.to_owned();
    let Some(order) = blocking(move || Ok(storage.order(&lookup)?)).await? else {
        return Ok(None);
    };
    let now = chrono::Utc::now().timestamp();
    let query = sandbox.notification(order_id, order.order.amount_vnd, outcome, now);
    Ok(Some(notify(state, &query).await))
}

/// `POST /test/payments/{order}?outcome=pay|decline|cancel|review` (a test or demo server only): the
/// sandbox gateway settles the order as the buyer chose and notifies this server, as the
/// provider would; answers with the provider's acknowledgement.
#[utoipa::path(
    post,
    path = "/test/payments/{order}",
    summary = "Only on servers started with sandbox payments (tests, demos): the sandbox gateway settles the order (outcome pay, decline, cancel, or review: the money taken and held) and notifies the server as the provider would. Absent (404) in production.",
    params(
        ("order" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$"),
        ("outcome" = Option<String>, Query, pattern = "^(pay|decline|cancel|review)$"),
    ),
    responses(
        (status = 200, description = "OK", body = crate::payments::vnpay::IpnAnswer),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
)]
pub(crate) async fn sandbox_settle(
    State(state): State<TransitState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let outcome = match query_params(query).get("outcome").map(String::as_str) {
        None | Some("pay") => SandboxOutcome::Pay,
        Some("decline") => SandboxOutcome::Decline,
        Some("cancel") => SandboxOutcome::Cancel,
        Some("review") => SandboxOutcome::Review,
        Some(_) => return Err(ApiError::bad("outcome is pay, decline, cancel or review")),
    };
    let ack = settle_in_sandbox(&state, &id, outcome)
        .await?
        .ok_or_else(|| ApiError::not_found("no sandbox or no such order"))?;
    Ok(Json(state.payments.provider.acknowledge(ack)))
}

/// `GET /v1/transit/balance[?card_id=N]`: the caller's prepaid balance, or a dependant card's.
#[utoipa::path(
    get,
    path = "/v1/transit/balance",
    summary = "The caller's prepaid balance, or a dependant card's (403 not_guardian for another card)",
    params(
        ("card_id" = Option<u64>, Query, description = "A dependant's card (the caller's by default)"),
    ),
    responses(
        (status = 200, description = "OK", body = BalanceResponse),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("device" = [])),
)]
pub(crate) async fn balance(
    State(state): State<TransitState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<BalanceResponse> {
    let device = authenticate(&state.devices(), &headers).await?;
    let asked = match query_params(query).get("card_id") {
        None => None,
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| ApiError::bad("card_id must be a card number"))?,
        ),
    };
    let card = paying_card(&state, &device, asked).await?;
    let storage = state.storage.clone();
    let (balance_vnd, denied) =
        blocking(move || Ok((storage.balance(card)?, storage.balance_denied(card)?))).await?;
    Ok(Json(BalanceResponse {
        card_id: card,
        balance_vnd,
        credit_limit_vnd: state.fares.credit_limit_vnd,
        denied,
    }))
}

fn day_param(state: &TransitState, query: Option<String>) -> Result<String, ApiError> {
    match query_params(query).get("day") {
        Some(day) if chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok() => Ok(day.clone()),
        Some(_) => Err(ApiError::bad("day must be YYYY-MM-DD")),
        None => Ok(day_of(state, chrono::Utc::now().timestamp())),
    }
}

/// `GET /v1/admin/transit/reconciliation?day=YYYY-MM-DD` (today by default, Hanoi time).
#[utoipa::path(
    get,
    path = "/v1/admin/transit/reconciliation",
    summary = "A local day's sales, refunds and pay-as-you-go fares by product and category, with the ledger's sums (today by default)",
    params(
        ("day" = Option<String>, Query, format = Date, description = "A local day, YYYY-MM-DD (today by default)"),
    ),
    responses(
        (status = 200, description = "OK", body = super::store::Reconciliation),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_reconciliation(
    State(state): State<TransitState>,
    operator: Operator,
    RawQuery(query): RawQuery,
) -> ApiResult<super::store::Reconciliation> {
    operator.require(&[Role::TransitOperator, Role::Auditor])?;
    let day = day_param(&state, query)?;
    let storage = state.storage.clone();
    Ok(Json(
        blocking(move || Ok(storage.reconciliation(&day)?)).await?,
    ))
}

/// `GET /v1/admin/transit/ledger?day=YYYY-MM-DD`: the ledger's entries of a day.
#[utoipa::path(
    get,
    path = "/v1/admin/transit/ledger",
    summary = "The sales ledger's entries of a local day",
    params(
        ("day" = Option<String>, Query, format = Date, description = "A local day, YYYY-MM-DD (today by default)"),
    ),
    responses(
        (status = 200, description = "OK", body = Ledger),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_ledger(
    State(state): State<TransitState>,
    operator: Operator,
    RawQuery(query): RawQuery,
) -> ApiResult<Ledger> {
    operator.require(&[Role::TransitOperator, Role::Auditor])?;
    let day = day_param(&state, query)?;
    let storage = state.storage.clone();
    let entries = blocking(move || Ok(storage.ledger(&day)?)).await?;
    Ok(Json(Ledger { entries }))
}

/// A day's ledger entries.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Ledger {
    /// In the order they were written.
    entries: Vec<super::store::LedgerEntry>,
}

/// A refunded order's status.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Refunded {
    /// `refunded`.
    status: WireStatus,
}

/// `POST /v1/admin/transit/orders/{id}/refund`: refunds a paid pass order; its pass is
/// cancelled (renewals refused; the credential held rides until it ends, at most 72 h, each
/// ride after the refund charged as pay-as-you-go). A top-up is not an order this refunds
/// (404): its credit may be spent.
#[utoipa::path(
    post,
    path = "/v1/admin/transit/orders/{id}/refund",
    summary = "Refund a paid pass order: its pass is cancelled (renewals refused)",
    params(
        ("id" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$"),
    ),
    responses(
        (status = 200, description = "OK", body = Refunded),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_refund(
    State(state): State<TransitState>,
    operator: Operator,
    Path(id): Path<String>,
) -> ApiResult<Refunded> {
    operator.require(&[Role::TransitOperator])?;
    let now = chrono::Utc::now().timestamp();
    let day = day_of(&state, now);
    let storage = state.storage.clone();
    let status = blocking(move || Ok(storage.refund(&id, now, &day)?))
        .await?
        .ok_or_else(|| ApiError::not_found("no paid pass order with this id"))?;
    Ok(Json(Refunded {
        status: status_on_wire(status),
    }))
}

/// `POST /v1/admin/transit/orders/{id}/review`: what the provider's portal shows for a payment
/// it held for review and never notified the end of.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ReviewSettlement {
    /// The provider's transaction held for review (the reconciliation's `under_review`; empty
    /// for a review reported without one).
    #[schema(max_length = 32)]
    pub provider_ref: String,
    /// `paid`: the provider released the money to the merchant (the pass opens, or the credit
    /// is added, as a late confirmation would); `returned`: it gave the money back to the
    /// buyer (the review ends).
    #[schema(pattern = "^(paid|returned)$")]
    pub outcome: String,
}

/// A review settled by the operator: the settlement, and where the order stands now (the
/// audit trail keeps this answer).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ReviewSettled {
    /// What the operator recorded.
    #[serde(flatten)]
    settlement: ReviewSettlement,
    /// `paid`; `refunded` when the pass it bought is over or held already (the payment is
    /// listed to return); `failed` when returned; `under_review` while another transaction
    /// of the order is held; the order's own status when it was settled by another
    /// transaction.
    status: WireStatus,
}

/// `POST /v1/admin/transit/orders/{id}/review`: the operator records how the provider settled
/// a payment it held for review, when the provider's own notification never came. Only a
/// transaction the provider reported held (a signed notification) and not settled since can
/// be settled so: no operator makes a payment of nothing. Recorded as the provider's
/// notification would be, and in the audit trail.
#[utoipa::path(
    post,
    path = "/v1/admin/transit/orders/{id}/review",
    summary = "Settle a payment the provider held for review and never notified the end of: paid (the pass opens) or returned to the buyer",
    params(
        ("id" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$"),
    ),
    request_body(content = ReviewSettlement, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = ReviewSettled),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_settle_review(
    State(state): State<TransitState>,
    operator: Operator,
    Path(id): Path<String>,
    JsonBody(settlement): JsonBody<ReviewSettlement>,
) -> ApiResult<ReviewSettled> {
    operator.require(&[Role::TransitOperator])?;
    let result = match settlement.outcome.as_str() {
        "paid" => PaymentResult::Paid,
        "returned" => PaymentResult::Failed {
            code: "returned".into(),
        },
        _ => return Err(ApiError::bad("outcome is paid or returned")),
    };
    let now = chrono::Utc::now().timestamp();
    let day = day_of(&state, now);
    let storage = state.storage.clone();
    let limit = state.fares.credit_limit_vnd;
    let reference = settlement.provider_ref.clone();
    let recorded =
        blocking(move || Ok(storage.settle_review(&id, &reference, result, limit, now, &day)?))
            .await?;
    match recorded {
        Some(PaymentRecord::Recorded { status }) => Ok(Json(ReviewSettled {
            settlement,
            status: status_on_wire(status),
        })),
        _ => Err(ApiError::not_found(
            "no payment held for review under this transaction",
        )),
    }
}
