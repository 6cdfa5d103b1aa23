//! Vietnam's routine childhood immunization schedule (Expanded Programme on Immunization), as
//! versioned, dated and sourced data, and the status of each dose for a child.
//!
//! The versions: [`VN_EPI_2022`] (the second injected polio dose at 9 months: Hanoi from
//! November 2022, the whole country from 2023) and [`VN_EPI_2024`] (Circular 10/2024/TT-BYT:
//! the 7-year booster is Td), which is [`CURRENT`]. Rotavirus is regional ([`ROTAVIRUS`]:
//! 32 provinces from late 2024, 9 more in 2025), added for a child only where it is given.

pub use chrono::NaiveDate;
use chrono::{Days, Months};

/// When a dose falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueRule {
    /// At an age: months and days after birth.
    Age {
        /// Months after birth.
        months: u32,
        /// Days after that.
        days: u64,
    },
    /// A number of days after the previous dose of the same vaccine was given.
    AfterPrevious {
        /// Days after the previous dose.
        days: u64,
    },
}

/// One dose of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledDose {
    /// Vaccine code used in immunization records.
    pub vaccine: &'static str,
    /// Dose number of that vaccine (1-based).
    pub dose: u32,
    /// When it falls due.
    pub due: DueRule,
    /// Days after the due date before it counts as overdue.
    pub grace_days: u64,
}

/// A versioned schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Version name.
    pub version: &'static str,
    /// From when it applies (`YYYY-MM`, or `YYYY` where the month is not confirmed).
    pub dated: &'static str,
    /// Where it comes from.
    pub source: &'static str,
    /// The doses.
    pub doses: &'static [ScheduledDose],
}

const fn age(
    vaccine: &'static str,
    dose: u32,
    months: u32,
    days: u64,
    grace_days: u64,
) -> ScheduledDose {
    ScheduledDose {
        vaccine,
        dose,
        due: DueRule::Age { months, days },
        grace_days,
    }
}

const fn after_previous(
    vaccine: &'static str,
    dose: u32,
    days: u64,
    grace_days: u64,
) -> ScheduledDose {
    ScheduledDose {
        vaccine,
        dose,
        due: DueRule::AfterPrevious { days },
        grace_days,
    }
}

/// The doses every version shares, from birth to 18 months.
macro_rules! infancy {
    ($($extra:expr),* $(,)?) => {
        &[
            age("HepB", 1, 0, 0, 1), // birth dose within 24 h
            age("BCG", 1, 0, 0, 30), // within the first month
            age("DPT-HepB-Hib", 1, 2, 0, 30),
            age("DPT-HepB-Hib", 2, 3, 0, 30),
            age("DPT-HepB-Hib", 3, 4, 0, 30),
            age("OPV", 1, 2, 0, 30),
            age("OPV", 2, 3, 0, 30),
            age("OPV", 3, 4, 0, 30),
            age("IPV", 1, 5, 0, 30),
            age("IPV", 2, 9, 0, 30),
            age("Measles", 1, 9, 0, 30),
            age("JE", 1, 12, 0, 30),
            after_previous("JE", 2, 7, 7), // 1-2 weeks after the first
            after_previous("JE", 3, 365, 30), // a year after the second
            age("DPT", 4, 18, 0, 30),
            age("MR", 1, 18, 0, 30),
            $($extra),*
        ]
    };
}

/// The schedule with the second injected polio dose at 9 months and DT at 7 years.
pub const VN_EPI_2022: Schedule = Schedule {
    version: "VN-EPI-2022",
    dated: "2022-11",
    source: "Expanded Programme on Immunization: IPV dose 2 at 9 months, Hanoi from November \
             2022, nationwide from 2023; earlier decisions for the rest",
    doses: infancy![age("DT", 1, 84, 0, 365)],
};

/// The schedule of Circular 10/2024/TT-BYT: the 7-year booster is Td (low-dose diphtheria);
/// a DT dose given instead still counts.
pub const VN_EPI_2024: Schedule = Schedule {
    version: "VN-EPI-2024",
    dated: "2024",
    source: "Circular 10/2024/TT-BYT (Ministry of Health), with the IPV dose 2 of VN-EPI-2022",
    doses: infancy![age("Td", 1, 84, 0, 365)],
};

/// The schedule a child is checked against today.
pub const CURRENT: Schedule = VN_EPI_2024;

/// Rotavirus, where the programme gives it (32 provinces from late 2024, 9 more in 2025). The
/// ages are an assumption, not yet confirmed against the ministry's text: two oral doses at 2
/// and 3 months, as the domestic vaccine is given.
pub const ROTAVIRUS: &[ScheduledDose] = &[age("Rota", 1, 2, 0, 30), age("Rota", 2, 3, 0, 30)];

/// A recorded immunization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenDose {
    /// Vaccine code.
    pub vaccine: String,
    /// Date given.
    pub date: NaiveDate,
}

/// Where a dose stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DoseState {
    /// Given.
    Done,
    /// Due now.
    Due,
    /// Past its due date and grace period.
    Overdue,
    /// Not yet due (or waiting for the previous dose).
    Upcoming,
}

/// A dose and its state for one child on one day.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DoseStatus {
    /// Vaccine code.
    pub vaccine: &'static str,
    /// Dose number.
    pub dose: u32,
    /// State.
    pub state: DoseState,
    /// Due date, when it can be computed.
    pub due_on: Option<NaiveDate>,
    /// Date given, when done.
    pub given_on: Option<NaiveDate>,
    /// The first day it counts as overdue (after the due date and its grace period), when
    /// the due date is known.
    pub overdue_from: Option<NaiveDate>,
}

/// Whether a dose given as `given` counts as a dose of `scheduled`.
fn counts_as(given: &str, scheduled: &str) -> bool {
    given.eq_ignore_ascii_case(scheduled)
        // The combination counts toward the DPT booster's numbering.
        || (scheduled == "DPT" && given.eq_ignore_ascii_case("DPT-HepB-Hib"))
        // A DT booster given where Td is scheduled (and the other way) is the same booster.
        || (scheduled == "Td" && given.eq_ignore_ascii_case("DT"))
        || (scheduled == "DT" && given.eq_ignore_ascii_case("Td"))
}

impl Schedule {
    /// Each dose's state for a child born on `birth`, with the doses `given`, on `today`.
    /// Recorded doses of a vaccine fill its doses in date order; doses given under the DPT-HepB-Hib
    /// combination also count as DPT for the booster numbering.
    pub fn status(
        &self,
        birth: NaiveDate,
        given: &[GivenDose],
        today: NaiveDate,
    ) -> Vec<DoseStatus> {
        self.status_with(&[], birth, given, today)
    }

    /// [`Schedule::status`] with regional doses added (see [`ROTAVIRUS`]).
    pub fn status_with(
        &self,
        regional: &'static [ScheduledDose],
        birth: NaiveDate,
        given: &[GivenDose],
        today: NaiveDate,
    ) -> Vec<DoseStatus> {
        let given_of = |vaccine: &str| {
            let mut dates: Vec<NaiveDate> = given
                .iter()
                .filter(|g| counts_as(&g.vaccine, vaccine))
                .map(|g| g.date)
                .collect();
            // One vaccine given twice the same day is one dose recorded twice (a card imported
            // again, a copy from another source), never two doses of a series.
            dates.sort();
            dates.dedup();
            dates
        };
        let mut out: Vec<DoseStatus> = Vec::with_capacity(self.doses.len() + regional.len());
        for d in self.doses.iter().chain(regional) {
            let dates = given_of(d.vaccine);
            let given_on = dates.get(d.dose as usize - 1).copied();
            let due_on = match d.due {
                DueRule::Age { months, days } => birth
                    .checked_add_months(Months::new(months))
                    .and_then(|m| m.checked_add_days(Days::new(days))),
                DueRule::AfterPrevious { days } => {
                    if d.dose < 2 {
                        None
                    } else {
                        dates
                            .get(d.dose as usize - 2)
                            .and_then(|prev| prev.checked_add_days(Days::new(days)))
                    }
                }
            };
            let overdue_from =
                due_on.and_then(|due| due.checked_add_days(Days::new(d.grace_days + 1)));
            let state = match (given_on, due_on) {
                (Some(_), _) => DoseState::Done,
                (None, None) => DoseState::Upcoming,
                (None, Some(due)) if today < due => DoseState::Upcoming,
                (None, Some(_)) => match overdue_from {
                    Some(overdue) if today >= overdue => DoseState::Overdue,
                    _ => DoseState::Due,
                },
            };
            out.push(DoseStatus {
                vaccine: d.vaccine,
                dose: d.dose,
                state,
                due_on,
                given_on,
                overdue_from,
            });
        }
        out
    }
}

/// Parses a `YYYY-MM-DD` date.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// The code system whose codes are this schedule's vaccine names (`HepB`, `BCG`, ...), for
/// immunizations recorded by the app itself.
pub const EPI_VACCINE_SYSTEM: &str = "urn:thudo:vn-epi:vaccine";
/// CVX, the vaccine code system of SMART Health Cards and most FHIR immunizations.
pub const CVX_SYSTEM: &str = "http://hl7.org/fhir/sid/cvx";

/// The schedule's vaccine for a coded vaccine: a CVX code of a vaccine the schedule uses, or
/// a code of [`EPI_VACCINE_SYSTEM`]. Other vaccines (COVID-19, influenza, ...) are `None`.
pub fn vaccine_for(system: &str, code: &str) -> Option<&'static str> {
    const EPI: &[&str] = &[
        "HepB",
        "BCG",
        "DPT-HepB-Hib",
        "OPV",
        "IPV",
        "Measles",
        "JE",
        "DPT",
        "MR",
        "DT",
        "Td",
        "Rota",
    ];
    match system {
        EPI_VACCINE_SYSTEM => EPI.iter().find(|v| v.eq_ignore_ascii_case(code)).copied(),
        CVX_SYSTEM => Some(match code.trim_start_matches('0') {
            "8" | "45" => "HepB",
            "19" => "BCG",
            "198" | "102" => "DPT-HepB-Hib",
            "2" | "178" | "179" | "182" => "OPV",
            "10" => "IPV",
            "5" => "Measles",
            "39" | "134" => "JE",
            "1" | "20" | "106" | "107" => "DPT",
            "4" => "MR",
            "28" => "DT",
            // Td, adsorbed (preservative-free, unspecified formulation, and the two others).
            "9" | "113" | "138" | "139" => "Td",
            // Rotavirus: pentavalent, monovalent, unspecified.
            "116" | "119" | "122" => "Rota",
            _ => return None,
        }),
        _ => None,
    }
}
