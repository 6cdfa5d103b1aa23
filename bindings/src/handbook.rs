//! The party-member handbook for Kotlin and Swift: the document library with Vietnamese search,
//! and party fees.

use std::path::PathBuf;
use std::sync::Arc;

use thudo_core::handbook::{fees, library};

use crate::{blocking, Internal};

/// Errors of handbook calls.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum HandbookError {
    /// Bad input (query too long, document without title, unknown month, ...).
    #[error("invalid: {reason}")]
    Invalid {
        /// What was wrong.
        reason: String,
    },
    /// No fee rule covers the month or the basis.
    #[error("no fee rule: {reason}")]
    NoRule {
        /// What had no rule.
        reason: String,
    },
    /// Storage failed.
    #[error("storage: {reason}")]
    Storage {
        /// The underlying error.
        reason: String,
    },
    /// A bug in the library.
    #[error("internal error: {reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
}

impl From<library::LibraryError> for HandbookError {
    fn from(e: library::LibraryError) -> Self {
        match e {
            library::LibraryError::Invalid { reason } => HandbookError::Invalid { reason },
            library::LibraryError::Storage { reason } => HandbookError::Storage { reason },
        }
    }
}

impl From<fees::FeeError> for HandbookError {
    fn from(e: fees::FeeError) -> Self {
        match e {
            fees::FeeError::Invalid { reason } => HandbookError::Invalid { reason },
            fees::FeeError::NoRule { what } => HandbookError::NoRule { reason: what },
            fees::FeeError::Vault(v) => HandbookError::Storage {
                reason: v.to_string(),
            },
        }
    }
}

impl From<Internal> for HandbookError {
    fn from(Internal(reason): Internal) -> Self {
        HandbookError::Internal { reason }
    }
}

/// A published party document.
#[derive(Debug, Clone, uniffi::Record)]
pub struct PartyDocument {
    /// Stable id.
    pub id: String,
    /// Number, such as `57-NQ/TW`.
    pub number: String,
    /// Issuing body.
    pub issuer: String,
    /// `YYYY-MM-DD`.
    pub issued_on: String,
    /// Kind (resolution, directive, ...).
    pub kind: String,
    /// Title.
    pub title: String,
    /// Full text.
    pub body: String,
}

impl From<PartyDocument> for library::LibraryDocument {
    fn from(d: PartyDocument) -> Self {
        library::LibraryDocument {
            id: d.id,
            number: d.number,
            issuer: d.issuer,
            issued_on: d.issued_on,
            kind: d.kind,
            title: d.title,
            body: d.body,
        }
    }
}

impl From<library::LibraryDocument> for PartyDocument {
    fn from(d: library::LibraryDocument) -> Self {
        PartyDocument {
            id: d.id,
            number: d.number,
            issuer: d.issuer,
            issued_on: d.issued_on,
            kind: d.kind,
            title: d.title,
            body: d.body,
        }
    }
}

/// A search result.
#[derive(Debug, Clone, uniffi::Record)]
pub struct DocumentHit {
    /// Document id.
    pub id: String,
    /// Number.
    pub number: String,
    /// Title.
    pub title: String,
    /// Kind.
    pub kind: String,
    /// Date issued.
    pub issued_on: String,
    /// A passage with matches in `<mark>`…`</mark>` (other HTML escaped).
    pub snippet: String,
    /// Higher is better.
    pub score: f64,
}

/// The offline document library (public content; personal notes live in the vault).
#[derive(uniffi::Object)]
pub struct HandbookLibrary {
    inner: Arc<library::Library>,
}

#[uniffi::export(async_runtime = "tokio")]
impl HandbookLibrary {
    /// Opens (or creates) the library file at `path`.
    #[uniffi::constructor]
    pub async fn open(path: String) -> Result<Arc<Self>, HandbookError> {
        blocking(move || library::Library::open(&PathBuf::from(path)).map_err(HandbookError::from))
            .await
            .map(|l| Arc::new(HandbookLibrary { inner: Arc::new(l) }))
    }

    /// Inserts or replaces documents (all or none).
    pub async fn upsert(&self, documents: Vec<PartyDocument>) -> Result<(), HandbookError> {
        let inner = self.inner.clone();
        let docs: Vec<library::LibraryDocument> = documents.into_iter().map(Into::into).collect();
        blocking(move || inner.upsert(&docs).map_err(HandbookError::from)).await
    }

    /// Accent- and case-insensitive search; exact accents, numbers and titles rank first.
    pub async fn search(
        &self,
        query: String,
        limit: u32,
    ) -> Result<Vec<DocumentHit>, HandbookError> {
        let inner = self.inner.clone();
        blocking(move || {
            Ok(inner
                .search(&query, limit as usize)?
                .into_iter()
                .map(|h| DocumentHit {
                    id: h.id,
                    number: h.number,
                    title: h.title,
                    kind: h.kind,
                    issued_on: h.issued_on,
                    snippet: h.snippet,
                    score: h.score,
                })
                .collect())
        })
        .await
    }

    /// A document by id.
    pub async fn get(&self, id: String) -> Result<Option<PartyDocument>, HandbookError> {
        let inner = self.inner.clone();
        blocking(move || Ok(inner.get(&id)?.map(Into::into))).await
    }

    /// Removes a document; returns whether it was there.
    pub async fn remove(&self, id: String) -> Result<bool, HandbookError> {
        let inner = self.inner.clone();
        blocking(move || inner.remove(&id).map_err(HandbookError::from)).await
    }
}

/// What a member's fee is computed from.
#[derive(Debug, Clone, Copy, uniffi::Enum)]
pub enum FeeBasis {
    /// Social-insurance salary of the previous month (1%).
    SocialInsuranceSalary,
    /// Sick or maternity benefit (1%).
    SickOrMaternityBenefit,
    /// Pension (0.5%).
    Pension,
    /// Student (fixed).
    Student,
}

/// An exemption or reduction.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum FeeRelief {
    /// Exempt.
    Exempt,
    /// 30, 50 or 70% off for 1-12 months from `from_month` (`YYYY-MM`).
    Reduction {
        /// 30, 50 or 70.
        percent: u8,
        /// First month, `YYYY-MM`.
        from_month: String,
        /// 1-12.
        months: u8,
    },
}

/// A computed monthly fee.
#[derive(Debug, Clone, uniffi::Record)]
pub struct FeeAssessment {
    /// `YYYY-MM`.
    pub month: String,
    /// Regulation applied.
    pub regulation: String,
    /// Before relief (VND).
    pub base_vnd: u64,
    /// Percent taken off.
    pub relief_percent: u8,
    /// Due (VND).
    pub due_vnd: u64,
}

/// The party fee for `month` (`YYYY-MM`) under the regulations in force (01-QĐ/TW from
/// February 2026).
#[uniffi::export]
pub fn compute_party_fee(
    basis: FeeBasis,
    income_vnd: u64,
    month: String,
    relief: Option<FeeRelief>,
) -> Result<FeeAssessment, HandbookError> {
    let rules = fees::FeeRules::new(vec![fees::FeeRules::regulation_01_2026()])?;
    let relief = match relief {
        None => None,
        Some(FeeRelief::Exempt) => Some(fees::Relief::Exempt),
        Some(FeeRelief::Reduction {
            percent,
            from_month,
            months,
        }) => Some(fees::Relief::Reduction {
            percent,
            from: fees::YearMonth::parse(&from_month)?,
            months,
        }),
    };
    let situation = fees::FeeSituation {
        basis: match basis {
            FeeBasis::SocialInsuranceSalary => fees::FeeBasis::SocialInsuranceSalary,
            FeeBasis::SickOrMaternityBenefit => fees::FeeBasis::SickOrMaternityBenefit,
            FeeBasis::Pension => fees::FeeBasis::Pension,
            FeeBasis::Student => fees::FeeBasis::Student,
        },
        income_vnd,
        relief,
    };
    let a = rules.assess(&situation, fees::YearMonth::parse(&month)?)?;
    Ok(FeeAssessment {
        month: a.month.to_string(),
        regulation: a.regulation,
        base_vnd: a.base_vnd,
        relief_percent: a.relief_percent,
        due_vnd: a.due_vnd,
    })
}
