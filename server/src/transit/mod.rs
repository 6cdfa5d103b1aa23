//! Transit on the backend: credential sales against entitlements, validator enrolment, the
//! validator feed, tap and inspection upload where every tap is re-verified from the scan it
//! carries, metro journeys, and the operator's deny list, riders and issuer keys.
//!
//! Routes live by concern beside their handlers; the rules are plain functions in [`rules`];
//! what is stored is behind the traits of [`store`]; fares are the operator's data in
//! [`fares`].

pub mod credentials;
pub mod fares;
pub mod issuer;
pub mod journeys;
pub mod riders;
pub mod rules;
pub mod sales;
pub mod store;
pub mod taps;
pub mod validators;

use std::sync::Arc;

use axum::routing::{delete, get, post};
use axum::Router;

use crate::devices::store::DeviceStore;
use fares::FarePolicy;
use issuer::Issuer;
use store::TransitStore;

/// What the transit routes need.
#[derive(Clone)]
pub struct TransitState {
    /// Transit's stores.
    pub storage: Arc<dyn TransitStore>,
    /// The issuer's keyring.
    pub issuer: Arc<Issuer>,
    /// The fare policy.
    pub fares: Arc<FarePolicy>,
    /// The payment provider orders are paid through.
    pub payments: sales::Payments,
    /// The keys citizen IDs are looked up under.
    pub secrets: Arc<crate::secrets::ServerSecrets>,
}

impl TransitState {
    /// The devices store, to authenticate a citizen's device.
    pub fn devices(&self) -> Arc<dyn DeviceStore> {
        self.storage.clone()
    }
}

/// Transit's routes: the device's and validator's under `/v1/transit` and `/v1/validators`,
/// the operator's under `/v1/admin/transit` and `/v1/admin/citizens/{id}/…`.
pub fn routes(state: TransitState) -> Router {
    Router::new()
        .route("/v1/validators", post(validators::enrol))
        .route("/v1/transit/orders", post(sales::create_order))
        .route("/v1/transit/orders/{id}", get(sales::get_order))
        .route(
            "/v1/transit/orders/{id}/credential",
            post(sales::collect_credential),
        )
        .route("/v1/transit/topups", post(sales::create_top_up))
        .route("/v1/transit/balance", get(sales::balance))
        .route(
            "/v1/payments/{provider}/notify",
            get(sales::provider_notification),
        )
        .route("/test/payments/{order}", post(sales::sandbox_settle))
        .route(
            "/v1/admin/transit/reconciliation",
            get(sales::admin_reconciliation),
        )
        .route("/v1/admin/transit/ledger", get(sales::admin_ledger))
        .route(
            "/v1/admin/transit/orders/{id}/refund",
            post(sales::admin_refund),
        )
        .route(
            "/v1/transit/credentials/renew",
            post(credentials::renew_credential),
        )
        .route("/v1/transit/feed", get(validators::validator_feed))
        .route(
            "/v1/transit/validators/token",
            post(validators::renew_token),
        )
        .route("/v1/transit/taps", post(taps::upload_taps))
        .route("/v1/transit/inspections", post(taps::upload_inspections))
        .route("/v1/transit/charges", get(taps::charges))
        .route("/v1/transit/entries", get(journeys::entry_feed))
        .route("/v1/transit/inside", get(journeys::inside_feed))
        .route("/v1/admin/transit/deny", post(riders::admin_deny))
        .route(
            "/v1/admin/transit/enrolments",
            post(validators::admin_create_enrolment),
        )
        .route(
            "/v1/admin/transit/validators",
            get(validators::admin_validators),
        )
        .route(
            "/v1/admin/transit/validators/{id}/decommission",
            post(validators::admin_decommission),
        )
        .route("/v1/admin/transit/fraud", get(taps::admin_fraud))
        .route(
            "/v1/admin/transit/journeys/settle",
            post(journeys::admin_settle_journeys),
        )
        .route(
            "/v1/admin/transit/inspections",
            get(taps::admin_inspections),
        )
        .route(
            "/v1/admin/transit/issuer/rotate",
            post(issuer::admin_rotate_issuer),
        )
        .route(
            "/v1/admin/citizens/{citizen_id}/dependants",
            post(riders::admin_add_dependant),
        )
        .route(
            "/v1/admin/citizens/{citizen_id}/dependants/{dependant_citizen_id}",
            delete(riders::admin_remove_dependant),
        )
        .route(
            "/v1/admin/citizens/{citizen_id}/entitlements",
            post(riders::admin_grant_entitlement).get(riders::admin_entitlements),
        )
        .with_state(state)
}
