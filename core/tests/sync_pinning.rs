//! The sync client's certificate check: chain validation plus optional SPKI pins.

#![cfg(feature = "rust-http")] // the built-in client's TLS
#![allow(clippy::unwrap_used)]

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use thudo_core::sync::client::{
    server_verifier, spki_sha256, BackendClient, BackendConfig, BackendError,
};

struct Pki {
    ca: Vec<u8>,
    leaf: Vec<u8>,
    other_leaf: Vec<u8>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |name: &str| {
        let key = KeyPair::generate().unwrap();
        CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap()
            .der()
            .to_vec()
    };
    Pki {
        ca: ca.der().to_vec(),
        leaf: leaf("api.thudo.test"),
        other_leaf: leaf("api.thudo.test"),
    }
}

fn check(verifier: &dyn rustls::client::danger::ServerCertVerifier, leaf: &[u8]) -> bool {
    verifier
        .verify_server_cert(
            &CertificateDer::from(leaf.to_vec()),
            &[],
            &ServerName::try_from("api.thudo.test").unwrap(),
            &[],
            UnixTime::now(),
        )
        .is_ok()
}

#[test]
fn pins_accept_only_the_pinned_key_and_never_skip_chain_validation() {
    let p = pki();
    let pin = spki_sha256(&p.leaf).unwrap();
    assert_ne!(pin, spki_sha256(&p.other_leaf).unwrap());

    // No pins: any certificate of the trusted CA.
    let plain = server_verifier(&[], std::slice::from_ref(&p.ca)).unwrap();
    assert!(check(plain.as_ref(), &p.leaf) && check(plain.as_ref(), &p.other_leaf));
    // Pinned: only the pinned key.
    let pinned = server_verifier(&[pin], std::slice::from_ref(&p.ca)).unwrap();
    assert!(check(pinned.as_ref(), &p.leaf));
    assert!(!check(pinned.as_ref(), &p.other_leaf));
    // A pin does not make an untrusted chain acceptable.
    let untrusted = server_verifier(&[pin], &[]).unwrap();
    assert!(!check(untrusted.as_ref(), &p.leaf));
    // Garbage is not a certificate.
    assert_eq!(spki_sha256(b"not a certificate"), None);
    assert!(server_verifier(&[], &[b"junk".to_vec()]).is_err());
}

#[test]
fn a_client_with_pins_builds_and_one_with_a_junk_root_does_not() {
    let p = pki();
    let mut config = BackendConfig::new("https://api.thudo.test");
    config.pinned_spki_sha256 = vec![spki_sha256(&p.leaf).unwrap()];
    config.extra_roots_der = vec![p.ca];
    BackendClient::new(config.clone()).unwrap();
    config.extra_roots_der = vec![b"junk".to_vec()];
    match BackendClient::new(config) {
        Err(BackendError::InsecureUrl { url, reason }) => {
            assert_eq!(url, "https://api.thudo.test");
            assert!(!reason.is_empty());
        }
        Err(other) => panic!("expected InsecureUrl, got {other:?}"),
        Ok(_) => panic!("a junk root was accepted"),
    }
}
