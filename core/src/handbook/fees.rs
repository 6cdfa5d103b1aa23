//! Party fees (Regulation 01-QĐ/TW of 3 February 2026), with the rules as data that carry an
//! effective month, so a new regulation is a data change. Money is integer VND.

use crate::vault::{Document, Vault, VaultError};

/// A calendar month, `YYYY-MM` in JSON.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct YearMonth {
    /// Year.
    pub year: u16,
    /// Month, 1-12.
    pub month: u8,
}

impl YearMonth {
    /// A month, if `month` is 1-12.
    pub fn new(year: u16, month: u8) -> Result<Self, FeeError> {
        if !(1..=12).contains(&month) || year < 1930 {
            return Err(FeeError::Invalid {
                reason: format!("no such month {year}-{month}"),
            });
        }
        Ok(YearMonth { year, month })
    }

    /// Parses `YYYY-MM`.
    pub fn parse(text: &str) -> Result<Self, FeeError> {
        let bad = || FeeError::Invalid {
            reason: format!("expected YYYY-MM, got {text:?}"),
        };
        let (y, m) = text.split_once('-').ok_or_else(bad)?;
        YearMonth::new(y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?)
    }

    /// The month `n` months later.
    pub fn plus(self, n: u32) -> YearMonth {
        let index = u32::from(self.year) * 12 + u32::from(self.month - 1) + n;
        YearMonth {
            year: (index / 12) as u16,
            month: (index % 12) as u8 + 1,
        }
    }
}

impl TryFrom<String> for YearMonth {
    type Error = FeeError;
    fn try_from(text: String) -> Result<Self, FeeError> {
        YearMonth::parse(&text)
    }
}

impl From<YearMonth> for String {
    fn from(m: YearMonth) -> String {
        m.to_string()
    }
}

impl std::fmt::Display for YearMonth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// What a member's fee is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeBasis {
    /// Under compulsory social insurance: the previous month's social-insurance salary.
    SocialInsuranceSalary,
    /// On sick or maternity leave: the benefit.
    SickOrMaternityBenefit,
    /// Pensioner: the pension.
    Pension,
    /// Student: a fixed amount.
    Student,
}

/// How the fee follows from the basis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FeeRule {
    /// A share of the income, in basis points (100 = 1%), rounded down to the VND.
    Percent {
        /// Basis points.
        basis_points: u32,
    },
    /// A fixed monthly amount.
    Fixed {
        /// VND per month.
        vnd: u64,
    },
}

/// The rules of one regulation, in force from a month until the next schedule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeeSchedule {
    /// The regulation, such as `01-QĐ/TW`.
    pub regulation: String,
    /// First month in force.
    pub effective_from: YearMonth,
    /// Rule per basis.
    pub rules: Vec<(FeeBasis, FeeRule)>,
}

/// Why a member pays less or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Relief {
    /// Exempt (for example 50 or more years of membership, a poor or near-poor household).
    Exempt,
    /// A reduction of 30, 50 or 70% for up to 12 months from `from`.
    Reduction {
        /// 30, 50 or 70.
        percent: u8,
        /// First month reduced.
        from: YearMonth,
        /// Months reduced, 1-12.
        months: u8,
    },
}

/// A member's situation for one month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeSituation {
    /// The basis.
    pub basis: FeeBasis,
    /// The income the basis names (VND), ignored for fixed rules.
    pub income_vnd: u64,
    /// An exemption or reduction, if granted.
    pub relief: Option<Relief>,
}

/// The fee due for a month.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Assessment {
    /// The month.
    pub month: YearMonth,
    /// The regulation applied.
    pub regulation: String,
    /// Before relief.
    pub base_vnd: u64,
    /// Percent taken off (100 when exempt).
    pub relief_percent: u8,
    /// Due.
    pub due_vnd: u64,
}

/// Errors of the fee engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeeError {
    /// Bad input.
    #[error("invalid: {reason}")]
    Invalid {
        /// What was wrong.
        reason: String,
    },
    /// No regulation in force for the month, or none covering the basis.
    #[error("no fee rule for {what}")]
    NoRule {
        /// What had no rule.
        what: String,
    },
    /// A payment for a month that has no assessment.
    #[error("month {month} has not been assessed")]
    NotAssessed {
        /// The month.
        month: String,
    },
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// The regulations in force over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeRules {
    schedules: Vec<FeeSchedule>,
}

impl FeeRules {
    /// Rules from schedules (any order; effective months must differ).
    pub fn new(mut schedules: Vec<FeeSchedule>) -> Result<Self, FeeError> {
        schedules.sort_by_key(|s| s.effective_from);
        if schedules
            .windows(2)
            .any(|w| w[0].effective_from == w[1].effective_from)
        {
            return Err(FeeError::Invalid {
                reason: "two schedules start in the same month".into(),
            });
        }
        Ok(FeeRules { schedules })
    }

    /// Regulation 01-QĐ/TW (3 Feb 2026): 1% of the social-insurance salary, 1% of a sick or
    /// maternity benefit, 0.5% of a pension, 5,000 VND for students. The first month in force is
    /// taken as February 2026 (unconfirmed: data, not code).
    pub fn regulation_01_2026() -> FeeSchedule {
        FeeSchedule {
            regulation: "01-QĐ/TW".into(),
            effective_from: YearMonth {
                year: 2026,
                month: 2,
            },
            rules: vec![
                (
                    FeeBasis::SocialInsuranceSalary,
                    FeeRule::Percent { basis_points: 100 },
                ),
                (
                    FeeBasis::SickOrMaternityBenefit,
                    FeeRule::Percent { basis_points: 100 },
                ),
                (FeeBasis::Pension, FeeRule::Percent { basis_points: 50 }),
                (FeeBasis::Student, FeeRule::Fixed { vnd: 5_000 }),
            ],
        }
    }

    /// The schedule in force in `month`.
    pub fn schedule_for(&self, month: YearMonth) -> Option<&FeeSchedule> {
        self.schedules
            .iter()
            .rev()
            .find(|s| s.effective_from <= month)
    }

    /// The fee due for `month`.
    pub fn assess(
        &self,
        situation: &FeeSituation,
        month: YearMonth,
    ) -> Result<Assessment, FeeError> {
        let schedule = self.schedule_for(month).ok_or_else(|| FeeError::NoRule {
            what: format!("month {month}"),
        })?;
        let rule = schedule
            .rules
            .iter()
            .find(|(basis, _)| *basis == situation.basis)
            .map(|(_, rule)| *rule)
            .ok_or_else(|| FeeError::NoRule {
                what: format!("{:?} under {}", situation.basis, schedule.regulation),
            })?;
        let base_vnd = match rule {
            FeeRule::Percent { basis_points } => {
                situation.income_vnd.saturating_mul(u64::from(basis_points)) / 10_000
            }
            FeeRule::Fixed { vnd } => vnd,
        };
        let relief_percent = match situation.relief {
            None => 0,
            Some(Relief::Exempt) => 100,
            Some(Relief::Reduction {
                percent,
                from,
                months,
            }) => {
                if ![30, 50, 70].contains(&percent) {
                    return Err(FeeError::Invalid {
                        reason: "a reduction is 30, 50 or 70%".into(),
                    });
                }
                if !(1..=12).contains(&months) {
                    return Err(FeeError::Invalid {
                        reason: "a reduction lasts 1 to 12 months".into(),
                    });
                }
                if from <= month && month < from.plus(u32::from(months)) {
                    percent
                } else {
                    0
                }
            }
        };
        let due_vnd = base_vnd * u64::from(100 - relief_percent) / 100;
        Ok(Assessment {
            month,
            regulation: schedule.regulation.clone(),
            base_vnd,
            relief_percent,
            due_vnd,
        })
    }
}

/// A month's line in the member's fee ledger (stored encrypted in the vault).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LedgerEntry {
    /// The assessment.
    pub assessment: Assessment,
    /// Paid so far (VND).
    pub paid_vnd: u64,
}

impl Document for LedgerEntry {
    const COLLECTION: &'static str = "handbook.fee";
    fn id(&self) -> String {
        self.assessment.month.to_string()
    }
    fn index(&self) -> Vec<(String, String)> {
        vec![("year".into(), self.assessment.month.year.to_string())]
    }
}

/// The year's standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearStanding {
    /// Months assessed.
    pub assessed: Vec<YearMonth>,
    /// Months not fully paid.
    pub unpaid: Vec<YearMonth>,
    /// Three or more unpaid months: can lead to removal.
    pub serious: bool,
}

/// The member's fee ledger over the vault.
pub struct FeeLedger<'a> {
    vault: &'a Vault,
}

impl<'a> FeeLedger<'a> {
    /// The ledger in `vault`.
    pub fn new(vault: &'a Vault) -> Self {
        FeeLedger { vault }
    }

    /// Records an assessment (replacing an earlier one for the month, keeping payments).
    pub fn record_assessment(&self, assessment: Assessment) -> Result<(), FeeError> {
        let id = assessment.month.to_string();
        self.vault.transaction(|tx| {
            let paid_vnd = tx
                .get_doc::<LedgerEntry>(&id)?
                .map(|e| e.paid_vnd)
                .unwrap_or(0);
            tx.put_doc(&LedgerEntry {
                assessment,
                paid_vnd,
            })
        })?;
        Ok(())
    }

    /// Records a payment for `month`; the month must be assessed.
    pub fn record_payment(
        &self,
        month: YearMonth,
        amount_vnd: u64,
    ) -> Result<LedgerEntry, FeeError> {
        if amount_vnd == 0 {
            return Err(FeeError::Invalid {
                reason: "a payment must be positive".into(),
            });
        }
        let entry = self.vault.transaction(|tx| -> Result<_, FeeError> {
            let Some(mut entry) = tx.get_doc::<LedgerEntry>(&month.to_string())? else {
                return Ok(None);
            };
            entry.paid_vnd = entry.paid_vnd.saturating_add(amount_vnd);
            tx.put_doc(&entry)?;
            Ok(Some(entry))
        })?;
        entry.ok_or(FeeError::NotAssessed {
            month: month.to_string(),
        })
    }

    /// The standing for `year`: unpaid months flagged, three or more is serious.
    pub fn standing(&self, year: u16) -> Result<YearStanding, FeeError> {
        let mut entries: Vec<LedgerEntry> = self.vault.query_docs("year", &year.to_string())?;
        entries.sort_by_key(|e| e.assessment.month);
        let unpaid: Vec<YearMonth> = entries
            .iter()
            .filter(|e| e.paid_vnd < e.assessment.due_vnd)
            .map(|e| e.assessment.month)
            .collect();
        Ok(YearStanding {
            assessed: entries.iter().map(|e| e.assessment.month).collect(),
            serious: unpaid.len() >= 3,
            unpaid,
        })
    }
}
