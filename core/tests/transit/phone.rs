//! The phone: QR refresh, counter, clock offset, expiry, a host signer, and the passes of its
//! owner and dependants.

use std::sync::Arc;

use thudo_core::crypto::p256::SoftwareKey;
use thudo_core::transit::phone::{Phone, PhoneOptions, Signer};
use thudo_core::transit::validator::{Validator, ValidatorConfig};
use thudo_core::transit::wire::Payload;
use thudo_core::transit::{Category, Product, TransitError};

use crate::world::{request, vault, world, NOW};

struct HostSigner(SoftwareKey);

impl Signer for HostSigner {
    fn public_key(&self) -> Result<Vec<u8>, String> {
        Ok(self.0.public_key().to_vec())
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        // Keystores return DER.
        let raw = self.0.sign(message).ok_or("sign failed")?;
        Ok(p256::ecdsa::Signature::from_slice(&raw)
            .unwrap()
            .to_der()
            .as_bytes()
            .to_vec())
    }
}

#[test]
fn phone_refresh_counter_offset_expiry_and_host_signer() {
    let w = world();
    let a = w.phone.current_qr(NOW).unwrap();
    let b = w.phone.current_qr(NOW + 2).unwrap();
    assert_eq!(a.text, b.text, "same QR within the refresh period");
    let c = w.phone.current_qr(NOW + 5).unwrap();
    assert_ne!(a.text, c.text);
    let pa = Payload::from_qr_text(&a.text).unwrap();
    let pc = Payload::from_qr_text(&c.text).unwrap();
    assert_eq!(pc.counter, pa.counter + 1);
    // The counter survives a restart.
    let reopened = Phone::open(w.phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    assert_eq!(reopened.device_public_key(), w.phone.device_public_key());
    let d = Payload::from_qr_text(&reopened.current_qr(NOW + 10).unwrap().text).unwrap();
    assert!(d.counter > pc.counter);
    // Clock offset learned at sync corrects the timestamp.
    reopened.set_clock_offset(-7).unwrap();
    let e = Payload::from_qr_text(&reopened.current_qr(NOW + 20).unwrap().text).unwrap();
    assert_eq!(u64::from(e.timestamp), NOW + 13);
    // The device's clock set (a wrong clock put right): the old offset is dropped, for good.
    reopened.set_clock_offset(3_600).unwrap();
    reopened.device_clock_changed().unwrap();
    let f = Payload::from_qr_text(&reopened.current_qr(NOW + 25).unwrap().text).unwrap();
    assert_eq!(u64::from(f.timestamp), NOW + 25);
    let again = Phone::open(w.phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    assert_eq!(again.corrected_now(NOW + 30), NOW + 30);
    drop(again);
    reopened.set_clock_offset(-7).unwrap();
    // Expiry warning within 6 h of not-after.
    let late = reopened.current_qr(NOW + 70 * 3600).unwrap();
    assert!(late.expiry_warning);
    assert!(!c.expiry_warning);

    // Errors: no credential, credential of another device, garbage.
    let (_d, v) = vault();
    let fresh = Phone::open(v, None, PhoneOptions::default()).unwrap();
    assert!(matches!(
        fresh.current_qr(NOW),
        Err(TransitError::NoCredential)
    ));
    let foreign = w
        .issuer
        .issue(
            &request(&w.phone, Product::MonthlyAllRoutes, Category::Standard, 0),
            NOW as u32,
        )
        .unwrap();
    assert!(matches!(
        fresh.install_credential(&foreign),
        Err(TransitError::InvalidCredential { .. })
    ));
    assert!(matches!(
        fresh.install_credential(&[1, 2, 3]),
        Err(TransitError::InvalidCredential { .. })
    ));
    assert!(Phone::open(
        w.phone_vault.clone(),
        None,
        PhoneOptions {
            refresh_secs: 0,
            ..Default::default()
        }
    )
    .is_err());

    // A host signer (DER signatures) works end to end.
    let (_d, v) = vault();
    let (key, _) = SoftwareKey::generate().unwrap();
    let phone = Phone::open(v, Some(Arc::new(HostSigner(key))), PhoneOptions::default()).unwrap();
    phone
        .install_credential(
            &w.issuer
                .issue(
                    &request(&phone, Product::PayAsYouGo, Category::Standard, 0),
                    NOW as u32,
                )
                .unwrap(),
        )
        .unwrap();
    let mut validator = Validator::open(
        vault().1,
        vec![w.issuer.trusted().clone()],
        ValidatorConfig::default(),
    )
    .unwrap();
    assert!(
        validator
            .validate(&phone.current_qr(NOW).unwrap().text, NOW)
            .unwrap()
            .accepted
    );
}

#[test]
fn a_phone_holds_its_owners_pass_and_dependants_and_shows_each() {
    let mut w = world();
    let owner = 9_704_000_000_123;
    let child = 9_704_000_000_456;
    let mut child_request = request(&w.phone, Product::FreePass, Category::Child, 0);
    child_request.card_id = child;
    let credential = w.issuer.issue(&child_request, NOW as u32).unwrap();
    w.phone.install_dependant_credential(&credential).unwrap();
    // Installing again replaces the card's credential, never adds a second one; the card
    // cannot also be the owner's.
    w.phone.install_dependant_credential(&credential).unwrap();
    assert!(w.phone.install_credential(&credential).is_err());
    let cards = |p: &Phone| {
        p.credentials()
            .iter()
            .map(|c| c.card_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(cards(&w.phone), [owner, child]);
    assert_eq!(w.phone.credential().unwrap().card_id, owner);
    // Each card's QR is its own, and a card the phone does not hold has none.
    let owners = w.phone.current_qr(NOW).unwrap().text;
    let childs = w.phone.current_qr_for(child, NOW).unwrap().text;
    assert_eq!(
        Payload::from_qr_text(&childs).unwrap().fields.card_id,
        child
    );
    assert!(matches!(
        w.phone.current_qr_for(42, NOW),
        Err(TransitError::NoCredential)
    ));
    // One validator, one phone, two riders a second apart: no passback between cards.
    assert!(w.validator.validate(&owners, NOW).unwrap().accepted);
    let v = w.validator.validate(&childs, NOW + 1).unwrap();
    assert!(v.accepted, "{v:?}");
    assert_eq!(v.category, Some(Category::Child));
    // After a restart the phone holds the same passes in the same order.
    let reopened = Phone::open(w.phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    assert_eq!(cards(&reopened), [owner, child]);
    assert!(reopened.remove_credential(owner).is_err());
    assert!(reopened.remove_credential(child).unwrap());
    assert!(!reopened.remove_credential(child).unwrap());
    let reopened = Phone::open(w.phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    assert_eq!(cards(&reopened), [owner]);

    // A guardian whose phone holds only the child's pass: it is never taken for the owner's.
    let (_d, fresh_vault) = vault();
    let guardian = Phone::open(fresh_vault.clone(), None, PhoneOptions::default()).unwrap();
    let mut for_guardian = child_request.clone();
    for_guardian.device_public_key = guardian.device_public_key().to_vec();
    guardian
        .install_dependant_credential(&w.issuer.issue(&for_guardian, NOW as u32).unwrap())
        .unwrap();
    assert!(guardian.credential().is_none());
    assert!(matches!(
        guardian.current_qr(NOW),
        Err(TransitError::NoCredential)
    ));
    assert!(guardian
        .current_qr_for(child, NOW)
        .unwrap()
        .text
        .starts_with("HNT1:"));
    let reopened = Phone::open(fresh_vault, None, PhoneOptions::default()).unwrap();
    assert_eq!(cards(&reopened), [child]);
    assert!(reopened.credential().is_none());
}

#[test]
fn a_lost_device_key_is_reported_with_its_cards_never_silently_replaced() {
    let w = world();
    let card = w.phone.credential().unwrap().card_id;
    // The software key's record is gone (a restore of part of the vault, a bug elsewhere).
    let v = w.phone_vault.clone();
    assert!(v.delete("transit.phone", "device_key").unwrap());
    for _ in 0..2 {
        match Phone::open(v.clone(), None, PhoneOptions::default()) {
            Err(TransitError::KeyLost { cards }) => assert_eq!(cards, [card]),
            other => panic!("{:?}", other.map(|_| ())),
        }
    }
    assert!(
        v.find("transit.phone", "device_key").unwrap().is_none(),
        "no key made behind the user's back"
    );
    // The app discards what can no longer be shown, then the phone opens with a new key.
    assert_eq!(
        thudo_core::transit::phone::discard_lost_credentials(&v, None).unwrap(),
        [card]
    );
    let fresh = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
    assert!(matches!(
        fresh.current_qr(NOW),
        Err(TransitError::NoCredential)
    ));
    assert_ne!(fresh.device_public_key(), w.phone.device_public_key());

    // A host keystore reset: its new key does not bind the held credential.
    let (_d, hv) = vault();
    let old = Arc::new(HostSigner(SoftwareKey::generate().unwrap().0));
    let phone = Phone::open(hv.clone(), Some(old), PhoneOptions::default()).unwrap();
    let held = phone
        .install_credential(
            &w.issuer
                .issue(
                    &request(&phone, Product::PayAsYouGo, Category::Standard, 0),
                    NOW as u32,
                )
                .unwrap(),
        )
        .unwrap()
        .card_id;
    drop(phone);
    let new = HostSigner(SoftwareKey::generate().unwrap().0);
    let new = Arc::new(new);
    match Phone::open(hv.clone(), Some(new.clone()), PhoneOptions::default()) {
        Err(TransitError::KeyLost { cards }) => assert_eq!(cards, [held]),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(
        thudo_core::transit::phone::discard_lost_credentials(&hv, Some(new.as_ref())).unwrap(),
        [held]
    );
    assert!(Phone::open(hv, Some(new), PhoneOptions::default()).is_ok());
}

/// Two opens of one fresh vault at once (the app's start and a widget, say) end with one
/// device key: the one stored, whichever opened first.
#[test]
fn two_opens_of_a_fresh_vault_keep_one_device_key() {
    for _ in 0..16 {
        let (_d, v) = vault();
        let start = Arc::new(std::sync::Barrier::new(2));
        let opens: Vec<_> = (0..2)
            .map(|_| {
                let (v, start) = (v.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    Phone::open(v, None, PhoneOptions::default())
                        .unwrap()
                        .device_public_key()
                })
            })
            .collect();
        let keys: Vec<_> = opens.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(keys[0], keys[1], "each open kept a key of its own");
        let stored = v.get("transit.phone", "device_key").unwrap().body;
        assert_eq!(
            SoftwareKey::from_pkcs8(&stored)
                .unwrap()
                .compressed_public_key()
                .to_vec(),
            keys[0].to_vec()
        );
    }
}

/// A backup is no kit to clone a phone's tickets: the device key the vault keeps (no platform
/// signer) is never written to it, so a restore on another phone reports the pass lost for its
/// key, never shows it. A state restored from an old backup on the same phone never counts
/// its QRs again.
#[test]
fn a_backup_carries_no_device_key_and_restores_no_old_counter() {
    let w = world();
    let card = w.phone.credential().unwrap().card_id;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("phone.backup");
    let before = Payload::from_qr_text(&w.phone.current_qr(NOW).unwrap().text).unwrap();
    w.phone_vault.export_backup(&file, "mật khẩu").unwrap();

    let (_d, other) = vault();
    other.import_backup(&file, "mật khẩu").unwrap();
    assert!(other.find("transit.phone", "device_key").unwrap().is_none());
    assert!(other.find("transit.phone", "credential").unwrap().is_some());
    match Phone::open(other.clone(), None, PhoneOptions::default()) {
        Err(TransitError::KeyLost { cards }) => assert_eq!(cards, [card]),
        other => panic!("{:?}", other.map(|_| ())),
    }
    // The same phone: QRs shown after the backup, then the old state restored over it.
    let mut last = before.counter;
    for i in 1..=3 {
        let qr = w.phone.current_qr(NOW + 10 * i).unwrap();
        last = Payload::from_qr_text(&qr.text).unwrap().counter;
    }
    w.phone_vault.import_backup(&file, "mật khẩu").unwrap();
    let reopened = Phone::open(w.phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    assert_eq!(reopened.device_public_key(), w.phone.device_public_key());
    let next = Payload::from_qr_text(&reopened.current_qr(NOW + 60).unwrap().text).unwrap();
    assert!(
        next.counter > last,
        "{} after {last}: a counter shown again",
        next.counter
    );
}

/// An answer that arrives late (a renewal overtaken by a newer one, a paid order collected
/// again) never replaces the newer credential of the same pass, the owner's or a dependant's;
/// another pass, or a newer credential of the same one, does.
#[test]
fn a_late_credential_of_the_same_pass_is_not_installed_over_a_newer_one() {
    let w = world();
    let pass = request(&w.phone, Product::MonthlyAllRoutes, Category::Standard, 0);
    let issue = |req: &thudo_core::transit::issuer::CredentialRequest, at: u64| {
        w.issuer.issue(req, at as u32).unwrap()
    };
    let newer = w
        .phone
        .install_credential(&issue(&pass, NOW + 600))
        .unwrap();
    let late = issue(&pass, NOW);
    assert_eq!(w.phone.install_credential(&late).unwrap(), newer);
    assert_eq!(w.phone.credential().unwrap(), newer);
    let newest = w
        .phone
        .install_credential(&issue(&pass, NOW + 1200))
        .unwrap();
    assert!(newest.not_after > newer.not_after);
    assert_eq!(w.phone.credential().unwrap(), newest);
    // Another pass on the same card (a day pass) replaces it, even ending sooner.
    let day = thudo_core::transit::issuer::CredentialRequest {
        product: Product::DayPass,
        pass_valid_from: NOW as u32,
        pass_valid_until: NOW as u32 + 86_399,
        ..pass.clone()
    };
    let day = w.phone.install_credential(&issue(&day, NOW)).unwrap();
    assert_eq!(w.phone.credential().unwrap(), day);

    // A dependant's pass the same way.
    let child = thudo_core::transit::issuer::CredentialRequest {
        card_id: 9_704_000_000_456,
        ..pass
    };
    let newer = w
        .phone
        .install_dependant_credential(&issue(&child, NOW + 600))
        .unwrap();
    assert_eq!(
        w.phone
            .install_dependant_credential(&issue(&child, NOW))
            .unwrap(),
        newer
    );
    let (_, held, _) = w.phone.held_credential(child.card_id).unwrap();
    assert_eq!(held, newer);
}

/// A platform key replaced while the app runs (a keystore reset) would sign QRs every
/// validator refuses as `bad_device_signature`: the phone checks each signature against the
/// key it opened with and says so at once.
#[test]
fn a_signer_whose_key_changed_is_reported_not_shown() {
    struct Swapped(std::sync::Mutex<SoftwareKey>);
    impl Signer for Swapped {
        fn public_key(&self) -> Result<Vec<u8>, String> {
            Ok(self.0.lock().unwrap().public_key().to_vec())
        }
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .sign(message)
                .ok_or("sign failed")?
                .to_vec())
        }
    }
    let w = world();
    let (_d, v) = vault();
    let signer = Arc::new(Swapped(std::sync::Mutex::new(
        SoftwareKey::generate().unwrap().0,
    )));
    let phone = Phone::open(v, Some(signer.clone()), PhoneOptions::default()).unwrap();
    phone
        .install_credential(
            &w.issuer
                .issue(
                    &request(&phone, Product::PayAsYouGo, Category::Standard, 0),
                    NOW as u32,
                )
                .unwrap(),
        )
        .unwrap();
    assert!(phone.current_qr(NOW).is_ok());
    *signer.0.lock().unwrap() = SoftwareKey::generate().unwrap().0;
    assert!(matches!(
        phone.current_qr(NOW + 10),
        Err(TransitError::Signer { .. })
    ));
}

/// The real clock: a pass bought ahead is weighed against it.
fn real_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A monthly pass on `card` from `from` to `until`, for `w`'s phone.
fn month_pass(
    w: &crate::world::World,
    card: u64,
    from: u32,
    until: u32,
) -> thudo_core::transit::issuer::CredentialRequest {
    thudo_core::transit::issuer::CredentialRequest {
        card_id: card,
        pass_valid_from: from,
        pass_valid_until: until,
        ..request(&w.phone, Product::MonthlyAllRoutes, Category::Standard, 0)
    }
}

/// The record a waiting pass is kept under (as a restored backup would hold it).
fn waiting_record(f: &thudo_core::transit::wire::CredentialFields) -> String {
    format!(
        "credential:upcoming:{}:{}:{}:{}:{}:{}",
        f.card_id,
        f.pass_valid_from,
        f.pass_valid_until,
        f.product as u8,
        f.category as u8,
        f.route
    )
}

/// Next month's pass bought while this month's is in force waits beside it: the rider rides
/// on this month's, the bought one survives a restart, a late answer for it changes nothing,
/// and it is put in place once it starts (or this month's ends). A dependant's likewise, and
/// removing the dependant removes it.
#[test]
fn a_pass_bought_ahead_waits_until_it_starts() {
    use thudo_core::transit::issuer::CredentialRequest;
    let w = world();
    let now = real_now();
    let at = |days: i64| (now as i64 + days * 86_400) as u32;
    let pass = |card, from, until| month_pass(&w, card, from, until);
    let issue = |req: &CredentialRequest, at: u64| w.issuer.issue(req, at as u32).unwrap();
    let owner = w.phone.credential().unwrap().card_id;
    let this_month = pass(owner, at(-10), at(20));
    let next_month = pass(owner, at(20) + 1, at(50));
    let current = w
        .phone
        .install_credential(&issue(&this_month, now))
        .unwrap();
    let bought = w
        .phone
        .install_credential(&issue(&next_month, now - 60))
        .unwrap();
    assert_eq!(bought.pass_valid_from, at(20) + 1);
    assert_eq!(
        w.phone.credential().unwrap(),
        current,
        "still riding on this month's"
    );
    assert_eq!(
        w.phone.upcoming_credentials(),
        std::slice::from_ref(&bought)
    );
    let qr = Payload::from_qr_text(&w.phone.current_qr(now).unwrap().text).unwrap();
    assert_eq!(qr.fields, current);
    // A late answer for the bought pass (an older credential of it) changes nothing; a newer
    // one replaces it, still waiting.
    assert_eq!(
        w.phone
            .install_credential(&issue(&next_month, now - 120))
            .unwrap(),
        bought
    );
    let renewed = w
        .phone
        .install_credential(&issue(&next_month, now))
        .unwrap();
    assert_eq!(
        w.phone.upcoming_credentials(),
        std::slice::from_ref(&renewed)
    );

    // It survives a restart, and starts when its month does.
    let reopened = Phone::open(w.phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    assert_eq!(
        reopened.upcoming_credentials(),
        std::slice::from_ref(&renewed)
    );
    reopened.start_due_passes(u64::from(at(19))).unwrap();
    assert_eq!(reopened.credential().unwrap(), current, "not yet");
    reopened.start_due_passes(u64::from(at(20)) + 5).unwrap();
    assert_eq!(reopened.credential().unwrap(), renewed);
    assert!(reopened.upcoming_credentials().is_empty());
    let reopened = Phone::open(w.phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    assert_eq!(
        reopened.credential().unwrap(),
        renewed,
        "put in place for good"
    );

    // A dependant's pass bought ahead waits too; removing the dependant removes it.
    let child = 9_704_000_000_456;
    reopened
        .install_dependant_credential(&issue(&pass(child, at(-10), at(20)), now))
        .unwrap();
    let ahead = reopened
        .install_dependant_credential(&issue(&pass(child, at(20) + 1, at(50)), now))
        .unwrap();
    assert_eq!(reopened.upcoming_credentials(), [ahead]);
    assert!(reopened.remove_credential(child).unwrap());
    assert!(reopened.upcoming_credentials().is_empty());
    let reopened = Phone::open(w.phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    assert!(reopened.upcoming_credentials().is_empty());
}

/// Two months bought ahead both wait and start in turn; a renewal shortened by the backend
/// (an entitlement ending) replaces the credential it renewed, and only that one.
#[test]
fn passes_bought_ahead_start_in_turn_and_late_renewals_change_nothing() {
    use thudo_core::transit::issuer::CredentialRequest;
    let w = world();
    let now = real_now();
    let at = |days: i64| (now as i64 + days * 86_400) as u32;
    let owner = w.phone.credential().unwrap().card_id;
    let pass = |from, until| month_pass(&w, owner, from, until);
    let issue = |req: &CredentialRequest, at: u64| w.issuer.issue(req, at as u32).unwrap();
    let june = pass(at(-20), at(1));
    let (july, august) = (pass(at(1) + 1, at(31)), pass(at(31) + 1, at(61)));
    let riding = w.phone.install_credential(&issue(&june, now)).unwrap();
    let july_fields = w.phone.install_credential(&issue(&july, now)).unwrap();
    let august_fields = w.phone.install_credential(&issue(&august, now)).unwrap();
    let mut waiting = w.phone.upcoming_credentials();
    waiting.sort_by_key(|f| f.pass_valid_from);
    assert_eq!(waiting, [july_fields.clone(), august_fields.clone()]);
    assert_eq!(w.phone.credential().unwrap(), riding);

    // July starts; August still waits.
    w.phone.start_due_passes(u64::from(at(1)) + 10).unwrap();
    assert_eq!(w.phone.credential().unwrap(), july_fields);
    assert_eq!(w.phone.upcoming_credentials(), [august_fields]);

    // A renewal the backend shortened replaces exactly the credential it renewed.
    let (_e, v) = vault();
    let phone = Phone::open(v, None, PhoneOptions::default()).unwrap();
    let long = CredentialRequest {
        device_public_key: phone.device_public_key().to_vec(),
        ..june.clone()
    };
    let held = issue(&long, now);
    phone.install_credential(&held).unwrap();
    let short = w
        .issuer
        .issue(
            &CredentialRequest {
                lifetime_secs: 3_600,
                ..long.clone()
            },
            now as u32 + 60,
        )
        .unwrap();
    let installed = phone.install_renewed(&short, &held, true).unwrap();
    assert_eq!(phone.credential().unwrap(), installed);
    assert_eq!(u64::from(installed.not_after), now + 60 + 3_600);
    // The same shortened answer for a credential no longer held is a late one.
    let newest = phone.install_credential(&issue(&long, now + 120)).unwrap();
    assert_eq!(phone.install_renewed(&short, &held, true).unwrap(), newest);
    assert_eq!(phone.credential().unwrap(), newest);
}

/// A renewal of last month's pass answered after this month's took its place is a late
/// answer: this month's stays.
#[test]
fn a_late_renewal_of_an_ended_pass_does_not_replace_the_one_riding() {
    let w = world();
    let now = real_now();
    let at = |days: i64| (now as i64 + days * 86_400) as u32;
    let owner = w.phone.credential().unwrap().card_id;
    let pass = |from, until| month_pass(&w, owner, from, until);
    let (last_month, this_month) = (pass(at(-40), at(-10)), pass(at(-10) + 1, at(20)));
    let riding = w
        .phone
        .install_credential(&w.issuer.issue(&this_month, now as u32).unwrap())
        .unwrap();
    let late = w.issuer.issue(&last_month, now as u32 - 3_600).unwrap();
    assert_eq!(w.phone.install_credential(&late).unwrap(), riding);
    assert_eq!(w.phone.credential().unwrap(), riding);
}

/// A waiting pass the held credential already covers (an old record of it, restored from a
/// backup) is dropped, never put in place of the newer credential.
#[test]
fn a_waiting_pass_the_held_one_covers_is_dropped() {
    let w = world();
    let held = w.phone.credential().unwrap();
    let older = w
        .issuer
        .issue(
            &request(&w.phone, Product::MonthlyAllRoutes, Category::Standard, 0),
            NOW as u32 - 600,
        )
        .unwrap();
    let record = waiting_record(&held);
    w.phone_vault
        .put("transit.phone", &record, &[], &older)
        .unwrap();
    let phone = Phone::open(w.phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    assert_eq!(phone.upcoming_credentials().len(), 1);
    phone.start_due_passes(NOW).unwrap();
    assert_eq!(phone.credential().unwrap(), held);
    assert!(phone.upcoming_credentials().is_empty());
    assert!(w
        .phone_vault
        .find("transit.phone", &record)
        .unwrap()
        .is_none());
    let reopened = Phone::open(w.phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    assert!(reopened.upcoming_credentials().is_empty());
}

/// A pass that started while the phone was not asked for a QR takes its place before a new
/// one is weighed: July, waiting since June, then August bought after June ended: July rides,
/// August waits (August was installed over the ended June and then lost to July).
#[test]
fn a_started_pass_takes_its_place_before_the_next_is_installed() {
    use thudo_core::transit::issuer::CredentialRequest;
    let w = world();
    let now = real_now();
    let at = |days: i64| (now as i64 + days * 86_400) as u32;
    let owner = w.phone.credential().unwrap().card_id;
    let pass = |from, until| month_pass(&w, owner, from, until);
    let issue = |req: &CredentialRequest| w.issuer.issue(req, now as u32).unwrap();
    w.phone
        .install_credential(&issue(&pass(at(-31), at(-1))))
        .unwrap();
    // July, bought in June and waiting (as the phone stored it then).
    let july = pass(at(-1) + 1, at(29));
    let july_bytes = issue(&july);
    let f = thudo_core::transit::wire::CredentialFields::decode(&july_bytes).unwrap();
    let record = waiting_record(&f);
    w.phone_vault
        .put("transit.phone", &record, &[], &july_bytes)
        .unwrap();
    let phone = Phone::open(w.phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    let august = phone
        .install_credential(&issue(&pass(at(29) + 1, at(59))))
        .unwrap();
    assert_eq!(phone.credential().unwrap(), f, "July rides");
    assert_eq!(phone.upcoming_credentials(), [august]);
}
