//! The member's fee ledger: assessments and payments per month, in the vault.

use super::{Assessment, FeeError, YearMonth};
use crate::vault::{Document, Vault};

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
        // The standing trusts `due_vnd`: an entry no rule could give is refused.
        if assessment.relief_percent > 100 || assessment.due_vnd > assessment.base_vnd {
            return Err(FeeError::Invalid {
                reason: "an assessment's relief is 0-100% and its due at most its base".into(),
            });
        }
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

    /// Every month in the ledger, oldest first.
    pub fn entries(&self) -> Result<Vec<LedgerEntry>, FeeError> {
        let mut entries: Vec<LedgerEntry> = self.vault.list_docs()?;
        entries.sort_by_key(|e| e.assessment.month);
        Ok(entries)
    }

    /// The standing for `year` as of `this_month`: the months before it not paid in full are
    /// unpaid, three or more is serious. This month and later ones are not due yet, however
    /// early they were assessed (a year's statement recorded in January).
    pub fn standing(&self, year: u16, this_month: YearMonth) -> Result<YearStanding, FeeError> {
        let mut entries: Vec<LedgerEntry> = self.vault.query_docs("year", &year.to_string())?;
        entries.sort_by_key(|e| e.assessment.month);
        let unpaid: Vec<YearMonth> = entries
            .iter()
            .filter(|e| e.paid_vnd < e.assessment.due_vnd && e.assessment.month < this_month)
            .map(|e| e.assessment.month)
            .collect();
        Ok(YearStanding {
            assessed: entries.iter().map(|e| e.assessment.month).collect(),
            serious: unpaid.len() >= 3,
            unpaid,
        })
    }
}
