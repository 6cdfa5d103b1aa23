//! `thudo-server`: the reference backend, on one SQLite file or on PostgreSQL.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use thudo_server::devices::identity::IdentityConfig;
use thudo_server::transit::fares::FarePolicy;
use thudo_server::transit::sales::Payments;
use thudo_server::{AppState, ServerConfig};

/// thudo's reference backend.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0: any free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// The database: a SQLite file (created if missing), or a PostgreSQL URL
    /// (`postgres://user@host:5432/thudo`, optionally `?pool_max_size=N` connections, default
    /// 16) that several instances may share. The schema is migrated at start-up.
    #[arg(long, env = "THUDO_DB", default_value = "thudo-server.db")]
    db: String,
    /// How long to wait at start for a database that is not up yet (seconds; retried with
    /// backoff), before giving up.
    #[arg(long, default_value_t = 120)]
    db_wait_secs: u64,
    /// Bearer token of the admin API.
    #[arg(long, env = "THUDO_ADMIN_TOKEN")]
    admin_token: String,
    /// Publish demo content (handbook documents, a meeting, health records) for this citizen
    /// ID and party cell, then serve.
    #[arg(long)]
    seed_citizen: Option<String>,
    /// Create this many single-use validator enrolment codes for route 32 (valid one hour) and
    /// print each as `enrolment-code CODE` (test and demo servers).
    #[arg(long, default_value_t = 0)]
    seed_enrolments: u32,
    /// The operator's metro fare table (JSON, the shape of `hanoi-metro-fares.json`: tariffs
    /// with their effective dates, lines, stations and station-to-station fares) instead of the
    /// one built in.
    #[arg(long, env = "THUDO_METRO_FARES")]
    metro_fares: Option<PathBuf>,
    /// The operator's tariff (JSON, the shape of `hanoi-tariff.json`: bus fares, pass prices,
    /// which product rides which mode and route, the network day pass) instead of the one
    /// built in.
    #[arg(long, env = "THUDO_TARIFF")]
    tariff: Option<PathBuf>,
    /// How far below zero a prepaid balance may go before its card is denied, VND.
    #[arg(long, default_value_t = 20_000)]
    credit_limit_vnd: u64,
    /// Create a single-use enrolment code for a metro gate bound as `STATION:entry` or
    /// `STATION:exit` (repeatable) and print it as `gate-enrolment-code BINDING CODE`.
    #[arg(long)]
    seed_gate: Vec<String>,
    /// The OpenID Connect provider whose ID tokens register devices: its issuer (`iss`).
    #[arg(long, requires_all = ["oidc_audience", "oidc_jwks"])]
    oidc_issuer: Option<String>,
    /// This backend's client id at the provider (`aud`).
    #[arg(long)]
    oidc_audience: Option<String>,
    /// The provider's JWKS document (a file, as served at its `jwks_uri`).
    #[arg(long)]
    oidc_jwks: Option<PathBuf>,
    /// The ID token claim that carries the 12-digit citizen ID.
    #[arg(long, default_value = "citizen_id")]
    oidc_citizen_claim: String,
    /// Instead of a real provider: a local one on this machine that mints ID tokens at
    /// `POST /test/identity/token`. For tests and demos only.
    #[arg(long, conflicts_with = "oidc_issuer")]
    test_identity_provider: bool,
    /// The merchant's VNPAY terminal code (`vnp_TmnCode`); with `--vnpay-secret-file` and
    /// `--vnpay-pay-url`. Notifications (IPN) are read at `/v1/payments/vnpay/notify`.
    #[arg(long, requires_all = ["vnpay_secret_file", "vnpay_pay_url"])]
    vnpay_tmn_code: Option<String>,
    /// A file holding the merchant's VNPAY hash secret.
    #[arg(long)]
    vnpay_secret_file: Option<PathBuf>,
    /// VNPAY's payment page (`.../paymentv2/vpcpay.html`).
    #[arg(long)]
    vnpay_pay_url: Option<String>,
    /// Where the buyer's browser returns after paying (the app's page; it proves nothing).
    #[arg(long, default_value = "https://thudo.invalid/paid")]
    vnpay_return_url: String,
    /// Instead of a real provider: a sandbox gateway that pays every order as soon as it is
    /// made, and settles one on `POST /test/payments/{order}`. For tests and demos only.
    #[arg(long, conflicts_with = "vnpay_tmn_code")]
    sandbox_payments: bool,
    /// No rate limits (a load test or a test suite driving many devices from one address).
    /// Otherwise, per instance: 5 anonymous requests a second per address (bursts of 20), 20 a
    /// second per device or validator token (bursts of 200), 1 order a second (bursts of 10).
    #[arg(long)]
    no_rate_limits: bool,
}

fn rate_limits(args: &Args) -> thudo_server::gate::RateLimits {
    if args.no_rate_limits {
        thudo_server::gate::RateLimits::off()
    } else {
        thudo_server::gate::RateLimits::default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.admin_token.len() < 16 {
        anyhow::bail!("the admin token must have at least 16 characters");
    }
    let storage = thudo_server::app::open_storage_waiting(
        &args.db,
        std::time::Duration::from_secs(args.db_wait_secs),
    )
    .await?;
    let mut fares = FarePolicy::default();
    if let Some(path) = &args.metro_fares {
        fares.metro =
            thudo_core::transit::metro::MetroFares::from_json(&std::fs::read_to_string(path)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.tariff {
        fares.tariff =
            thudo_core::transit::tariff::Tariff::from_json(&std::fs::read_to_string(path)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    fares.credit_limit_vnd = args.credit_limit_vnd;
    let limits = rate_limits(&args);
    let payments = match (&args.vnpay_tmn_code, args.sandbox_payments) {
        (Some(tmn_code), false) => {
            let secret_path = args
                .vnpay_secret_file
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("--vnpay-secret-file is required"))?;
            let secret = zeroize::Zeroizing::new(std::fs::read_to_string(secret_path)?);
            Payments {
                provider: std::sync::Arc::new(thudo_server::payments::vnpay::Vnpay::new(
                    tmn_code,
                    secret.trim().as_bytes(),
                    args.vnpay_pay_url.as_deref().unwrap_or_default(),
                    &args.vnpay_return_url,
                )),
                sandbox: None,
                auto_pay: false,
            }
        }
        (None, true) => {
            eprintln!("warning: sandbox payments: every order is paid without money");
            Payments::sandbox(true)
        }
        _ => anyhow::bail!(
            "name the payment provider (--vnpay-tmn-code, --vnpay-secret-file, --vnpay-pay-url) \
             or run with --sandbox-payments"
        ),
    };
    let config = match (&args.oidc_issuer, args.test_identity_provider) {
        (Some(issuer), false) => {
            let jwks_path = args
                .oidc_jwks
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("--oidc-jwks is required"))?;
            ServerConfig {
                storage,
                admin_token: args.admin_token,
                fares,
                identity: IdentityConfig::from_jwks_json(
                    issuer,
                    args.oidc_audience.as_deref().unwrap_or_default(),
                    &std::fs::read_to_string(jwks_path)?,
                    &args.oidc_citizen_claim,
                )?,
                test_identity: None,
                payments,
                limits,
            }
        }
        (None, true) => {
            eprintln!("warning: local test identity provider: anyone can register as anyone");
            ServerConfig {
                payments,
                limits,
                ..ServerConfig::local(storage, &args.admin_token, fares)?.0
            }
        }
        _ => anyhow::bail!(
            "name the identity provider (--oidc-issuer, --oidc-audience, --oidc-jwks) \
             or run with --test-identity-provider"
        ),
    };
    let state = AppState::new(config)?;
    if let Some(citizen) = &args.seed_citizen {
        thudo_server::publishing::seed::publish_demo(state.storage().as_ref(), citizen)?;
    }
    for _ in 0..args.seed_enrolments {
        let (code, _) = thudo_server::transit::validators::create_enrolment(
            state.storage().as_ref(),
            "test validator, route 32",
            Some(32),
            None,
            3600,
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        println!("enrolment-code {code}");
    }
    for binding in &args.seed_gate {
        let (code, _) = thudo_server::transit::validators::create_enrolment(
            state.storage().as_ref(),
            &format!("test gate {binding}"),
            None,
            Some(binding.clone()),
            3600,
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        println!("gate-enrolment-code {binding} {code}");
    }
    let running = thudo_server::start(state, args.listen).await?;
    println!("listening on http://{}", running.addr);
    // SIGINT or SIGTERM (a balancer draining the instance): stop accepting, finish what is in
    // flight.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    running.stop().await;
    Ok(())
}
