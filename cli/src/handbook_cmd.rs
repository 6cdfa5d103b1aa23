//! `thudo handbook ...`, for support staff.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use thudo_core::handbook::fees::{FeeBasis, FeeRules, FeeSituation, Relief, YearMonth};
use thudo_core::handbook::library::{Library, LibraryDocument};

/// Arguments of `thudo handbook`.
#[derive(Args)]
pub struct HandbookArgs {
    #[command(subcommand)]
    command: HandbookCommand,
}

#[derive(Clone, Copy, ValueEnum)]
enum BasisArg {
    Salary,
    Benefit,
    Pension,
    Student,
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
    /// Compute a monthly party fee under the regulations in force.
    Fee {
        /// What the fee is computed from.
        #[arg(long, value_enum)]
        basis: BasisArg,
        /// The income the basis names (VND; ignored for students).
        #[arg(long, default_value_t = 0)]
        income: u64,
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
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
                    BasisArg::Benefit => FeeBasis::SickOrMaternityBenefit,
                    BasisArg::Pension => FeeBasis::Pension,
                    BasisArg::Student => FeeBasis::Student,
                },
                income_vnd: income,
                relief,
            };
            let rules = FeeRules::new(vec![FeeRules::regulation_01_2026()])?;
            println!(
                "{}",
                serde_json::to_string(&rules.assess(&situation, YearMonth::parse(&month)?)?)?
            );
        }
    }
    Ok(())
}
