//! The gateway's side of VNPAY's protocol, for tests and the demo: it reads a checkout as the
//! gateway does, signs the notification it would send and answers the query API from its own
//! ledger of transactions.

use ring::hmac;
use zeroize::Zeroizing;

use super::{
    amount_vnd, field, json_fields, json_text, object, pairs, sign, sign_piped, verified,
    verify_piped, vnpay_date, Vnpay, ANSWER_SIGNED, QUERY_SIGNED,
};
use crate::payments::NotificationError;

/// How a sandbox payment ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxOutcome {
    /// The buyer pays.
    Pay,
    /// The bank declines (VNPAY code 51: insufficient funds).
    Decline,
    /// The buyer cancels (VNPAY code 24).
    Cancel,
    /// The bank takes the money and VNPAY holds the transaction as suspect (code 07).
    Review,
}

/// The gateway's side of the protocol, for tests and the demo: it reads a checkout URL as
/// VNPAY does (refusing one not signed by the merchant) and signs the notification VNPAY
/// would send. It holds the merchant's secret, as the real gateway does.
pub struct Sandbox {
    tmn_code: String,
    key: hmac::Key,
    transactions: std::sync::atomic::AtomicU64,
    /// Each order's last transaction, as the gateway answers queries about it: its amount,
    /// outcome, number and time.
    ledger: std::sync::Mutex<std::collections::HashMap<String, (u64, SandboxOutcome, u64, i64)>>,
}

/// A sandbox terminal code.
pub const SANDBOX_TMN_CODE: &str = "THUDO001";

impl Sandbox {
    /// A sandbox terminal and the merchant's provider for it, sharing a fresh random secret;
    /// buyers "pay" at `pay_url`.
    pub fn pair(pay_url: &str, return_url: &str) -> (std::sync::Arc<Sandbox>, Vnpay) {
        let mut secret = Zeroizing::new([0u8; 32]);
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut *secret);
        let hexed = Zeroizing::new(thudo_core::hex::encode(&*secret));
        (
            std::sync::Arc::new(Sandbox::new(SANDBOX_TMN_CODE, hexed.as_bytes())),
            Vnpay::new(SANDBOX_TMN_CODE, hexed.as_bytes(), pay_url, return_url),
        )
    }

    /// The gateway for terminal `tmn_code` with the merchant's `secret`.
    pub fn new(tmn_code: &str, secret: &[u8]) -> Sandbox {
        Sandbox {
            tmn_code: tmn_code.to_owned(),
            key: hmac::Key::new(hmac::HMAC_SHA512, secret),
            transactions: std::sync::atomic::AtomicU64::new(14_000_000),
            ledger: Default::default(),
        }
    }

    /// The buyer pays (or not) for `order_id` at the gateway, whose notification never
    /// reaches the merchant: only a query will tell. A transaction held for review is settled
    /// as `outcome` (keeping its number); otherwise a new one is made. Returns its number.
    pub fn settle_unnotified(
        &self,
        order_id: &str,
        amount_vnd: u64,
        outcome: SandboxOutcome,
        now: i64,
    ) -> u64 {
        let Ok(mut ledger) = self.ledger.lock() else {
            return 0;
        };
        let number = match ledger.get(order_id) {
            Some((_, SandboxOutcome::Review, number, _)) => *number,
            _ => self.record(&mut ledger, order_id, amount_vnd, outcome, now),
        };
        ledger.insert(order_id.to_owned(), (amount_vnd, outcome, number, now));
        number
    }

    /// The notification of `order_id`'s last transaction in the gateway's ledger, sent
    /// (again) at `now`; `None` when it holds none.
    pub fn notification_again(&self, order_id: &str, now: i64) -> Option<String> {
        let (amount_vnd, outcome, number, _) = self.ledger.lock().ok()?.get(order_id).copied()?;
        Some(self.notification_of(order_id, amount_vnd, outcome, number, now))
    }

    /// A new transaction of `order_id` in the gateway's ledger; its number.
    fn record(
        &self,
        ledger: &mut std::collections::HashMap<String, (u64, SandboxOutcome, u64, i64)>,
        order_id: &str,
        amount_vnd: u64,
        outcome: SandboxOutcome,
        now: i64,
    ) -> u64 {
        let number = self
            .transactions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ledger.insert(order_id.to_owned(), (amount_vnd, outcome, number, now));
        number
    }

    /// Answers a merchant's query (its JSON body) as the gateway does: refused unless signed
    /// by the merchant; code 91 for an order it holds no transaction of; else the last
    /// transaction, signed.
    pub fn answer_query(&self, body: &[u8]) -> serde_json::Value {
        let refusal = |code: &str, message: &str| serde_json::json!({"vnp_ResponseCode": code, "vnp_Message": message});
        let Ok(request) = json_fields(body) else {
            return refusal("03", "Invalid data format");
        };
        if verify_piped(&self.key, &request, &QUERY_SIGNED).is_err() {
            return refusal("97", "Invalid Checksum");
        }
        if json_text(&request, "vnp_TmnCode") != self.tmn_code {
            return refusal("02", "Merchant is not valid");
        }
        let order_id = json_text(&request, "vnp_TxnRef");
        let found = self
            .ledger
            .lock()
            .ok()
            .and_then(|l| l.get(&order_id).copied());
        let Some((amount_vnd, outcome, number, at)) = found else {
            return refusal("91", "Transaction not found");
        };
        let status = match outcome {
            SandboxOutcome::Pay => "00",
            SandboxOutcome::Decline | SandboxOutcome::Cancel => "02",
            SandboxOutcome::Review => "07",
        };
        let fields = object(&[
            ("vnp_ResponseId", format!("r{number}")),
            ("vnp_Command", "querydr".into()),
            ("vnp_ResponseCode", "00".into()),
            ("vnp_Message", "QueryDR Success".into()),
            ("vnp_TmnCode", self.tmn_code.clone()),
            ("vnp_TxnRef", order_id.clone()),
            ("vnp_Amount", amount_vnd.saturating_mul(100).to_string()),
            ("vnp_BankCode", "NCB".into()),
            ("vnp_PayDate", vnpay_date(at)),
            ("vnp_TransactionNo", number.to_string()),
            ("vnp_TransactionType", "01".into()),
            ("vnp_TransactionStatus", status.into()),
            ("vnp_OrderInfo", format!("Thanh toan don hang {order_id}")),
        ]);
        sign_piped(&self.key, fields, &ANSWER_SIGNED)
    }

    /// `fields` (a query's answer) signed as the gateway signs it (tests alter a signed one).
    pub fn signed_answer(
        &self,
        fields: serde_json::Map<String, serde_json::Value>,
    ) -> serde_json::Value {
        sign_piped(&self.key, fields, &ANSWER_SIGNED)
    }

    /// Reads a checkout URL (or its query) as the gateway does: its order and amount (VND),
    /// once its signature checks.
    pub fn read_checkout(&self, url: &str) -> Result<(String, u64), NotificationError> {
        let query = url.split_once('?').map_or(url, |(_, q)| q);
        let params = verified(&self.key, query)?;
        let amount = field(&params, "vnp_Amount")?;
        Ok((
            field(&params, "vnp_TxnRef")?.to_owned(),
            amount_vnd(amount)
                .ok_or_else(|| NotificationError::Malformed(format!("amount {amount}")))?,
        ))
    }

    /// The notification's query string for `order_id`, `amount_vnd` and `outcome` at `now`,
    /// signed as the gateway signs it.
    pub fn notification(
        &self,
        order_id: &str,
        amount_vnd: u64,
        outcome: SandboxOutcome,
        now: i64,
    ) -> String {
        let number = match self.ledger.lock() {
            Ok(mut ledger) => self.record(&mut ledger, order_id, amount_vnd, outcome, now),
            Err(_) => 0,
        };
        self.notification_of(order_id, amount_vnd, outcome, number, now)
    }

    /// The signed notification of transaction `number` of `order_id`.
    fn notification_of(
        &self,
        order_id: &str,
        amount_vnd: u64,
        outcome: SandboxOutcome,
        number: u64,
        now: i64,
    ) -> String {
        let (response, status) = match outcome {
            SandboxOutcome::Pay => ("00", "00"),
            SandboxOutcome::Decline => ("51", "02"),
            SandboxOutcome::Cancel => ("24", "02"),
            SandboxOutcome::Review => ("07", "07"),
        };
        let params = pairs(&[
            ("vnp_TmnCode", self.tmn_code.clone()),
            ("vnp_Amount", amount_vnd.saturating_mul(100).to_string()),
            ("vnp_BankCode", "NCB".into()),
            ("vnp_CardType", "ATM".into()),
            ("vnp_OrderInfo", format!("Thanh toan don hang {order_id}")),
            ("vnp_PayDate", vnpay_date(now)),
            ("vnp_ResponseCode", response.into()),
            ("vnp_TransactionNo", number.to_string()),
            ("vnp_TransactionStatus", status.into()),
            ("vnp_TxnRef", order_id.to_owned()),
        ]);
        self.signed_query(params)
    }

    /// `params` with the gateway's signature, as a query string (tests alter a signed one).
    pub fn signed_query(&self, mut params: Vec<(String, String)>) -> String {
        let signature = sign(&self.key, &params);
        params.push(("vnp_SecureHash".into(), signature));
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.extend_pairs(params.iter());
        q.finish()
    }
}
