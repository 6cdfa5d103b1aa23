//! Transit on the backend: credential sales against entitlements, validator enrolment, the
//! validator feed, tap and inspection upload where every tap is re-verified from the scan it
//! carries, metro journeys, and the operator's deny list, riders and issuer keys.
//!
//! Routes live by concern beside their handlers; the rules are plain functions in [`rules`];
//! what is stored is behind the traits of [`store`]; fares are the operator's data in
//! [`fares`].

pub mod credentials;
pub mod fares;
pub mod follow_up;
mod fraud;
pub mod issuer;
pub mod journeys;
pub mod riders;
pub mod rules;
pub mod sales;
pub mod store;
pub mod taps;
pub mod validators;

use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

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
pub fn routes() -> OpenApiRouter<TransitState> {
    OpenApiRouter::new()
        .routes(routes!(validators::enrol))
        .routes(routes!(sales::create_order))
        .routes(routes!(sales::get_order))
        .routes(routes!(sales::collect_credential))
        .routes(routes!(sales::create_top_up))
        .routes(routes!(sales::balance))
        .routes(routes!(sales::provider_notification))
        .routes(routes!(sales::sandbox_settle))
        .routes(routes!(sales::admin_reconciliation))
        .routes(routes!(sales::admin_ledger))
        .routes(routes!(sales::admin_refund))
        .routes(routes!(sales::admin_settle_review))
        .routes(routes!(credentials::renew_credential))
        .routes(routes!(validators::validator_feed))
        .routes(routes!(validators::renew_token))
        .routes(routes!(taps::upload_taps))
        .routes(routes!(taps::upload_inspections))
        .routes(routes!(taps::charges))
        .routes(routes!(journeys::entry_feed))
        .routes(routes!(journeys::inside_feed))
        .routes(routes!(riders::admin_deny))
        .routes(routes!(validators::admin_create_enrolment))
        .routes(routes!(validators::admin_validators))
        .routes(routes!(validators::admin_decommission))
        .routes(routes!(taps::admin_fraud))
        .routes(routes!(journeys::admin_settle_journeys))
        .routes(routes!(taps::admin_inspections))
        .routes(routes!(issuer::admin_rotate_issuer))
        .routes(routes!(riders::admin_add_dependant))
        .routes(routes!(riders::admin_remove_dependant))
        .routes(routes!(
            riders::admin_grant_entitlement,
            riders::admin_entitlements
        ))
}
