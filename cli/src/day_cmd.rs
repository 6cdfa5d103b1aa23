//! `thudo day`: a scripted day of the city's transit on one machine, checked end to end. A parent
//! carries their own pay-as-you-go card and their child's free pass on one phone; they ride the
//! metro in and out through gates, take two buses (an inspector checks them on the second), and
//! ride the metro home, where the daily cap is reached. The backend's charges and the trips the
//! phone syncs are compared with what the tariff says; any difference exits non-zero.

use std::sync::{Arc, Mutex};

use anyhow::{anyhow, ensure, Context, Result};
use clap::Args;
use serde_json::json;
use thudo_core::sync::client::{BackendClient, BackendConfig};
use thudo_core::sync::protocol::ValidatorEnrolmentRequest;
use thudo_core::transit::backend::CredentialOrder;
use thudo_core::transit::backend::TransitClient;
use thudo_core::transit::inspection::InspectionOutcome;
use thudo_core::transit::metro::{Gate, GateDirection};
use thudo_core::transit::phone::{Phone, PhoneOptions};
use thudo_core::transit::trips::RiderHistory;
use thudo_core::transit::validator::{Validator, ValidatorConfig};
use thudo_core::transit::{Category, Product};
use thudo_core::vault::Vault;
use thudo_server::operators::Role;
use thudo_server::prelude::*;
use thudo_server::storage::SqliteStorage;
use thudo_server::transit::fares::FarePolicy;
use thudo_server::transit::store::Entitlement;

use crate::console::Console;
use thudo_server::{AppState, ServerConfig};

/// Options of the scripted day.
#[derive(Args)]
pub struct DayArgs {
    /// Keep the temporary directory (vaults, server database) and print where it is.
    #[arg(long)]
    keep: bool,
}

const PARENT: &str = "001085012345";
const CHILD: &str = "001021012345";

/// Runs the day.
pub fn run(args: DayArgs) -> Result<()> {
    crate::demo_cmd::runtime()?.block_on(day(args))
}

fn open_vault(dir: &std::path::Path) -> Result<Arc<Vault>> {
    crate::demo_cmd::open_vault(dir, "thudo day")
}

/// A validator the operator enrolled, ready with the backend's feed.
struct Device {
    vault: Arc<Vault>,
    validator: Arc<Mutex<Validator>>,
}

struct World {
    dir: std::path::PathBuf,
    client: BackendClient,
    /// The transit operator's console.
    transit: Console,
}

impl World {
    /// Enrols a device as `post` says (a bus validator, a metro gate or an inspector's device)
    /// and installs its feed.
    async fn device(&self, name: &str, post: Post) -> Result<Device> {
        let (order, route, gate) = match post {
            Post::Bus(route) => (json!({"label": name, "route": route}), route, None),
            Post::Gate(line, g) => (json!({"label": name, "gate": g.to_string()}), line, Some(g)),
            // Enrolled as an inspector: the backend refuses taps from it.
            Post::Inspector(route) => (
                json!({"label": name, "route": route, "inspector": true}),
                route,
                None,
            ),
        };
        let enrolment = self
            .transit
            .post("/v1/admin/transit/enrolments", &order)
            .await?;
        let code = enrolment["code"]
            .as_str()
            .ok_or_else(|| anyhow!("enrolment: no code"))?
            .to_owned();
        let vault = open_vault(&self.dir.join(name))?;
        self.client
            .enrol_validator(
                vault.clone(),
                &ValidatorEnrolmentRequest {
                    enrolment_code: code,
                    device_name: name.into(),
                },
            )
            .await?;
        let feed = TransitClient::new(&self.client)
            .validator_feed(vault.clone())
            .await?;
        let mut validator = Validator::open(
            vault.clone(),
            feed.issuer_keys,
            ValidatorConfig {
                route,
                gate,
                ..ValidatorConfig::default()
            },
        )?;
        let list = thudo_core::hex::decode(&feed.deny_list).ok_or_else(|| anyhow!("deny list"))?;
        validator.update_deny_list(&list)?;
        Ok(Device {
            vault,
            validator: Arc::new(Mutex::new(validator)),
        })
    }

    async fn upload(&self, device: &Device) -> Result<u64> {
        let receipt = TransitClient::new(&self.client)
            .upload_and_acknowledge(device.vault.clone(), device.validator.clone())
            .await?;
        Ok(receipt.charged_vnd)
    }
}

/// Where an enrolled device works.
enum Post {
    /// A bus validator on this route.
    Bus(u16),
    /// A metro gate on this line (its route number).
    Gate(u16, Gate),
    /// An inspector's device on this bus route.
    Inspector(u16),
}

/// One line of the day's timeline.
fn say(at: u64, who: &str, place: &str, what: &str) {
    let local = chrono::DateTime::from_timestamp(at as i64 + 7 * 3600, 0)
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default();
    println!("{local}  {who:<7} {place:<34} {what}");
}

/// Shows `card`'s QR from the phone at `at` to `device`; fails unless it is let through.
fn tap(phone: &Phone, card: u64, device: &Device, at: u64, who: &str, place: &str) -> Result<()> {
    let qr = phone.current_qr_for(card, at)?;
    let verdict = device
        .validator
        .lock()
        .map_err(|_| anyhow!("validator lock"))?
        .validate(&qr.text, at)?;
    say(at, who, place, &verdict.presentation.line_en);
    ensure!(
        verdict.accepted,
        "{who} refused at {place}: {:?}",
        verdict.reason
    );
    Ok(())
}

/// 07:00 tomorrow in Hanoi (the day's rides stay on one local day).
fn tomorrow_seven() -> u64 {
    let hanoi = chrono::Utc::now().timestamp() as u64 + 7 * 3600;
    hanoi - hanoi % 86_400 + 86_400
}

async fn day(args: DayArgs) -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("thudo-day-").tempdir()?;
    let dir = tmp.path().to_owned();
    let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::open(
        &dir.join("server.db"),
        thudo_server::SCHEMA,
    )?);
    let fares = FarePolicy::default();
    let (config, idp) = ServerConfig::local(storage.clone(), fares.clone())?;
    // The sandbox gateway pays every order as it is made.
    let config = ServerConfig {
        payments: thudo_server::transit::sales::Payments::sandbox(true),
        ..config
    };
    let state = AppState::new(config)?;
    let server = thudo_server::start(state.clone(), "127.0.0.1:0".parse()?).await?;
    let url = format!("http://{}", server.addr);
    let world = World {
        dir: dir.clone(),
        client: BackendClient::new(BackendConfig::new(&url))?,
        transit: Console::sign_in(&url, &idp, Role::TransitOperator, "hanoi-metro")?,
    };
    // Each operator holds its own role only: the registry records guardianship, the transit
    // operator grants categories and enrols validators.
    let registry = Console::sign_in(&url, &idp, Role::CivilRegistry, "hn-ho-tich")?;
    let client = &world.client;

    // The operator: guardianship from the household registry, the child's entitlement from the
    // population registry; buses, metro gates and an inspector enrolled.
    let now = chrono::Utc::now().timestamp();
    registry
        .post(
            &format!("/v1/admin/citizens/{PARENT}/dependants"),
            &json!({"dependant_citizen_id": CHILD, "evidence_ref": "SHK-0108-2021"}),
        )
        .await?;
    world
        .transit
        .post(
            &format!("/v1/admin/citizens/{CHILD}/entitlements"),
            &serde_json::to_value(Entitlement {
                category: Category::Child,
                valid_from: now - 86_400,
                valid_until: now + 365 * 86_400,
                evidence_ref: "KS-2021-0042".into(),
            })?,
        )
        .await?;
    let gate = |station, direction| Gate { station, direction };
    let la_thanh_in = world
        .device(
            "la-thanh-in",
            Post::Gate(902, gate(202, GateDirection::Entry)),
        )
        .await?;
    let la_khe_out = world
        .device(
            "la-khe-out",
            Post::Gate(902, gate(210, GateDirection::Exit)),
        )
        .await?;
    let la_khe_in = world
        .device(
            "la-khe-in",
            Post::Gate(902, gate(210, GateDirection::Entry)),
        )
        .await?;
    let la_thanh_out = world
        .device(
            "la-thanh-out",
            Post::Gate(902, gate(202, GateDirection::Exit)),
        )
        .await?;
    let bus_32 = world.device("bus-32", Post::Bus(32)).await?;
    let bus_86 = world.device("bus-86", Post::Bus(86)).await?;
    let inspector = world.device("inspector-86", Post::Inspector(86)).await?;

    // The parent's phone: their own card, and their child's free pass beside it.
    let phone_vault = open_vault(&dir.join("phone"))?;
    client
        .sign_in_and_register(phone_vault.clone(), "parent's phone", |n| {
            idp.id_token(PARENT, n).map_err(|e| e.to_string())
        })
        .await?;
    let phone = Arc::new(Phone::open(
        phone_vault.clone(),
        None,
        PhoneOptions::default(),
    )?);
    let order = |product, category, dependant: Option<&str>| CredentialOrder {
        dependant: dependant.map(str::to_owned),
        ..CredentialOrder::new(product, category)
    };
    let own = TransitClient::new(client)
        .buy_and_install(
            phone_vault.clone(),
            phone.clone(),
            order(Product::PayAsYouGo, Category::Standard, None),
        )
        .await?;
    let childs = TransitClient::new(client)
        .buy_and_install(
            phone_vault.clone(),
            phone.clone(),
            order(Product::FreePass, Category::Child, Some(CHILD)),
        )
        .await?;
    let (parent, child) = (own.order.card_id, childs.order.card_id);
    // The parent's pay-as-you-go fares come out of prepaid credit.
    TransitClient::new(client)
        .top_up(phone_vault.clone(), 100_000, None)
        .await?;

    let t = tomorrow_seven();
    println!("thudo day: one phone, two riders (a parent pays as they go; a child rides free)");
    println!();
    // Morning: the metro from La Thành to La Khê, eight stations.
    tap(
        &phone,
        parent,
        &la_thanh_in,
        t,
        "parent",
        "metro 2A La Thành, gate in",
    )?;
    tap(
        &phone,
        child,
        &la_thanh_in,
        t + 2,
        "child",
        "metro 2A La Thành, gate in",
    )?;
    world.upload(&la_thanh_in).await?;
    TransitClient::new(client)
        .refresh_entries(la_khe_out.vault.clone(), la_khe_out.validator.clone(), t)
        .await?;
    tap(
        &phone,
        parent,
        &la_khe_out,
        t + 1_200,
        "parent",
        "metro 2A La Khê, gate out",
    )?;
    tap(
        &phone,
        child,
        &la_khe_out,
        t + 1_202,
        "child",
        "metro 2A La Khê, gate out",
    )?;
    world.upload(&la_khe_out).await?;
    // Two buses; an inspector on the second, paired with its validator.
    tap(&phone, parent, &bus_32, t + 3_600, "parent", "bus 32")?;
    tap(&phone, child, &bus_32, t + 3_601, "child", "bus 32")?;
    tap(&phone, parent, &bus_86, t + 7_200, "parent", "bus 86")?;
    tap(&phone, child, &bus_86, t + 7_201, "child", "bus 86")?;
    let vehicle = bus_86
        .validator
        .lock()
        .map_err(|_| anyhow!("lock"))?
        .recent_taps(t + 7_200 - 3 * 3600)?;
    for (who, card) in [("parent", parent), ("child", child)] {
        let at = t + 7_800;
        let qr = phone.current_qr_for(card, at)?;
        let inspection = inspector
            .validator
            .lock()
            .map_err(|_| anyhow!("lock"))?
            .inspect(&qr.text, at, Some(&vehicle))?;
        say(
            at,
            who,
            "bus 86, inspector",
            &format!("{:?}", inspection.outcome),
        );
        ensure!(
            inspection.outcome == InspectionOutcome::Valid,
            "{who} inspected: {inspection:?}"
        );
    }
    world.upload(&bus_32).await?;
    world.upload(&bus_86).await?;
    TransitClient::new(client)
        .upload_inspections(inspector.vault.clone(), inspector.validator.clone())
        .await?;
    // Evening: the metro home, La Khê to La Thành; the parent reaches the daily cap.
    let evening = t + 10 * 3600;
    tap(
        &phone,
        parent,
        &la_khe_in,
        evening,
        "parent",
        "metro 2A La Khê, gate in",
    )?;
    tap(
        &phone,
        child,
        &la_khe_in,
        evening + 2,
        "child",
        "metro 2A La Khê, gate in",
    )?;
    world.upload(&la_khe_in).await?;
    TransitClient::new(client)
        .refresh_entries(
            la_thanh_out.vault.clone(),
            la_thanh_out.validator.clone(),
            evening,
        )
        .await?;
    tap(
        &phone,
        parent,
        &la_thanh_out,
        evening + 1_200,
        "parent",
        "metro 2A La Thành, gate out",
    )?;
    tap(
        &phone,
        child,
        &la_thanh_out,
        evening + 1_202,
        "child",
        "metro 2A La Thành, gate out",
    )?;
    world.upload(&la_thanh_out).await?;

    // What the tariff says: metro La Thành–La Khê 13,000 VND, buses 8,000, the daily cap
    // 30,000; the child rides free.
    let (day, _) = fares.local_day_and_month(t);
    let metro = fares.metro_fare(&day, 202, 210).0;
    let bus = fares.bus_fare(32);
    let expected_parent = fares.daily_cap_vnd.min(2 * metro + 2 * bus);
    let charged = |card| -> Result<u64> {
        Ok(storage
            .charges(card)?
            .iter()
            .filter(|(d, _)| *d == day)
            .map(|(_, vnd)| vnd)
            .sum())
    };
    println!();
    println!(
        "backend: parent charged {} VND, child {} VND",
        charged(parent)?,
        charged(child)?
    );
    ensure!(charged(parent)? == expected_parent, "the parent's charge");
    ensure!(charged(child)? == 0, "the child's charge");
    let stats = storage.inspection_stats()?;
    ensure!(
        stats.valid == 2 && stats.disputed == 0,
        "inspections: {stats:?}"
    );

    // The phone syncs: each rider's trips, and the parent's cap reached.
    client
        .sync(
            phone_vault.clone(),
            &thudo_core::collections::registry(Default::default()),
            None,
        )
        .await?;
    let history = RiderHistory::new(&phone_vault);
    for (who, card) in [("parent", parent), ("child", child)] {
        println!("phone: {who}'s trips");
        let mut trips = history.trips_from(&day, Some(card))?;
        trips.reverse();
        for trip in &trips {
            let place = match (&trip.from_station, &trip.to_station) {
                (Some(a), Some(b)) => format!("metro {a} → {b}"),
                _ => format!("{} {}", trip.mode, trip.route.unwrap_or(0)),
            };
            let capped = if trip.capped() { " (capped)" } else { "" };
            println!("  {place:<36} {:>6} VND{capped}", trip.fare_vnd);
        }
        ensure!(
            trips.len() == 4,
            "{who} has {} trips on the phone",
            trips.len()
        );
        let paid: u64 = trips.iter().map(|t| t.fare_vnd).sum();
        ensure!(paid == charged(card)?, "{who}'s trips add up to {paid}");
    }
    let cap = history
        .cap(&day, Some(parent))?
        .context("no cap progress on the phone")?;
    println!(
        "phone: parent's day {} of {} VND, cap reached: {}",
        cap.paid_vnd,
        cap.cap_vnd,
        cap.reached()
    );
    ensure!(cap.reached(), "the parent's cap");

    // The auditor reads the trail of every operator action of the day, and checks its seals.
    let auditor = Console::sign_in(&url, &idp, Role::Auditor, "hn-thanh-tra")?;
    let trail = auditor.get("/v1/admin/audit/verify").await?;
    println!(
        "audit trail: {} entries (every operator action), seals verified: {}",
        trail["entries"], trail["verified"]
    );
    ensure!(trail["verified"] == true, "the audit trail: {trail}");
    server.stop().await;
    client.close();
    if args.keep {
        println!("kept {}", tmp.keep().display());
    }
    Ok(())
}
