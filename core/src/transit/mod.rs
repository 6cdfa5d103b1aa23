//! Dynamic-QR transit tickets: the issuer signs a credential binding the phone's key, the phone
//! signs a fresh timestamp every few seconds, and a bus validator checks both offline.
//!
//! The wire format is in [`wire`] and `docs/protocol/transit-qr.md`.
//!
//! Owns: credentials, the phone's QR, the validator's deny list and tap log (in the vault), and
//! its calls to the backend ([`backend`]). May call: the vault, the cryptography
//! ([`crate::crypto`]), the backend transport (`crate::net`). Never calls another domain or the
//! sync engine.

pub mod backend;
mod deny_list;
pub mod inspection;
pub mod issuer;
pub mod metro;
pub mod phone;
pub mod presentation;
pub mod qr;
mod reason;
pub mod tariff;
pub mod trips;
mod uploads;
pub mod validator;
pub mod wire;

/// A dependant's ticket and its holder's on one validator this close together are one party
/// travelling together: a validator accepts a ticket that rides with its holder only this soon
/// after the holder's own, and the backend judges the taps it gets by the same window.
pub const TRAVEL_TOGETHER_SECS: u64 = 120;

use crate::vault::VaultError;

/// What a credential lets its holder ride. The codes are on the wire: never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Product {
    /// Monthly pass for one route.
    MonthlySingleRoute = 1,
    /// Monthly pass for all routes.
    MonthlyAllRoutes = 2,
    /// Pay as you go: each tap is charged later by the backend.
    PayAsYouGo = 3,
    /// Free travel for a free-rider category.
    FreePass = 4,
    /// Unlimited rides on one local day (the credential's pass window is that day): on the
    /// line it names (a metro line's day ticket), or network-wide when it names none.
    DayPass = 5,
    /// Unlimited rides on the metro line it names for seven local days.
    WeekPass = 6,
}

impl Product {
    /// The product with wire code `code`.
    pub fn from_code(code: u8) -> Option<Product> {
        Some(match code {
            1 => Product::MonthlySingleRoute,
            2 => Product::MonthlyAllRoutes,
            3 => Product::PayAsYouGo,
            4 => Product::FreePass,
            5 => Product::DayPass,
            6 => Product::WeekPass,
            _ => return None,
        })
    }

    /// Vietnamese label for the driver's screen.
    pub fn label(self) -> &'static str {
        match self {
            Product::MonthlySingleRoute => "Vé tháng một tuyến",
            Product::MonthlyAllRoutes => "Vé tháng liên tuyến",
            Product::PayAsYouGo => "Trả theo lượt",
            Product::FreePass => "Miễn phí",
            Product::DayPass => "Vé ngày",
            Product::WeekPass => "Vé tuần",
        }
    }
}

/// Who rides. The codes are on the wire: never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Standard fare.
    Standard = 0,
    /// Priority: students, industrial-zone workers (half price).
    Priority = 1,
    /// Group purchase of 30 or more.
    Group = 2,
    /// Aged 60 and over (free).
    Elderly = 3,
    /// Children under 6 (free).
    Child = 4,
    /// People with disabilities (free).
    Disability = 5,
    /// People with merit to the revolution (free).
    Merit = 6,
    /// Members of poor households (free).
    PoorHousehold = 7,
}

impl Category {
    /// The category with wire code `code`.
    pub fn from_code(code: u8) -> Option<Category> {
        Some(match code {
            0 => Category::Standard,
            1 => Category::Priority,
            2 => Category::Group,
            3 => Category::Elderly,
            4 => Category::Child,
            5 => Category::Disability,
            6 => Category::Merit,
            7 => Category::PoorHousehold,
            _ => return None,
        })
    }

    /// Whether this category rides free.
    pub fn rides_free(self) -> bool {
        matches!(
            self,
            Category::Elderly
                | Category::Child
                | Category::Disability
                | Category::Merit
                | Category::PoorHousehold
        )
    }

    /// Vietnamese label for the driver's screen.
    pub fn label(self) -> &'static str {
        match self {
            Category::Standard => "Thường",
            Category::Priority => "Ưu tiên",
            Category::Group => "Tập thể",
            Category::Elderly => "Người cao tuổi",
            Category::Child => "Trẻ em dưới 6 tuổi",
            Category::Disability => "Người khuyết tật",
            Category::Merit => "Người có công",
            Category::PoorHousehold => "Hộ nghèo",
        }
    }
}

/// Errors of the issuer and the phone (the validator answers with verdicts instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitError {
    /// A request or argument was rejected.
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What was wrong.
        reason: String,
    },
    /// The phone holds no credential yet.
    #[error("no credential installed")]
    NoCredential,
    /// The device key the held credentials bind is gone (a reset keystore, a restored
    /// backup): these cards' credentials can no longer be shown. Nothing was replaced: discard
    /// them (`discard_lost_credentials`) and order the passes again for the new key. The
    /// backend does not move a pass to a new key (its renewal needs the old key's signature):
    /// a paid pass lost this way is the operator's to refund (`POST
    /// /v1/admin/transit/orders/{id}/refund`).
    #[error("the device key is lost; credentials of cards {cards:?} can no longer be shown")]
    KeyLost {
        /// The cards whose credentials bind the lost key.
        cards: Vec<u64>,
    },
    /// The credential has expired; the phone must go online to refresh it.
    #[error("the credential expired at {not_after} (unix time)")]
    CredentialExpired {
        /// When it expired.
        not_after: u32,
    },
    /// The credential is malformed or is not for this phone's key.
    #[error("invalid credential: {reason}")]
    InvalidCredential {
        /// What was wrong.
        reason: String,
    },
    /// A signed deny list or key was refused.
    #[error("invalid signed data: {reason}")]
    InvalidSignedData {
        /// What was wrong.
        reason: String,
    },
    /// The host's signer failed.
    #[error("signer failed: {reason}")]
    Signer {
        /// What the signer reported.
        reason: String,
    },
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

pub(crate) fn invalid(reason: impl Into<String>) -> TransitError {
    TransitError::InvalidRequest {
        reason: reason.into(),
    }
}
