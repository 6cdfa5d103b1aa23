//! The world the transit tests run in: an issuer, a phone holding a credential, a bus
//! validator, each over its own vault, and gates of a metro line.

use std::sync::Arc;

use thudo_core::crypto::p256::SoftwareKey;
use thudo_core::transit::issuer::{CredentialRequest, IssuerKey};
use thudo_core::transit::metro::{Gate, GateDirection};
use thudo_core::transit::phone::{Phone, PhoneOptions};
use thudo_core::transit::validator::{Validator, ValidatorConfig};
use thudo_core::transit::wire::{self, Payload};
use thudo_core::transit::{Category, Product};
use thudo_core::vault::{Unlock, Vault};

pub const NOW: u64 = 1_790_000_000; // 2026-09-21
pub const DAY: u32 = 86_400;

pub struct World {
    pub _dirs: Vec<tempfile::TempDir>,
    pub issuer: IssuerKey,
    pub phone: Phone,
    pub phone_vault: Arc<Vault>,
    pub validator: Validator,
    pub validator_vault: Arc<Vault>,
}

pub fn vault() -> (tempfile::TempDir, Arc<Vault>) {
    let dir = tempfile::tempdir().unwrap();
    let v = Vault::open(
        dir.path(),
        Unlock::Provider(crate::common::TestProvider::new("k")),
        &crate::common::fast(),
    )
    .unwrap();
    (dir, Arc::new(v))
}

pub fn request(
    phone: &Phone,
    product: Product,
    category: Category,
    route: u16,
) -> CredentialRequest {
    CredentialRequest {
        card_id: 9_704_000_000_123,
        product,
        category,
        route,
        pass_valid_from: NOW as u32 - 10 * DAY,
        pass_valid_until: NOW as u32 + 20 * DAY,
        device_public_key: phone.device_public_key().to_vec(),
        lifetime_secs: 72 * 3600,
        with_holder: false,
    }
}

pub fn world_with(
    product: Product,
    category: Category,
    route: u16,
    config: ValidatorConfig,
) -> World {
    let (d1, phone_vault) = vault();
    let (d2, validator_vault) = vault();
    let (issuer, _) =
        IssuerKey::generate(7, NOW as u32 - 30 * DAY, NOW as u32 + 300 * DAY).unwrap();
    let phone = Phone::open(phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    let credential = issuer
        .issue(&request(&phone, product, category, route), NOW as u32)
        .unwrap();
    phone.install_credential(&credential).unwrap();
    let validator = Validator::open(
        validator_vault.clone(),
        vec![issuer.trusted().clone()],
        config,
    )
    .unwrap();
    World {
        _dirs: vec![d1, d2],
        issuer,
        phone,
        phone_vault,
        validator,
        validator_vault,
    }
}

pub fn world() -> World {
    world_with(
        Product::MonthlyAllRoutes,
        Category::Standard,
        0,
        ValidatorConfig {
            route: 32,
            ..Default::default()
        },
    )
}

/// The same credential with a fresh QR signed by `key` (the phone's or someone else's).
pub fn qr_signed_by(w: &World, key: &SoftwareKey, at: u32, counter: u32) -> String {
    let p = Payload::from_qr_text(&w.phone.current_qr(u64::from(at)).unwrap().text).unwrap();
    let sig = key
        .sign(&wire::tap_message(&p.credential, at, counter))
        .unwrap();
    wire::qr_text(&p.credential, at, counter, &sig)
}

/// A monthly all-routes rider and a route-32 bus that lets the same card in again at once.
pub fn world_without_passback() -> World {
    world_with(
        Product::MonthlyAllRoutes,
        Category::Standard,
        0,
        ValidatorConfig {
            route: 32,
            passback_secs: 0,
            ..Default::default()
        },
    )
}

/// A gate validator at `station` trusting the world's issuer, over a new vault.
pub fn gate(w: &World, station: u16, direction: GateDirection) -> (tempfile::TempDir, Validator) {
    let (dir, v) = vault();
    (dir, gate_over(w, v, station, direction))
}

pub fn gate_over(
    w: &World,
    vault: Arc<Vault>,
    station: u16,
    direction: GateDirection,
) -> Validator {
    Validator::open(
        vault,
        vec![w.issuer.trusted().clone()],
        ValidatorConfig {
            route: 902,
            gate: Some(Gate { station, direction }),
            ..Default::default()
        },
    )
    .unwrap()
}

/// A dependant's ticket on a guardian's phone that rides with its holder (format version 2).
pub fn dependant_ticket(w: &World) -> u64 {
    let card = 9_704_000_000_777;
    let request = CredentialRequest {
        card_id: card,
        category: Category::Elderly,
        with_holder: true,
        ..request(&w.phone, Product::FreePass, Category::Elderly, 0)
    };
    let credential = w.issuer.issue(&request, NOW as u32).unwrap();
    w.phone.install_dependant_credential(&credential).unwrap();
    card
}

/// An inside feed listing `cards`, with exits known up to `exits_until`, answered at `now`.
pub fn inside_feed(
    cards: &[u64],
    exits_until: u64,
    now: u64,
) -> thudo_core::transit::metro::InsideFeed {
    let salt = [7u8; 32];
    let key = thudo_core::transit::metro::InsideKey::new(&salt);
    thudo_core::transit::metro::InsideFeed {
        salt: thudo_core::hex::encode(&salt),
        cards: cards
            .iter()
            .map(|c| thudo_core::hex::encode(&key.tag(*c)))
            .collect(),
        exits_complete_until: exits_until,
        now,
    }
}
