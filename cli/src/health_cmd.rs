//! `thudo health ...`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use thudo_core::health::shc::{self, TrustStore};

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
        #[arg(long = "jwks", value_name = "ISS=FILE", required = true)]
        jwks: Vec<String>,
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
}

/// Runs `thudo health ...`; exits non-zero when any card fails.
pub fn run(args: HealthArgs) -> Result<()> {
    let HealthCommand::VerifyShc {
        jwks,
        crl,
        at,
        inputs,
    } = args.command;
    let mut trust = TrustStore::new();
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
    let now = at.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
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
