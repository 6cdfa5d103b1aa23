//! The world the transit tests run in: a backend on loopback, riders' phones, validators and
//! gates, and the helpers every scenario uses.
#![allow(dead_code)]

pub use std::sync::{Arc, Mutex};

pub(crate) use crate::common;
pub use crate::common::{http_client, operator, vault, Role};
pub use serde_json::{json, Value};
pub use thudo_core::sync::client::{BackendClient, BackendConfig, BackendError};
pub use thudo_core::sync::protocol::{RegisterRequest, ValidatorEnrolmentRequest};
pub use thudo_core::transit::backend::{CredentialOrder, TapReceipt, TransitClient};
pub use thudo_core::transit::metro::{Gate, GateDirection};
pub use thudo_core::transit::phone::{Phone, PhoneOptions};
pub use thudo_core::transit::validator::{Reason, Tap, Validator, ValidatorConfig};
pub use thudo_core::transit::{Category, Product};
pub use thudo_core::vault::Vault;
pub use thudo_server::devices::identity::LocalIdentityProvider;
pub use thudo_server::prelude::*;
pub use thudo_server::transit::fares::FarePolicy;
pub use thudo_server::transit::store::NewEnrolment;
pub use thudo_server::{AppState, Running, ServerConfig};

pub const RIDER: &str = "001090054321";
pub const VICTIM: &str = "001090099999";

pub struct World {
    pub dir: tempfile::TempDir,
    /// The database's path or URL.
    pub db: String,
    pub storage: Arc<dyn Storage>,
    pub state: AppState,
    pub running: Running,
    pub client: BackendClient,
    pub http: reqwest::Client,
    pub idp: Arc<LocalIdentityProvider>,
}

impl World {
    /// Transit's calls over the world's client.
    pub fn transit(&self) -> TransitClient<'_> {
        TransitClient::new(&self.client)
    }

    pub async fn start() -> World {
        World::start_with(thudo_server::transit::sales::Payments::sandbox(true)).await
    }

    /// A world whose orders are paid through `payments`.
    pub async fn start_with(payments: thudo_server::transit::sales::Payments) -> World {
        World::start_configured(|config| ServerConfig { payments, ..config }).await
    }

    /// A world whose backend's test configuration `configure` changes.
    pub async fn start_configured(configure: impl FnOnce(ServerConfig) -> ServerConfig) -> World {
        let dir = tempfile::tempdir().unwrap();
        let common::Local {
            db,
            storage,
            state,
            running,
            idp,
            client,
            ..
        } = common::start_configured(&common::database(dir.path()), configure).await;
        let http = http_client();
        World {
            dir,
            db,
            storage,
            state,
            running,
            client,
            http,
            idp,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.addr)
    }

    /// The role whose power a path is (the operator the scenario acts as).
    pub fn role_for(path: &str) -> Role {
        if path.contains("/dependants") {
            Role::CivilRegistry
        } else if path.starts_with("/v1/admin/devices/") {
            Role::AccountSupport
        } else if path.starts_with("/v1/admin/audit") {
            Role::Auditor
        } else if path.ends_with("/health") {
            Role::HealthFacility
        } else if path.ends_with("/cell") || path.starts_with("/v1/admin/cells/") {
            Role::PartyOrganisation
        } else {
            Role::TransitOperator
        }
    }

    /// The token of the operator whose power `path` is.
    pub fn operator_for(&self, path: &str) -> String {
        operator(&self.idp, World::role_for(path))
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(self.operator_for(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, json_of(r).await)
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(self.operator_for(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        json_of(r).await
    }

    /// What a phone's device sees at `/v1/transit/charges`.
    pub async fn charges(&self, phone: &Arc<Vault>) -> Value {
        let token = BackendClient::registration(phone).unwrap().unwrap().token;
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
    pub async fn upload_bus(&self, vault: &Arc<Vault>, bus: &mut Validator) -> TapReceipt {
        self.transit()
            .upload_taps(vault.clone(), bus.export_taps().unwrap())
            .await
            .unwrap()
    }

    /// A JSON POST to `path` with the token of the device registered in `vault`, ready to send
    /// (add headers first if the call needs them).
    pub fn device_post(
        &self,
        vault: &Arc<Vault>,
        path: &str,
        body: &impl serde::Serialize,
    ) -> reqwest::RequestBuilder {
        let token = BackendClient::registration(vault).unwrap().unwrap().token;
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap())
    }

    /// Uploads a bus validator's whole log as a drained upload (the validator held nothing
    /// more): what the backend judges once a log is known complete is judged now.
    pub async fn upload_bus_drained(&self, vault: &Arc<Vault>, bus: &mut Validator) -> TapReceipt {
        let upload = thudo_core::transit::backend::TapUpload {
            taps: bus.export_taps().unwrap(),
            drained: true,
            exported_secs_ago: 0,
        };
        let r = self
            .device_post(vault, "/v1/transit/taps", &upload)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
    }

    /// Uploads a gate's taps and acknowledges them (a gate's upload also says its log is
    /// drained).
    pub async fn upload_gate(
        &self,
        vault: &Arc<Vault>,
        gate: &Arc<Mutex<Validator>>,
    ) -> TapReceipt {
        self.transit()
            .upload_and_acknowledge(vault.clone(), gate.clone())
            .await
            .unwrap()
    }

    /// What a phone's card was charged on local day `day`, VND.
    pub async fn charged_on(&self, phone: &Arc<Vault>, day: &str) -> u64 {
        self.charges(phone).await["days"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d[0] == day)
            .map(|d| d[1].as_u64().unwrap())
            .sum()
    }

    pub fn enrolment_code(&self, route: u16) -> String {
        thudo_server::transit::validators::create_enrolment(
            self.state.storage().as_ref(),
            &format!("bus {route}"),
            thudo_server::transit::validators::Binding::Bus(route),
            3600,
        )
        .unwrap()
        .0
    }

    /// An enrolled validator on `route` with the current feed installed.
    pub async fn bus(&self, name: &str, route: u16) -> (Arc<Vault>, Validator, String) {
        self.enrolled(name, self.enrolment_code(route), route, false)
            .await
    }

    /// An inspector's device on `route`, enrolled with a code the operator's route made, with
    /// the current feed installed.
    pub async fn inspector(&self, name: &str, route: u16) -> (Arc<Vault>, Validator, String) {
        let (status, enrolment) = self
            .admin_post(
                "/v1/admin/transit/enrolments",
                json!({"label": name, "inspector": true, "route": route}),
            )
            .await;
        assert_eq!(status, 200, "{enrolment}");
        assert_eq!(enrolment["inspector"], true);
        let code = enrolment["code"].as_str().unwrap().to_owned();
        self.enrolled(name, code, route, true).await
    }

    async fn enrolled(
        &self,
        name: &str,
        code: String,
        route: u16,
        inspector: bool,
    ) -> (Arc<Vault>, Validator, String) {
        let v = vault(&self.dir.path().join(name));
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
        assert_eq!(
            (enrolled.route, enrolled.inspector),
            (Some(route), inspector)
        );
        let feed = self.transit().validator_feed(v.clone()).await.unwrap();
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
    pub async fn gate(
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
            thudo_server::transit::validators::Binding::Gate(binding.clone()),
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
        let feed = self.transit().validator_feed(v.clone()).await.unwrap();
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

    pub async fn phone_device(&self, name: &str, citizen: &str) -> Arc<Vault> {
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
    pub async fn rider(&self, name: &str, citizen: &str, product: Product) -> (Arc<Vault>, Phone) {
        let v = self.phone_device(name, citizen).await;
        let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
        let r = common::buy(
            &self.client,
            v.clone(),
            &order(&phone, product, Category::Standard),
        )
        .await
        .unwrap();
        phone
            .install_credential(&thudo_core::hex::decode(&r.credential).unwrap())
            .unwrap();
        (v, phone)
    }
}

pub async fn json_of(r: reqwest::Response) -> Value {
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null)
}

pub fn order(phone: &Phone, product: Product, category: Category) -> CredentialOrder {
    CredentialOrder::new(product, category)
        .signed_by(phone, now())
        .unwrap()
}

pub fn now() -> u64 {
    chrono::Utc::now().timestamp() as u64
}

/// 07:00 tomorrow in Hanoi: later taps of a test stay on one Hanoi day and inside the
/// credential's 72 hours.
pub fn tomorrow_morning() -> u64 {
    let hanoi = now() + 7 * 3600;
    let midnight = hanoi - hanoi % 86_400 + 86_400;
    midnight - 7 * 3600 + 7 * 3600
}

pub fn refused(e: BackendError, status: u16, code: &str) {
    match e {
        BackendError::Refused {
            status: s, code: c, ..
        } => assert_eq!((s, c.as_str()), (status, code)),
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}

pub fn tap(v: &Arc<Mutex<Validator>>, phone: &Phone, at: u64) -> Reason {
    v.lock()
        .unwrap()
        .validate(&phone.current_qr(at).unwrap().text, at)
        .unwrap()
        .reason
}

/// This month in Hanoi (`YYYY-MM`).
/// `YYYY-MM` of the month `ahead` months after this one in Hanoi.
pub fn month_ahead(ahead: u32) -> String {
    let this = this_month();
    let (year, month) = this.split_once('-').unwrap();
    let index = year.parse::<u32>().unwrap() * 12 + month.parse::<u32>().unwrap() - 1 + ahead;
    format!("{}-{:02}", index / 12, index % 12 + 1)
}

pub fn this_month() -> String {
    chrono::DateTime::from_timestamp(now() as i64 + 7 * 3600, 0)
        .unwrap()
        .format("%Y-%m")
        .to_string()
}

/// Today in Hanoi (`YYYY-MM-DD`).
pub fn today() -> String {
    chrono::DateTime::from_timestamp(now() as i64 + 7 * 3600, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}
