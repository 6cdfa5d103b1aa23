//! The payment-provider seam: how a buyer is sent to pay, and how the provider's signed
//! server-to-server notification is read and answered. A provider knows nothing of what is
//! sold; transit's sales decide what a confirmed payment buys.
//!
//! One provider protocol is implemented, VNPAY's API 2.1.0 ([`vnpay`]): the parameters sorted
//! by name and signed with HMAC-SHA512 under the merchant's secret, amounts as VND × 100, the
//! notification (IPN) the one to trust. [`vnpay::Sandbox`] is the gateway's side of the same
//! protocol, for tests and the demo: it reads a checkout the way the gateway does and signs
//! the notification the gateway would send.
//!
//! A notification can be lost (the provider gives up retrying, the backend was down for its
//! retries): the provider's query API asks what became of an order ([`OrderQuery`]), and its
//! signed answer ([`QueryAnswer::Known`]) is recorded as the notification would have been.

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
    /// The buyer's address, as the provider's fraud checks ask (`None`: unknown).
    pub buyer_ip: Option<std::net::IpAddr>,
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
    /// The provider refused the merchant's question (its code: our signature or terminal
    /// refused, a question asked twice, the provider's own error).
    #[error("the provider refused the query ({0})")]
    Refused(String),
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

/// What the merchant asks the provider about one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderQuery<'a> {
    /// The merchant's order reference.
    pub order_id: &'a str,
    /// When the order (its checkout) was made (unix seconds).
    pub created_at: i64,
    /// When the question is asked (unix seconds).
    pub now: i64,
    /// This question's own id (random: the provider refuses one asked twice in a day).
    pub request_id: &'a str,
}

/// The provider's answer about one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryAnswer {
    /// Signed: how the order's last transaction ended, to record as its notification.
    Known(Notification),
    /// The provider holds no transaction of the order: the buyer never paid (final once the
    /// checkout is over).
    NotFound,
    /// A transaction under way, or in a state this merchant leaves to the operator (a refund
    /// at the provider): nothing to record yet.
    NothingYet,
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
    /// The JSON body to POST to the provider's query API asking what became of an order.
    fn query_request(&self, query: &OrderQuery<'_>) -> serde_json::Value;
    /// Reads the provider's answer about `order_id`: a result changes nothing unless its
    /// signature checks and it is about that order, for this merchant.
    fn read_query_answer(
        &self,
        order_id: &str,
        body: &[u8],
    ) -> Result<QueryAnswer, NotificationError>;
}
