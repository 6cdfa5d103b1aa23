//! Trust: issuer keys and their rotation, both signatures, the deny list and its age, the
//! issuer's refusals, and a rider seen again checked in full.

use thudo_core::crypto::p256::SoftwareKey;
use thudo_core::transit::issuer::{CredentialRequest, IssuerKey};
use thudo_core::transit::validator::{
    DenyList, Reason, Validator, ValidatorConfig, CLOCK_BEHIND_SECS,
};
use thudo_core::transit::wire::{self, Payload};
use thudo_core::transit::{Category, Product, TransitError};

use crate::world::{
    qr_signed_by, request, vault, world, world_with, world_without_passback, DAY, NOW,
};

#[test]
fn issuer_trust_signatures_and_deny_list() {
    let mut w = world();
    // Same key id, another key: bad issuer signature.
    let (impostor, _) = IssuerKey::generate(7, NOW as u32 - DAY, NOW as u32 + 300 * DAY).unwrap();
    // Shown longer than the genuine one (a second later), so the phone takes it as the newer.
    let forged = impostor
        .issue(
            &request(&w.phone, Product::MonthlyAllRoutes, Category::Standard, 0),
            NOW as u32 + 1,
        )
        .unwrap();
    w.phone.install_credential(&forged).unwrap();
    let qr = w.phone.current_qr(NOW).unwrap();
    assert_eq!(
        w.validator.validate(&qr.text, NOW).unwrap().reason,
        Reason::BadIssuerSignature
    );
    // Unknown key id (another pass: the phone holds one credential per pass, the one shown
    // longest).
    let (other, _) = IssuerKey::generate(8, NOW as u32 - DAY, NOW as u32 + DAY).unwrap();
    w.phone
        .install_credential(
            &other
                .issue(
                    &request(&w.phone, Product::PayAsYouGo, Category::Standard, 0),
                    NOW as u32,
                )
                .unwrap(),
        )
        .unwrap();
    let qr = w.phone.current_qr(NOW + 10).unwrap();
    assert_eq!(
        w.validator.validate(&qr.text, NOW + 10).unwrap().reason,
        Reason::UnknownIssuer
    );
    // Trusting both keys (rotation with overlap): accepted.
    w.validator
        .set_trusted_keys(vec![w.issuer.trusted().clone(), other.trusted().clone()])
        .unwrap();
    assert!(w.validator.validate(&qr.text, NOW + 10).unwrap().accepted);
    // The key's window has closed.
    let after_window = NOW + u64::from(DAY) + 100;
    assert_eq!(
        w.validator.validate(&qr.text, after_window).unwrap().reason,
        Reason::IssuerKeyExpired
    );

    // Deny list: signed by a trusted key, versioned, atomic.
    let mut w = world();
    let card = w.phone.credential().unwrap().card_id;
    let list = DenyList {
        version: 3,
        issued_at: NOW as u32,
        cards: vec![card],
        devices: vec![],
    };
    let signed = w.issuer.sign_deny_list(&list).unwrap();
    let mut tampered = signed.clone();
    tampered[20] ^= 1;
    assert!(w.validator.update_deny_list(&tampered).is_err());
    assert!(w
        .validator
        .update_deny_list(&signed[..signed.len() - 1])
        .is_err());
    assert!(w
        .validator
        .update_deny_list(&impostor.sign_deny_list(&list).unwrap())
        .is_err());
    assert_eq!(
        w.validator.deny_list_version(),
        0,
        "bad lists change nothing"
    );
    let qr = w.phone.current_qr(NOW).unwrap();
    assert!(w.validator.validate(&qr.text, NOW).unwrap().accepted);
    assert_eq!(w.validator.update_deny_list(&signed).unwrap(), 3);
    let qr = w.phone.current_qr(NOW + 200).unwrap();
    assert_eq!(
        w.validator.validate(&qr.text, NOW + 200).unwrap().reason,
        Reason::Revoked
    );
    // Older or equal versions are refused (no rollback).
    let older = w
        .issuer
        .sign_deny_list(&DenyList {
            version: 2,
            ..Default::default()
        })
        .unwrap();
    assert!(w.validator.update_deny_list(&older).is_err());
    assert!(w.validator.update_deny_list(&signed).is_err());
    // Devices can be revoked too, and the list survives a restart.
    let device = DenyList::device_hash(&w.phone.device_public_key());
    let v4 = w
        .issuer
        .sign_deny_list(&DenyList {
            version: 4,
            issued_at: NOW as u32,
            cards: vec![],
            devices: vec![device],
        })
        .unwrap();
    w.validator.update_deny_list(&v4).unwrap();
    let mut reopened = Validator::open(
        w.validator_vault.clone(),
        vec![w.issuer.trusted().clone()],
        ValidatorConfig::default(),
    )
    .unwrap();
    assert_eq!(reopened.deny_list_version(), 4);
    let qr = w.phone.current_qr(NOW + 400).unwrap();
    assert_eq!(
        reopened.validate(&qr.text, NOW + 400).unwrap().reason,
        Reason::Revoked
    );
}

#[test]
fn issuer_refuses_nonsense_requests() {
    let w = world();
    let base = request(&w.phone, Product::MonthlyAllRoutes, Category::Standard, 0);
    let cases: Vec<(&str, CredentialRequest)> = vec![
        (
            "free pass for a payer",
            CredentialRequest {
                product: Product::FreePass,
                ..base.clone()
            },
        ),
        (
            "monthly for a free rider",
            CredentialRequest {
                category: Category::Child,
                ..base.clone()
            },
        ),
        (
            "single route without route",
            CredentialRequest {
                product: Product::MonthlySingleRoute,
                ..base.clone()
            },
        ),
        (
            "route on all-routes pass",
            CredentialRequest {
                route: 12,
                ..base.clone()
            },
        ),
        (
            "validity reversed",
            CredentialRequest {
                pass_valid_until: base.pass_valid_from,
                ..base.clone()
            },
        ),
        (
            "lifetime 0",
            CredentialRequest {
                lifetime_secs: 0,
                ..base.clone()
            },
        ),
        (
            "lifetime > 72 h",
            CredentialRequest {
                lifetime_secs: 73 * 3600,
                ..base.clone()
            },
        ),
        (
            "device key not a point",
            CredentialRequest {
                device_public_key: [vec![2], vec![0xff; 32]].concat(),
                ..base.clone()
            },
        ),
        (
            "device key empty",
            CredentialRequest {
                device_public_key: vec![],
                ..base.clone()
            },
        ),
    ];
    for (what, req) in cases {
        assert!(
            matches!(
                w.issuer.issue(&req, NOW as u32),
                Err(TransitError::InvalidRequest { .. })
            ),
            "{what}"
        );
    }
    assert!(
        w.issuer.issue(&base, NOW as u32 + 400 * DAY).is_err(),
        "issuer key expired"
    );
    assert!(IssuerKey::generate(1, 10, 5).is_err());
    assert!(IssuerKey::from_pkcs8(b"junk", 1, 0, 10).is_err());
}

#[test]
fn key_rotation_with_overlap() {
    use thudo_core::transit::issuer::IssuerKeyring;
    let t0 = NOW as u32;
    let (old, _) = IssuerKey::generate(1, t0 - 100 * DAY, t0 + 10 * DAY).unwrap();
    let (new, _) = IssuerKey::generate(2, t0 + 5 * DAY, t0 + 400 * DAY).unwrap();
    let ring = IssuerKeyring::new(vec![old, new]).unwrap();
    assert_eq!(ring.signing_key(t0).unwrap().trusted().key_id, 1);
    assert_eq!(
        ring.signing_key(t0 + 6 * DAY).unwrap().trusted().key_id,
        2,
        "the newer key signs in the overlap"
    );
    assert_eq!(
        ring.trusted_keys(t0).len(),
        2,
        "validators learn the next key early"
    );
    assert_eq!(ring.trusted_keys(t0 + 11 * DAY).len(), 1);
    assert!(ring.signing_key(t0 + 500 * DAY).is_none());
    let (a, _) = IssuerKey::generate(3, 0, 10).unwrap();
    let (b, _) = IssuerKey::generate(3, 0, 10).unwrap();
    assert!(IssuerKeyring::new(vec![a, b]).is_err());

    // A credential signed by the old key just before the switch still passes during the overlap.
    let w = world();
    let (_d, v) = vault();
    let before = ring.signing_key(t0 + 4 * DAY).unwrap();
    let credential = before
        .issue(
            &request(&w.phone, Product::MonthlyAllRoutes, Category::Standard, 0),
            t0 + 4 * DAY,
        )
        .unwrap();
    w.phone.install_credential(&credential).unwrap();
    let mut validator = Validator::open(
        v,
        ring.trusted_keys(t0 + 4 * DAY),
        ValidatorConfig::default(),
    )
    .unwrap();
    let at = u64::from(t0 + 6 * DAY);
    let qr = w.phone.current_qr(at).unwrap();
    assert!(validator.validate(&qr.text, at).unwrap().accepted);
}

#[test]
fn stale_deny_list_is_reported_and_fails_closed_only_when_configured() {
    let list = |issuer: &IssuerKey, version: u32, issued_at: u32| {
        issuer
            .sign_deny_list(&DenyList {
                version,
                issued_at,
                cards: vec![],
                devices: vec![],
            })
            .unwrap()
    };
    // Fail open (the default): a validator without a list, or with an old one, says so and
    // still lets riders in.
    let mut open = world();
    let status = open.validator.deny_list_status(NOW);
    assert!(status.stale && status.version == 0 && !status.needs_refresh);
    let issued = NOW as u32 - 2 * DAY;
    open.validator
        .update_deny_list(&list(&open.issuer, 2, issued))
        .unwrap();
    let status = open.validator.deny_list_status(NOW);
    assert_eq!((status.version, status.age_secs), (2, 2 * u64::from(DAY)));
    assert!(status.stale, "older than the default 24 hours");
    let qr = open.phone.current_qr(NOW).unwrap();
    assert!(open.validator.validate(&qr.text, NOW).unwrap().accepted);

    // Fail closed: refused until a fresh list arrives, then accepted.
    let mut closed = world_with(
        Product::MonthlyAllRoutes,
        Category::Standard,
        0,
        ValidatorConfig {
            route: 32,
            max_deny_list_age_secs: 3600,
            fail_closed_when_stale: true,
            ..Default::default()
        },
    );
    let qr = closed.phone.current_qr(NOW).unwrap();
    let verdict = closed.validator.validate(&qr.text, NOW).unwrap();
    assert_eq!(verdict.reason, Reason::DenyListStale);
    assert!(!verdict.accepted);
    closed
        .validator
        .update_deny_list(&list(&closed.issuer, 2, NOW as u32 - 7200))
        .unwrap();
    let qr = closed.phone.current_qr(NOW + 1).unwrap();
    assert_eq!(
        closed.validator.validate(&qr.text, NOW + 1).unwrap().reason,
        Reason::DenyListStale,
        "two hours old with a one-hour limit"
    );
    closed
        .validator
        .update_deny_list(&list(&closed.issuer, 3, NOW as u32 - 60))
        .unwrap();
    assert!(!closed.validator.deny_list_status(NOW + 2).stale);
    // A clock more than five minutes behind the list's issue time cannot tell an expired
    // ticket: the list counts as stale, and a fail-closed validator refuses.
    let behind = NOW - 60 - CLOCK_BEHIND_SECS - 1;
    assert!(closed.validator.deny_list_status(behind).stale);
    assert!(!closed.validator.deny_list_status(behind + 2).stale);
    let qr = closed.phone.current_qr(behind).unwrap();
    assert_eq!(
        closed.validator.validate(&qr.text, behind).unwrap().reason,
        Reason::DenyListStale
    );
    let qr = closed.phone.current_qr(NOW + 2).unwrap();
    assert!(
        closed
            .validator
            .validate(&qr.text, NOW + 2)
            .unwrap()
            .accepted
    );
    // A quiet day: nothing is revoked, so the version stays 3, and the backend signs it afresh
    // on each feed. The validator takes each as news that its list is still current, and never
    // goes stale; the same list issued no later, or an older version, is still refused.
    let later = NOW + 3 * 3600;
    assert!(closed.validator.deny_list_status(later).stale);
    closed
        .validator
        .update_deny_list(&list(&closed.issuer, 3, later as u32 - 30))
        .unwrap();
    assert!(!closed.validator.deny_list_status(later).stale);
    let qr = closed.phone.current_qr(later).unwrap();
    assert!(closed.validator.validate(&qr.text, later).unwrap().accepted);
    for (version, issued) in [
        (3, later as u32 - 30),
        (3, later as u32 - 600),
        (2, later as u32),
    ] {
        assert!(
            closed
                .validator
                .update_deny_list(&list(&closed.issuer, version, issued))
                .is_err(),
            "version {version} issued {issued}"
        );
    }
    assert_eq!(
        closed.validator.deny_list_status(later).issued_at,
        later as u32 - 30
    );
}

#[test]
fn a_key_rotation_never_bricks_a_validator() {
    let mut w = world();
    let revoked: u64 = 9_704_000_000_123;
    let signed = w
        .issuer
        .sign_deny_list(&DenyList {
            version: 5,
            issued_at: NOW as u32,
            cards: vec![revoked],
            devices: vec![],
        })
        .unwrap();
    w.validator.update_deny_list(&signed).unwrap();
    let qr = w.phone.current_qr(NOW).unwrap();
    assert!(w.validator.validate(&qr.text, NOW).unwrap().reason == Reason::Revoked);
    w.validator.flush().unwrap();
    drop(w.validator);

    // The issuer rotated: the old key is no longer trusted. The validator still starts, keeps
    // its tap log and the revocations it had, and asks for a fresh list.
    let (new_issuer, _) = IssuerKey::generate(8, NOW as u32 - DAY, NOW as u32 + 300 * DAY).unwrap();
    let mut v = Validator::open(
        w.validator_vault.clone(),
        vec![new_issuer.trusted().clone()],
        ValidatorConfig {
            route: 32,
            ..Default::default()
        },
    )
    .unwrap();
    let status = v.deny_list_status(NOW);
    assert!(status.needs_refresh);
    // No trusted key vouches for its date now: stale, so a validator set to fail closed waits
    // for a list it can verify, and one set to fail open goes on enforcing the entries.
    assert!(status.stale);
    assert_eq!(status.version, 5);
    assert_eq!(v.export_taps().unwrap().len(), 1, "the tap log is kept");
    // The list in force was signed by a key no longer trusted: the next list of a trusted key
    // replaces it, whatever its version, and from then on its version is the floor.
    let list = |version: u32, cards: Vec<u64>| {
        new_issuer
            .sign_deny_list(&DenyList {
                version,
                issued_at: NOW as u32,
                cards,
                devices: vec![],
            })
            .unwrap()
    };
    v.update_deny_list(&list(4, vec![revoked])).unwrap();
    let status = v.deny_list_status(NOW);
    assert!(!status.needs_refresh && !status.stale);
    assert!(v.update_deny_list(&list(3, vec![])).is_err(), "no rollback");
    v.update_deny_list(&list(6, vec![revoked])).unwrap();
}

/// A key that signed a list dated past its window (so that it never goes stale) is refused;
/// one that signed a list at the top version, nothing revoked (a compromised key), is undone
/// by trusting that key no more: the backend's next list under the new key is taken.
#[test]
fn a_list_from_a_compromised_key_is_undone_by_trusting_it_no_more() {
    let mut w = world();
    let mut poisoned = DenyList {
        version: 9,
        issued_at: u32::MAX,
        cards: vec![],
        devices: vec![],
    };
    let refused = w
        .validator
        .update_deny_list(&w.issuer.sign_deny_list(&poisoned).unwrap());
    assert!(refused.is_err(), "{refused:?}");
    poisoned.issued_at = NOW as u32;
    poisoned.version = u32::MAX;
    w.validator
        .update_deny_list(&w.issuer.sign_deny_list(&poisoned).unwrap())
        .unwrap();
    let (new_issuer, _) = IssuerKey::generate(8, NOW as u32 - DAY, NOW as u32 + 300 * DAY).unwrap();
    let honest = new_issuer
        .sign_deny_list(&DenyList {
            version: 7,
            issued_at: NOW as u32,
            cards: vec![9_704_000_000_123],
            devices: vec![],
        })
        .unwrap();
    // While the compromised key is trusted (beside the new one), its top version holds.
    w.validator
        .set_trusted_keys(vec![
            w.issuer.trusted().clone(),
            new_issuer.trusted().clone(),
        ])
        .unwrap();
    let held = w.validator.update_deny_list(&honest).unwrap_err();
    assert!(held.to_string().contains("not newer"), "{held}");
    w.validator
        .set_trusted_keys(vec![new_issuer.trusted().clone()])
        .unwrap();
    assert_eq!(w.validator.update_deny_list(&honest).unwrap(), 7);
    assert_eq!(w.validator.deny_list_status(NOW).version, 7);
}

#[test]
fn a_repeat_rider_is_checked_again_in_full_where_it_matters() {
    let mut w = world_without_passback();
    // First ride: both signatures checked; the credential is remembered.
    let first = w.phone.current_qr(NOW).unwrap().text;
    assert!(w.validator.validate(&first, NOW).unwrap().accepted);
    // The same credential in a QR a thief signed with another key: the phone's signature is
    // still checked on every ride.
    let (thief, _) = SoftwareKey::generate().unwrap();
    let forged = qr_signed_by(&w, &thief, NOW as u32 + 5, 999);
    assert_eq!(
        w.validator.validate(&forged, NOW + 5).unwrap().reason,
        Reason::BadDeviceSignature
    );
    // A credential whose body matches but whose issuer signature was altered is not the
    // remembered one: it is checked in full and refused.
    let mut bytes = Payload::from_qr_text(&w.phone.current_qr(NOW + 10).unwrap().text)
        .unwrap()
        .to_bytes();
    bytes[wire::CREDENTIAL_LEN - 1] ^= 1;
    let altered = Payload::decode(&bytes).unwrap().qr_text();
    assert_eq!(
        w.validator.validate(&altered, NOW + 10).unwrap().reason,
        Reason::BadIssuerSignature
    );
    // Revoked: refused though remembered (and the new deny list empties the memory).
    let list = DenyList {
        version: 2,
        issued_at: NOW as u32,
        cards: vec![9_704_000_000_123],
        devices: vec![],
    };
    w.validator
        .update_deny_list(&w.issuer.sign_deny_list(&list).unwrap())
        .unwrap();
    let next = w.phone.current_qr(NOW + 20).unwrap().text;
    assert_eq!(
        w.validator.validate(&next, NOW + 20).unwrap().reason,
        Reason::Revoked
    );
    // The issuer's key no longer trusted: a remembered credential is refused too.
    let mut w = world_without_passback();
    let first = w.phone.current_qr(NOW).unwrap().text;
    assert!(w.validator.validate(&first, NOW).unwrap().accepted);
    let (other, _) = IssuerKey::generate(8, NOW as u32 - DAY, NOW as u32 + DAY).unwrap();
    w.validator
        .set_trusted_keys(vec![other.trusted().clone()])
        .unwrap();
    let again = w.phone.current_qr(NOW + 30).unwrap().text;
    assert_eq!(
        w.validator.validate(&again, NOW + 30).unwrap().reason,
        Reason::UnknownIssuer
    );
}

/// A stored list is the vault's word, and a restored backup's vault is its writer's: a list
/// planted there under a trusted key's id, its signature bogus, its version at the top and
/// nothing revoked, would otherwise hold back every list the backend signs. The validator
/// starts, reports it stale and in need of a refresh, and takes the backend's next list.
#[test]
fn a_planted_stored_list_neither_freshens_nor_holds_back_the_deny_list() {
    let mut w = world();
    let revoked: u64 = 9_704_000_000_123;
    let planted = DenyList {
        version: u32::MAX,
        issued_at: NOW as u32,
        cards: vec![],
        devices: vec![],
    };
    let mut signed = planted.encode(w.issuer.trusted().key_id);
    signed.extend_from_slice(&[7u8; 64]);
    w.validator.flush().unwrap();
    drop(w.validator);
    w.validator_vault
        .put("transit.validator", "deny_list", &[], &signed)
        .unwrap();
    let mut v = Validator::open(
        w.validator_vault.clone(),
        vec![w.issuer.trusted().clone()],
        ValidatorConfig {
            route: 32,
            ..Default::default()
        },
    )
    .unwrap();
    let status = v.deny_list_status(NOW);
    assert!(status.stale && status.needs_refresh);
    let honest = w
        .issuer
        .sign_deny_list(&DenyList {
            version: 2,
            issued_at: NOW as u32 + 60,
            cards: vec![revoked],
            devices: vec![],
        })
        .unwrap();
    assert_eq!(v.update_deny_list(&honest).unwrap(), 2);
    let status = v.deny_list_status(NOW + 60);
    assert!(!status.stale && !status.needs_refresh);
    let qr = w.phone.current_qr(NOW + 70).unwrap();
    assert_eq!(
        v.validate(&qr.text, NOW + 70).unwrap().reason,
        Reason::Revoked
    );
}
