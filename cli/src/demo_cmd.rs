//! `thudo demo`: the whole story on one machine. A backend on loopback, a citizen's phone and a
//! bus validator with their own encrypted vaults in a temporary directory; handbook and health
//! records synced down, a monthly pass bought and shown as a dynamic QR, validated offline on the
//! bus (its replay refused), a pay-as-you-go rider capped for the day, taps uploaded; then a
//! table of what took how long. Any failed step exits non-zero with its reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Result};
use clap::Args;
use thudo_core::handbook::attendance::{CheckIns, MeetingSecretary};
use thudo_core::handbook::backend::HandbookClient;
use thudo_core::handbook::library::Library;
use thudo_core::health::fhir::Kind;
use thudo_core::health::records::HealthBook;
use thudo_core::sync::client::{BackendClient, BackendConfig, SyncEvent, SyncObserver};
use thudo_core::sync::protocol::ValidatorEnrolmentRequest;
use thudo_core::transit::backend::CredentialOrder;
use thudo_core::transit::backend::TransitClient;
use thudo_core::transit::phone::{Phone, PhoneOptions};
use thudo_core::transit::qr;
use thudo_core::transit::validator::{Reason, Validator, ValidatorConfig};
use thudo_core::transit::{Category, Product};
use thudo_core::vault::{Unlock, Vault, VaultOptions};
use thudo_server::operators::Role;
use thudo_server::payments::vnpay::SandboxOutcome;
use thudo_server::publishing::seed;
use thudo_server::storage::SqliteStorage;
use thudo_server::transit::fares::FarePolicy;
use thudo_server::{AppState, ServerConfig};

use crate::console::Console;

/// Options of the demo.
#[derive(Args)]
pub struct DemoArgs {
    /// Keep the temporary directory (vaults, server database) and print where it is.
    #[arg(long)]
    keep: bool,
    /// Do not draw the QR in the terminal.
    #[arg(long)]
    no_qr: bool,
}

const CITIZEN: &str = "001088012345";
const RIDER: &str = "001090054321";
/// The secretary of the demo citizen's party cell.
const SECRETARY: &str = "001075011111";

struct Steps {
    rows: Vec<(String, Duration, String)>,
    started: Instant,
    total: usize,
}

impl Steps {
    async fn run<T, F>(&mut self, name: &str, work: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<(T, String)>>,
    {
        let n = self.rows.len() + 1;
        eprint!("[{n:>2}/{}] {name} ... ", self.total);
        let t = Instant::now();
        match work.await {
            Ok((value, note)) => {
                let took = t.elapsed();
                eprintln!("ok ({:.0} ms) {note}", took.as_secs_f64() * 1e3);
                self.rows.push((name.to_owned(), took, note));
                Ok(value)
            }
            Err(e) => {
                eprintln!("FAILED");
                Err(e.context(format!("step {n} ({name}) failed")))
            }
        }
    }
}

struct Progress;

impl SyncObserver for Progress {
    fn on_event(&self, event: &SyncEvent) {
        if let SyncEvent::Retrying {
            delay_ms, reason, ..
        } = event
        {
            eprint!("(retry in {delay_ms} ms: {reason}) ");
        }
    }
}

pub(crate) fn open_vault(dir: &std::path::Path, passphrase: &str) -> Result<Arc<Vault>> {
    Ok(Arc::new(Vault::open(
        dir,
        Unlock::passphrase(passphrase),
        &VaultOptions::default(),
    )?))
}

fn unhex(text: &str) -> Result<Vec<u8>> {
    thudo_core::hex::decode(text.trim()).ok_or_else(|| anyhow::anyhow!("not hex"))
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<()> {
    runtime()?.block_on(story(args))
}

/// The runtime a story on loopback runs in (backend and devices in one process).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

async fn story(args: DemoArgs) -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("thudo-demo-").tempdir()?;
    let dir = tmp.path().to_owned();
    let mut steps = Steps {
        rows: Vec::new(),
        started: Instant::now(),
        total: 19,
    };
    eprintln!(
        "thudo demo: everything below runs on this machine, in {}",
        dir.display()
    );

    let (server, enrolment_code, idp, backend) = steps
        .run("start the backend; the operator enrols a bus", async {
            let storage = Arc::new(SqliteStorage::open(
                &dir.join("server.db"),
                thudo_server::SCHEMA,
            )?);
            // A local OpenID Connect provider stands in for VNeID: its key is the demo's.
            let (config, idp) = ServerConfig::local(storage, FarePolicy::default())?;
            let state = AppState::new(config)?;
            let operator = state.clone();
            seed::publish_demo(
                state.storage().as_ref(),
                &state.secrets().citizen(CITIZEN),
            )?;
            let running = thudo_server::start(state, "127.0.0.1:0".parse()?).await?;
            // The transit operator's console, signed in with its role only: a single-use code
            // bound to route 32, valid for an hour.
            let console = Console::sign_in(
                &format!("http://{}", running.addr),
                &idp,
                Role::TransitOperator,
                "hanoi-metro",
            )?;
            let enrolment = console
                .post(
                    "/v1/admin/transit/enrolments",
                    &serde_json::json!({"label": "bus 32, front door", "route": 32, "ttl_secs": 3600}),
                )
                .await?;
            let code = enrolment["code"]
                .as_str()
                .ok_or_else(|| anyhow!("enrolment: no code"))?
                .to_owned();
            let note = format!(
                "http://{}; the transit operator's enrolment code for route 32",
                running.addr
            );
            Ok(((running, code, idp, operator), note))
        })
        .await?;
    let url = format!("http://{}", server.addr);
    let client = Arc::new(BackendClient::new(BackendConfig::new(&url))?);

    let phone_vault = steps
        .run("citizen's phone: encrypted vault (PBKDF2 600,000)", async {
            let v = open_vault(&dir.join("phone"), "mật khẩu của Minh")?;
            Ok((v, "AES-256-GCM records, blind indexes".to_owned()))
        })
        .await?;
    let library = Arc::new(Library::open(&dir.join("phone-library.db"))?);

    steps
        .run("sign in (OpenID Connect) and register the phone", async {
            let r = client
                .sign_in_and_register(phone_vault.clone(), "Minh's phone", |n| {
                    idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
                })
                .await?;
            Ok(((), format!("device {}", r.device_id)))
        })
        .await?;

    let report = steps
        .run("sync handbook and health records", async {
            let r = client
                .sync(
                    phone_vault.clone(),
                    &thudo_core::collections::registry(thudo_core::collections::Stores {
                        library: Some(library.clone()),
                        ..Default::default()
                    }),
                    Some(&Progress),
                )
                .await?;
            ensure!(r.applied > 0, "nothing arrived: {r:?}");
            let note = format!("{} changes pulled, {} applied", r.pulled, r.applied);
            Ok((r, note))
        })
        .await?;

    steps
        .run("search the library without accents", async {
            let hits = library.search("nghi quyet khoa hoc cong nghe", 5)?;
            let top = hits.first().ok_or_else(|| anyhow!("no hit"))?;
            ensure!(top.number == "57-NQ/TW", "top hit is {}", top.number);
            Ok((
                (),
                format!("'nghi quyet khoa hoc cong nghe' -> {}", top.number),
            ))
        })
        .await?;

    steps
        .run("read the health book", async {
            let book = HealthBook::new(&phone_vault);
            let records = book.records("demo-citizen", None, None, None)?;
            let allergies =
                book.records("demo-citizen", Some(Kind::AllergyIntolerance), None, None)?;
            let allergy = allergies
                .first()
                .ok_or_else(|| anyhow!("no allergy record"))?;
            Ok((
                (),
                format!(
                    "{} records; allergy: {}",
                    records.len(),
                    allergy.summary().title
                ),
            ))
        })
        .await?;

    // The cell meeting: the secretary's phone shows a signed QR, Minh's phone checks in.
    let secretary_vault = steps
        .run(
            "the cell secretary's phone gets today's meeting credential",
            async {
                let party = Console::sign_in(&url, &idp, Role::PartyOrganisation, "hn")?;
                let today = chrono::Utc::now()
                    .with_timezone(
                        &chrono::FixedOffset::east_opt(7 * 3600).ok_or_else(|| anyhow!("tz"))?,
                    )
                    .format("%Y-%m-%d")
                    .to_string();
                let cell = seed::DEMO_CELL;
                party
                    .post(
                        &format!("/v1/admin/citizens/{SECRETARY}/cell"),
                        &serde_json::json!({ "cell": cell }),
                    )
                    .await?;
                party
                    .post(
                        &format!("/v1/admin/cells/{cell}/handbook.meeting"),
                        &serde_json::json!({"items": [{"id": "sh-today", "date": today,
                        "topic": "Sinh hoạt chi bộ thường kỳ", "document_ids": ["nq-57-2024"]}]}),
                    )
                    .await?;
                party
                    .post(
                        &format!("/v1/admin/cells/{cell}/secretary"),
                        &serde_json::json!({ "citizen_id": SECRETARY }),
                    )
                    .await?;
                let v = open_vault(&dir.join("secretary"), "mật khẩu của bí thư")?;
                client
                    .sign_in_and_register(v.clone(), "secretary's phone", |n| {
                        idp.id_token(SECRETARY, n).map_err(|e| e.to_string())
                    })
                    .await?;
                let window = HandbookClient::new(&client)
                    .fetch_meeting_credential(v.clone(), "sh-today")
                    .await?;
                Ok((
                    v,
                    format!(
                        "open {} h, signed by the backend",
                        (window.closes - window.opens + 1) / 3600
                    ),
                ))
            },
        )
        .await?;
    steps
        .run("signed check-in between two phones, offline", async {
            client
                .sync(
                    phone_vault.clone(),
                    &thudo_core::collections::registry(Default::default()),
                    None,
                )
                .await?;
            let now = crate::transit_cmd::now() as u32;
            let qr = MeetingSecretary::new(&secretary_vault).qr("sh-today", now)?;
            let check_in = CheckIns::new(&phone_vault).scan(&qr, now + 2)?;
            Ok((
                (),
                format!(
                    "{} characters shown, countersigned, {:?}",
                    qr.len(),
                    check_in.status
                ),
            ))
        })
        .await?;
    steps
        .run("upload the check-in; the cell counts it verified", async {
            let report = HandbookClient::new(&client)
                .upload_check_ins(phone_vault.clone())
                .await?;
            ensure!(report.accepted == 1, "not counted: {report:?}");
            // The attendance recorded with the check-in goes up with the next sync.
            client
                .sync(
                    phone_vault.clone(),
                    &thudo_core::collections::registry(Default::default()),
                    None,
                )
                .await?;
            let party = Console::sign_in(&url, &idp, Role::PartyOrganisation, "hn")?;
            let counts = party
                .get(&format!(
                    "/v1/admin/cells/{}/meetings/sh-today/attendance",
                    seed::DEMO_CELL
                ))
                .await?;
            Ok((
                (),
                format!(
                    "verified {}, declared present {}",
                    counts["verified"], counts["declared_present"]
                ),
            ))
        })
        .await?;

    let phone = Arc::new(Phone::open(
        phone_vault.clone(),
        None,
        PhoneOptions::default(),
    )?);
    let order_id = steps
        .run("order a monthly pass (all routes)", async {
            let month = chrono::Utc::now()
                .with_timezone(
                    &chrono::FixedOffset::east_opt(7 * 3600).ok_or_else(|| anyhow!("tz"))?,
                )
                .format("%Y-%m")
                .to_string();
            let order = CredentialOrder {
                month,
                ..CredentialOrder::new(Product::MonthlyAllRoutes, Category::Standard)
            };
            let r = TransitClient::new(&client)
                .buy_and_install(phone_vault.clone(), phone.clone(), order)
                .await?;
            let o = r.order;
            let note = format!("{} VND, {:?}: pay at the provider", o.price_vnd, o.status);
            Ok((o.order_id, note))
        })
        .await?;
    steps
        .run("pay (sandbox VNPAY: a signed notification)", async {
            let ack = backend
                .settle_in_sandbox(&order_id, SandboxOutcome::Pay)
                .await
                .map_err(|e| anyhow!("{}", e.message()))?
                .ok_or_else(|| anyhow!("no sandbox"))?;
            Ok(((), format!("the server answered {ack:?}")))
        })
        .await?;
    steps
        .run("collect the pass's credential", async {
            let f = TransitClient::new(&client)
                .collect_and_install(phone_vault.clone(), phone.clone(), &order_id)
                .await?;
            if let Some(offset) = report.clock_offset_ms {
                phone.set_clock_offset(offset / 1000)?;
            }
            Ok(((), format!("card {}", f.card_id)))
        })
        .await?;
    steps
        .run("renew the pass's credential (free, as sync does)", async {
            let card = phone
                .credential()
                .ok_or_else(|| anyhow!("no credential"))?
                .card_id;
            let renewed = TransitClient::new(&client)
                .renew(phone_vault.clone(), phone.clone(), card)
                .await?;
            let hours = (i64::from(renewed.not_after) - crate::transit_cmd::now() as i64) / 3600;
            Ok(((), format!("0 VND, rides offline {hours} h more")))
        })
        .await?;

    let now = crate::transit_cmd::now();
    let qr_text = steps
        .run("show the dynamic QR", async {
            let qr = phone.current_qr(now)?;
            if !args.no_qr {
                let image = qr::render(&qr.text).map_err(|e| anyhow!(e))?;
                eprintln!();
                eprintln!("{}", image.terminal());
            }
            let note = format!("{} characters, refreshes every 5 s", qr.text.len());
            Ok((qr.text, note))
        })
        .await?;

    let validator_vault = open_vault(&dir.join("validator"), "bus 32 validator key")?;
    let validator = steps
        .run("bus validator: enrol, fetch keys and deny list", async {
            let enrolled = client
                .enrol_validator(
                    validator_vault.clone(),
                    &ValidatorEnrolmentRequest {
                        enrolment_code: enrolment_code.clone(),
                        device_name: "validator 32-1".into(),
                    },
                )
                .await?;
            let feed = TransitClient::new(&client)
                .validator_feed(validator_vault.clone())
                .await?;
            let mut v = Validator::open(
                validator_vault.clone(),
                feed.issuer_keys.clone(),
                ValidatorConfig {
                    route: enrolled.route.unwrap_or(0),
                    ..ValidatorConfig::default()
                },
            )?;
            let version = v.update_deny_list(&unhex(&feed.deny_list)?)?;
            Ok((
                Arc::new(std::sync::Mutex::new(v)),
                format!(
                    "{} issuer key(s), deny list v{version}",
                    feed.issuer_keys.len()
                ),
            ))
        })
        .await?;

    steps
        .run("validate offline, then the same QR again", async {
            let mut bus = validator.lock().unwrap_or_else(|e| e.into_inner());
            let first = bus.validate(&qr_text, now + 1)?;
            ensure!(first.accepted, "refused: {:?}", first.reason);
            let replay = bus.validate(&qr_text, now + 3)?;
            ensure!(!replay.accepted, "a replay was accepted");
            ensure!(
                matches!(replay.reason, Reason::Replayed | Reason::Passback),
                "replay refused for {:?}",
                replay.reason
            );
            Ok((
                (),
                format!(
                    "accepted \"{}\"; replay refused ({:?})",
                    first.display, replay.reason
                ),
            ))
        })
        .await?;

    steps
        .run("a pay-as-you-go rider takes 4 trips in a day", async {
            let rider_vault = open_vault(&dir.join("rider"), "rider")?;
            client
                .sign_in_and_register(rider_vault.clone(), "Lan's phone", |n| {
                    idp.id_token(RIDER, n).map_err(|e| e.to_string())
                })
                .await?;
            let rider = Arc::new(Phone::open(
                rider_vault.clone(),
                None,
                PhoneOptions::default(),
            )?);
            let order = CredentialOrder::new(Product::PayAsYouGo, Category::Standard);
            TransitClient::new(&client)
                .buy_and_install(rider_vault, rider.clone(), order)
                .await?;
            // Four trips within one Vietnamese day (UTC+7), where the daily cap applies: today
            // if they fit before midnight, else tomorrow from 07:00.
            let into_day = (now + 7 * 3600) % 86_400;
            let base = if into_day + 7 * 3600 < 86_400 {
                now
            } else {
                now - into_day + 86_400 + 6 * 3600
            };
            for hour in [1u64, 3, 5, 7] {
                let t = base + hour * 3600;
                let verdict = validator
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .validate(&rider.current_qr(t)?.text, t)?;
                ensure!(
                    verdict.accepted,
                    "trip at +{hour} h refused: {:?}",
                    verdict.reason
                );
            }
            Ok(((), "4 taps accepted offline".to_owned()))
        })
        .await?;

    steps
        .run("upload taps; fares charged under the daily cap", async {
            let log = validator
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .tap_log_status();
            // Taps waiting for the backend (numbers start at 1).
            let count = log.next_seq.saturating_sub(1 + log.acked_seq) as usize;
            let receipt = TransitClient::new(&client)
                .upload_and_acknowledge(validator_vault.clone(), validator.clone())
                .await?;
            ensure!(
                receipt.stored as usize == count,
                "stored {} of {count}",
                receipt.stored
            );
            ensure!(
                receipt.charged_vnd == 30_000,
                "4 trips of 8,000 VND under a 30,000 cap should charge 30,000, charged {}",
                receipt.charged_vnd
            );
            Ok((
                (),
                format!(
                    "{count} taps stored, {} VND charged (4 x 8,000 capped at 30,000)",
                    receipt.charged_vnd
                ),
            ))
        })
        .await?;

    steps
        .run("sync again: the phone's ride comes back as a trip", async {
            let r = client
                .sync(
                    phone_vault.clone(),
                    &thudo_core::collections::registry(thudo_core::collections::Stores {
                        library: Some(library.clone()),
                        ..Default::default()
                    }),
                    None,
                )
                .await?;
            // Nothing to push; what comes back is the phone's own ride, charged by the backend.
            let trips = thudo_core::transit::trips::RiderHistory::new(&phone_vault)
                .trips_from("2000-01-01", None)?;
            ensure!(
                r.pushed == 0 && !trips.is_empty() && r.pulled as usize == trips.len(),
                "unexpected traffic: {r:?}, {} trips",
                trips.len()
            );
            let fares: u64 = trips.iter().map(|t| t.fare_vnd).sum();
            Ok((
                (),
                format!(
                    "{} trip on the phone ({} VND on its pass); {} ms round trip",
                    trips.len(),
                    fares,
                    r.elapsed_ms
                ),
            ))
        })
        .await?;

    server.stop().await;
    client.close();
    let total = steps.started.elapsed();
    println!();
    println!("{:<52} {:>9}  result", "step", "time");
    println!("{}", "-".repeat(100));
    for (name, took, note) in &steps.rows {
        println!("{name:<52} {:>6.1} ms  {note}", took.as_secs_f64() * 1e3);
    }
    println!("{}", "-".repeat(100));
    println!("{:<52} {:>6.1} s", "total", total.as_secs_f64());
    if steps.rows.len() != steps.total {
        bail!("only {} of {} steps ran", steps.rows.len(), steps.total);
    }
    if args.keep {
        let kept = tmp.keep();
        println!("kept {}", kept.display());
    }
    Ok(())
}
