//! `thudo-server`: the reference backend, on one SQLite file or on PostgreSQL.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use thudo_server::devices::identity::IdentityConfig;
use thudo_server::jwt::JwksSource;
use thudo_server::operators::Operators;
use thudo_server::secrets::ServerSecrets;
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
    /// Publish demo content (handbook documents, a meeting, health records) for this citizen
    /// ID and party cell, then serve (test and demo servers: needs `--test-identity-provider`).
    #[arg(long)]
    seed_citizen: Option<String>,
    /// Create this many single-use validator enrolment codes for route 32 (valid one hour) and
    /// print each as `enrolment-code CODE` (test and demo servers: needs
    /// `--test-identity-provider`, so no production log holds a usable code).
    #[arg(long, default_value_t = 0)]
    seed_enrolments: u32,
    /// Create this many single-use enrolment codes for inspectors' devices on route 32 (valid
    /// one hour) and print each as `inspector-enrolment-code CODE` (needs
    /// `--test-identity-provider`).
    #[arg(long, default_value_t = 0)]
    seed_inspectors: u32,
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
    /// `STATION:exit` (repeatable) and print it as `gate-enrolment-code BINDING CODE` (needs
    /// `--test-identity-provider`).
    #[arg(long)]
    seed_gate: Vec<String>,
    /// The OpenID Connect provider whose ID tokens register devices: its issuer (`iss`).
    #[arg(long, requires = "oidc_audience")]
    oidc_issuer: Option<String>,
    /// This backend's client id at the provider (`aud`).
    #[arg(long)]
    oidc_audience: Option<String>,
    /// The provider's JWKS document (a file, as served at its `jwks_uri`); or
    /// `--oidc-jwks-uri`.
    #[arg(long, conflicts_with = "oidc_jwks_uri")]
    oidc_jwks: Option<PathBuf>,
    /// The provider's `jwks_uri`: its keys are fetched at start and kept current (a rotation
    /// is picked up when a token names a new key).
    #[arg(long)]
    oidc_jwks_uri: Option<String>,
    /// The staff identity provider whose access tokens name operators (claims `sub`,
    /// `thudo_role`, `thudo_org`): its issuer.
    #[arg(long, requires = "operator_audience")]
    operator_issuer: Option<String>,
    /// This backend's audience at the staff provider.
    #[arg(long)]
    operator_audience: Option<String>,
    /// A role held only for one organisation, `ROLE=ORG` (repeatable; a role named twice is
    /// held for both): a token the staff provider gives that role for any other organisation
    /// is refused. Name every role whose data is city-wide (`transit_operator`,
    /// `health_authority`, `civil_registry`, `account_support`, `auditor`).
    #[arg(long, value_parser = parse_pinned_role)]
    operator_org: Vec<(thudo_server::operators::Role, String)>,
    /// The staff provider's JWKS document (a file); or `--operator-jwks-uri`.
    #[arg(long, conflicts_with = "operator_jwks_uri")]
    operator_jwks: Option<PathBuf>,
    /// The staff provider's `jwks_uri`, kept current as `--oidc-jwks-uri` is.
    #[arg(long)]
    operator_jwks_uri: Option<String>,
    /// The ID token claim that carries the 12-digit citizen ID.
    #[arg(long, default_value = "citizen_id")]
    oidc_citizen_claim: String,
    /// Instead of real providers: a local one on this machine that mints citizens' ID tokens
    /// at `POST /test/identity/token` and operators' access tokens at
    /// `POST /test/identity/operator-token`. For tests and demos only.
    #[arg(long, conflicts_with_all = ["oidc_issuer", "operator_issuer"])]
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
    /// VNPAY's query API (`querydr`), where the backend asks every 5 minutes about orders
    /// whose payment notification never came (the terminal's
    /// `https://…/merchant_webapi/api/transaction`, production or sandbox). Without it, a lost
    /// notification leaves the order waiting until an operator settles it from the portal.
    #[arg(long, requires = "vnpay_tmn_code")]
    vnpay_query_url: Option<String>,
    /// The public address this backend calls VNPAY's query API from (its outbound address, the
    /// one the terminal registered), which every query names (`vnp_IpAddr`). Without it the
    /// queries say `127.0.0.1`.
    #[arg(long, requires = "vnpay_query_url")]
    vnpay_server_ip: Option<std::net::IpAddr>,
    /// Instead of a real provider: a sandbox gateway that pays every order as soon as it is
    /// made, and settles one on `POST /test/payments/{order}`. For tests and demos only: it
    /// needs `--test-identity-provider`, so no deployment with real citizens gives passes away.
    #[arg(long, conflicts_with = "vnpay_tmn_code")]
    sandbox_payments: bool,
    /// The secrets file: one secret per line (64 hex digits from a random generator, say
    /// `openssl rand -hex 32`), oldest first. Citizen IDs are stored under keys derived from
    /// them and the audit trail is sealed with them; a rotation appends a line (never remove
    /// one). Required, except with `--test-identity-provider` (a public test secret).
    #[arg(long, env = "THUDO_SECRETS_FILE")]
    secrets_file: Option<PathBuf>,
    /// No rate limits (a load test or a test suite driving many devices from one address).
    /// Otherwise, per instance: 5 anonymous requests a second per address (bursts of 20), 20 a
    /// second per device or validator token (bursts of 200), 1 order a second (bursts of 10).
    #[arg(long)]
    no_rate_limits: bool,
    /// A load balancer in front of this instance (repeatable): requests from it are counted
    /// against the client address it appends to `X-Forwarded-For`, and that address is the
    /// buyer's the payment provider is told (with --no-rate-limits too). Without it, every
    /// client behind a balancer shares the balancer's allowance and pays from its address.
    /// `::ffff:a.b.c.d` is the IPv4 address it holds.
    #[arg(long)]
    trusted_proxy: Vec<std::net::IpAddr>,
    /// The oldest library version (`MAJOR.MINOR.PATCH`) devices may call with: older apps (and
    /// those from before versions were sent) get 426 `upgrade_required`, told to update.
    #[arg(long, value_parser = parse_version)]
    min_client_version: Option<thudo_server::gate::ClientVersion>,
    /// The most MiB of records one account may push on one UTC day (past it: 429 until the
    /// next day; the changes wait on the devices). Retries of changes already taken count
    /// nothing.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    push_mib_per_day: u64,
}

fn parse_pinned_role(text: &str) -> Result<(thudo_server::operators::Role, String), String> {
    let (role, organisation) = text
        .split_once('=')
        .ok_or_else(|| format!("expected ROLE=ORGANISATION, got {text:?}"))?;
    let role = thudo_server::operators::Role::from_code(role)
        .filter(|r| thudo_server::operators::Role::CITY_WIDE.contains(r))
        .ok_or_else(|| {
            format!("{role:?} is not a city-wide role (a party organisation or a facility acts for its own)")
        })?;
    // As a token's thudo_org must be written, or it could never match one.
    if organisation.is_empty()
        || organisation.len() > 100
        || !organisation
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
    {
        return Err(format!(
            "the organisation {organisation:?} is not lower-case letters, digits, - . _"
        ));
    }
    Ok((role, organisation.to_owned()))
}

fn parse_version(text: &str) -> Result<thudo_server::gate::ClientVersion, String> {
    thudo_server::gate::ClientVersion::parse(text)
        .ok_or_else(|| format!("expected MAJOR.MINOR.PATCH, got {text:?}"))
}

fn rate_limits(args: &Args) -> thudo_server::gate::RateLimits {
    // The balancers are named either way: they also tell whose address a payment is from.
    let limits = if args.no_rate_limits {
        thudo_server::gate::RateLimits::off()
    } else {
        thudo_server::gate::RateLimits::default()
    };
    limits.behind(args.trusted_proxy.clone())
}

fn main() -> anyhow::Result<()> {
    // The same executable reads published PDFs in a child process (files::pdf), before any
    // thread or runtime is started.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(thudo_server::files::pdf::CHILD_ARG))
    {
        std::process::exit(thudo_server::files::pdf::read_in_child());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(Args::parse()))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let pdf_reader = match std::env::current_exe() {
        Ok(program) => thudo_server::files::PdfReader::Child(program),
        Err(e) => {
            eprintln!("warning: published PDFs are kept without search text: {e}");
            thudo_server::files::PdfReader::Off
        }
    };
    // What gives passes away, publishes demo records or prints usable enrolment codes (where
    // logs are collected, outside the audit trail) runs on test and demo servers only. Checked
    // here: clap's `requires` counts a flag's default `false` as given.
    let test_only = [
        ("--sandbox-payments", args.sandbox_payments),
        ("--seed-citizen", args.seed_citizen.is_some()),
        ("--seed-enrolments", args.seed_enrolments > 0),
        ("--seed-inspectors", args.seed_inspectors > 0),
        ("--seed-gate", !args.seed_gate.is_empty()),
    ];
    if !args.test_identity_provider {
        if let Some((option, _)) = test_only.iter().find(|(_, used)| *used) {
            anyhow::bail!("{option} is for test servers only: it needs --test-identity-provider");
        }
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
    let secrets = match &args.secrets_file {
        Some(path) => Some(std::sync::Arc::new(ServerSecrets::from_file_text(
            &zeroize::Zeroizing::new(std::fs::read_to_string(path)?),
        )?)),
        None => None,
    };
    let payments = match (&args.vnpay_tmn_code, args.sandbox_payments) {
        (Some(tmn_code), false) => {
            let secret_path = args
                .vnpay_secret_file
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("--vnpay-secret-file is required"))?;
            let secret = zeroize::Zeroizing::new(std::fs::read_to_string(secret_path)?);
            // A blank or short secret would let anyone sign a "paid" notification.
            anyhow::ensure!(
                secret.trim().len() >= 16,
                "{}: the VNPay hash secret is shorter than 16 characters (a merchant's is 32)",
                secret_path.display()
            );
            Payments {
                provider: std::sync::Arc::new({
                    let vnpay = thudo_server::payments::vnpay::Vnpay::new(
                        tmn_code,
                        secret.trim().as_bytes(),
                        args.vnpay_pay_url.as_deref().unwrap_or_default(),
                        &args.vnpay_return_url,
                    );
                    match args.vnpay_server_ip {
                        Some(ip) => vnpay.with_server_ip(ip),
                        None => vnpay,
                    }
                }),
                sandbox: None,
                auto_pay: false,
                query_url: match &args.vnpay_query_url {
                    Some(url) => {
                        anyhow::ensure!(
                            url.starts_with("https://"),
                            "--vnpay-query-url must be https"
                        );
                        if args.vnpay_server_ip.is_none() {
                            eprintln!(
                                "warning: no --vnpay-server-ip: queries to VNPAY name 127.0.0.1 \
                                 as the caller"
                            );
                        }
                        Some(url.clone())
                    }
                    None => {
                        eprintln!(
                            "warning: no --vnpay-query-url: a payment whose notification is lost \
                             waits for an operator"
                        );
                        None
                    }
                },
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
    let config = match (
        &args.oidc_issuer,
        &args.operator_issuer,
        args.test_identity_provider,
    ) {
        (Some(issuer), Some(operator_issuer), false) => {
            // A citizen's ID token must never pass as a staff member's access token.
            if issuer == operator_issuer && args.oidc_audience == args.operator_audience {
                anyhow::bail!(
                    "the operator provider (--operator-issuer, --operator-audience) must differ \
                     from the citizens' (--oidc-issuer, --oidc-audience): a citizen's token \
                     would pass as an operator's"
                );
            }
            let keys = |file: &Option<PathBuf>, uri: &Option<String>, flag: &str| {
                let (file, uri) = (file.clone(), uri.clone());
                let flag = flag.to_owned();
                async move {
                    match (file, uri) {
                        (Some(path), None) => Ok(JwksSource::fixed(serde_json::from_str(
                            &std::fs::read_to_string(&path)?,
                        )?)),
                        (None, Some(uri)) => JwksSource::fetched(&uri).await,
                        _ => anyhow::bail!("--{flag} or --{flag}-uri is required"),
                    }
                }
            };
            let citizen_keys = keys(&args.oidc_jwks, &args.oidc_jwks_uri, "oidc-jwks").await?;
            let operator_keys = keys(
                &args.operator_jwks,
                &args.operator_jwks_uri,
                "operator-jwks",
            )
            .await?;
            ServerConfig {
                storage,
                operators: {
                    for role in thudo_server::operators::Role::CITY_WIDE {
                        if !args.operator_org.iter().any(|(r, _)| *r == role) {
                            eprintln!(
                                "warning: the {} role is held for any organisation the staff \
                                 provider gives it (--operator-org {}=ORG pins it)",
                                role.code(),
                                role.code()
                            );
                        }
                    }
                    args.operator_org.iter().fold(
                        Operators::new(
                            operator_issuer,
                            args.operator_audience.as_deref().unwrap_or_default(),
                            operator_keys,
                        ),
                        |operators, (role, organisation)| operators.pinned(*role, organisation),
                    )
                },
                fares,
                identity: IdentityConfig {
                    issuer: issuer.clone(),
                    audience: args.oidc_audience.clone().unwrap_or_default(),
                    keys: citizen_keys,
                    citizen_claim: args.oidc_citizen_claim.clone(),
                },
                test_identity: None,
                payments,
                limits,
                secrets: secrets.ok_or_else(|| anyhow::anyhow!("--secrets-file is required"))?,
                min_client_version: args.min_client_version,
                push_bytes_per_day: args.push_mib_per_day << 20,
                pdf_reader,
            }
        }
        (None, None, true) => {
            eprintln!(
                "warning: local test identity provider: anyone can register as anyone, and be \
                 any operator"
            );
            let local = ServerConfig::local(storage, fares)?.0;
            ServerConfig {
                payments,
                limits,
                secrets: secrets.unwrap_or(local.secrets.clone()),
                min_client_version: args.min_client_version,
                push_bytes_per_day: args.push_mib_per_day << 20,
                pdf_reader,
                ..local
            }
        }
        _ => anyhow::bail!(
            "name the citizens' identity provider (--oidc-issuer, --oidc-audience, --oidc-jwks \
             or --oidc-jwks-uri) and the operators' (--operator-issuer, --operator-audience, \
             --operator-jwks or --operator-jwks-uri), or run with --test-identity-provider"
        ),
    };
    let state = AppState::new(config)?;
    if let Some(citizen) = &args.seed_citizen {
        thudo_server::publishing::seed::publish_demo(
            state.storage().as_ref(),
            &state.secrets().citizen(citizen),
        )?;
    }
    for _ in 0..args.seed_enrolments {
        let (code, _) = thudo_server::transit::validators::create_enrolment(
            state.storage().as_ref(),
            "test validator, route 32",
            thudo_server::transit::validators::Binding::Bus(32),
            3600,
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        println!("enrolment-code {code}");
    }
    for _ in 0..args.seed_inspectors {
        let (code, _) = thudo_server::transit::validators::create_enrolment(
            state.storage().as_ref(),
            "test inspector, route 32",
            thudo_server::transit::validators::Binding::Inspector(Some(32)),
            3600,
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        println!("inspector-enrolment-code {code}");
    }
    for binding in &args.seed_gate {
        let (code, _) = thudo_server::transit::validators::create_enrolment(
            state.storage().as_ref(),
            &format!("test gate {binding}"),
            thudo_server::transit::validators::Binding::Gate(binding.clone()),
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
