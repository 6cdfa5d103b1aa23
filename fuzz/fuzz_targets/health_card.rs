//! Fuzzes the health-card input paths: `shc:/` QR texts (one, or chunks one per line), the
//! `.smart-health-card` file, and the compact JWS itself, verified against the public example
//! issuer's keys. No input may panic; whatever verifies must come from that issuer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use thudo_core::health::shc::{self, TrustStore};

const ISSUER: &str = "https://spec.smarthealth.cards/examples/issuer";
const NOW: i64 = 1_790_000_000;

fn trust() -> &'static TrustStore {
    static TRUST: OnceLock<TrustStore> = OnceLock::new();
    TRUST.get_or_init(|| {
        let mut t = TrustStore::new();
        t.add_jwks(
            ISSUER,
            include_str!("../../core/tests/data/shc/issuer/jwks.json"),
        )
        .expect("the example JWKS");
        t
    })
}

fn check(jws: &str) {
    if let Ok(card) = shc::verify(jws, trust(), NOW) {
        assert_eq!(card.issuer, ISSUER);
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.lines().collect();
    if let Ok(jws) = shc::jws_from_qr(&lines) {
        check(&jws);
    }
    if let Ok(all) = shc::jws_from_file(&text) {
        for jws in all {
            check(&jws);
        }
    }
    check(&text);
});
