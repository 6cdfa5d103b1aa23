//! The backend trusts no device's word about transit: validators are enrolled by the operator,
//! every uploaded tap is re-verified from the scan it carries, a QR is charged once across all
//! validators (a second use elsewhere is a suspected relay), reduced and free categories need an
//! entitlement, and revocations reach validators in strictly newer deny lists. Each attack below
//! is tried against the real server on loopback and must fail with a typed error or no charge.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};

use common::{http_client, start_local, vault, ADMIN};
use serde_json::{json, Value};
use thudo_core::sync::client::{SyncClient, SyncConfig, SyncError};
use thudo_core::sync::protocol::{RegisterRequest, ValidatorEnrolmentRequest};
use thudo_core::transit::backend::{CredentialOrder, TapReceipt};
use thudo_core::transit::metro::{Gate, GateDirection};
use thudo_core::transit::phone::{Phone, PhoneOptions};
use thudo_core::transit::validator::{Reason, Tap, Validator, ValidatorConfig};
use thudo_core::transit::{Category, Product};
use thudo_core::vault::Vault;
use thudo_server::devices::identity::LocalIdentityProvider;
use thudo_server::prelude::*;
use thudo_server::transit::fares::FarePolicy;
use thudo_server::transit::store::NewEnrolment;
use thudo_server::{AppState, Running, ServerConfig};

const RIDER: &str = "001090054321";
const VICTIM: &str = "001090099999";

struct World {
    dir: tempfile::TempDir,
    storage: Arc<dyn Storage>,
    state: AppState,
    running: Running,
    client: SyncClient,
    http: reqwest::Client,
    idp: Arc<LocalIdentityProvider>,
}

impl World {
    async fn start() -> World {
        let dir = tempfile::tempdir().unwrap();
        let common::Local {
            storage,
            state,
            running,
            idp,
            client,
            ..
        } = start_local(dir.path()).await;
        let http = http_client();
        World {
            dir,
            storage,
            state,
            running,
            client,
            http,
            idp,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.addr)
    }

    async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, json_of(r).await)
    }

    async fn admin_get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        json_of(r).await
    }

    /// What a phone's device sees at `/v1/transit/charges`.
    async fn charges(&self, phone: &Arc<Vault>) -> Value {
        let token = SyncClient::registration(phone).unwrap().unwrap().token;
        let r = self
            .http
            .get(self.url("/v1/transit/charges"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        json_of(r).await
    }

    /// Uploads a bus validator's taps (without acknowledging them).
    async fn upload_bus(&self, vault: &Arc<Vault>, bus: &mut Validator) -> TapReceipt {
        self.client
            .upload_taps(vault.clone(), bus.export_taps().unwrap())
            .await
            .unwrap()
    }

    /// Uploads a gate's taps and acknowledges them (a gate's upload also says its log is
    /// drained).
    async fn upload_gate(&self, vault: &Arc<Vault>, gate: &Arc<Mutex<Validator>>) -> TapReceipt {
        self.client
            .upload_and_acknowledge(vault.clone(), gate.clone())
            .await
            .unwrap()
    }

    /// What a phone's card was charged on local day `day`, VND.
    async fn charged_on(&self, phone: &Arc<Vault>, day: &str) -> u64 {
        self.charges(phone).await["days"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d[0] == day)
            .map(|d| d[1].as_u64().unwrap())
            .sum()
    }

    fn enrolment_code(&self, route: u16) -> String {
        thudo_server::transit::validators::create_enrolment(
            self.state.storage().as_ref(),
            &format!("bus {route}"),
            Some(route),
            None,
            3600,
        )
        .unwrap()
        .0
    }

    /// An enrolled validator on `route` with the current feed installed.
    async fn bus(&self, name: &str, route: u16) -> (Arc<Vault>, Validator, String) {
        let v = vault(&self.dir.path().join(name));
        let enrolled = self
            .client
            .enrol_validator(
                v.clone(),
                &ValidatorEnrolmentRequest {
                    enrolment_code: self.enrolment_code(route),
                    device_name: name.into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(enrolled.route, Some(route));
        let feed = self.client.validator_feed(v.clone()).await.unwrap();
        let mut validator = Validator::open(
            v.clone(),
            feed.issuer_keys,
            ValidatorConfig {
                route,
                ..ValidatorConfig::default()
            },
        )
        .unwrap();
        validator
            .update_deny_list(&thudo_core::hex::decode(&feed.deny_list).unwrap())
            .unwrap();
        (v, validator, enrolled.validator_id)
    }

    /// An enrolled metro gate at `station` with the current feed installed.
    async fn gate(
        &self,
        name: &str,
        station: u16,
        direction: GateDirection,
    ) -> (Arc<Vault>, Arc<Mutex<Validator>>) {
        let v = vault(&self.dir.path().join(name));
        let binding = match direction {
            GateDirection::Entry => format!("{station}:entry"),
            GateDirection::Exit => format!("{station}:exit"),
        };
        let (code, _) = thudo_server::transit::validators::create_enrolment(
            self.state.storage().as_ref(),
            name,
            None,
            Some(binding.clone()),
            3600,
        )
        .unwrap();
        let enrolled = self
            .client
            .enrol_validator(
                v.clone(),
                &ValidatorEnrolmentRequest {
                    enrolment_code: code,
                    device_name: name.into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(enrolled.gate, Some(binding));
        let feed = self.client.validator_feed(v.clone()).await.unwrap();
        let validator = Validator::open(
            v.clone(),
            feed.issuer_keys,
            ValidatorConfig {
                route: 902,
                gate: Some(Gate { station, direction }),
                ..ValidatorConfig::default()
            },
        )
        .unwrap();
        (v, Arc::new(Mutex::new(validator)))
    }

    async fn phone_device(&self, name: &str, citizen: &str) -> Arc<Vault> {
        let v = vault(&self.dir.path().join(name));
        self.client
            .sign_in_and_register(v.clone(), name, |n| {
                self.idp.id_token(citizen, n).map_err(|e| e.to_string())
            })
            .await
            .unwrap();
        v
    }

    /// A registered phone holding a credential for `product`.
    async fn rider(&self, name: &str, citizen: &str, product: Product) -> (Arc<Vault>, Phone) {
        let v = self.phone_device(name, citizen).await;
        let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
        let r = self
            .client
            .order_credential(v.clone(), &order(&phone, product, Category::Standard))
            .await
            .unwrap();
        phone
            .install_credential(&thudo_core::hex::decode(&r.credential).unwrap())
            .unwrap();
        (v, phone)
    }
}

async fn json_of(r: reqwest::Response) -> Value {
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null)
}

fn order(phone: &Phone, product: Product, category: Category) -> CredentialOrder {
    CredentialOrder {
        product,
        category,
        route: 0,
        device_public_key: thudo_core::hex::encode(&phone.device_public_key()),
        month: String::new(),
        dependant: None,
    }
}

fn now() -> u64 {
    chrono::Utc::now().timestamp() as u64
}

/// 07:00 tomorrow in Hanoi: later taps of a test stay on one Hanoi day and inside the
/// credential's 72 hours.
fn tomorrow_morning() -> u64 {
    let hanoi = now() + 7 * 3600;
    let midnight = hanoi - hanoi % 86_400 + 86_400;
    midnight - 7 * 3600 + 7 * 3600
}

fn refused(e: SyncError, status: u16, code: &str) {
    match e {
        SyncError::Refused {
            status: s, code: c, ..
        } => assert_eq!((s, c.as_str()), (status, code)),
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_are_enrolled_not_self_declared() {
    let w = World::start().await;
    // A citizen's phone cannot declare itself a validator.
    let fake = vault(&w.dir.path().join("fake-bus"));
    let e = w
        .client
        .register(
            fake.clone(),
            &RegisterRequest {
                id_token: w
                    .idp
                    .id_token(RIDER, &w.client.registration_nonce().await.unwrap().nonce)
                    .unwrap(),
                device_name: "my bus".into(),
                role: "validator".into(),
            },
        )
        .await
        .unwrap_err();
    refused(e, 403, "enrolment_required");
    // A registered phone can neither read the feed nor upload taps.
    let phone = w.phone_device("phone", RIDER).await;
    refused(
        w.client.validator_feed(phone.clone()).await.unwrap_err(),
        403,
        "validators_only",
    );
    let tap = Tap {
        seq: 1,
        at: now(),
        route: 32,
        accepted: true,
        reason: Reason::Ok,
        card_id: Some(1),
        product: Some(Product::PayAsYouGo),
        qr_timestamp: None,
        qr_counter: None,
        qr: None,
        gate: None,
    };
    refused(
        w.client
            .upload_taps(phone.clone(), vec![tap.clone()])
            .await
            .unwrap_err(),
        403,
        "validators_only",
    );

    // Codes: unknown, single use, expired.
    let enrol = |code: String, name: &str| {
        let v = vault(&w.dir.path().join(name));
        let c = &w.client;
        async move {
            c.enrol_validator(
                v,
                &ValidatorEnrolmentRequest {
                    enrolment_code: code,
                    device_name: "bus".into(),
                },
            )
            .await
        }
    };
    refused(
        enrol("0".repeat(64), "v-unknown").await.unwrap_err(),
        403,
        "enrolment_unknown",
    );
    let code = w.enrolment_code(32);
    enrol(code.clone(), "v-first").await.unwrap();
    refused(
        enrol(code, "v-again").await.unwrap_err(),
        403,
        "enrolment_used",
    );
    let expired = "e".repeat(64);
    w.storage
        .create_enrolment(&NewEnrolment {
            code_hash: thudo_server::storage::sha256(expired.as_bytes()),
            label: "old".into(),
            route: Some(32),
            gate: None,
            expires_at: now() as i64 - 1,
        })
        .unwrap();
    refused(
        enrol(expired, "v-expired").await.unwrap_err(),
        403,
        "enrolment_expired",
    );
    // The operator's rules for enrolments: bound to exactly one route or gate, bounded life.
    for bad in [
        json!({"label": "x"}),
        json!({"label": "x", "route": 32, "gate": "201:entry"}),
        json!({"label": "x", "gate": "L2A-CL-3"}),
        json!({"label": "x", "gate": "201:sideways"}),
        json!({"label": "", "route": 32}),
        json!({"label": "x", "route": 32, "ttl_secs": 10_000_000}),
    ] {
        assert_eq!(
            w.admin_post("/v1/admin/transit/enrolments", bad).await.0,
            400
        );
    }
    let (status, gate) = w
        .admin_post(
            "/v1/admin/transit/enrolments",
            json!({"label": "Cát Linh gate 3", "gate": "201:entry"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(gate["code"].as_str().unwrap().len(), 64);

    // A bus works until the operator decommissions it; then its calls are refused at once.
    let (bus, mut validator, id) = w.bus("bus-32", 32).await;
    let listed = w.admin_get("/v1/admin/transit/validators").await;
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["id"] == id.as_str() && v["route"] == 32));
    validator.validate("not a ticket", now()).unwrap();
    w.client
        .upload_taps(bus.clone(), validator.export_taps().unwrap())
        .await
        .unwrap();
    let (status, _) = w
        .admin_post(
            &format!("/v1/admin/transit/validators/{id}/decommission"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    refused(
        w.client.validator_feed(bus.clone()).await.unwrap_err(),
        403,
        "decommissioned",
    );
    refused(
        w.client.upload_taps(bus, vec![tap]).await.unwrap_err(),
        403,
        "decommissioned",
    );
    let (status, _) = w
        .admin_post(
            "/v1/admin/transit/validators/v-nope/decommission",
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taps_are_charged_from_their_evidence_once_across_validators() {
    let w = World::start().await;
    let (bus_a, mut a, a_id) = w.bus("bus-a", 32).await;
    let (bus_b, mut b, _) = w.bus("bus-b", 32).await;
    let (rider_vault, rider) = w.rider("rider", RIDER, Product::PayAsYouGo).await;
    let (victim_vault, victim) = w.rider("victim", VICTIM, Product::PayAsYouGo).await;
    let t0 = tomorrow_morning();

    // Four trips in a day on bus A: capped at 30,000.
    for hour in 0..4u64 {
        let t = t0 + hour * 3600;
        assert!(
            a.validate(&rider.current_qr(t).unwrap().text, t)
                .unwrap()
                .accepted
        );
    }
    // A relay: the QR shown on bus A at +5 h is also shown, seconds later, on bus B (a
    // screenshot sent to an accomplice). Both validators accept offline.
    let t = t0 + 5 * 3600;
    let relayed = rider.current_qr(t).unwrap().text;
    assert!(a.validate(&relayed, t).unwrap().accepted);
    assert!(b.validate(&relayed, t + 5).unwrap().accepted);

    let taps = a.export_taps().unwrap();
    assert!(
        taps.iter().all(|t| t.qr.is_some()),
        "every scan carries its evidence"
    );
    let receipt = w
        .client
        .upload_taps(bus_a.clone(), taps.clone())
        .await
        .unwrap();
    assert_eq!(
        (receipt.stored, receipt.charged_vnd, receipt.not_charged),
        (5, 30_000, 0)
    );
    // The same upload again (a lost receipt): stored once, charged once.
    let again = w.client.upload_taps(bus_a.clone(), taps).await.unwrap();
    assert_eq!(
        (again.stored, again.duplicates, again.charged_vnd),
        (0, 5, 0)
    );
    let from_b = w
        .client
        .upload_taps(bus_b.clone(), b.export_taps().unwrap())
        .await
        .unwrap();
    assert_eq!(
        (from_b.stored, from_b.charged_vnd, from_b.not_charged),
        (1, 0, 1)
    );
    let fraud = w.admin_get("/v1/admin/transit/fraud").await;
    let relay = &fraud.as_array().unwrap()[0];
    assert_eq!(relay["kind"], "suspected_relay");
    assert_eq!(relay["first_validator_id"], a_id.as_str());

    // A rogue validator's claims: an accepted tap for the victim's card with no scan, with the
    // rider's scan relabelled as the victim's card, and with a forged scan. None charges the
    // victim; the forged and evidence-free ones are recorded for the operator.
    let victim_card = w
        .client
        .order_credential(
            victim_vault.clone(),
            &order(&victim, Product::PayAsYouGo, Category::Standard),
        )
        .await
        .unwrap()
        .card_id;
    let t = t0 + 6 * 3600;
    let genuine = rider.current_qr(t).unwrap().text;
    let mut forged = genuine.clone().into_bytes();
    let i = forged.len() - 20;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let claim = |seq: u64, qr: Option<String>| Tap {
        seq,
        at: t,
        route: 32,
        accepted: true,
        reason: Reason::Ok,
        card_id: Some(victim_card),
        product: Some(Product::PayAsYouGo),
        qr_timestamp: Some(t as u32),
        qr_counter: Some(1),
        qr,
        gate: None,
    };
    let rogue = w
        .client
        .upload_taps(
            bus_b.clone(),
            vec![
                claim(100, None),
                claim(101, Some(forged)),
                claim(102, Some("HNT1:".to_owned() + &"0".repeat(5000))),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        (rogue.stored, rogue.charged_vnd, rogue.not_charged),
        (3, 0, 3)
    );
    let relabelled = w
        .client
        .upload_taps(bus_b.clone(), vec![claim(103, Some(genuine))])
        .await
        .unwrap();
    // Charged to the card in the evidence (the rider's, already at the day's cap), never the
    // victim's.
    assert_eq!(relabelled.stored, 1);
    let victim_charges = w.charges(&victim_vault).await;
    assert_eq!(victim_charges["days"], json!([]), "the victim pays nothing");
    let rider_charges = w.charges(&rider_vault).await;
    assert_eq!(rider_charges["days"][0][1], 30_000);
    let kinds: Vec<String> = w
        .admin_get("/v1/admin/transit/fraud")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "suspected_relay",
            "accepted_without_evidence",
            "forged_evidence",
            "forged_evidence"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_validators_in_newer_lists_and_stop_charges() {
    let w = World::start().await;
    let (bus, mut validator, _) = w.bus("bus", 32).await;
    assert_eq!(validator.deny_list_version(), 1);
    let (rider_vault, rider) = w.rider("rider", RIDER, Product::PayAsYouGo).await;
    let (thief_vault, stolen) = w.rider("stolen", VICTIM, Product::PayAsYouGo).await;
    let t0 = tomorrow_morning();
    // Taps made before the revocation, uploaded after it.
    let before = now() - 5;
    let early = rider.current_qr(before).unwrap().text;
    assert!(validator.validate(&early, before).unwrap().accepted);

    // The rider's card is revoked: the very first publication is a newer version than the one
    // validators hold, so the validator takes it.
    let card = w
        .client
        .order_credential(
            rider_vault.clone(),
            &order(&rider, Product::PayAsYouGo, Category::Standard),
        )
        .await
        .unwrap()
        .card_id;
    let (status, v) = w
        .admin_post("/v1/admin/transit/deny", json!({"cards": [card]}))
        .await;
    assert_eq!((status, v["version"].as_u64()), (200, Some(2)));
    // A stolen phone: revoking the device revokes every transit key it bought credentials for.
    let stolen_device = SyncClient::registration(&thief_vault)
        .unwrap()
        .unwrap()
        .device_id;
    let (_, v) = w
        .admin_post(
            "/v1/admin/transit/deny",
            json!({"devices": [stolen_device]}),
        )
        .await;
    assert_eq!(v["version"].as_u64(), Some(3));
    let (status, _) = w
        .admin_post("/v1/admin/transit/deny", json!({"device_keys": ["zz"]}))
        .await;
    assert_eq!(status, 400);

    let feed = w.client.validator_feed(bus.clone()).await.unwrap();
    let signed = thudo_core::hex::decode(&feed.deny_list).unwrap();
    assert_eq!(validator.update_deny_list(&signed).unwrap(), 3);
    assert!(
        validator.update_deny_list(&signed).is_err(),
        "the same version again is refused"
    );
    let verdict = validator
        .validate(&rider.current_qr(t0).unwrap().text, t0)
        .unwrap();
    assert_eq!(verdict.reason, Reason::Revoked);
    let verdict = validator
        .validate(&stolen.current_qr(t0 + 10).unwrap().text, t0 + 10)
        .unwrap();
    assert_eq!(
        verdict.reason,
        Reason::Revoked,
        "the stolen phone's key is denied"
    );

    // A validator still on the old list accepts the revoked card offline; the backend does
    // not charge it, while the tap made before the revocation is charged.
    let (old_bus, mut old, _) = {
        let v = vault(&w.dir.path().join("old-bus"));
        w.client
            .enrol_validator(
                v.clone(),
                &ValidatorEnrolmentRequest {
                    enrolment_code: w.enrolment_code(32),
                    device_name: "old".into(),
                },
            )
            .await
            .unwrap();
        let validator = Validator::open(
            v.clone(),
            feed.issuer_keys.clone(),
            ValidatorConfig {
                route: 32,
                ..ValidatorConfig::default()
            },
        )
        .unwrap();
        (v, validator, ())
    };
    let late = t0 + 3600;
    assert!(
        old.validate(&rider.current_qr(late).unwrap().text, late)
            .unwrap()
            .accepted
    );
    let r = w
        .client
        .upload_taps(old_bus, old.export_taps().unwrap())
        .await
        .unwrap();
    assert_eq!((r.charged_vnd, r.not_charged), (0, 1));
    let r = w
        .client
        .upload_taps(bus, validator.export_taps().unwrap())
        .await
        .unwrap();
    assert_eq!(
        r.charged_vnd, 8_000,
        "the tap before the revocation is charged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reduced_and_free_categories_need_an_entitlement() {
    let w = World::start().await;
    let v = w.phone_device("grandma", RIDER).await;
    let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
    let free = order(&phone, Product::FreePass, Category::Elderly);
    let e = w
        .client
        .order_credential(v.clone(), &free)
        .await
        .unwrap_err();
    assert!(matches!(e, SyncError::NotEntitled { .. }), "{e:?}");
    let mut half = order(&phone, Product::MonthlyAllRoutes, Category::Priority);
    half.month = "2026-12".into();
    assert!(matches!(
        w.client.order_credential(v.clone(), &half).await,
        Err(SyncError::NotEntitled { .. })
    ));
    // Standard is self-service.
    let mut standard = half.clone();
    standard.category = Category::Standard;
    assert_eq!(
        w.client
            .order_credential(v.clone(), &standard)
            .await
            .unwrap()
            .price_vnd,
        280_000
    );

    // An entitlement that ended yesterday does not renew; bad grants are refused.
    let t = now() as i64;
    let grant = |category: &str, from: i64, until: i64| json!({"category": category, "valid_from": from, "valid_until": until, "evidence_ref": "HS-2026-0042"});
    let path = format!("/v1/admin/citizens/{RIDER}/entitlements");
    assert_eq!(
        w.admin_post(&path, grant("elderly", t - 86_400 * 30, t - 86_400))
            .await
            .0,
        200
    );
    assert!(matches!(
        w.client.order_credential(v.clone(), &free).await,
        Err(SyncError::NotEntitled { .. })
    ));
    for bad in [
        grant("standard", t, t + 10),
        grant("elderly", t, t - 10),
        json!({"category": "elderly", "valid_from": t, "valid_until": t + 10, "evidence_ref": ""}),
        json!({"category": "vip", "valid_from": t, "valid_until": t + 10, "evidence_ref": "x"}),
    ] {
        assert_eq!(w.admin_post(&path, bad).await.0, 400);
    }
    // In force for two more hours: the credential lasts no longer than the entitlement.
    assert_eq!(
        w.admin_post(&path, grant("elderly", t - 60, t + 7200))
            .await
            .0,
        200
    );
    let r = w.client.order_credential(v.clone(), &free).await.unwrap();
    assert_eq!(r.price_vnd, 0);
    let fields = phone
        .install_credential(&thudo_core::hex::decode(&r.credential).unwrap())
        .unwrap();
    assert_eq!(fields.category, Category::Elderly);
    assert!(i64::from(fields.not_after) <= t + 7200 + 5);
    // The entitlement covers elderly only, not priority.
    assert!(matches!(
        w.client.order_credential(v.clone(), &half).await,
        Err(SyncError::NotEntitled { .. })
    ));
    let listed = w.admin_get(&path).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["evidence_ref"], "HS-2026-0042");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_key_rotation_reaches_validators_and_old_taps_still_verify() {
    let w = World::start().await;
    let (bus, mut validator, _) = w.bus("bus", 32).await;
    let (rider_vault, rider) = w.rider("rider", RIDER, Product::PayAsYouGo).await;
    // A tap with the credential of key 1, uploaded only after the rotation.
    let before = now() - 5;
    assert!(
        validator
            .validate(&rider.current_qr(before).unwrap().text, before)
            .unwrap()
            .accepted
    );

    for bad in [
        json!({"retire_previous_after_secs": 3600}),
        json!({"starts_in_secs": 100 * 86_400}),
        // Older keys retired before the new one starts: nothing could sign in between.
        json!({"starts_in_secs": 7 * 86_400, "retire_previous_after_secs": 259_200}),
    ] {
        assert_eq!(
            w.admin_post("/v1/admin/transit/issuer/rotate", bad).await.0,
            400
        );
    }
    let (status, ring) = w
        .admin_post(
            "/v1/admin/transit/issuer/rotate",
            json!({"starts_in_secs": 0, "retire_previous_after_secs": 259_200}),
        )
        .await;
    assert_eq!(status, 200);
    let ids: Vec<u64> = ring
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2], "previous and current, with their windows");
    assert!(ring[0]["valid_until"].as_u64().unwrap() <= now() + 259_200 + 5);

    // New credentials carry key 2; a validator that has not fetched the feed refuses them,
    // one that has accepts them and takes the list key 2 signed.
    let fresh = w
        .client
        .order_credential(
            rider_vault.clone(),
            &order(&rider, Product::PayAsYouGo, Category::Standard),
        )
        .await
        .unwrap();
    rider
        .install_credential(&thudo_core::hex::decode(&fresh.credential).unwrap())
        .unwrap();
    let t = tomorrow_morning();
    let qr = rider.current_qr(t).unwrap().text;
    assert_eq!(
        validator.validate(&qr, t).unwrap().reason,
        Reason::UnknownIssuer
    );
    let feed = w.client.validator_feed(bus.clone()).await.unwrap();
    assert_eq!(feed.issuer_keys.len(), 2);
    validator.set_trusted_keys(feed.issuer_keys).unwrap();
    assert_eq!(
        validator
            .update_deny_list(&thudo_core::hex::decode(&feed.deny_list).unwrap())
            .unwrap(),
        2,
        "a rotation publishes a newer list"
    );
    let qr = rider.current_qr(t + 60).unwrap().text;
    assert!(validator.validate(&qr, t + 60).unwrap().accepted);
    // Both the key-1 tap and the key-2 tap verify at the backend and are charged.
    let receipt = w
        .client
        .upload_taps(bus, validator.export_taps().unwrap())
        .await
        .unwrap();
    assert_eq!((receipt.charged_vnd, receipt.not_charged), (16_000, 0));
    // The keyring survives a restart of the server.
    let restarted = AppState::new(ServerConfig {
        storage: w.storage.clone(),
        admin_token: ADMIN.into(),
        fares: FarePolicy::default(),
        identity: w.idp.config(),
        test_identity: None,
    })
    .unwrap();
    let running = thudo_server::start(restarted, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let c = SyncClient::new(SyncConfig::new(&format!("http://{}", running.addr))).unwrap();
    let v = vault(&w.dir.path().join("bus-2"));
    c.enrol_validator(
        v.clone(),
        &ValidatorEnrolmentRequest {
            enrolment_code: w.enrolment_code(32),
            device_name: "bus 2".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(c.validator_feed(v).await.unwrap().issuer_keys.len(), 2);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_can_claim_another_riders_transit_key() {
    // An attacker copies the victim's device key off a QR, buys a credential naming it, and
    // would revoke their own device to get the victim's key on every validator's deny list.
    let w = World::start().await;
    let (_victim_vault, victim) = w.rider("victim", VICTIM, Product::PayAsYouGo).await;
    let attacker = w.phone_device("attacker", RIDER).await;
    let e = w
        .client
        .order_credential(
            attacker.clone(),
            &order(&victim, Product::PayAsYouGo, Category::Standard),
        )
        .await
        .unwrap_err();
    refused(e, 403, "device_key_taken");
    let attacker_id = SyncClient::registration(&attacker)
        .unwrap()
        .unwrap()
        .device_id;
    let (_, v) = w
        .admin_post("/v1/admin/transit/deny", json!({"devices": [attacker_id]}))
        .await;
    let (_, _, devices) = w.storage.deny_list().unwrap();
    assert!(
        devices.is_empty(),
        "version {v}: the victim's key stays off the list"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspections_are_recorded_once_and_counted_from_their_evidence() {
    use thudo_core::transit::inspection::InspectionOutcome;
    let w = World::start().await;
    let (_, rider) = w.rider("rider", RIDER, Product::PayAsYouGo).await;
    let (_, dodger) = w.rider("dodger", VICTIM, Product::PayAsYouGo).await;
    let (bus_vault, mut bus, _) = w.bus("bus", 32).await;
    let (inspector_vault, inspector, _) = w.bus("inspector", 32).await;
    let t = tomorrow_morning();
    // The rider taps on the bus; the dodger does not.
    assert!(
        bus.validate(&rider.current_qr(t).unwrap().text, t)
            .unwrap()
            .accepted
    );
    let bus_taps = bus.export_taps().unwrap();
    let inspector = Arc::new(std::sync::Mutex::new(inspector));
    let at = t + 300;
    let (found, missed) = {
        let mut i = inspector.lock().unwrap();
        let found = i
            .inspect(&rider.current_qr(at).unwrap().text, at, Some(&bus_taps))
            .unwrap();
        let missed = i
            .inspect(&dodger.current_qr(at).unwrap().text, at, Some(&bus_taps))
            .unwrap();
        (found, missed)
    };
    assert_eq!(found.outcome, InspectionOutcome::Valid);
    assert_eq!(missed.outcome, InspectionOutcome::NotTapped);
    // The inspection used nothing: the dodger can still tap on the bus.
    assert!(
        bus.validate(&dodger.current_qr(at + 5).unwrap().text, at + 5)
            .unwrap()
            .accepted
    );

    let receipt = w
        .client
        .upload_inspections(inspector_vault.clone(), inspector.clone())
        .await
        .unwrap();
    assert_eq!(
        (receipt.stored, receipt.duplicates, receipt.acknowledged_seq),
        (2, 0, 2)
    );
    assert!(inspector
        .lock()
        .unwrap()
        .export_inspections()
        .unwrap()
        .is_empty());

    // The same inspection again, and a made-up "valid ticket" with no real scan behind it.
    let token = SyncClient::registration(&inspector_vault)
        .unwrap()
        .unwrap()
        .token;
    let mut forged = found.clone();
    forged.seq = 3;
    forged.qr = Some("HNT1:NOTATICKET".into());
    let r = w
        .http
        .post(w.url("/v1/transit/inspections"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(json!({"inspections": [found, forged]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let receipt = json_of(r).await;
    assert_eq!(
        (receipt["stored"].as_u64(), receipt["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    // A phone is not an inspector.
    let phone = w.phone_device("p2", RIDER).await;
    let phone_token = SyncClient::registration(&phone).unwrap().unwrap().token;
    let r = w
        .http
        .post(w.url("/v1/transit/inspections"))
        .bearer_auth(&phone_token)
        .header("content-type", "application/json")
        .body(json!({"inspections": []}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    let stats = w.admin_get("/v1/admin/transit/inspections").await;
    assert_eq!(stats["inspections"], 3);
    assert_eq!(
        (stats["valid"].as_u64(), stats["not_tapped"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(stats["verified_not_tapped"], 1, "{stats}");
    assert_eq!(stats["disputed"], 1, "the made-up finding: {stats}");
    drop(bus_vault);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_riders_phone_shows_its_trips_and_how_close_it_is_to_the_caps() {
    use thudo_core::transit::trips::RiderHistory;
    let w = World::start().await;
    let (phone_vault, rider) = w.rider("rider", RIDER, Product::PayAsYouGo).await;
    let (bus_vault, mut bus, _) = w.bus("bus", 32).await;
    // Four rides in one Hanoi morning: 8,000 VND each until the 30,000 daily cap.
    let t = tomorrow_morning();
    for ride in 0..4u64 {
        let at = t + ride * 1_800;
        assert!(
            bus.validate(&rider.current_qr(at).unwrap().text, at)
                .unwrap()
                .accepted
        );
    }
    let receipt = w.upload_bus(&bus_vault, &mut bus).await;
    assert_eq!(receipt.charged_vnd, 30_000);
    // The phone syncs and holds its trips and cap progress, offline from here on.
    w.client
        .sync(phone_vault.clone(), &common::collections(), None)
        .await
        .unwrap();
    let history = RiderHistory::new(&phone_vault);
    let trips = history.trips_from("2000-01-01", None).unwrap();
    let fares: Vec<u64> = trips.iter().rev().map(|t| t.fare_vnd).collect();
    assert_eq!(
        fares,
        [8_000, 8_000, 8_000, 6_000],
        "newest first, reversed here"
    );
    assert!(trips.iter().all(|t| t.route == Some(32) && t.mode == "bus"));
    assert!(trips[0].capped() && !trips[1].capped());
    let day = trips[0].day.clone();
    let cap = history.cap(&day, None).unwrap().unwrap();
    assert_eq!(
        (cap.paid_vnd, cap.cap_vnd, cap.reached()),
        (30_000, 30_000, true)
    );
    let month = history.cap(&day[..7], None).unwrap().unwrap();
    assert_eq!((month.paid_vnd, month.reached()), (30_000, false));
    // Another rider's trips are not on this phone.
    let (other_vault, other) = w.rider("other", VICTIM, Product::PayAsYouGo).await;
    let at = t + 4 * 1_800;
    assert!(
        bus.validate(&other.current_qr(at).unwrap().text, at)
            .unwrap()
            .accepted
    );
    w.upload_bus(&bus_vault, &mut bus).await;
    for v in [&phone_vault, &other_vault] {
        w.client
            .sync(v.clone(), &common::collections(), None)
            .await
            .unwrap();
    }
    assert_eq!(history.trips_from("2000-01-01", None).unwrap().len(), 4);
    // The phone keeps what it shows: forgetting before a day removes older trips and ended
    // caps only, and the next sync does not bring them back.
    assert_eq!(history.forget_before(&day).unwrap(), 0);
    let next_day = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
        .unwrap()
        .succ_opt()
        .unwrap()
        .to_string();
    let month_over = next_day[..7] != day[..7];
    assert_eq!(
        history.forget_before(&next_day).unwrap(),
        4 + 1 + usize::from(month_over),
        "4 trips, the day's cap, and the month's if it ended"
    );
    assert_eq!(history.cap(&day[..7], None).unwrap().is_some(), !month_over);
    w.client
        .sync(phone_vault.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert!(history.trips_from("2000-01-01", None).unwrap().is_empty());
    assert_eq!(
        RiderHistory::new(&other_vault)
            .trips_from("2000-01-01", None)
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_pass_rides_free_all_day_and_ends_at_midnight_in_hanoi() {
    use thudo_core::transit::presentation::Signal;
    use thudo_core::transit::trips::RiderHistory;
    let w = World::start().await;
    let v = w.phone_device("day", RIDER).await;
    let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
    let bought = w
        .client
        .order_credential(
            v.clone(),
            &order(&phone, Product::DayPass, Category::Standard),
        )
        .await
        .unwrap();
    assert_eq!(bought.price_vnd, 30_000);
    // The pass window is today in Hanoi: midnight to midnight, local time.
    let from = u64::from(bought.pass_valid_from);
    assert_eq!((from + 7 * 3600) % 86_400, 0, "starts at 00:00 Hanoi");
    assert_eq!(u64::from(bought.pass_valid_until), from + 86_399);
    assert!((from..=from + 86_399).contains(&now()));
    phone
        .install_credential(&thudo_core::hex::decode(&bought.credential).unwrap())
        .unwrap();
    let (bus_vault, mut bus, _) = w.bus("bus", 32).await;
    let t = now();
    let verdict = bus.validate(&phone.current_qr(t).unwrap().text, t).unwrap();
    assert!(verdict.accepted);
    assert_eq!(verdict.product, Some(Product::DayPass));
    assert_eq!(
        verdict.presentation.signal,
        Signal::Go,
        "no warning on its own day"
    );
    // Tomorrow it is refused.
    let tomorrow = u64::from(bought.pass_valid_until) + 60;
    let late = bus
        .validate(&phone.current_qr(tomorrow).unwrap().text, tomorrow)
        .unwrap();
    assert_eq!(late.reason, Reason::PassExpired);
    let receipt = w
        .client
        .upload_taps(bus_vault, bus.export_taps().unwrap())
        .await
        .unwrap();
    assert_eq!(receipt.charged_vnd, 0);
    w.client
        .sync(v.clone(), &common::collections(), None)
        .await
        .unwrap();
    let trips = RiderHistory::new(&v)
        .trips_from("2000-01-01", None)
        .unwrap();
    assert_eq!(trips.len(), 1);
    assert_eq!((trips[0].product, trips[0].fare_vnd), (Product::DayPass, 0));
    // Not sold to a free rider, even one entitled (they ride on a free pass).
    let elderly = w.phone_device("elderly", VICTIM).await;
    let t = now() as i64;
    let path = format!("/v1/admin/citizens/{VICTIM}/entitlements");
    let grant = json!({"category": "elderly", "valid_from": t - 86_400, "valid_until": t + 86_400,
        "evidence_ref": "HS-2026-0043"});
    assert_eq!(w.admin_post(&path, grant).await.0, 200);
    let e = w
        .client
        .order_credential(elderly, &order(&phone, Product::DayPass, Category::Elderly))
        .await
        .unwrap_err();
    assert!(matches!(e, SyncError::Refused { status: 400, .. }), "{e:?}");
}

/// Taps `phone`'s QR at `at` on a shared validator; returns the verdict's reason.
fn tap(v: &Arc<Mutex<Validator>>, phone: &Phone, at: u64) -> Reason {
    v.lock()
        .unwrap()
        .validate(&phone.current_qr(at).unwrap().text, at)
        .unwrap()
        .reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metro_journeys_are_priced_by_their_stations_and_caps_count_bus_and_metro() {
    use thudo_core::transit::trips::RiderHistory;
    let w = World::start().await;
    let (phone_vault, rider) = w.rider("rider", RIDER, Product::PayAsYouGo).await;
    let (late_vault, late) = w.rider("late", VICTIM, Product::PayAsYouGo).await;
    let (in_vault, cat_linh_in) = w.gate("cat-linh-in", 201, GateDirection::Entry).await;
    let (out_vault, thuong_dinh_out) = w.gate("thuong-dinh-out", 205, GateDirection::Exit).await;
    let (bus_vault, mut bus, _) = w.bus("bus", 32).await;
    let t = tomorrow_morning();

    // In at Cát Linh; the entry gate uploads; the exit gate learns the entry and lets the rider
    // out at Thượng Đình: one journey, four stations, 10,000 VND.
    assert_eq!(tap(&cat_linh_in, &rider, t), Reason::Ok);
    // The other rider enters too, but their exit gate is offline (it lets them out later).
    assert_eq!(tap(&cat_linh_in, &late, t + 100), Reason::Ok);
    let entries = w.upload_gate(&in_vault, &cat_linh_in).await;
    assert_eq!(
        (entries.stored, entries.charged_vnd),
        (2, 0),
        "entries charge nothing"
    );
    let open = w
        .client
        .refresh_entries(out_vault.clone(), thuong_dinh_out.clone(), t + 600)
        .await
        .unwrap();
    assert_eq!(open, 2);
    assert_eq!(tap(&thuong_dinh_out, &rider, t + 600), Reason::Ok);
    let exported = thuong_dinh_out.lock().unwrap().export_taps().unwrap();
    let exits = w
        .client
        .upload_taps(out_vault.clone(), exported.clone())
        .await
        .unwrap();
    assert_eq!(exits.charged_vnd, 10_000);
    // Delivered twice: stored once, charged once.
    let again = w
        .client
        .upload_taps(out_vault.clone(), exported)
        .await
        .unwrap();
    assert_eq!((again.duplicates, again.charged_vnd), (1, 0));

    // Two buses, then the metro again: the caps count bus and metro together.
    for at in [t + 3_600, t + 5_400] {
        assert!(
            bus.validate(&rider.current_qr(at).unwrap().text, at)
                .unwrap()
                .accepted
        );
    }
    let buses = w.upload_bus(&bus_vault, &mut bus).await;
    assert_eq!(buses.charged_vnd, 16_000);
    assert_eq!(tap(&cat_linh_in, &rider, t + 7_200), Reason::Ok);
    w.upload_gate(&in_vault, &cat_linh_in).await;
    w.client
        .refresh_entries(out_vault.clone(), thuong_dinh_out.clone(), t + 7_800)
        .await
        .unwrap();
    assert_eq!(tap(&thuong_dinh_out, &rider, t + 7_800), Reason::Ok);
    let capped = w.upload_gate(&out_vault, &thuong_dinh_out).await;
    assert_eq!(
        capped.charged_vnd, 4_000,
        "10,000 + 16,000 + 4,000 = the 30,000 daily cap"
    );

    // The other rider never tapped out: when the journey time runs out the entry is charged
    // the line's maximum fare, once however often settlement runs.
    let fares = FarePolicy::default();
    assert!(
        w.storage
            .settle_journeys((t + 100 + 7_201) as i64, &fares)
            .unwrap()
            >= 1
    );
    assert_eq!(
        w.storage
            .settle_journeys((t + 100 + 7_202) as i64, &fares)
            .unwrap(),
        0
    );
    let day = fares.local_day_and_month(t).0;
    assert_eq!(w.charged_on(&late_vault, &day).await, 15_000);
    // Their exit gate comes back online hours later with the exit it let through (its feed
    // was old): the journey is priced by its stations after all, 10,000 VND.
    let (offline_vault, offline_out) = w.gate("offline-out", 205, GateDirection::Exit).await;
    assert_eq!(tap(&offline_out, &late, t + 1_500), Reason::Ok);
    w.upload_gate(&offline_vault, &offline_out).await;
    assert_eq!(w.charged_on(&late_vault, &day).await, 10_000);
    // An exit with no entry at all waits for one, then is charged the maximum.
    assert_eq!(tap(&offline_out, &late, t + 20_000), Reason::Ok);
    w.upload_gate(&offline_vault, &offline_out).await;
    assert_eq!(w.charged_on(&late_vault, &day).await, 10_000);
    w.storage
        .settle_journeys((t + 20_000 + 7_201) as i64, &fares)
        .unwrap();
    assert_eq!(w.charged_on(&late_vault, &day).await, 25_000);

    // The rider's phone shows the journeys with their stations, the buses, and the cap.
    w.client
        .sync(phone_vault.clone(), &common::collections(), None)
        .await
        .unwrap();
    let history = RiderHistory::new(&phone_vault);
    let trips = history.trips_from(&day, None).unwrap();
    let summary: Vec<String> = trips
        .iter()
        .rev()
        .map(|t| {
            format!(
                "{} {}-{} {}/{}",
                t.mode,
                t.from_station.as_deref().unwrap_or(""),
                t.to_station.as_deref().unwrap_or(""),
                t.fare_vnd,
                t.full_fare_vnd
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "metro Cát Linh-Thượng Đình 10000/10000",
            "bus - 8000/8000",
            "bus - 8000/8000",
            "metro Cát Linh-Thượng Đình 4000/10000",
        ]
    );
    assert!(trips.iter().all(|t| !t.incomplete));
    assert_eq!(trips[0].route, Some(902));
    assert!(trips[0].exit_at.is_some());
    assert!(history.cap(&day, None).unwrap().unwrap().reached());
    w.client
        .sync(late_vault.clone(), &common::collections(), None)
        .await
        .unwrap();
    let late_trips = RiderHistory::new(&late_vault)
        .trips_from(&day, None)
        .unwrap();
    assert_eq!(late_trips.len(), 2);
    assert!(late_trips[0].incomplete && late_trips[0].from_station.is_none());
    assert_eq!(late_trips[0].fare_vnd, 15_000);
    assert!(
        !late_trips[1].incomplete,
        "the late exit corrected the first journey"
    );
    // Validators learn from their feed which cards ride free for the rest of the day.
    let capped = w.storage.capped_cards(&day, 30_000).unwrap();
    assert_eq!(capped, [rider.credential().unwrap().card_id]);
    let feed = w.client.validator_feed(bus_vault.clone()).await.unwrap();
    let now = now();
    assert!(feed.capped_until > now && feed.capped_until <= now + 86_400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_gate_refuses_a_card_that_never_entered_while_its_feed_is_complete() {
    let w = World::start().await;
    let (_rider_vault, rider) = w.rider("rider", RIDER, Product::PayAsYouGo).await;
    let (in_vault, entry) = w.gate("in", 201, GateDirection::Entry).await;
    let (out_vault, exit) = w.gate("out", 212, GateDirection::Exit).await;
    // Only gates read the entry feed.
    let (bus_vault, _, _) = w.bus("bus", 32).await;
    refused(
        w.client.entry_feed(bus_vault.clone(), 0).await.unwrap_err(),
        403,
        "gates_only",
    );
    // The entry gate has uploaded (nothing) just now: the feed is complete up to now, and a
    // card with no entry is refused at the exit.
    w.upload_gate(&in_vault, &entry).await;
    let now = now();
    w.client
        .refresh_entries(out_vault.clone(), exit.clone(), now)
        .await
        .unwrap();
    assert!(
        exit.lock()
            .unwrap()
            .entry_feed_status(now)
            .refusing_unknown_exits
    );
    assert_eq!(tap(&exit, &rider, now), Reason::NoEntry);
    // A refused exit is logged, stored, and charges nothing.
    let receipt = w.upload_gate(&out_vault, &exit).await;
    assert_eq!((receipt.stored, receipt.charged_vnd), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardian_holds_a_childs_pass_and_each_rider_keeps_their_own_trips_and_caps() {
    use thudo_core::transit::trips::RiderHistory;
    const CHILD: &str = "001022012345";
    let w = World::start().await;
    let (parent_vault, phone) = w.rider("parent", RIDER, Product::PayAsYouGo).await;
    let parent_card = phone.credential().unwrap().card_id;
    let child_order = CredentialOrder {
        dependant: Some(CHILD.into()),
        ..order(&phone, Product::FreePass, Category::Child)
    };
    // Nobody buys a pass for a citizen the operator has not recorded as their dependant.
    refused(
        w.client
            .order_credential(parent_vault.clone(), &child_order)
            .await
            .unwrap_err(),
        403,
        "not_guardian",
    );
    let path = format!("/v1/admin/citizens/{RIDER}/dependants");
    for bad in [
        json!({"dependant_citizen_id": RIDER}),
        json!({"dependant_citizen_id": "12"}),
    ] {
        assert_eq!(w.admin_post(&path, bad).await.0, 400);
    }
    for _ in 0..2 {
        let (status, _) = w
            .admin_post(&path, json!({"dependant_citizen_id": CHILD}))
            .await;
        assert_eq!(status, 200, "recording it twice changes nothing");
    }
    // The child's free pass needs the child's entitlement, not the parent's.
    assert!(matches!(
        w.client
            .order_credential(parent_vault.clone(), &child_order)
            .await,
        Err(SyncError::NotEntitled { .. })
    ));
    let t = now() as i64;
    let (status, _) = w
        .admin_post(
            &format!("/v1/admin/citizens/{CHILD}/entitlements"),
            json!({"category": "child", "valid_from": t - 86_400, "valid_until": t + 86_400 * 365, "evidence_ref": "KS-2020-0117"}),
        )
        .await;
    assert_eq!(status, 200);
    let bought = w
        .client
        .buy_and_install(parent_vault.clone(), Arc::new(phone), child_order.clone())
        .await
        .unwrap();
    // Reopened from its vault, the phone holds both passes, the owner's first.
    let phone = Phone::open(parent_vault.clone(), None, PhoneOptions::default()).unwrap();
    let held: Vec<u64> = phone.credentials().iter().map(|c| c.card_id).collect();
    assert_eq!(held, [parent_card, bought.card_id]);
    assert_ne!(
        parent_card, bought.card_id,
        "the child rides on their own card"
    );
    // Another citizen cannot buy for the child.
    let (stranger_vault, stranger) = w.rider("stranger", VICTIM, Product::PayAsYouGo).await;
    refused(
        w.client
            .order_credential(
                stranger_vault.clone(),
                &CredentialOrder {
                    dependant: Some(CHILD.into()),
                    ..order(&stranger, Product::FreePass, Category::Child)
                },
            )
            .await
            .unwrap_err(),
        403,
        "not_guardian",
    );

    // Parent and child board one bus a second apart with one phone: two cards, no passback.
    let (bus_vault, mut bus, _) = w.bus("bus", 32).await;
    let at = tomorrow_morning();
    let parent_ride = bus
        .validate(&phone.current_qr(at).unwrap().text, at)
        .unwrap();
    let child_ride = bus
        .validate(
            &phone.current_qr_for(bought.card_id, at + 1).unwrap().text,
            at + 1,
        )
        .unwrap();
    assert!(parent_ride.accepted && child_ride.accepted);
    assert_eq!(child_ride.category, Some(Category::Child));
    let receipt = w.upload_bus(&bus_vault, &mut bus).await;
    assert_eq!(receipt.charged_vnd, 8_000, "the child rides free");

    // The parent's phone shows both riders' trips, each on its own card, and each card's caps.
    w.client
        .sync(parent_vault.clone(), &common::collections(), None)
        .await
        .unwrap();
    let history = RiderHistory::new(&parent_vault);
    assert_eq!(history.trips_from("2000-01-01", None).unwrap().len(), 2);
    let child_trips = history
        .trips_from("2000-01-01", Some(bought.card_id))
        .unwrap();
    assert_eq!(child_trips.len(), 1);
    assert_eq!(
        (child_trips[0].product, child_trips[0].fare_vnd),
        (Product::FreePass, 0)
    );
    let day = child_trips[0].day.clone();
    let own = history.cap(&day, None).unwrap().unwrap();
    assert_eq!((own.card_id, own.paid_vnd), (Some(parent_card), 8_000));
    assert_eq!(history.cap(&day, Some(parent_card)).unwrap(), Some(own));
    assert_eq!(history.cap(&day, Some(bought.card_id)).unwrap(), None);
    // A teenage dependant pays as they go: their cap progress reaches the parent's phone under
    // their card, apart from the parent's.
    const TEEN: &str = "001008012345";
    w.admin_post(&path, json!({"dependant_citizen_id": TEEN}))
        .await;
    let teen = w
        .client
        .buy_and_install(
            parent_vault.clone(),
            Arc::new(Phone::open(parent_vault.clone(), None, PhoneOptions::default()).unwrap()),
            CredentialOrder {
                dependant: Some(TEEN.into()),
                ..order(&phone, Product::PayAsYouGo, Category::Standard)
            },
        )
        .await
        .unwrap();
    let phone = Phone::open(parent_vault.clone(), None, PhoneOptions::default()).unwrap();
    let at = at + 600;
    assert!(
        bus.validate(&phone.current_qr_for(teen.card_id, at).unwrap().text, at)
            .unwrap()
            .accepted
    );
    w.upload_bus(&bus_vault, &mut bus).await;
    w.client
        .sync(parent_vault.clone(), &common::collections(), None)
        .await
        .unwrap();
    let teen_cap = history.cap(&day, Some(teen.card_id)).unwrap().unwrap();
    assert_eq!(
        (teen_cap.card_id, teen_cap.paid_vnd),
        (Some(teen.card_id), 8_000)
    );
    assert_eq!(history.cap(&day, None).unwrap().unwrap().paid_vnd, 8_000);
    // The guardianship ends (custody changed): no more of the child's passes, nor their trips.
    let end = |who: &str| {
        let url = w.url(&format!("/v1/admin/citizens/{RIDER}/dependants/{who}"));
        let http = w.http.clone();
        async move {
            http.delete(url)
                .bearer_auth(common::ADMIN)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(end(CHILD).await, 200);
    assert_eq!(end(CHILD).await, 404, "once");
    assert_eq!(end("12").await, 400);
    refused(
        w.client
            .order_credential(parent_vault.clone(), &child_order)
            .await
            .unwrap_err(),
        403,
        "not_guardian",
    );
    let before = history
        .trips_from("2000-01-01", Some(bought.card_id))
        .unwrap()
        .len();
    let at = at + 1_200;
    assert!(
        bus.validate(&phone.current_qr_for(bought.card_id, at).unwrap().text, at)
            .unwrap()
            .accepted,
        "a pass already held rides until its credential ends"
    );
    w.upload_bus(&bus_vault, &mut bus).await;
    w.client
        .sync(parent_vault.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert_eq!(
        history
            .trips_from("2000-01-01", Some(bought.card_id))
            .unwrap()
            .len(),
        before,
        "the child's new trips no longer reach the former guardian"
    );
    // Removing the child's pass leaves the owner's.
    assert!(phone.remove_credential(bought.card_id).unwrap());
    assert!(phone.remove_credential(parent_card).is_err());
    assert_eq!(phone.credentials().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journeys_pair_each_exit_with_the_entry_before_it_and_never_charge_a_repeat() {
    let w = World::start().await;
    let (rider_vault, rider) = w.rider("rider", RIDER, Product::PayAsYouGo).await;
    let (slow_vault, slow) = w.rider("slow", VICTIM, Product::PayAsYouGo).await;
    let (in_201, gate_in_201) = w.gate("in-201", 201, GateDirection::Entry).await;
    let (in_201b, gate_in_201b) = w.gate("in-201-b", 201, GateDirection::Entry).await;
    let (in_203, gate_in_203) = w.gate("in-203", 203, GateDirection::Entry).await;
    let (out_203, gate_out_203) = w.gate("out-203", 203, GateDirection::Exit).await;
    let (out_203b, gate_out_203b) = w.gate("out-203-b", 203, GateDirection::Exit).await;
    let (out_212, gate_out_212) = w.gate("out-212", 212, GateDirection::Exit).await;
    let t = tomorrow_morning();
    // In at Cát Linh (the first gate was slow: a second one takes the tap again 10 s later),
    // out at Thái Hà, in again there two minutes later, out at Yên Nghĩa.
    assert_eq!(tap(&gate_in_201, &rider, t), Reason::Ok);
    assert_eq!(tap(&gate_in_201b, &rider, t + 10), Reason::Ok);
    assert_eq!(tap(&gate_out_203, &rider, t + 1_200), Reason::Ok);
    // A second exit gate lets the same journey out again (a phone passed back?).
    assert_eq!(tap(&gate_out_203b, &rider, t + 1_230), Reason::Ok);
    assert_eq!(tap(&gate_in_203, &rider, t + 1_320), Reason::Ok);
    assert_eq!(tap(&gate_out_212, &rider, t + 2_700), Reason::Ok);
    // Entry gates upload first: the second entry closes the first journey at the maximum for
    // now, and the repeated entry is not a journey.
    let mut charged = 0;
    for (v, g) in [
        (&in_201, &gate_in_201),
        (&in_201b, &gate_in_201b),
        (&in_203, &gate_in_203),
    ] {
        charged += w.upload_gate(v, g).await.charged_vnd;
    }
    assert_eq!(
        charged, 15_000,
        "the first journey, at the maximum until its exit arrives"
    );
    // Then the exits: each pairs with the entry before it. The first corrects the maximum to
    // Cát Linh–Thái Hà (8,000); the repeat is recorded, never charged; the last is Thái Hà–Yên
    // Nghĩa (14,000).
    for (v, g) in [
        (&out_203, &gate_out_203),
        (&out_203b, &gate_out_203b),
        (&out_212, &gate_out_212),
    ] {
        w.upload_gate(v, g).await;
    }
    let fares = FarePolicy::default();
    let day = fares.local_day_and_month(t).0;
    assert_eq!(w.charged_on(&rider_vault, &day).await, 8_000 + 14_000);
    let fraud = w.admin_get("/v1/admin/transit/fraud").await;
    assert_eq!(
        fraud
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == "repeated_exit")
            .count(),
        1
    );
    w.client
        .sync(rider_vault.clone(), &common::collections(), None)
        .await
        .unwrap();
    let trips = thudo_core::transit::trips::RiderHistory::new(&rider_vault)
        .trips_from(&day, None)
        .unwrap();
    let summary: Vec<String> = trips
        .iter()
        .rev()
        .map(|t| {
            format!(
                "{}-{} {}",
                t.from_station.as_deref().unwrap_or(""),
                t.to_station.as_deref().unwrap_or(""),
                t.fare_vnd
            )
        })
        .collect();
    assert_eq!(
        summary,
        ["Cát Linh-Thái Hà 8000", "Thái Hà-Yên Nghĩa 14000"]
    );

    // A rider held up for over two hours: charged the maximum once, not once for the missing
    // exit and again for an exit with no entry.
    let late = t + 5 * 3600;
    assert_eq!(tap(&gate_in_201, &slow, late), Reason::Ok);
    w.upload_gate(&in_201, &gate_in_201).await;
    w.storage
        .settle_journeys((late + 7_201) as i64, &fares)
        .unwrap();
    assert_eq!(w.charged_on(&slow_vault, &day).await, 15_000);
    assert_eq!(tap(&gate_out_212, &slow, late + 7_800), Reason::Ok);
    w.upload_gate(&out_212, &gate_out_212).await;
    w.storage
        .settle_journeys((late + 7_800 + 7_201) as i64, &fares)
        .unwrap();
    assert_eq!(w.charged_on(&slow_vault, &day).await, 15_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_pass_is_priced_by_the_metro_tariff_and_rides_its_gates_free() {
    let w = World::start().await;
    let v = w.phone_device("rider", RIDER).await;
    let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
    let month = chrono::DateTime::from_timestamp(tomorrow_morning() as i64 + 7 * 3600, 0)
        .unwrap()
        .format("%Y-%m")
        .to_string();
    let bought = w
        .client
        .buy_and_install(
            v.clone(),
            Arc::new(Phone::open(v.clone(), None, PhoneOptions::default()).unwrap()),
            CredentialOrder {
                route: 902,
                month,
                ..order(&phone, Product::MonthlySingleRoute, Category::Standard)
            },
        )
        .await
        .unwrap();
    assert_eq!(bought.price_vnd, 200_000, "line 2A's monthly pass");
    let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
    let (in_vault, gate_in) = w.gate("in", 201, GateDirection::Entry).await;
    let (out_vault, gate_out) = w.gate("out", 212, GateDirection::Exit).await;
    let (_, mut bus, _) = w.bus("bus", 32).await;
    let t = tomorrow_morning();
    assert_eq!(tap(&gate_in, &phone, t), Reason::Ok);
    assert_eq!(tap(&gate_out, &phone, t + 1_500), Reason::Ok);
    let on_bus = bus
        .validate(&phone.current_qr(t + 3_600).unwrap().text, t + 3_600)
        .unwrap();
    assert_eq!(
        on_bus.reason,
        Reason::WrongRoute,
        "a line pass is not a bus pass"
    );
    let mut charged = 0;
    for (v, g) in [(&in_vault, &gate_in), (&out_vault, &gate_out)] {
        charged += w.upload_gate(v, g).await.charged_vnd;
    }
    assert_eq!(charged, 0);
    w.client
        .sync(v.clone(), &common::collections(), None)
        .await
        .unwrap();
    let trips = thudo_core::transit::trips::RiderHistory::new(&v)
        .trips_from("2000-01-01", None)
        .unwrap();
    assert_eq!(trips.len(), 1);
    assert_eq!(
        (trips[0].product, trips[0].fare_vnd, trips[0].incomplete),
        (Product::MonthlySingleRoute, 0, false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_may_upload_in_any_order_and_a_journey_is_still_charged_once() {
    let w = World::start().await;
    let (rider_vault, rider) = w.rider("rider", RIDER, Product::PayAsYouGo).await;
    let (a, gate_a) = w.gate("in-201-a", 201, GateDirection::Entry).await;
    let (b, gate_b) = w.gate("in-201-b", 201, GateDirection::Entry).await;
    let (c, gate_c) = w.gate("in-204", 204, GateDirection::Entry).await;
    let (x, gate_x) = w.gate("out-208-x", 208, GateDirection::Exit).await;
    let (y, gate_y) = w.gate("out-208-y", 208, GateDirection::Exit).await;
    let (z, gate_z) = w.gate("out-210", 210, GateDirection::Exit).await;
    let t = tomorrow_morning();
    // Two entry gates at Cát Linh (the first jammed), two exit gates at Văn Quán (the first
    // jammed): each later tap's gate uploads first.
    assert_eq!(tap(&gate_a, &rider, t), Reason::Ok);
    assert_eq!(tap(&gate_b, &rider, t + 20), Reason::Ok);
    assert_eq!(tap(&gate_x, &rider, t + 1_200), Reason::Ok);
    assert_eq!(tap(&gate_y, &rider, t + 1_220), Reason::Ok);
    for (v, g) in [(&b, &gate_b), (&a, &gate_a), (&y, &gate_y), (&x, &gate_x)] {
        w.upload_gate(v, g).await;
    }
    let fares = FarePolicy::default();
    let day = fares.local_day_and_month(t).0;
    let one_journey = fares.metro_fare(&day, 201, 208).0;
    assert_eq!(one_journey, 12_000);
    w.storage
        .settle_journeys((t + 1_220 + 86_400) as i64, &fares)
        .unwrap();
    assert_eq!(w.charged_on(&rider_vault, &day).await, one_journey);

    // Later the rider enters at Láng, but that gate uploads only after the exit at La Khê
    // did: the exit is Láng's, not Cát Linh's.
    assert_eq!(tap(&gate_c, &rider, t + 7_200), Reason::Ok);
    assert_eq!(tap(&gate_z, &rider, t + 8_400), Reason::Ok);
    w.upload_gate(&z, &gate_z).await;
    w.upload_gate(&c, &gate_c).await;
    let second = fares.metro_fare(&day, 204, 210).0;
    assert_eq!(
        w.charged_on(&rider_vault, &day).await,
        fares.capped(one_journey + second, 0, 0)
    );
    let fraud = w.admin_get("/v1/admin/transit/fraud").await;
    assert!(
        fraud
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["kind"] != "repeated_exit" || f["validator_id"] != f["first_validator_id"]),
        "{fraud}"
    );
}
