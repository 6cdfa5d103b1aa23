//! The payment-provider seam: how a buyer is sent to pay, and how the provider's signed
//! server-to-server notification is read and answered. A provider knows nothing of what is
//! sold; transit's sales decide what a confirmed payment buys.
//!
//! One provider protocol is implemented, VNPAY's API 2.1.0 ([`vnpay`]): the parameters sorted
//! by name and signed with HMAC-SHA512 under the merchant's secret, amounts as VND × 100, the
//! notification (IPN) the one to trust. [`vnpay::Sandbox`] is the gateway's side of the same
//! protocol, for tests and the demo: it reads a checkout the way the gateway does and signs
//! the notification the gateway would send.

pub mod vnpay;

/// What the buyer is asked to pay for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout<'a> {
    /// The merchant's order reference (the provider sends it back).
    pub order_id: &'a str,
    /// The price, VND.
    pub amount_vnd: u64,
    /// One line shown to the buyer (ASCII: gateways refuse accents in it).
    pub description: &'a str,
    /// When the order was made (unix seconds).
    pub created_at: i64,
    /// When the provider stops taking payment for it (unix seconds).
    pub expires_at: i64,
}

/// How a payment attempt ended, as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentResult {
    /// Paid: the money is the merchant's.
    Paid,
    /// The buyer cancelled at the provider.
    Cancelled,
    /// The buyer's bank took the money but the provider has not confirmed the payment: held
    /// for a fraud review, or reversed between bank and provider. Neither paid nor failed: the
    /// buyer must not be told to pay again, and a later confirmation opens the pass.
    UnderReview {
        /// The provider's result code.
        code: String,
    },
    /// Declined or failed; the provider's code.
    Failed {
        /// The provider's result code.
        code: String,
    },
}

/// A provider's notification whose signature checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The merchant's order reference it is about.
    pub order_id: String,
    /// The amount the provider took (or tried to), VND.
    pub amount_vnd: u64,
    /// How it ended.
    pub result: PaymentResult,
    /// The provider's own transaction reference (for the operator's reconciliation with it).
    pub provider_ref: String,
}

/// Why a notification was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    /// Not signed with the merchant's secret (forged or altered).
    #[error("the notification's signature is not the provider's")]
    BadSignature,
    /// Signed, or not, but not a notification this merchant can read.
    #[error("malformed notification: {0}")]
    Malformed(String),
}

/// What the merchant answers a notification, in the terms every provider has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledgement {
    /// Recorded now (a payment, a failure, a cancellation or a review).
    Recorded,
    /// This transaction's outcome was recorded before (or comes after the payment): nothing
    /// changed.
    AlreadyRecorded,
    /// No such order.
    UnknownOrder,
    /// The amount is not the order's.
    WrongAmount,
    /// The signature did not check.
    BadSignature,
    /// Anything else: the provider should retry.
    Error,
}

/// A payment provider: where the buyer pays, and how its notifications read and are answered.
pub trait PaymentProvider: Send + Sync {
    /// The provider's name in routes and the ledger (`vnpay`).
    fn name(&self) -> &'static str;
    /// Where the buyer pays for `checkout` (the app opens it).
    fn checkout_url(&self, checkout: &Checkout<'_>) -> String;
    /// Reads a notification from its query string, checking its signature first.
    fn read_notification(&self, query: &str) -> Result<Notification, NotificationError>;
    /// The body the provider expects in answer (HTTP 200 whatever it says).
    fn acknowledge(&self, ack: Acknowledgement) -> serde_json::Value;
}
