//! The codes the backend puts in an error body's `error`: one table, read by the server when
//! it refuses, by the client when it is refused, by the FFI (which declares the same enum to
//! Kotlin and Swift from it) and by the test that keeps `docs/errors.md`.

macro_rules! error_codes {
    ($($variant:ident = $code:literal : $meaning:literal,)*) => {
        /// Why the backend refused a request: the `error` of its [`ErrorBody`](super::protocol::ErrorBody).
        ///
        /// The wire carries the text, so a backend newer than this library may send a code it
        /// does not know: that is [`ServerErrorCode::Unknown`], never an error in itself.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ServerErrorCode {
            $(#[doc = $meaning] $variant,)*
            /// A code this version does not know (a newer backend's), or an answer without a
            /// JSON error body.
            Unknown,
        }

        impl ServerErrorCode {
            /// Every code the backend sends ([`ServerErrorCode::Unknown`] is not one).
            pub const ALL: &'static [ServerErrorCode] = &[$(ServerErrorCode::$variant,)*];

            /// The code on the wire (`nonce_used`); `unknown` for [`ServerErrorCode::Unknown`].
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ServerErrorCode::$variant => $code,)*
                    ServerErrorCode::Unknown => "unknown",
                }
            }

            /// What the code means, for people (and for `docs/errors.md`).
            pub fn meaning(self) -> &'static str {
                match self {
                    $(ServerErrorCode::$variant => $meaning,)*
                    ServerErrorCode::Unknown => "a code this version does not know",
                }
            }

            /// The code a wire text names; [`ServerErrorCode::Unknown`] for any other text.
            pub fn from_wire(code: &str) -> ServerErrorCode {
                match code {
                    $($code => ServerErrorCode::$variant,)*
                    _ => ServerErrorCode::Unknown,
                }
            }
        }
    };
}

/// Calls `$then!` with the table of codes (`Variant = "code": "meaning",` rows), so each user
/// builds what it needs from one list.
#[macro_export]
macro_rules! with_server_error_codes {
    ($then:ident) => {
        $then! {
        // Any route.
        BadRequest = "bad_request": "the request is malformed or a value is out of range",
        BadBody = "bad_body": "the body could not be read (length, encoding)",
        TooLarge = "too_large": "the body, or a batch in it, is over the route's limit",
        NotFound = "not_found": "no such route or resource",
        MethodNotAllowed = "method_not_allowed": "the route takes another HTTP method",
        UnsupportedMediaType = "unsupported_media_type": "the body is not JSON",
        Unauthorized = "unauthorized": "no bearer token, or one nobody issued",
        Forbidden = "forbidden": "the operator's role does not hold this power",
        RateLimited = "rate_limited": "too many requests from this caller: wait for Retry-After",
        UpgradeRequired = "upgrade_required": "the backend serves no library this old: update the app",
        Storage = "storage": "the database is unavailable: retry after Retry-After",
        Internal = "internal": "the server failed inside (its log says why)",
        // Devices and identity.
        IdentityInvalid = "identity_invalid": "the ID token does not verify (signature, issuer, audience, time)",
        IdentityNoCitizen = "identity_no_citizen": "the ID token names no citizen",
        IdentityMismatch = "identity_mismatch": "the sign-in is another citizen's, not this account's",
        NonceUnknown = "nonce_unknown": "the sign-in's nonce was not issued by this backend",
        NonceUsed = "nonce_used": "the sign-in's nonce was spent already",
        NonceExpired = "nonce_expired": "the sign-in's nonce expired: ask for a new one",
        SignInNotFresh = "sign_in_not_fresh": "the sign-in is not fresh enough to register or revoke a device: sign in again (max_age=0)",
        EnrolmentRequired = "enrolment_required": "validators enrol with an operator's enrolment code",
        EnrolmentUnknown = "enrolment_unknown": "no such enrolment code",
        EnrolmentUsed = "enrolment_used": "the enrolment code was used already",
        EnrolmentExpired = "enrolment_expired": "the enrolment code expired",
        // Sync and publishing.
        UnknownCollection = "unknown_collection": "no such synced collection",
        NotYours = "not_yours": "the record belongs to another publisher or account",
        NotGoverned = "not_governed": "the member or cell belongs to another organisation",
        // Transit: credentials, sales, validators.
        ProofRequired = "proof_required": "the request must carry the phone key's signature over it",
        StaleProof = "stale_proof": "the proof was signed too far from the backend's time",
        BadProof = "bad_proof": "the proof is not the key's signature over the request",
        BadCredential = "bad_credential": "the credential is not one the issuer signed",
        DeviceRevoked = "device_revoked": "this device was revoked",
        DeviceKeyTaken = "device_key_taken": "the transit key belongs to another account's phone",
        DeviceKeyDenied = "device_key_denied": "the transit key is on the deny list",
        CardDenied = "card_denied": "the card is on the deny list",
        TooManyKeys = "too_many_keys": "the device holds the most transit keys a device may",
        TooManyOrders = "too_many_orders": "too many orders in the last hour: wait for Retry-After",
        NotEntitled = "not_entitled": "the passenger category needs an entitlement the operator has not recorded",
        NotGuardian = "not_guardian": "the account holds no guardianship of that card",
        BalanceOwed = "balance_owed": "the card owes more than its credit: top it up first",
        OtherDevice = "other_device": "the credential is collected by the phone that ordered it",
        OrderExpired = "order_expired": "the order was not paid in time: order again",
        PaymentPending = "payment_pending": "the payment is not confirmed yet: collect again later",
        PaymentUnderReview = "payment_under_review": "the bank took the payment and the provider is reviewing it: do not pay again, collect again later",
        PaymentFailed = "payment_failed": "the payment failed or was cancelled: order again",
        PassEnded = "pass_ended": "the pass has ended: buy a new one",
        PassCancelled = "pass_cancelled": "the pass was refunded and cancelled",
        NoIssuerKey = "no_issuer_key": "no issuer key is valid now: the operator must rotate",
        Signing = "signing": "the backend could not sign: retry later",
        ValidatorsOnly = "validators_only": "only enrolled validators call this route",
        Decommissioned = "decommissioned": "the operator decommissioned this validator",
        InspectorDevice = "inspector_device": "an inspector's device uploads inspections, not taps",
        ExitGatesOnly = "exit_gates_only": "only metro exit gates read the entry feed",
        EntryGatesOnly = "entry_gates_only": "only metro entry gates read the cards inside",
        // Handbook.
        NotSecretary = "not_secretary": "only the cell's secretary is issued this",
        UnknownMeeting = "unknown_meeting": "no such meeting",
        MeetingOver = "meeting_over": "the meeting's day is over: no credential is issued for it",
        WrongState = "wrong_state": "the procedure is in a state that does not move to the one asked",
        }
    };
}

with_server_error_codes!(error_codes);

/// The codes as an OpenAPI string enum, from the same table (the server's document).
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ServerErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(ServerErrorCode::ALL.iter().map(|c| c.as_str())))
            .description(Some(
                "Stable code (docs/errors.md); a client treats a code it does not know as \
                 its status's general meaning.",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ServerErrorCode {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_and_is_written_once() {
        let mut seen = std::collections::HashSet::new();
        for &code in ServerErrorCode::ALL {
            assert_eq!(ServerErrorCode::from_wire(code.as_str()), code);
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
            assert!(!code.meaning().is_empty());
        }
        assert_eq!(
            ServerErrorCode::from_wire("a_newer_code"),
            ServerErrorCode::Unknown
        );
        assert_eq!(
            ServerErrorCode::from_wire("unknown"),
            ServerErrorCode::Unknown
        );
        assert!(!ServerErrorCode::ALL.contains(&ServerErrorCode::Unknown));
    }
}
