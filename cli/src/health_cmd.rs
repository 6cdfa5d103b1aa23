//! `thudo health ...`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use thudo_core::health::shc::{self, TrustStore};
use thudo_core::health::{dcc, trust_bundle};

/// Arguments of `thudo health`.
#[derive(Args)]
pub struct HealthArgs {
    #[command(subcommand)]
    command: HealthCommand,
}

#[derive(Subcommand)]
enum HealthCommand {
    /// Verify SMART Health Cards offline; one JSON verdict per card on stdout.
    ///
    /// Each input file holds a `shc:/` QR text (chunks of one card may be given as several
    /// files or lines: all chunked texts of one invocation form one card), a compact JWS, or a
    /// `.smart-health-card` file.
    VerifyShc {
        /// Trusted issuer keys as ISSUER_URL=JWKS_FILE (repeatable).
        #[arg(
            long = "jwks",
            value_name = "ISS=FILE",
            required_unless_present = "trust_bundle"
        )]
        jwks: Vec<String>,
        #[command(flatten)]
        bundle: BundleArgs,
        /// Revocation lists (repeatable).
        #[arg(long = "crl")]
        crl: Vec<PathBuf>,
        /// Verification time (unix seconds) instead of the system clock.
        #[arg(long)]
        at: Option<i64>,
        /// The cards.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Verify EU Digital COVID Certificates (vaccine passports) offline; one JSON verdict per
    /// `HC1:` text (one per line of each input file) on stdout.
    VerifyDcc {
        /// Trusted Document Signer Certificates: files of PEM, base64 or DER (repeatable).
        #[arg(
            long = "dsc",
            value_name = "FILE",
            required_unless_present = "trust_bundle"
        )]
        dsc: Vec<PathBuf>,
        #[command(flatten)]
        bundle: BundleArgs,
        /// Verification time (unix seconds) instead of the system clock.
        #[arg(long)]
        at: Option<i64>,
        /// Accept an authentic certificate that has expired (as the health book imports it),
        /// reporting `"expired": true`, instead of refusing it.
        #[arg(long)]
        historic: bool,
        /// Files of `HC1:` texts.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
}

/// Trust from a health trust bundle, as a device installs it.
#[derive(Args)]
struct BundleArgs {
    /// A health trust bundle (the compact JWS the backend publishes), checked with --trust-key.
    #[arg(long = "trust-bundle", value_name = "FILE", requires = "trust_key")]
    trust_bundle: Option<PathBuf>,
    /// The trust-list public key the bundle must be signed with (base64).
    #[arg(long = "trust-key", value_name = "BASE64")]
    trust_key: Option<String>,
}

impl BundleArgs {
    /// The bundle's trust store, checked as a device checks it (signature, content); a stale
    /// bundle is used, with a warning on stderr.
    fn load(&self, now: i64) -> Result<Option<TrustStore>> {
        let (Some(file), Some(key)) = (&self.trust_bundle, &self.trust_key) else {
            return Ok(None);
        };
        let anchor =
            trust_bundle::parse_anchor(key).context("--trust-key is not a base64 P-256 key")?;
        let jws =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let bundle = trust_bundle::open(&jws, &anchor)?;
        if bundle.expires_at < now {
            eprintln!(
                "warning: trust bundle {} expired at {}: the list may be out of date",
                bundle.version, bundle.expires_at
            );
        }
        Ok(Some(bundle.trust_store()?))
    }
}

fn now_or(at: Option<i64>) -> i64 {
    at.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    })
}

/// A certificate file as DER: PEM, base64 or DER itself.
fn certificate_der(bytes: &[u8]) -> Result<Vec<u8>> {
    use base64::Engine;
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes).context("neither DER nor text")?;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.split_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .context("neither DER, PEM nor base64")
}

fn verify_dcc(
    dsc: &[PathBuf],
    bundle: &BundleArgs,
    at: Option<i64>,
    historic: bool,
    inputs: &[PathBuf],
) -> Result<()> {
    let now = now_or(at);
    let mut signers = bundle.load(now)?.map(|t| t.dcc).unwrap_or_default();
    for file in dsc {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        signers
            .add_der(&certificate_der(&bytes)?, None)
            .with_context(|| format!("loading {}", file.display()))?;
    }
    let mut failures = 0;
    for path in inputs {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        for (n, line) in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let label = format!("{}:{}", path.display(), n + 1);
            let verdict = if historic {
                dcc::authenticate(line, &signers, now)
            } else {
                dcc::verify(line, &signers, now)
            };
            let out = match verdict {
                Ok(c) => serde_json::json!({"input": label, "verified": true, "kind": c.kind,
                    "country": c.country, "kid": c.kid, "certificate_id": c.certificate_id,
                    "issued_at": c.issued_at, "expires_at": c.expires_at, "expired": c.expired,
                    "version": c.version}),
                Err(e) => {
                    failures += 1;
                    let mut v = serde_json::to_value(&e)?;
                    v["input"] = label.into();
                    v["verified"] = false.into();
                    v
                }
            };
            println!("{out}");
        }
    }
    if failures > 0 {
        bail!("{failures} certificate(s) refused");
    }
    Ok(())
}

/// Runs `thudo health ...`; exits non-zero when any card fails.
pub fn run(args: HealthArgs) -> Result<()> {
    let (jwks, crl, bundle, at, inputs) = match args.command {
        HealthCommand::VerifyShc {
            jwks,
            crl,
            bundle,
            at,
            inputs,
        } => (jwks, crl, bundle, at, inputs),
        HealthCommand::VerifyDcc {
            dsc,
            bundle,
            at,
            historic,
            inputs,
        } => return verify_dcc(&dsc, &bundle, at, historic, &inputs),
    };
    let mut trust = bundle.load(now_or(at))?.unwrap_or_default();
    for spec in &jwks {
        let Some((iss, file)) = spec.split_once('=') else {
            bail!("--jwks takes ISSUER_URL=FILE, got {spec:?}")
        };
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        trust.add_jwks(iss, &text)?;
    }
    for file in &crl {
        trust.add_crl(
            &std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?,
        )?;
    }
    let now = now_or(at);
    // Each card: a label and its JWS (or the reason it has none).
    let mut cards: Vec<(String, Result<String, shc::ShcError>)> = Vec::new();
    let mut chunked: Vec<(String, String)> = Vec::new();
    for path in &inputs {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let label = path.display().to_string();
        let trimmed = text.trim();
        if trimmed.starts_with("shc:/") {
            for line in trimmed.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if line.matches('/').count() >= 3 {
                    chunked.push((label.clone(), line.to_owned()));
                } else {
                    cards.push((label.clone(), shc::jws_from_qr(&[line])));
                }
            }
        } else if trimmed.starts_with('{') {
            match shc::jws_from_file(trimmed) {
                Ok(list) => cards.extend(list.into_iter().map(|jws| (label.clone(), Ok(jws)))),
                Err(e) => cards.push((label, Err(e))),
            }
        } else {
            cards.push((label, Ok(trimmed.to_owned())));
        }
    }
    if !chunked.is_empty() {
        let label = chunked
            .iter()
            .map(|(l, _)| l.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let texts: Vec<&str> = chunked.iter().map(|(_, t)| t.as_str()).collect();
        cards.push((label, shc::jws_from_qr(&texts)));
    }
    let mut failures = 0;
    for (label, jws) in cards {
        let verdict = jws.and_then(|jws| shc::verify(&jws, &trust, now));
        let line = match verdict {
            Ok(card) => {
                let resources: Vec<&str> = card.fhir_bundle["entry"]
                    .as_array()
                    .map(|e| {
                        e.iter()
                            .filter_map(|r| r["resource"]["resourceType"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                serde_json::json!({"input": label, "verified": true, "issuer": card.issuer, "kid": card.kid,
                    "nbf": card.nbf, "resources": resources})
            }
            Err(e) => {
                failures += 1;
                let mut v = serde_json::to_value(&e)?;
                v["input"] = label.into();
                v["verified"] = false.into();
                v["message"] = e.to_string().into();
                v
            }
        };
        println!("{line}");
    }
    if failures > 0 {
        bail!("{failures} card(s) failed verification");
    }
    Ok(())
}
