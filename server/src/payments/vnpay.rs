//! VNPAY's API 2.1.0, the merchant's side ([`Vnpay`]) and, for tests and the demo, the
//! gateway's side ([`Sandbox`]).
//!
//! Signing: the `vnp_` parameters except `vnp_SecureHash` and `vnp_SecureHashType`, sorted by
//! name, form-encoded (`key=value` joined by `&`, spaces as `+`), HMAC-SHA512 under the
//! merchant's secret, hex. Amounts are VND × 100; dates `yyyyMMddHHmmss` in Hanoi time.
//!
//! The query API (`querydr`, a JSON POST to `merchant_webapi/api/transaction`) signs
//! otherwise: its fields' values joined by `|` in the order the API names them
//! ([`QUERY_SIGNED`], [`ANSWER_SIGNED`]; a field absent is empty), HMAC-SHA512, hex.

use ring::hmac;
use zeroize::Zeroizing;

use super::{
    Acknowledgement, Checkout, Notification, NotificationError, OrderQuery, PaymentProvider,
    PaymentResult, QueryAnswer,
};

mod sandbox;
pub use sandbox::{Sandbox, SandboxOutcome, SANDBOX_TMN_CODE};

/// Hanoi's offset from UTC: VNPAY's dates are local.
const UTC_OFFSET_SECS: i64 = 7 * 3600;
/// Longest notification read (a real one is under 1 KB).
const MAX_NOTIFICATION_LEN: usize = 4_096;

/// A merchant's VNPAY terminal.
pub struct Vnpay {
    tmn_code: String,
    key: hmac::Key,
    pay_url: String,
    return_url: String,
    /// The address this backend calls VNPAY's query API from (its `vnp_IpAddr`).
    server_ip: std::net::IpAddr,
}

impl Vnpay {
    /// The terminal `tmn_code` signing with `secret`; buyers pay at `pay_url` and come back to
    /// `return_url` (the app's page; it proves nothing: only the notification is trusted).
    pub fn new(tmn_code: &str, secret: &[u8], pay_url: &str, return_url: &str) -> Vnpay {
        let secret = Zeroizing::new(secret.to_vec());
        Vnpay {
            tmn_code: tmn_code.to_owned(),
            key: hmac::Key::new(hmac::HMAC_SHA512, &secret),
            pay_url: pay_url.to_owned(),
            return_url: return_url.to_owned(),
            server_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        }
    }

    /// The public address this backend calls the query API from, which VNPAY asks for in
    /// every query (`vnp_IpAddr`); without it the query says `127.0.0.1`.
    pub fn with_server_ip(mut self, ip: std::net::IpAddr) -> Vnpay {
        self.server_ip = ip.to_canonical();
        self
    }
}

/// The signed text of `params` (sorted, form-encoded), leaving out the signature's own fields.
fn signed_text(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, _)| {
            k.starts_with("vnp_") && k != "vnp_SecureHash" && k != "vnp_SecureHashType"
        })
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut text = form_urlencoded::Serializer::new(String::new());
    for (k, v) in sorted {
        text.append_pair(k, v);
    }
    text.finish()
}

fn sign(key: &hmac::Key, params: &[(String, String)]) -> String {
    thudo_core::hex::encode(hmac::sign(key, signed_text(params).as_bytes()).as_ref())
}

/// Checks `params`' `vnp_SecureHash` in constant time; returns the parameters by name (each
/// once: a name given twice is refused, so nobody can sign one value and have another read).
fn verified(
    key: &hmac::Key,
    query: &str,
) -> Result<std::collections::BTreeMap<String, String>, NotificationError> {
    if query.len() > MAX_NOTIFICATION_LEN {
        return Err(NotificationError::Malformed("too long".into()));
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut by_name = std::collections::BTreeMap::new();
    for (k, v) in &params {
        if by_name.insert(k.clone(), v.clone()).is_some() {
            return Err(NotificationError::Malformed(format!("{k} given twice")));
        }
    }
    let signature = by_name
        .get("vnp_SecureHash")
        .and_then(|s| thudo_core::hex::decode(s))
        .ok_or(NotificationError::BadSignature)?;
    hmac::verify(key, signed_text(&params).as_bytes(), &signature)
        .map_err(|_| NotificationError::BadSignature)?;
    Ok(by_name)
}

fn field<'a>(
    params: &'a std::collections::BTreeMap<String, String>,
    name: &str,
) -> Result<&'a str, NotificationError> {
    params
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| NotificationError::Malformed(format!("no {name}")))
}

/// VNPAY's amount (VND × 100) as VND; `None` unless whole and in range.
fn amount_vnd(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 15 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hundredths: u64 = text.parse().ok()?;
    (hundredths % 100 == 0).then_some(hundredths / 100)
}

/// A unix time as VNPAY writes dates: `yyyyMMddHHmmss`, Hanoi time.
fn vnpay_date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix.saturating_add(UTC_OFFSET_SECS), 0)
        .unwrap_or_default()
        .naive_utc()
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// The fields of a query request, in the order its signature joins them.
pub const QUERY_SIGNED: [&str; 9] = [
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_TransactionDate",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
];

/// The fields of a query's answer, in the order its signature joins them.
pub const ANSWER_SIGNED: [&str; 15] = [
    "vnp_ResponseId",
    "vnp_Command",
    "vnp_ResponseCode",
    "vnp_Message",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_BankCode",
    "vnp_PayDate",
    "vnp_TransactionNo",
    "vnp_TransactionType",
    "vnp_TransactionStatus",
    "vnp_OrderInfo",
    "vnp_PromotionCode",
    "vnp_PromotionAmount",
];

/// A JSON object's fields as text (a number as written; anything else, or absent, empty).
fn json_fields(
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, NotificationError> {
    if body.len() > MAX_NOTIFICATION_LEN {
        return Err(NotificationError::Malformed("too long".into()));
    }
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(NotificationError::Malformed("not a JSON object".into())),
    }
}

fn json_text(fields: &serde_json::Map<String, serde_json::Value>, name: &str) -> String {
    match fields.get(name) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The text a query-API signature covers: `names`' values joined by `|`.
fn piped(fields: &serde_json::Map<String, serde_json::Value>, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| json_text(fields, n))
        .collect::<Vec<_>>()
        .join("|")
}

/// Checks a query-API message's `vnp_SecureHash` over `names` in constant time.
fn verify_piped(
    key: &hmac::Key,
    fields: &serde_json::Map<String, serde_json::Value>,
    names: &[&str],
) -> Result<(), NotificationError> {
    let signature = thudo_core::hex::decode(&json_text(fields, "vnp_SecureHash"))
        .ok_or(NotificationError::BadSignature)?;
    hmac::verify(key, piped(fields, names).as_bytes(), &signature)
        .map_err(|_| NotificationError::BadSignature)
}

/// `fields` with the signature over `names` added.
fn sign_piped(
    key: &hmac::Key,
    mut fields: serde_json::Map<String, serde_json::Value>,
    names: &[&str],
) -> serde_json::Value {
    let text = piped(&fields, names);
    let signature = thudo_core::hex::encode(hmac::sign(key, text.as_bytes()).as_ref());
    fields.insert("vnp_SecureHash".into(), signature.into());
    serde_json::Value::Object(fields)
}

fn object(items: &[(&str, String)]) -> serde_json::Map<String, serde_json::Value> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
        .collect()
}

fn pairs(items: &[(&str, String)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

impl PaymentProvider for Vnpay {
    fn name(&self) -> &'static str {
        "vnpay"
    }

    fn checkout_url(&self, c: &Checkout<'_>) -> String {
        let mut params = pairs(&[
            ("vnp_Version", "2.1.0".into()),
            ("vnp_Command", "pay".into()),
            ("vnp_TmnCode", self.tmn_code.clone()),
            ("vnp_Amount", (c.amount_vnd.saturating_mul(100)).to_string()),
            ("vnp_CurrCode", "VND".into()),
            ("vnp_TxnRef", c.order_id.to_owned()),
            ("vnp_OrderInfo", c.description.to_owned()),
            ("vnp_OrderType", "other".into()),
            ("vnp_Locale", "vn".into()),
            ("vnp_ReturnUrl", self.return_url.clone()),
            // The buyer's, for the gateway's fraud checks (the loopback when unknown).
            (
                "vnp_IpAddr",
                c.buyer_ip
                    .map_or_else(|| "127.0.0.1".into(), |ip| ip.to_string()),
            ),
            ("vnp_CreateDate", vnpay_date(c.created_at)),
            ("vnp_ExpireDate", vnpay_date(c.expires_at)),
        ]);
        let signature = sign(&self.key, &params);
        params.push(("vnp_SecureHash".into(), signature));
        let mut url = form_urlencoded::Serializer::new(String::new());
        url.extend_pairs(params.iter());
        format!("{}?{}", self.pay_url, url.finish())
    }

    fn read_notification(&self, query: &str) -> Result<Notification, NotificationError> {
        let params = verified(&self.key, query)?;
        if field(&params, "vnp_TmnCode")? != self.tmn_code {
            return Err(NotificationError::Malformed(
                "for another terminal".to_owned(),
            ));
        }
        let amount = field(&params, "vnp_Amount")?;
        let amount_vnd = amount_vnd(amount)
            .ok_or_else(|| NotificationError::Malformed(format!("amount {amount}")))?;
        let response = field(&params, "vnp_ResponseCode")?;
        // Paid only when both the payment's and the transaction's status say so.
        let status = params
            .get("vnp_TransactionStatus")
            .map_or(response, String::as_str);
        // Money taken without a confirmation: response 07 (taken, the transaction suspected),
        // transaction status 04 (taken at the bank, not completed at VNPAY) or 07 (held for
        // fraud). The buyer is not told to pay again.
        let code = |c: &str| c.chars().take(8).collect();
        let result = match (response, status) {
            ("00", "00") => PaymentResult::Paid,
            // Not completed yet (the query API's "nothing yet"): neither paid nor failed, so
            // nothing is recorded, and the error answer has the provider say it again later.
            ("00", "01") => {
                return Err(NotificationError::Malformed(
                    "the transaction is not completed (status 01)".into(),
                ))
            }
            ("07", _) => PaymentResult::UnderReview {
                code: code(response),
            },
            (_, "04" | "07") => PaymentResult::UnderReview {
                code: format!("s{}", code(status)),
            },
            ("24", _) => PaymentResult::Cancelled,
            (c, _) => PaymentResult::Failed { code: code(c) },
        };
        Ok(Notification {
            order_id: field(&params, "vnp_TxnRef")?.to_owned(),
            amount_vnd,
            result,
            provider_ref: params
                .get("vnp_TransactionNo")
                .map(|s| s.chars().take(32).collect())
                .unwrap_or_default(),
        })
    }

    fn acknowledge(&self, ack: Acknowledgement) -> serde_json::Value {
        let (code, message) = match ack {
            Acknowledgement::Recorded => ("00", "Confirm Success"),
            Acknowledgement::AlreadyRecorded => ("02", "Order already confirmed"),
            Acknowledgement::UnknownOrder => ("01", "Order not found"),
            Acknowledgement::WrongAmount => ("04", "Invalid amount"),
            Acknowledgement::BadSignature => ("97", "Invalid signature"),
            Acknowledgement::Error => ("99", "Unknown error"),
        };
        serde_json::to_value(IpnAnswer {
            code: code.to_owned(),
            message: message.to_owned(),
        })
        .unwrap_or_default()
    }

    fn query_request(&self, q: &OrderQuery<'_>) -> serde_json::Value {
        let fields = object(&[
            ("vnp_RequestId", q.request_id.to_owned()),
            ("vnp_Version", "2.1.0".into()),
            ("vnp_Command", "querydr".into()),
            ("vnp_TmnCode", self.tmn_code.clone()),
            ("vnp_TxnRef", q.order_id.to_owned()),
            ("vnp_TransactionDate", vnpay_date(q.created_at)),
            ("vnp_CreateDate", vnpay_date(q.now)),
            ("vnp_IpAddr", self.server_ip.to_string()),
            ("vnp_OrderInfo", format!("Tra cuu don hang {}", q.order_id)),
        ]);
        sign_piped(&self.key, fields, &QUERY_SIGNED)
    }

    fn read_query_answer(
        &self,
        order_id: &str,
        body: &[u8],
    ) -> Result<QueryAnswer, NotificationError> {
        let fields = json_fields(body)?;
        // Other codes are the query's own outcome, often unsigned: nothing is recorded from
        // them, whoever sent them. 91: no such transaction; the rest (02 terminal, 03 format,
        // 94 asked twice, 97 our signature, 99 the provider's error) are failures to report.
        match json_text(&fields, "vnp_ResponseCode").as_str() {
            "00" => {}
            "91" => return Ok(QueryAnswer::NotFound),
            other => return Err(NotificationError::Refused(other.chars().take(8).collect())),
        }
        verify_piped(&self.key, &fields, &ANSWER_SIGNED)?;
        if json_text(&fields, "vnp_TmnCode") != self.tmn_code {
            return Err(NotificationError::Malformed("for another terminal".into()));
        }
        if json_text(&fields, "vnp_TxnRef") != order_id {
            return Err(NotificationError::Malformed("about another order".into()));
        }
        let amount = json_text(&fields, "vnp_Amount");
        let amount_vnd = amount_vnd(&amount)
            .ok_or_else(|| NotificationError::Malformed(format!("amount {amount}")))?;
        // 01 is a payment; 02 and 03 are refunds made at the provider (an operator's in its
        // portal): never read as the order paid.
        if json_text(&fields, "vnp_TransactionType") != "01" {
            return Ok(QueryAnswer::NothingYet);
        }
        // The transaction's number ties it to the notification that may still come: without
        // it, that notification would read as a second payment.
        let provider_ref: String = json_text(&fields, "vnp_TransactionNo")
            .chars()
            .take(32)
            .collect();
        if provider_ref.is_empty() {
            return Err(NotificationError::Malformed("no transaction number".into()));
        }
        let status = json_text(&fields, "vnp_TransactionStatus");
        let code = format!("s{}", status.chars().take(8).collect::<String>());
        let result = match status.as_str() {
            "00" => PaymentResult::Paid,
            // 01: not completed (the buyer is still at the gateway, or left it).
            "01" => return Ok(QueryAnswer::NothingYet),
            "02" => PaymentResult::Failed { code },
            "04" | "07" => PaymentResult::UnderReview { code },
            // Refund states (05, 06, 09) and codes this merchant does not know: an operator's
            // matter, read in the provider's portal; nothing recorded here.
            _ => return Ok(QueryAnswer::NothingYet),
        };
        Ok(QueryAnswer::Known(Notification {
            order_id: order_id.to_owned(),
            amount_vnd,
            result,
            provider_ref,
        }))
    }
}

/// VNPAY's expected answer to its notification (IPN).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct IpnAnswer {
    /// 00 recorded, 02 already recorded, 01 unknown order, 04 wrong amount, 97 bad signature,
    /// 99 error (the provider retries).
    #[serde(rename = "RspCode")]
    #[schema(pattern = "^(00|01|02|04|97|99)$")]
    pub code: String,
    /// For people.
    #[serde(rename = "Message")]
    pub message: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SECRET: &[u8] = b"THUDOSANDBOXSECRETKEY0123456789AB";

    fn provider() -> Vnpay {
        Vnpay::new(
            "THUDO001",
            SECRET,
            "https://pay.example/vpcpay.html",
            "https://app.example/paid",
        )
    }

    #[test]
    fn the_signature_is_hmac_sha512_over_the_sorted_form_encoded_parameters() {
        // Computed independently (Python's hmac and urllib.parse.quote_plus) from the
        // integration guide's recipe: this is what a gateway would send.
        let query = "vnp_Amount=28000000&vnp_BankCode=NCB&vnp_OrderInfo=Ve+thang+tuyen+32+2026-12\
                     &vnp_PayDate=20261205190000&vnp_ResponseCode=00&vnp_TmnCode=THUDO001\
                     &vnp_TransactionNo=14000001&vnp_TransactionStatus=00&vnp_TxnRef=ord-abc\
                     &vnp_SecureHash=a04a217379053964951b1f95fb440750ae4f0924a3102e1ff177c3fa32ed0c02\
                     2b0873675782c6f7ae390c20a27658a6916a05adb5365adda3f7935eab0bcb58";
        let n = provider().read_notification(query).unwrap();
        assert_eq!(n.order_id, "ord-abc");
        assert_eq!(n.amount_vnd, 280_000);
        assert_eq!(n.result, PaymentResult::Paid);
        assert_eq!(n.provider_ref, "14000001");
        // Parameters in another order read the same; an upper-case hash is the same hash.
        let shuffled = "vnp_TxnRef=ord-abc&vnp_SecureHash=A04A217379053964951B1F95FB440750AE4F0924A3102E1FF177C3FA32ED0C022B0873675782C6F7AE390C20A27658A6916A05ADB5365ADDA3F7935EAB0BCB58\
                        &vnp_Amount=28000000&vnp_BankCode=NCB&vnp_OrderInfo=Ve+thang+tuyen+32+2026-12\
                        &vnp_PayDate=20261205190000&vnp_ResponseCode=00&vnp_TmnCode=THUDO001\
                        &vnp_TransactionNo=14000001&vnp_TransactionStatus=00";
        assert_eq!(provider().read_notification(shuffled).unwrap(), n);
        // One character of the amount changed: refused.
        let altered = query.replace("vnp_Amount=28000000", "vnp_Amount=28000100");
        assert_eq!(
            provider().read_notification(&altered),
            Err(NotificationError::BadSignature)
        );
    }

    #[test]
    fn forged_duplicated_truncated_and_foreign_notifications_are_refused() {
        let sandbox = Sandbox::new("THUDO001", SECRET);
        let vnpay = provider();
        let good = sandbox.notification("ord-1", 30_000, SandboxOutcome::Pay, 1_800_000_000);
        assert!(vnpay.read_notification(&good).is_ok());
        // Another merchant's secret.
        let forger = Sandbox::new("THUDO001", b"a guess");
        let forged = forger.notification("ord-1", 30_000, SandboxOutcome::Pay, 1_800_000_000);
        assert_eq!(
            vnpay.read_notification(&forged),
            Err(NotificationError::BadSignature)
        );
        // A second amount appended after the signed one.
        let doubled = format!("{good}&vnp_Amount=100");
        assert!(matches!(
            vnpay.read_notification(&doubled),
            Err(NotificationError::Malformed(_))
        ));
        // Cut short, unsigned, empty, oversized.
        assert!(vnpay.read_notification(&good[..good.len() / 2]).is_err());
        assert_eq!(
            vnpay.read_notification("vnp_TxnRef=ord-1&vnp_Amount=3000000"),
            Err(NotificationError::BadSignature)
        );
        assert!(vnpay.read_notification("").is_err());
        // A parameter of the merchant's own on the IPN URL is not part of what VNPAY signs.
        assert!(vnpay
            .read_notification(&format!("{good}&instance=a"))
            .is_ok());
        assert!(vnpay.read_notification(&"a=b&".repeat(2_000)).is_err());
        // Signed, but for another terminal.
        let other = Sandbox::new("OTHER001", SECRET);
        let foreign = other.notification("ord-1", 30_000, SandboxOutcome::Pay, 1_800_000_000);
        assert!(matches!(
            vnpay.read_notification(&foreign),
            Err(NotificationError::Malformed(_))
        ));
        // A fraction of a dong is no amount this merchant charged.
        let params = pairs(&[
            ("vnp_TmnCode", "THUDO001".into()),
            ("vnp_Amount", "3000050".into()),
            ("vnp_ResponseCode", "00".into()),
            ("vnp_TxnRef", "ord-1".into()),
        ]);
        assert!(matches!(
            vnpay.read_notification(&sandbox.signed_query(params)),
            Err(NotificationError::Malformed(_))
        ));
    }

    #[test]
    fn declines_and_cancellations_read_as_such() {
        let sandbox = Sandbox::new("THUDO001", SECRET);
        let vnpay = provider();
        let declined = sandbox.notification("o", 1_000, SandboxOutcome::Decline, 1_800_000_000);
        assert_eq!(
            vnpay.read_notification(&declined).unwrap().result,
            PaymentResult::Failed { code: "51".into() }
        );
        let cancelled = sandbox.notification("o", 1_000, SandboxOutcome::Cancel, 1_800_000_000);
        assert_eq!(
            vnpay.read_notification(&cancelled).unwrap().result,
            PaymentResult::Cancelled
        );
        // A success code with a failed transaction status is not a payment.
        let params = pairs(&[
            ("vnp_TmnCode", "THUDO001".into()),
            ("vnp_Amount", "100000".into()),
            ("vnp_ResponseCode", "00".into()),
            ("vnp_TransactionStatus", "02".into()),
            ("vnp_TxnRef", "o".into()),
        ]);
        assert!(matches!(
            vnpay
                .read_notification(&sandbox.signed_query(params))
                .unwrap()
                .result,
            PaymentResult::Failed { .. }
        ));
        // Not completed yet: neither a payment nor a failure ("pay again"); nothing is read.
        let params = pairs(&[
            ("vnp_TmnCode", "THUDO001".into()),
            ("vnp_Amount", "100000".into()),
            ("vnp_ResponseCode", "00".into()),
            ("vnp_TransactionStatus", "01".into()),
            ("vnp_TxnRef", "o".into()),
        ]);
        assert!(matches!(
            vnpay.read_notification(&sandbox.signed_query(params)),
            Err(NotificationError::Malformed(_))
        ));
        // Money taken but not confirmed: held for review, never a failure ("pay again").
        let held = sandbox.notification("o", 1_000, SandboxOutcome::Review, 1_800_000_000);
        assert_eq!(
            vnpay.read_notification(&held).unwrap().result,
            PaymentResult::UnderReview { code: "07".into() }
        );
        for (response, status, code) in
            [("00", "04", "s04"), ("00", "07", "s07"), ("07", "00", "07")]
        {
            let params = pairs(&[
                ("vnp_TmnCode", "THUDO001".into()),
                ("vnp_Amount", "100000".into()),
                ("vnp_ResponseCode", response.into()),
                ("vnp_TransactionStatus", status.into()),
                ("vnp_TxnRef", "o".into()),
            ]);
            assert_eq!(
                vnpay
                    .read_notification(&sandbox.signed_query(params))
                    .unwrap()
                    .result,
                PaymentResult::UnderReview { code: code.into() },
                "{response}/{status}"
            );
        }
    }

    #[test]
    fn a_checkout_url_is_signed_and_read_back_by_the_gateway() {
        let vnpay = provider();
        let checkout = Checkout {
            order_id: "ord-7",
            amount_vnd: 140_000,
            description: "Ve thang 2026-12",
            created_at: 1_796_464_800,
            expires_at: 1_796_465_700,
            buyer_ip: None,
        };
        let url = vnpay.checkout_url(&checkout);
        assert!(url.starts_with("https://pay.example/vpcpay.html?"));
        assert!(url.contains("vnp_Amount=14000000"));
        assert!(url.contains("vnp_Version=2.1.0"));
        assert!(url.contains("vnp_OrderInfo=Ve+thang+2026-12"));
        let sandbox = Sandbox::new("THUDO001", SECRET);
        assert_eq!(
            sandbox.read_checkout(&url).unwrap(),
            ("ord-7".to_owned(), 140_000)
        );
        // The buyer's address, when known, is signed with the rest (an IPv6 one encoded).
        let from_buyer = vnpay.checkout_url(&Checkout {
            buyer_ip: Some("2001:db8::7".parse().unwrap()),
            ..checkout
        });
        assert!(url.contains("vnp_IpAddr=127.0.0.1"), "{url}");
        assert!(
            from_buyer.contains("vnp_IpAddr=2001%3Adb8%3A%3A7"),
            "{from_buyer}"
        );
        assert!(sandbox.read_checkout(&from_buyer).is_ok());
        let cheaper = url.replace("vnp_Amount=14000000", "vnp_Amount=100");
        assert_eq!(
            sandbox.read_checkout(&cheaper),
            Err(NotificationError::BadSignature)
        );
        assert_eq!(
            vnpay.acknowledge(Acknowledgement::Recorded)["RspCode"],
            "00"
        );
        assert_eq!(
            vnpay.acknowledge(Acknowledgement::BadSignature)["RspCode"],
            "97"
        );
        assert_eq!(vnpay_date(1_796_464_800), "20261205170000");
    }

    #[test]
    fn a_query_names_and_signs_the_servers_own_address() {
        let query = OrderQuery {
            order_id: "ord-abc",
            created_at: 1_796_464_800,
            now: 1_796_468_400,
            request_id: "req-1",
        };
        let unnamed = provider().query_request(&query);
        assert_eq!(unnamed["vnp_IpAddr"], "127.0.0.1");
        let named = provider()
            .with_server_ip("::ffff:203.0.113.9".parse().unwrap())
            .query_request(&query);
        assert_eq!(named["vnp_IpAddr"], "203.0.113.9");
        // The address is one of the signed fields.
        assert_ne!(named["vnp_SecureHash"], unnamed["vnp_SecureHash"]);
        let fields = named.as_object().unwrap().clone();
        verify_piped(&provider().key, &fields, &QUERY_SIGNED).unwrap();
    }

    #[test]
    fn a_query_is_signed_over_its_fields_joined_by_bars() {
        // Computed independently (Python's hmac) from the query API's recipe.
        let body = provider().query_request(&OrderQuery {
            order_id: "ord-abc",
            created_at: 1_796_464_800,
            now: 1_796_468_400,
            request_id: "req-1",
        });
        assert_eq!(body["vnp_Command"], "querydr");
        assert_eq!(body["vnp_TransactionDate"], "20261205170000");
        assert_eq!(body["vnp_CreateDate"], "20261205180000");
        assert_eq!(
            body["vnp_SecureHash"],
            "144afc2ac01ee1f2fe96a5bccd3d18352896c45a3cac27e86c5d03c0c224dcd01483ff19010ebda9\
             70531742f9178be743ef34c2ce3b3842ffa9f45fa9c7537e"
        );
        // The gateway's answer, signed independently: a payment.
        let answer = serde_json::json!({
            "vnp_ResponseId": "r1", "vnp_Command": "querydr", "vnp_ResponseCode": "00",
            "vnp_Message": "QueryDR Success", "vnp_TmnCode": "THUDO001", "vnp_TxnRef": "ord-abc",
            "vnp_Amount": 28000000, "vnp_BankCode": "NCB", "vnp_PayDate": "20261205171500",
            "vnp_TransactionNo": "14000001", "vnp_TransactionType": "01",
            "vnp_TransactionStatus": "00", "vnp_OrderInfo": "Thanh toan don hang ord-abc",
            "vnp_SecureHash": "bf101b4114cfa535027f6bc571ce2f5f11aba7ccd01d164caebb4f52289daa1b\
                               9fb5a078a951df19d1489d7b1f66f496f5646f967e92b938b61971e28ff37411"
        });
        let read = |v: &serde_json::Value| {
            provider().read_query_answer("ord-abc", v.to_string().as_bytes())
        };
        assert_eq!(
            read(&answer),
            Ok(QueryAnswer::Known(Notification {
                order_id: "ord-abc".into(),
                amount_vnd: 280_000,
                result: PaymentResult::Paid,
                provider_ref: "14000001".into(),
            }))
        );
        // Altered (the amount, the status), or about another order: nothing recorded.
        let mut altered = answer.clone();
        altered["vnp_Amount"] = "100".into();
        assert_eq!(read(&altered), Err(NotificationError::BadSignature));
        let mut failed = answer.clone();
        failed["vnp_TransactionStatus"] = "02".into();
        assert_eq!(read(&failed), Err(NotificationError::BadSignature));
        assert!(matches!(
            provider().read_query_answer("ord-other", answer.to_string().as_bytes()),
            Err(NotificationError::Malformed(_))
        ));
    }

    #[test]
    fn the_gateway_answers_queries_from_its_ledger() {
        let sandbox = Sandbox::new("THUDO001", SECRET);
        let vnpay = provider();
        let ask = |order: &str| {
            let request = vnpay.query_request(&OrderQuery {
                order_id: order,
                created_at: 1_800_000_000,
                now: 1_800_000_900,
                request_id: "q",
            });
            let answer = sandbox.answer_query(request.to_string().as_bytes());
            vnpay.read_query_answer(order, answer.to_string().as_bytes())
        };
        // Never paid: the gateway knows no transaction (91, unsigned).
        assert_eq!(ask("ord-1"), Ok(QueryAnswer::NotFound));
        let number = sandbox.settle_unnotified("ord-1", 30_000, SandboxOutcome::Pay, 1_800_000_100);
        assert_eq!(
            ask("ord-1"),
            Ok(QueryAnswer::Known(Notification {
                order_id: "ord-1".into(),
                amount_vnd: 30_000,
                result: PaymentResult::Paid,
                provider_ref: number.to_string(),
            }))
        );
        sandbox.settle_unnotified("ord-2", 30_000, SandboxOutcome::Decline, 1_800_000_100);
        assert!(matches!(
            ask("ord-2"),
            Ok(QueryAnswer::Known(Notification {
                result: PaymentResult::Failed { .. },
                ..
            }))
        ));
        sandbox.settle_unnotified("ord-3", 30_000, SandboxOutcome::Review, 1_800_000_100);
        assert!(matches!(
            ask("ord-3"),
            Ok(QueryAnswer::Known(Notification {
                result: PaymentResult::UnderReview { .. },
                ..
            }))
        ));
        // A query the merchant did not sign is refused by the gateway (97): nothing learnt.
        let forged = Vnpay::new("THUDO001", b"a guess", "https://p", "https://r");
        let request = forged.query_request(&OrderQuery {
            order_id: "ord-1",
            created_at: 1_800_000_000,
            now: 1_800_000_900,
            request_id: "q",
        });
        let refused = sandbox.answer_query(request.to_string().as_bytes());
        assert_eq!(refused["vnp_ResponseCode"], "97");
        assert_eq!(
            vnpay.read_query_answer("ord-1", refused.to_string().as_bytes()),
            Err(NotificationError::Refused("97".into()))
        );
        // An answer signed with another secret, or by another terminal's gateway, is not
        // recorded; one still under way (01) or in a refund state (05) records nothing.
        let answer_of = |s: &Sandbox, kind: &str, status: &str, number: &str| {
            let fields = object(&[
                ("vnp_ResponseCode", "00".into()),
                ("vnp_TmnCode", "THUDO001".into()),
                ("vnp_TxnRef", "ord-1".into()),
                ("vnp_Amount", "3000000".into()),
                ("vnp_TransactionNo", number.into()),
                ("vnp_TransactionType", kind.into()),
                ("vnp_TransactionStatus", status.into()),
            ]);
            vnpay.read_query_answer("ord-1", s.signed_answer(fields).to_string().as_bytes())
        };
        let answer = |s: &Sandbox, status: &str| answer_of(s, "01", status, "14000009");
        assert_eq!(
            answer(&Sandbox::new("THUDO001", b"a guess"), "00"),
            Err(NotificationError::BadSignature)
        );
        assert_eq!(answer(&sandbox, "01"), Ok(QueryAnswer::NothingYet));
        assert_eq!(answer(&sandbox, "05"), Ok(QueryAnswer::NothingYet));
        assert!(matches!(answer(&sandbox, "00"), Ok(QueryAnswer::Known(_))));
        assert!(matches!(
            answer(&sandbox, "04"),
            Ok(QueryAnswer::Known(Notification {
                result: PaymentResult::UnderReview { .. },
                ..
            }))
        ));
        // A refund made at the provider (type 02 full, 03 partial) is never a payment; a
        // payment without its transaction number is not recorded.
        assert_eq!(
            answer_of(&sandbox, "02", "00", "1"),
            Ok(QueryAnswer::NothingYet)
        );
        assert_eq!(
            answer_of(&sandbox, "03", "00", "1"),
            Ok(QueryAnswer::NothingYet)
        );
        assert_eq!(
            answer_of(&sandbox, "", "00", "1"),
            Ok(QueryAnswer::NothingYet)
        );
        assert!(matches!(
            answer_of(&sandbox, "01", "00", ""),
            Err(NotificationError::Malformed(_))
        ));
        // The provider's refusals are reported, never read as "nothing yet".
        for code in ["02", "03", "94", "99"] {
            let refusal = serde_json::json!({"vnp_ResponseCode": code, "vnp_Message": "x"});
            assert_eq!(
                vnpay.read_query_answer("ord-1", refusal.to_string().as_bytes()),
                Err(NotificationError::Refused(code.into()))
            );
        }
        let foreign = Sandbox::new("OTHER001", SECRET).signed_answer(object(&[
            ("vnp_ResponseCode", "00".into()),
            ("vnp_TmnCode", "OTHER001".into()),
            ("vnp_TxnRef", "ord-1".into()),
            ("vnp_Amount", "3000000".into()),
            ("vnp_TransactionStatus", "00".into()),
        ]));
        assert!(matches!(
            vnpay.read_query_answer("ord-1", foreign.to_string().as_bytes()),
            Err(NotificationError::Malformed(_))
        ));
        // Not JSON, cut short, oversized.
        let good = sandbox.answer_query(
            vnpay
                .query_request(&OrderQuery {
                    order_id: "ord-1",
                    created_at: 1_800_000_000,
                    now: 1_800_000_900,
                    request_id: "q",
                })
                .to_string()
                .as_bytes(),
        );
        let text = good.to_string();
        assert!(vnpay.read_query_answer("ord-1", b"<html>").is_err());
        assert!(vnpay
            .read_query_answer("ord-1", &text.as_bytes()[..text.len() / 2])
            .is_err());
        let padded = format!("{{\"pad\": \"{}\", {}", "x".repeat(5_000), &text[1..]);
        assert!(vnpay.read_query_answer("ord-1", padded.as_bytes()).is_err());
    }
}
