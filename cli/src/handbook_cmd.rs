//! `thudo handbook ...`, for support staff.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use thudo_core::handbook::fees::{
    FeeBasis, FeePeriod, FeeRules, FeeSituation, Relief, WageRegion, YearMonth,
};
use thudo_core::handbook::library::{Library, LibraryDocument};

/// Arguments of `thudo handbook`.
#[derive(Args)]
pub struct HandbookArgs {
    #[command(subcommand)]
    command: HandbookCommand,
}

#[derive(Clone, Copy, ValueEnum)]
enum BasisArg {
    /// Public body or armed forces: salary (plus allowances before 2026).
    Salary,
    /// Enterprise: payroll wages (before 2026), social-insurance salary (after).
    Enterprise,
    /// Sick or maternity benefit (from February 2026).
    Benefit,
    /// Pension.
    Pension,
    /// Student.
    Student,
    /// Neither social insurance nor a pension (farmers, the self-employed).
    Other,
    /// Living abroad.
    Abroad,
}

#[derive(Clone, Copy, ValueEnum)]
enum RegionArg {
    I,
    Ii,
    Iii,
    Iv,
}

#[derive(Subcommand)]
enum HandbookCommand {
    /// Search the document library (accents and case ignored); one JSON hit per line.
    Search {
        /// The library file.
        #[arg(long, default_value = "library.db")]
        library: PathBuf,
        /// Most hits to print.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// The query, such as `nghi quyet 57` or `01-QĐ/TW`.
        query: Vec<String>,
    },
    /// Load documents from a JSON file (a list of {id, number, issuer, issued_on, kind, title, body}).
    Import {
        /// The library file.
        #[arg(long, default_value = "library.db")]
        library: PathBuf,
        /// The JSON file.
        file: PathBuf,
    },
    /// Compute the party fee for a month, or for every month of a range (arrears), under the
    /// regulation in force each month (342-QĐ/TW from 2011-04, 01-QĐ/TW from 2026-02); one
    /// JSON line a month naming the regulation, basis and rule, then the total for a range.
    Fee {
        /// What the fee is computed from.
        #[arg(long, value_enum)]
        basis: BasisArg,
        /// The income the basis names: salary, wage, benefit, pension or living allowance (VND).
        #[arg(long, default_value_t = 0)]
        income: u64,
        /// The month, YYYY-MM (or the first month of a range, with --to).
        #[arg(long)]
        month: String,
        /// The last month of a range, YYYY-MM. The situation given holds the whole range and
        /// the month before it; an enterprise's income across February 2026 (its payroll wage
        /// before, its social-insurance salary after) is two runs.
        #[arg(long)]
        to: Option<String>,
        /// Past working age.
        #[arg(long)]
        past_working_age: bool,
        /// The minimum-wage region where the cell sits (I to IV; Hanoi's inner districts are I).
        #[arg(long, value_enum)]
        region: Option<RegionArg>,
        /// The monthly amount the cell set (VND), for bases that take one.
        #[arg(long)]
        set_amount: Option<u64>,
        /// Exempt from fees.
        #[arg(long)]
        exempt: bool,
        /// A reduction of 30, 50 or 70%, as PERCENT:FROM:MONTHS (for example 50:2026-05:6).
        #[arg(long, conflicts_with = "exempt")]
        reduction: Option<String>,
    },
}

/// Runs `thudo handbook ...`.
pub fn run(args: HandbookArgs) -> Result<()> {
    match args.command {
        HandbookCommand::Search {
            library,
            limit,
            query,
        } => {
            let lib = Library::open(&library)?;
            for hit in lib.search(&query.join(" "), limit)? {
                println!("{}", serde_json::to_string(&hit)?);
            }
        }
        HandbookCommand::Import { library, file } => {
            let docs: Vec<LibraryDocument> = serde_json::from_slice(&std::fs::read(&file)?)?;
            Library::open(&library)?.upsert(&docs)?;
            eprintln!("{} documents loaded", docs.len());
        }
        HandbookCommand::Fee {
            basis,
            income,
            month,
            to,
            past_working_age,
            region,
            set_amount,
            exempt,
            reduction,
        } => {
            let relief = if exempt {
                Some(Relief::Exempt)
            } else if let Some(spec) = reduction {
                let parts: Vec<&str> = spec.split(':').collect();
                let [percent, from, months] = parts[..] else {
                    anyhow::bail!("--reduction takes PERCENT:FROM:MONTHS, such as 50:2026-05:6");
                };
                Some(Relief::Reduction {
                    percent: percent.parse()?,
                    from: YearMonth::parse(from)?,
                    months: months.parse()?,
                })
            } else {
                None
            };
            let situation = FeeSituation {
                basis: match basis {
                    BasisArg::Salary => FeeBasis::SocialInsuranceSalary,
                    BasisArg::Enterprise => FeeBasis::EnterpriseWage,
                    BasisArg::Benefit => FeeBasis::SickOrMaternityBenefit,
                    BasisArg::Pension => FeeBasis::Pension,
                    BasisArg::Student => FeeBasis::Student,
                    BasisArg::Other => FeeBasis::OtherIncome,
                    BasisArg::Abroad => FeeBasis::Abroad,
                },
                income_vnd: income,
                relief,
                past_working_age,
                region: region.map(|r| match r {
                    RegionArg::I => WageRegion::I,
                    RegionArg::Ii => WageRegion::II,
                    RegionArg::Iii => WageRegion::III,
                    RegionArg::Iv => WageRegion::IV,
                }),
                set_amount_vnd: set_amount,
            };
            let rules = FeeRules::official()?;
            let from = YearMonth::parse(&month)?;
            match to {
                None => println!(
                    "{}",
                    serde_json::to_string(&rules.assess(&situation, from)?)?
                ),
                Some(to) => {
                    // One situation for the whole run, and for the month before it (whose
                    // salary 01-QĐ/TW charges in the first month).
                    let period = FeePeriod {
                        since: from.previous().unwrap_or(from),
                        situation,
                    };
                    let statement = rules.statement(&[period], from, YearMonth::parse(&to)?)?;
                    for month in &statement.months {
                        println!("{}", serde_json::to_string(month)?);
                    }
                    for unpriced in &statement.unpriced {
                        println!("{}", serde_json::json!({ "unpriced": unpriced }));
                    }
                    println!(
                        "{}",
                        serde_json::json!({
                            "total_due_vnd": statement.total_due_vnd,
                            "complete": statement.is_complete(),
                        })
                    );
                }
            }
        }
    }
    Ok(())
}
