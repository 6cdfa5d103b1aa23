//! `thudo transit ...` and `thudo validate`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use thudo_core::transit::issuer::{CredentialRequest, IssuerKey, TrustedIssuerKey};
use thudo_core::transit::phone::{Phone, PhoneOptions};
use thudo_core::transit::validator::{Validator, ValidatorConfig};
use thudo_core::transit::{Category, Product};

use crate::vault_cmd;

/// Arguments of `thudo transit`.
#[derive(Args)]
pub struct TransitArgs {
    #[command(subcommand)]
    command: TransitCommand,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProductArg {
    MonthlySingleRoute,
    MonthlyAllRoutes,
    PayAsYouGo,
    FreePass,
    DayPass,
    WeekPass,
}

#[derive(Clone, Copy, ValueEnum)]
enum CategoryArg {
    Standard,
    Priority,
    Group,
    Elderly,
    Child,
    Disability,
    Merit,
    PoorHousehold,
}

#[derive(Subcommand)]
enum TransitCommand {
    /// Make an issuer key: the secret key file, and the public key validators trust.
    Keygen {
        /// Key id carried in credentials.
        #[arg(long)]
        key_id: u16,
        /// Days the key stays valid from now.
        #[arg(long, default_value_t = 365)]
        valid_days: u32,
        /// Secret key file to write (JSON; keep it on the backend only).
        #[arg(long)]
        out: PathBuf,
        /// Trusted-keys file to write or extend (JSON list, for validators).
        #[arg(long)]
        trusted: PathBuf,
    },
    /// Sign a credential for a phone's device key; prints it as hex.
    Issue {
        /// The issuer's secret key file.
        #[arg(long)]
        issuer: PathBuf,
        /// The phone's device public key, hex (from `thudo transit phone-key`).
        #[arg(long)]
        device_key: String,
        /// Card or account number.
        #[arg(long)]
        card: u64,
        /// Product.
        #[arg(long, value_enum)]
        product: ProductArg,
        /// Passenger category.
        #[arg(long, value_enum, default_value = "standard")]
        category: CategoryArg,
        /// Route of a single-route pass.
        #[arg(long, default_value_t = 0)]
        route: u16,
        /// Days the pass lasts from today.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Hours the credential may be shown offline (at most 72).
        #[arg(long, default_value_t = 72)]
        lifetime_hours: u32,
    },
    /// Print the phone's device public key (hex); creates the key in the phone vault once.
    PhoneKey(PhoneArgs),
    /// Install a credential (hex) on the phone: the owner's, in place of the one held, or a
    /// dependant's beside it.
    Install {
        #[command(flatten)]
        phone: PhoneArgs,
        /// The credential, hex.
        credential: String,
        /// A dependant's pass (a child's, an elderly parent's), kept beside the owner's.
        #[arg(long)]
        dependant: bool,
    },
    /// Show the phone's current QR in the terminal, and optionally as PNG or SVG files.
    Show {
        #[command(flatten)]
        phone: PhoneArgs,
        /// Write a PNG here.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Write an SVG here.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Device time (unix seconds) instead of the system clock.
        #[arg(long)]
        at: Option<u64>,
        /// Print only the QR text.
        #[arg(long)]
        text_only: bool,
    },
}

/// The phone's vault.
#[derive(Args)]
struct PhoneArgs {
    /// The phone's vault directory.
    #[arg(long, env = "THUDO_VAULT_DIR", default_value = "thudo-phone")]
    dir: PathBuf,
}

/// Arguments of `thudo validate`.
#[derive(Args)]
pub struct ValidateArgs {
    /// Trusted issuer keys (JSON list written by `thudo transit keygen`).
    #[arg(long)]
    trusted: PathBuf,
    /// The route this bus serves.
    #[arg(long, default_value_t = 0)]
    route: u16,
    /// The validator's vault (tap log, deny list); created if missing.
    #[arg(long, env = "THUDO_VAULT_DIR", default_value = "thudo-validator")]
    dir: PathBuf,
    /// A signed deny list file to install first.
    #[arg(long)]
    deny_list: Option<PathBuf>,
    /// Validator time (unix seconds) instead of the system clock.
    #[arg(long)]
    at: Option<u64>,
    /// Seconds a QR may be old.
    #[arg(long, default_value_t = 45)]
    max_age: u32,
    /// Seconds a QR may be ahead of the validator's clock.
    #[arg(long, default_value_t = 15)]
    max_future: u32,
    /// Seconds the same card is refused after an accept.
    #[arg(long, default_value_t = 120)]
    passback: u32,
    /// A metro gate instead of a bus: `STATION:entry` or `STATION:exit` (the route is then the
    /// line's route code, 902 for line 2A).
    #[arg(long)]
    gate: Option<thudo_core::transit::metro::Gate>,
    /// For an exit gate: an entry feed to take in first (JSON, as `GET /v1/transit/entries`
    /// answers it).
    #[arg(long, requires = "gate")]
    entries: Option<PathBuf>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct IssuerFile {
    key_id: u16,
    valid_from: u32,
    valid_until: u32,
    pkcs8_hex: String,
}

/// The system clock, unix seconds.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unhex(text: &str) -> Result<Vec<u8>> {
    thudo_core::hex::decode(text.trim()).ok_or_else(|| anyhow::anyhow!("not hex"))
}

/// Writes a secret file readable by its owner only.
fn write_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

fn load_trusted(path: &Path) -> Result<Vec<TrustedIssuerKey>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a trusted-keys file", path.display()))
}

fn open_phone(args: &PhoneArgs) -> Result<Phone> {
    let vault = Arc::new(vault_cmd::open_or_create(&args.dir)?);
    Ok(Phone::open(vault, None, PhoneOptions::default())?)
}

/// Runs `thudo transit ...`.
pub fn run(args: TransitArgs) -> Result<()> {
    match args.command {
        TransitCommand::Keygen {
            key_id,
            valid_days,
            out,
            trusted,
        } => {
            let from = now() as u32;
            let until = from.saturating_add(valid_days.saturating_mul(86_400));
            let (key, pkcs8) = IssuerKey::generate(key_id, from, until)?;
            let file = IssuerFile {
                key_id,
                valid_from: from,
                valid_until: until,
                pkcs8_hex: thudo_core::hex::encode(&pkcs8),
            };
            write_secret(&out, &serde_json::to_vec_pretty(&file)?)?;
            let mut keys = if trusted.exists() {
                load_trusted(&trusted)?
            } else {
                Vec::new()
            };
            keys.retain(|k| k.key_id != key_id);
            keys.push(key.trusted().clone());
            std::fs::write(&trusted, serde_json::to_vec_pretty(&keys)?)?;
            eprintln!(
                "issuer key {key_id} written to {}; trusted keys in {}",
                out.display(),
                trusted.display()
            );
        }
        TransitCommand::Issue {
            issuer,
            device_key,
            card,
            product,
            category,
            route,
            days,
            lifetime_hours,
        } => {
            let file: IssuerFile = serde_json::from_slice(&std::fs::read(&issuer)?)
                .context("not an issuer key file")?;
            let key = IssuerKey::from_pkcs8(
                &unhex(&file.pkcs8_hex)?,
                file.key_id,
                file.valid_from,
                file.valid_until,
            )?;
            let from = now() as u32;
            let request = CredentialRequest {
                card_id: card,
                product: match product {
                    ProductArg::MonthlySingleRoute => Product::MonthlySingleRoute,
                    ProductArg::MonthlyAllRoutes => Product::MonthlyAllRoutes,
                    ProductArg::PayAsYouGo => Product::PayAsYouGo,
                    ProductArg::FreePass => Product::FreePass,
                    ProductArg::DayPass => Product::DayPass,
                    ProductArg::WeekPass => Product::WeekPass,
                },
                category: match category {
                    CategoryArg::Standard => Category::Standard,
                    CategoryArg::Priority => Category::Priority,
                    CategoryArg::Group => Category::Group,
                    CategoryArg::Elderly => Category::Elderly,
                    CategoryArg::Child => Category::Child,
                    CategoryArg::Disability => Category::Disability,
                    CategoryArg::Merit => Category::Merit,
                    CategoryArg::PoorHousehold => Category::PoorHousehold,
                },
                route,
                pass_valid_from: from,
                pass_valid_until: from.saturating_add(days.saturating_mul(86_400)),
                device_public_key: unhex(&device_key).context("--device-key")?,
                lifetime_secs: lifetime_hours.saturating_mul(3600),
                with_holder: false,
            };
            println!("{}", thudo_core::hex::encode(&key.issue(&request, from)?));
        }
        TransitCommand::PhoneKey(phone) => {
            println!(
                "{}",
                thudo_core::hex::encode(&open_phone(&phone)?.device_public_key())
            )
        }
        TransitCommand::Install {
            phone,
            credential,
            dependant,
        } => {
            let phone = open_phone(&phone)?;
            let bytes = unhex(&credential).context("credential")?;
            let fields = if dependant {
                phone.install_dependant_credential(&bytes)?
            } else {
                phone.install_credential(&bytes)?
            };
            eprintln!(
                "installed: card {} {} / {}, offline until {}",
                fields.card_id,
                fields.product.label(),
                fields.category.label(),
                fields.not_after
            );
        }
        TransitCommand::Show {
            phone,
            png,
            svg,
            at,
            text_only,
        } => {
            let qr = open_phone(&phone)?.current_qr(at.unwrap_or_else(now))?;
            if text_only {
                println!("{}", qr.text);
                return Ok(());
            }
            if let Some(path) = png {
                std::fs::write(&path, qr.image.png(6).map_err(anyhow::Error::msg)?)?;
            }
            if let Some(path) = svg {
                std::fs::write(&path, qr.image.svg(320))?;
            }
            print!("{}", qr.image.terminal());
            println!("{}", qr.text);
            eprintln!(
                "QR version {} ({}x{} modules); credential expires in {} s{}",
                qr.image.version,
                qr.image.size,
                qr.image.size,
                qr.credential_expires_in,
                if qr.expiry_warning {
                    " - go online to refresh it"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

/// Taps committed together by `thudo validate` when input arrives faster than it is decided.
const GROUP_COMMIT: usize = 64;

/// Runs `thudo validate`: one scanned QR text per stdin line, one JSON verdict per stdout line.
/// Group commit: taps are decided in memory and committed every 64 taps or whenever the input
/// pauses, and their verdicts are written out only after that commit returns. No verdict is
/// ever shown for a tap that is not durable.
pub fn validate(args: ValidateArgs) -> Result<()> {
    let vault = Arc::new(vault_cmd::open_or_create(&args.dir)?);
    let config = ValidatorConfig {
        route: args.route,
        max_age_secs: args.max_age,
        max_future_secs: args.max_future,
        passback_secs: args.passback,
        gate: args.gate,
        ..Default::default()
    };
    let mut validator = Validator::open(vault, load_trusted(&args.trusted)?, config)?;
    if let Some(path) = &args.entries {
        let feed: thudo_core::transit::metro::EntryFeed =
            serde_json::from_slice(&std::fs::read(path)?)?;
        let open = validator.apply_entry_feed(&feed, args.at.unwrap_or_else(now))?;
        eprintln!("{open} open entries");
    }
    if let Some(path) = &args.deny_list {
        let signed = std::fs::read(path)?;
        match validator.update_deny_list(&signed) {
            Ok(version) => eprintln!("deny list version {version} installed"),
            Err(e) => eprintln!("deny list not installed: {e}"),
        }
    }
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = Vec::new();
    // Verdicts decided but not shown: written out only after their taps are committed.
    let mut unshown: Vec<u8> = Vec::new();
    let mut waiting = 0usize;
    let mut show = |validator: &mut Validator, unshown: &mut Vec<u8>| -> Result<()> {
        validator.flush()?;
        out.write_all(unshown)?;
        out.flush()?;
        unshown.clear();
        Ok(())
    };
    loop {
        line.clear();
        // Read raw bytes: a scanner may send anything, including invalid UTF-8.
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let verdict = validator.validate_deferred(
            text.trim_end_matches(['\n', '\r']),
            args.at.unwrap_or_else(now),
        )?;
        serde_json::to_writer(&mut unshown, &verdict)?;
        unshown.push(b'\n');
        waiting += 1;
        if waiting >= GROUP_COMMIT || input.fill_buf()?.is_empty() {
            show(&mut validator, &mut unshown)?;
            waiting = 0;
        }
    }
    show(&mut validator, &mut unshown)?;
    Ok(())
}
