//! Party fees for every month since April 2011: Decision 342-QĐ/TW until January 2026 and
//! Regulation 01-QĐ/TW from February 2026 (with its 2028 step), and the regional minimum wages
//! one of its bases needs. The regulations are data (`regulations.json`, each rule with its
//! source and whether it is confirmed), so a new regulation or wage decree is a data change.
//! Money is integer VND.

mod ledger;

pub use ledger::{FeeLedger, LedgerEntry, YearStanding};

use crate::vault::VaultError;
use std::sync::OnceLock;

/// A calendar month, `YYYY-MM` in JSON, from 1930 to 9999.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct YearMonth {
    year: u16,
    month: u8,
}

/// The last month a [`YearMonth`] names (its year has four digits).
const LAST_YEAR: u16 = 9999;

impl YearMonth {
    /// A month, if `month` is 1-12 and `year` 1930-9999.
    pub fn new(year: u16, month: u8) -> Result<Self, FeeError> {
        if !(1..=12).contains(&month) || !(1930..=LAST_YEAR).contains(&year) {
            return Err(FeeError::Invalid {
                reason: format!("no such month {year}-{month}"),
            });
        }
        Ok(YearMonth { year, month })
    }

    /// Parses `YYYY-MM` exactly (four digits, a dash, two digits), so one month has one
    /// spelling.
    pub fn parse(text: &str) -> Result<Self, FeeError> {
        let bad = || FeeError::Invalid {
            reason: format!("expected YYYY-MM, got {text:?}"),
        };
        let bytes = text.as_bytes();
        let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
        if bytes.len() != 7 || bytes[4] != b'-' || !digits(0..4) || !digits(5..7) {
            return Err(bad());
        }
        YearMonth::new(
            text[..4].parse().map_err(|_| bad())?,
            text[5..].parse().map_err(|_| bad())?,
        )
    }

    /// The year.
    pub fn year(self) -> u16 {
        self.year
    }

    /// The month, 1-12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// The month in Hanoi (UTC+7) at unix time `secs`.
    pub fn in_hanoi(secs: i64) -> Option<YearMonth> {
        use chrono::Datelike;
        let local = chrono::DateTime::from_timestamp(secs.checked_add(7 * 3600)?, 0)?;
        YearMonth::new(u16::try_from(local.year()).ok()?, local.month() as u8).ok()
    }

    /// The number of months from `self` to `later` (0 when `later` is not after `self`).
    pub fn months_until(self, later: YearMonth) -> u32 {
        later.index().saturating_sub(self.index())
    }

    fn from_index(index: u32) -> YearMonth {
        let last = u32::from(LAST_YEAR) * 12 + 11;
        let index = index.min(last);
        YearMonth {
            year: (index / 12) as u16,
            month: (index % 12) as u8 + 1,
        }
    }

    fn index(self) -> u32 {
        u32::from(self.year) * 12 + u32::from(self.month.saturating_sub(1))
    }

    /// The month `n` months later (December 9999 at the latest).
    pub fn plus(self, n: u32) -> YearMonth {
        YearMonth::from_index(self.index().saturating_add(n))
    }

    /// The month before (`None` before the first month a `YearMonth` names).
    pub fn previous(self) -> Option<YearMonth> {
        let index = self.index().checked_sub(1)?;
        let month = YearMonth::from_index(index);
        (month.year >= 1930).then_some(month)
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

/// What a member's fee is computed from. A member keeps one basis across a change of
/// regulation; each regulation says what it charges for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeBasis {
    /// Works in a public body or the armed forces, under compulsory social insurance: salary
    /// plus allowances (342-QĐ/TW), the previous month's social-insurance salary (01-QĐ/TW).
    SocialInsuranceSalary,
    /// Works in an enterprise: wages from the payroll fund (342-QĐ/TW), the social-insurance
    /// salary (01-QĐ/TW).
    EnterpriseWage,
    /// On sick or maternity leave: the benefit (01-QĐ/TW only).
    SickOrMaternityBenefit,
    /// Pensioner: the pension.
    Pension,
    /// Student: a fixed amount.
    Student,
    /// Neither social insurance nor a pension (farmers, the self-employed, others): an amount
    /// set by the cell (342-QĐ/TW), a share of the regional minimum wage (01-QĐ/TW).
    OtherIncome,
    /// Lives abroad: a share of the living allowance, or a fixed amount.
    Abroad,
}

/// Which members a rule line is for, when the regulation tells them apart by age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgeGroup {
    /// Of working age.
    Working,
    /// Past working age.
    PastWorking,
}

/// A regional minimum-wage region (vùng I to IV), where the member's cell sits. Hanoi's inner
/// districts are region I.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum WageRegion {
    /// Region I.
    I,
    /// Region II.
    II,
    /// Region III.
    III,
    /// Region IV.
    IV,
}

impl WageRegion {
    fn index(self) -> usize {
        match self {
            WageRegion::I => 0,
            WageRegion::II => 1,
            WageRegion::III => 2,
            WageRegion::IV => 3,
        }
    }
}

/// How the fee follows from the basis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeRule {
    /// A share of the income the basis names, in basis points (100 = 1%).
    Percent {
        /// Basis points.
        basis_points: u32,
    },
    /// A fixed monthly amount.
    Fixed {
        /// VND per month.
        vnd: u64,
    },
    /// An amount the cell sets within bounds; the member pays `share_percent` of it.
    SetByCell {
        /// Least the cell may set.
        min_vnd: u64,
        /// Most the cell may set.
        max_vnd: u64,
        /// Share of the set amount paid (50 past working age under 342-QĐ/TW).
        share_percent: u8,
    },
    /// A share of the regional minimum wage in force on the month's first day.
    MinimumWageShare {
        /// Basis points.
        basis_points: u32,
    },
    /// A share of the income when there is one, otherwise an amount set within bounds.
    PercentOrSetByCell {
        /// Basis points of the income.
        basis_points: u32,
        /// Least fixed amount.
        min_vnd: u64,
        /// Most fixed amount.
        max_vnd: u64,
    },
}

/// One rule of a regulation: for whom, how much, in words, and whether the text was confirmed
/// against the official regulation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleLine {
    /// The basis it charges.
    pub basis: FeeBasis,
    /// The age group, when the regulation tells them apart.
    #[serde(default)]
    pub age: Option<AgeGroup>,
    /// The rule.
    pub rule: FeeRule,
    /// The rule in words, shown with the fee.
    pub text: String,
    /// Whether the rule is confirmed against the official text (false: an assumption).
    pub confirmed: bool,
    /// Whether the income it charges is the previous month's (01-QĐ/TW: "the previous
    /// month's social-insurance salary"): a statement takes it from the situation of the month
    /// before, when that month's income was that salary too
    /// (`income_is_social_insurance_salary`), whatever its basis or regulation.
    #[serde(default)]
    pub income_of_previous_month: bool,
    /// Whether the income this line charges is the member's social-insurance salary: 342-QĐ/TW's
    /// salary plus the allowances subject to social insurance, and 01-QĐ/TW's salary of public
    /// bodies and enterprises alike (not 342-QĐ/TW's payroll wage).
    #[serde(default)]
    pub income_is_social_insurance_salary: bool,
}

/// How an amount is rounded: to a multiple of `step_vnd`, in the direction `mode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rounding {
    /// The step (1 = to the VND, 1000 = to the thousand).
    pub step_vnd: u64,
    /// Which way (down when the data does not say).
    #[serde(default)]
    pub mode: RoundingMode,
    /// Whether confirmed against the official text.
    pub confirmed: bool,
}

/// Which way an amount goes to its step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundingMode {
    /// Down: a member is never asked for more than the share.
    #[default]
    Down,
    /// To the nearest step, a half up ("làm tròn").
    Nearest,
    /// Up.
    Up,
}

/// An amount's exact value in ten-thousandths of a VND (a share in basis points of an amount
/// in VND is exact in these), so rounding sees the fraction a division would drop.
const EXACT: u128 = 10_000;

impl Rounding {
    /// `exact` (in [`EXACT`] units of a VND) to the step, in VND.
    fn apply(self, exact: u128) -> u64 {
        let step = u128::from(self.step_vnd.max(1)) * EXACT;
        let steps = match self.mode {
            RoundingMode::Down => exact / step,
            RoundingMode::Nearest => (exact + step / 2) / step,
            RoundingMode::Up => exact.div_ceil(step),
        };
        u64::try_from(steps * u128::from(self.step_vnd.max(1))).unwrap_or(u64::MAX)
    }
}

/// The rules of one regulation, in force from a month until the next schedule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeeSchedule {
    /// The regulation, such as `01-QĐ/TW`.
    pub regulation: String,
    /// First month in force.
    pub effective_from: YearMonth,
    /// Where the rules come from.
    #[serde(default)]
    pub source: String,
    /// How amounts are rounded.
    pub rounding: Rounding,
    /// The rules.
    pub rules: Vec<RuleLine>,
}

/// The regional minimum wages a decree sets, from a month on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MinimumWage {
    /// The decree, such as `293/2025/NĐ-CP`.
    pub decree: String,
    /// First month in force.
    pub effective_from: YearMonth,
    /// VND a month for regions I to IV.
    pub region_vnd: [u64; 4],
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
    /// The income the basis names (VND): salary, wage, benefit, pension or living allowance.
    pub income_vnd: u64,
    /// An exemption or reduction, if granted.
    pub relief: Option<Relief>,
    /// Past working age (matters for [`FeeBasis::OtherIncome`]).
    pub past_working_age: bool,
    /// Where the member's cell sits (needed for a minimum-wage share).
    pub region: Option<WageRegion>,
    /// The amount the cell set, for rules that take one (working-age amount).
    pub set_amount_vnd: Option<u64>,
}

impl FeeSituation {
    /// A member of working age on `basis` with `income_vnd`, no relief, no region, no amount.
    pub fn new(basis: FeeBasis, income_vnd: u64) -> Self {
        FeeSituation {
            basis,
            income_vnd,
            relief: None,
            past_working_age: false,
            region: None,
            set_amount_vnd: None,
        }
    }
}

/// A member's situation from a month until the next period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeePeriod {
    /// First month of the period.
    pub since: YearMonth,
    /// The situation.
    pub situation: FeeSituation,
}

/// The fee due for a month, with the rule that gave it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Assessment {
    /// The month.
    pub month: YearMonth,
    /// The regulation applied.
    pub regulation: String,
    /// The basis charged (absent in entries recorded before bases were named).
    #[serde(default)]
    pub basis: Option<FeeBasis>,
    /// The rule applied, in words.
    #[serde(default)]
    pub rule: String,
    /// Whether the rule is confirmed against the official text.
    #[serde(default)]
    pub rule_confirmed: bool,
    /// Before relief.
    pub base_vnd: u64,
    /// Percent taken off (100 when exempt).
    pub relief_percent: u8,
    /// Due.
    pub due_vnd: u64,
}

/// Fees over a run of months.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FeeStatement {
    /// One assessment a month that a rule prices, in order.
    pub months: Vec<Assessment>,
    /// Sum due over `months`.
    pub total_due_vnd: u64,
    /// The months no modelled rule prices (sick leave under 342-QĐ/TW, a month before April
    /// 2011), in order: the cell sets them by hand. They are not in the total.
    pub unpriced: Vec<UnpricedMonth>,
}

impl FeeStatement {
    /// Whether every month of the run is priced, so the total is the whole run's.
    pub fn is_complete(&self) -> bool {
        self.unpriced.is_empty()
    }
}

/// A month of a statement that no modelled rule prices.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnpricedMonth {
    /// The month.
    pub month: YearMonth,
    /// What had no rule, in words.
    pub reason: String,
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

fn invalid(reason: impl Into<String>) -> FeeError {
    FeeError::Invalid {
        reason: reason.into(),
    }
}

/// Longest run of months one statement covers (a century of membership).
pub const MAX_STATEMENT_MONTHS: u32 = 1_200;

/// The regulations and minimum wages in force over time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeeRules {
    schedules: Vec<FeeSchedule>,
    #[serde(default)]
    minimum_wages: Vec<MinimumWage>,
    /// The last month for which the wage decrees were checked: a later month's share of the
    /// minimum wage is of the latest decree known, which a newer one may replace, so it is not
    /// confirmed.
    #[serde(default)]
    minimum_wages_checked_through: Option<YearMonth>,
}

impl FeeRules {
    /// Rules from schedules and minimum wages (any order; effective months must differ).
    pub fn new(
        mut schedules: Vec<FeeSchedule>,
        mut minimum_wages: Vec<MinimumWage>,
    ) -> Result<Self, FeeError> {
        schedules.sort_by_key(|s| s.effective_from);
        minimum_wages.sort_by_key(|w| w.effective_from);
        if schedules
            .windows(2)
            .any(|w| w[0].effective_from == w[1].effective_from)
            || minimum_wages
                .windows(2)
                .any(|w| w[0].effective_from == w[1].effective_from)
        {
            return Err(invalid("two schedules start in the same month"));
        }
        for schedule in &schedules {
            if schedule.rounding.step_vnd == 0 {
                return Err(invalid(format!(
                    "{} rounds to a step of 0",
                    schedule.regulation
                )));
            }
            for line in &schedule.rules {
                let bad = match line.rule {
                    FeeRule::SetByCell {
                        min_vnd,
                        max_vnd,
                        share_percent,
                    } => min_vnd > max_vnd || share_percent > 100,
                    FeeRule::PercentOrSetByCell {
                        min_vnd, max_vnd, ..
                    } => min_vnd > max_vnd,
                    _ => false,
                };
                if bad {
                    return Err(invalid(format!(
                        "{}: {:?} has bounds the wrong way round",
                        schedule.regulation, line.basis
                    )));
                }
            }
        }
        Ok(FeeRules {
            schedules,
            minimum_wages,
            minimum_wages_checked_through: None,
        })
    }

    /// The same rules, with the wage decrees checked through `month` (see
    /// [`FeeRules::assess`]'s `rule_confirmed`).
    pub fn with_minimum_wages_checked_through(mut self, month: YearMonth) -> Self {
        self.minimum_wages_checked_through = Some(month);
        self
    }

    /// Rules from their JSON form (the form of the shipped `regulations.json`).
    pub fn from_json(json: &[u8]) -> Result<Self, FeeError> {
        let rules: FeeRules = serde_json::from_slice(json)
            .map_err(|e| invalid(format!("fee rules do not parse: {e}")))?;
        let checked = rules.minimum_wages_checked_through;
        let rules = FeeRules::new(rules.schedules, rules.minimum_wages)?;
        Ok(match checked {
            Some(month) => rules.with_minimum_wages_checked_through(month),
            None => rules,
        })
    }

    /// The regulations shipped with the library: 342-QĐ/TW from April 2011, 01-QĐ/TW from
    /// February 2026 with its January 2028 step, and the regional minimum wages from July 2022.
    pub fn official() -> Result<&'static FeeRules, FeeError> {
        static OFFICIAL: OnceLock<Result<FeeRules, FeeError>> = OnceLock::new();
        OFFICIAL
            .get_or_init(|| FeeRules::from_json(include_bytes!("regulations.json")))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Regulation 01-QĐ/TW as first in force (February 2026).
    pub fn regulation_01_2026() -> Result<FeeSchedule, FeeError> {
        let official = FeeRules::official()?;
        official
            .schedules
            .iter()
            .find(|s| s.regulation == "01-QĐ/TW")
            .cloned()
            .ok_or_else(|| FeeError::NoRule {
                what: "01-QĐ/TW".into(),
            })
    }

    /// The schedules, oldest first.
    pub fn schedules(&self) -> &[FeeSchedule] {
        &self.schedules
    }

    /// The schedule in force in `month`.
    pub fn schedule_for(&self, month: YearMonth) -> Option<&FeeSchedule> {
        self.schedules
            .iter()
            .rev()
            .find(|s| s.effective_from <= month)
    }

    /// The regional minimum wage in force in `month` for `region`, with its decree.
    pub fn minimum_wage(&self, region: WageRegion, month: YearMonth) -> Option<(&str, u64)> {
        self.minimum_wages
            .iter()
            .rev()
            .find(|w| w.effective_from <= month)
            .map(|w| (w.decree.as_str(), w.region_vnd[region.index()]))
    }

    /// Whether the income `basis` is charged on in `month` is the social-insurance salary.
    fn income_is_social_insurance_salary(&self, basis: FeeBasis, month: YearMonth) -> bool {
        self.schedule_for(month).is_some_and(|s| {
            s.rules
                .iter()
                .any(|l| l.basis == basis && l.income_is_social_insurance_salary)
        })
    }

    /// The first month after `since` (up to `month`) from which the income `basis` is charged
    /// on is another kind of income than at `since` (the social-insurance salary or not).
    fn income_changes_meaning(
        &self,
        basis: FeeBasis,
        since: YearMonth,
        month: YearMonth,
    ) -> Option<YearMonth> {
        let first = self.schedules.first()?.effective_from;
        let start = since.max(first);
        let at_start = self.income_is_social_insurance_salary(basis, start);
        self.schedules
            .iter()
            .map(|s| s.effective_from)
            .filter(|e| *e > start && *e <= month)
            .find(|e| self.income_is_social_insurance_salary(basis, *e) != at_start)
    }

    /// Whether `basis` is charged on the previous month's income in `month`.
    fn charges_previous_month(&self, basis: FeeBasis, month: YearMonth) -> bool {
        self.schedule_for(month).is_some_and(|s| {
            s.rules
                .iter()
                .any(|l| l.basis == basis && l.income_of_previous_month)
        })
    }

    /// The fee due for `month`. Where the rule charges the previous month's income
    /// ([`RuleLine::income_of_previous_month`]), `situation.income_vnd` is that month's.
    pub fn assess(
        &self,
        situation: &FeeSituation,
        month: YearMonth,
    ) -> Result<Assessment, FeeError> {
        // A malformed relief is refused whether or not the month can be priced.
        let relief_percent = relief_percent(situation.relief, month)?;
        let schedule = self.schedule_for(month).ok_or_else(|| FeeError::NoRule {
            what: format!(
                "month {month} (the earliest regulation modelled starts {})",
                self.schedules
                    .first()
                    .map_or("nowhere".into(), |s| s.effective_from.to_string())
            ),
        })?;
        let age = if situation.past_working_age {
            AgeGroup::PastWorking
        } else {
            AgeGroup::Working
        };
        let line = schedule
            .rules
            .iter()
            .find(|l| l.basis == situation.basis && l.age.is_none_or(|a| a == age));
        let exempt = situation.relief == Some(Relief::Exempt);
        // An exempt member owes nothing, whatever is missing to price the month: a figure, or
        // a rule for the basis (sick leave under 342-QĐ/TW).
        let raw = match line.map(|l| self.amount(l, situation, month)) {
            Some(Err(FeeError::Invalid { .. } | FeeError::NoRule { .. })) | None if exempt => 0,
            Some(other) => other?,
            None => {
                return Err(FeeError::NoRule {
                    what: format!(
                        "{:?} under {} (month {month})",
                        situation.basis, schedule.regulation
                    ),
                })
            }
        };
        let base_vnd = schedule.rounding.apply(raw);
        let due_exact = u128::from(base_vnd) * u128::from(100 - relief_percent) * (EXACT / 100);
        let due_vnd = schedule.rounding.apply(due_exact);
        let mut rule = line.map_or_else(
            || {
                format!(
                    "exempt ({:?} has no rule under {})",
                    situation.basis, schedule.regulation
                )
            },
            |l| l.text.clone(),
        );
        let mut wage_known = true;
        if let Some(FeeRule::MinimumWageShare { .. }) = line.map(|l| &l.rule) {
            if let Some((decree, wage)) = situation
                .region
                .and_then(|region| self.minimum_wage(region, month))
            {
                rule = format!("{rule}: {wage} VND under {decree}");
            }
            if let Some(checked) = self.minimum_wages_checked_through.filter(|c| month > *c) {
                wage_known = false;
                rule = format!(
                    "{rule} (the latest decree known in {checked}; a later one may change it)"
                );
            }
        }
        // Amounts that needed rounding are confirmed only when the rounding is.
        let whole =
            |exact: u128| exact % (u128::from(schedule.rounding.step_vnd.max(1)) * EXACT) == 0;
        let rounded = schedule.rounding.confirmed || (whole(raw) && whole(due_exact));
        Ok(Assessment {
            month,
            regulation: schedule.regulation.clone(),
            basis: Some(situation.basis),
            rule,
            rule_confirmed: line.is_none_or(|l| l.confirmed) && wage_known && rounded,
            base_vnd,
            relief_percent,
            due_vnd,
        })
    }

    /// What `line` asks, exactly (in [`EXACT`] units of a VND), before rounding.
    fn amount(
        &self,
        line: &RuleLine,
        situation: &FeeSituation,
        month: YearMonth,
    ) -> Result<u128, FeeError> {
        let percent_of_income = |basis_points: u32| {
            // A set amount where this regulation knows only a share of income (342-QĐ/TW's
            // fixed amounts abroad): not modelled, so the month is unpriced, not the run refused.
            if situation.income_vnd == 0 && situation.set_amount_vnd.is_some() {
                return Err(FeeError::NoRule {
                    what: format!("{:?} paying a set amount (month {month})", situation.basis),
                });
            }
            if situation.income_vnd == 0 {
                return Err(invalid(format!(
                    "{:?} needs the income it names",
                    situation.basis
                )));
            }
            Ok(u128::from(situation.income_vnd) * u128::from(basis_points))
        };
        let set_amount = |min_vnd: u64, max_vnd: u64| match situation.set_amount_vnd {
            None => Err(invalid(format!(
                "{:?} needs the amount the cell set ({min_vnd}-{max_vnd} VND)",
                situation.basis
            ))),
            Some(amount) if !(min_vnd..=max_vnd).contains(&amount) => Err(invalid(format!(
                "the amount set must be {min_vnd}-{max_vnd} VND, not {amount}"
            ))),
            Some(amount) => Ok(u128::from(amount) * EXACT),
        };
        match line.rule {
            FeeRule::Percent { basis_points } => percent_of_income(basis_points),
            FeeRule::Fixed { vnd } => Ok(u128::from(vnd) * EXACT),
            FeeRule::SetByCell {
                min_vnd,
                max_vnd,
                share_percent,
            } => Ok(set_amount(min_vnd, max_vnd)? * u128::from(share_percent) / 100),
            FeeRule::MinimumWageShare { basis_points } => {
                let region = situation.region.ok_or_else(|| {
                    invalid("a share of the minimum wage needs the cell's wage region")
                })?;
                let (_, wage) =
                    self.minimum_wage(region, month)
                        .ok_or_else(|| FeeError::NoRule {
                            what: format!("the regional minimum wage in {month}"),
                        })?;
                Ok(u128::from(wage) * u128::from(basis_points))
            }
            FeeRule::PercentOrSetByCell {
                basis_points,
                min_vnd,
                max_vnd,
            } => match (situation.income_vnd, situation.set_amount_vnd) {
                (0, _) => set_amount(min_vnd, max_vnd),
                (_, None) => percent_of_income(basis_points),
                (_, Some(_)) => Err(invalid(
                    "give either the living allowance or the fixed amount, not both",
                )),
            },
        }
    }

    /// The fee due for every month from `from` to `to` (both included), each month under the
    /// regulation and the member's situation of that month: arrears and a member's history
    /// across the 2026 change of regulation. `periods` must start no later than `from`, each
    /// later than the one before. A month that no modelled rule prices is listed in
    /// [`FeeStatement::unpriced`] and the rest of the run is still assessed; bad input is
    /// still an error.
    pub fn statement(
        &self,
        periods: &[FeePeriod],
        from: YearMonth,
        to: YearMonth,
    ) -> Result<FeeStatement, FeeError> {
        if to < from {
            return Err(invalid(format!("{to} is before {from}")));
        }
        if from.months_until(to) >= MAX_STATEMENT_MONTHS {
            return Err(invalid(format!(
                "a statement covers at most {MAX_STATEMENT_MONTHS} months"
            )));
        }
        if periods.windows(2).any(|w| w[1].since <= w[0].since) {
            return Err(invalid("periods must be in order, each starting later"));
        }
        let mut months = Vec::new();
        let mut total_due_vnd = 0u64;
        let mut unpriced = Vec::new();
        let in_force = |m: YearMonth| periods.iter().rposition(|p| p.since <= m);
        for n in 0..=from.months_until(to) {
            let month = from.plus(n);
            let index = in_force(month)
                .ok_or_else(|| invalid(format!("no situation given for {month}")))?;
            let period = &periods[index];
            let basis = period.situation.basis;
            let previous = month.previous();
            // One figure cannot be two incomes: 342-QĐ/TW charged an enterprise's payroll wage,
            // 01-QĐ/TW charges its social-insurance salary. A period whose one income this
            // statement would read as both (from the first month it reads: the statement's
            // first, or the month before when that month's salary is charged) is refused.
            let first_read = match from.previous() {
                Some(before)
                    if self.charges_previous_month(basis, from)
                        && self.income_is_social_insurance_salary(basis, before) =>
                {
                    before
                }
                _ => from,
            };
            if period.situation.income_vnd > 0 && period.situation.relief != Some(Relief::Exempt) {
                let read_from = period.since.max(first_read);
                if let Some(change) = self.income_changes_meaning(basis, read_from, month) {
                    return Err(invalid(format!(
                        "{basis:?} is charged on another income from {change} (the \
                         social-insurance salary under one regulation, not under the other): \
                         start a new period in {change} with that income"
                    )));
                }
            }
            // A salary that changed in June is charged from July's fee on (01-QĐ/TW: the
            // previous month's social-insurance salary): the month before's income, when it
            // was that salary too (a public body's or an enterprise's under 01-QĐ/TW, a public
            // body's under 342-QĐ/TW, not 342-QĐ/TW's payroll wage), and there was one (not an
            // exemption that needed none). A member who had none (a pensioner hired again)
            // pays on this month's; a month before any situation given is not guessed.
            let charges_previous = self.charges_previous_month(basis, month);
            // The month before had a salary this rule charges (its job's income is the
            // social-insurance salary now) that was not given as one: this month's own is
            // charged, unconfirmed (an enterprise's February 2026, its January given as the
            // payroll wage 342-QĐ/TW charged).
            let mut guessed = false;
            let before = match previous {
                Some(m) => match in_force(m) {
                    Some(i) => Some((m, &periods[i])),
                    None if charges_previous
                        && period.situation.relief != Some(Relief::Exempt)
                        && self.income_is_social_insurance_salary(basis, m) =>
                    {
                        return Err(invalid(format!(
                            "the fee for {month} is charged on {m}'s social-insurance salary: \
                             give the situation from {m}"
                        )))
                    }
                    None => None,
                },
                None => None,
            }
            .filter(|(m, p)| {
                let read = p.situation.income_vnd > 0
                    && self.income_is_social_insurance_salary(p.situation.basis, *m);
                guessed = charges_previous
                    && !read
                    && p.situation.income_vnd > 0
                    && p.situation.relief != Some(Relief::Exempt)
                    && self.income_is_social_insurance_salary(p.situation.basis, month);
                read
            })
            .map(|(_, p)| p);
            let situation = match before {
                Some(b) if charges_previous => FeeSituation {
                    income_vnd: b.situation.income_vnd,
                    ..period.situation.clone()
                },
                _ => period.situation.clone(),
            };
            // One month without a rule (a basis the old regulation did not name) must not
            // hide a member's whole history.
            match self.assess(&situation, month) {
                Ok(mut assessment) => {
                    if guessed && assessment.due_vnd > 0 {
                        assessment.rule_confirmed = false;
                        assessment.rule = format!(
                            "{} (on this month's salary: the previous month's social-insurance \
                             salary was not given)",
                            assessment.rule
                        );
                    }
                    total_due_vnd = total_due_vnd.saturating_add(assessment.due_vnd);
                    months.push(assessment);
                }
                Err(FeeError::NoRule { what }) => unpriced.push(UnpricedMonth {
                    month,
                    reason: what,
                }),
                Err(e) => return Err(e),
            }
        }
        Ok(FeeStatement {
            months,
            total_due_vnd,
            unpriced,
        })
    }
}

fn relief_percent(relief: Option<Relief>, month: YearMonth) -> Result<u8, FeeError> {
    Ok(match relief {
        None => 0,
        Some(Relief::Exempt) => 100,
        Some(Relief::Reduction {
            percent,
            from,
            months,
        }) => {
            if ![30, 50, 70].contains(&percent) {
                return Err(invalid("a reduction is 30, 50 or 70%"));
            }
            if !(1..=12).contains(&months) {
                return Err(invalid("a reduction lasts 1 to 12 months"));
            }
            if from <= month && month < from.plus(u32::from(months)) {
                percent
            } else {
                0
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_regulations_parse() {
        let rules = FeeRules::official().expect("regulations.json parses");
        assert_eq!(rules.schedules().len(), 4);
        let m = YearMonth::new(2026, 3).unwrap();
        assert_eq!(
            rules.minimum_wage(WageRegion::I, m),
            Some(("293/2025/NĐ-CP", 5_310_000))
        );
    }
}
