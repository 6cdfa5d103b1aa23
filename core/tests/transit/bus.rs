//! A bus validator's rules (passback, route, the pass's windows) and its tap log: durable,
//! restoring the replay memory, bounded against junk.

use thudo_core::transit::validator::{Reason, Validator, ValidatorConfig};
use thudo_core::transit::{Category, Product, TransitError};

use crate::world::{
    dependant_ticket, request, vault, world, world_with, world_without_passback, DAY, NOW,
};

#[test]
fn passback_route_and_validity_rules() {
    let mut w = world();
    let first = w.phone.current_qr(NOW).unwrap();
    assert!(w.validator.validate(&first.text, NOW).unwrap().accepted);
    let second = w.phone.current_qr(NOW + 30).unwrap();
    assert_ne!(first.text, second.text);
    assert_eq!(
        w.validator.validate(&second.text, NOW + 30).unwrap().reason,
        Reason::Passback
    );
    let later = w.phone.current_qr(NOW + 130).unwrap();
    assert!(
        w.validator
            .validate(&later.text, NOW + 130)
            .unwrap()
            .accepted
    );

    // Single-route pass on route 32, validator on route 32 then on route 18.
    let mut w = world_with(
        Product::MonthlySingleRoute,
        Category::Priority,
        32,
        ValidatorConfig {
            route: 32,
            ..Default::default()
        },
    );
    assert!(
        w.validator
            .validate(&w.phone.current_qr(NOW).unwrap().text, NOW)
            .unwrap()
            .accepted
    );
    let mut w = world_with(
        Product::MonthlySingleRoute,
        Category::Priority,
        32,
        ValidatorConfig {
            route: 18,
            ..Default::default()
        },
    );
    assert_eq!(
        w.validator
            .validate(&w.phone.current_qr(NOW).unwrap().text, NOW)
            .unwrap()
            .reason,
        Reason::WrongRoute
    );

    // Free riders ride everywhere.
    let mut w = world_with(
        Product::FreePass,
        Category::Elderly,
        0,
        ValidatorConfig {
            route: 5,
            ..Default::default()
        },
    );
    let v = w
        .validator
        .validate(&w.phone.current_qr(NOW).unwrap().text, NOW)
        .unwrap();
    assert!(v.accepted);
    assert!(v.display.contains("Người cao tuổi"));

    // Pass not yet valid / ended; credential expired.
    let mut w = world();
    let mut req = request(&w.phone, Product::MonthlyAllRoutes, Category::Standard, 0);
    req.pass_valid_from = NOW as u32 + 100;
    w.phone
        .install_credential(&w.issuer.issue(&req, NOW as u32).unwrap())
        .unwrap();
    assert_eq!(
        w.validator
            .validate(&w.phone.current_qr(NOW).unwrap().text, NOW)
            .unwrap()
            .reason,
        Reason::NotYetValid
    );
    req.pass_valid_from = NOW as u32 - 100;
    req.pass_valid_until = NOW as u32 - 1;
    w.phone
        .install_credential(&w.issuer.issue(&req, NOW as u32).unwrap())
        .unwrap();
    assert_eq!(
        w.validator
            .validate(&w.phone.current_qr(NOW + 5).unwrap().text, NOW + 5)
            .unwrap()
            .reason,
        Reason::PassExpired
    );
    req.pass_valid_until = NOW as u32 + DAY;
    req.lifetime_secs = 60;
    w.phone
        .install_credential(&w.issuer.issue(&req, NOW as u32).unwrap())
        .unwrap();
    let qr = w.phone.current_qr(NOW + 50).unwrap();
    assert_eq!(
        w.validator.validate(&qr.text, NOW + 61).unwrap().reason,
        Reason::CredentialExpired
    );
    assert!(matches!(
        w.phone.current_qr(NOW + 61),
        Err(TransitError::CredentialExpired { .. })
    ));
}

#[test]
fn tap_log_is_durable_and_restores_replay_memory() {
    let mut w = world();
    let qr = w.phone.current_qr(NOW).unwrap();
    // `validate` returns once the tap is committed: no flush needed before a crash.
    assert!(w.validator.validate(&qr.text, NOW).unwrap().accepted);
    w.validator.validate("garbage", NOW).unwrap();
    let reopen = || {
        Validator::open(
            w.validator_vault.clone(),
            vec![w.issuer.trusted().clone()],
            ValidatorConfig::default(),
        )
        .unwrap()
    };
    // A reboot: replay and passback memory come back from the tap log.
    let mut again = reopen();
    assert_eq!(
        again.validate(&qr.text, NOW + 5).unwrap().reason,
        Reason::Replayed
    );
    let taps = again.export_taps().unwrap();
    assert_eq!(taps.iter().map(|t| t.seq).collect::<Vec<_>>(), [1, 2]);
    assert!(taps[0].accepted);
    assert_eq!(taps[1].reason, Reason::Replayed);
    // The unreadable scan is counted, not logged.
    assert_eq!(again.tap_log_status().unreadable_scans, 1);
    assert_eq!(again.acknowledge_taps(1).unwrap(), 1);
    assert_eq!(again.export_taps().unwrap().len(), 1);
    // Everything acknowledged, then a reboot: numbering goes on (the backend would drop a
    // reused number as a duplicate), and the QR seconds ago is still a replay.
    assert_eq!(again.acknowledge_taps(2).unwrap(), 1);
    assert!(again.export_taps().unwrap().is_empty());
    drop(again);
    let mut third = reopen();
    assert_eq!(third.tap_log_status().next_seq, 3);
    assert_eq!(
        third.validate(&qr.text, NOW + 10).unwrap().reason,
        Reason::Replayed
    );
    assert_eq!(third.export_taps().unwrap()[0].seq, 3);
    // Long after the window (and the 3 hours kept for inspectors pairing with this
    // vehicle), acknowledged taps leave the disk.
    let later = w.phone.current_qr(NOW + 4 * 3600).unwrap();
    assert!(
        third
            .validate(&later.text, NOW + 4 * 3600)
            .unwrap()
            .accepted
    );
    third.acknowledge_taps(4).unwrap();
    assert_eq!(w.validator_vault.count("transit.tap").unwrap(), 1);
    // Card ids in the tap log are encrypted at rest.
    let db = std::fs::read(thudo_core::vault::database_path(w._dirs[1].path())).unwrap();
    assert!(!db.windows(13).any(|win| win == b"9704000000123"));
}

/// A verdict whose commit fails is not shown and its tap is forgotten, but a refused replay
/// forgotten so leaves the QR it replayed used (else the next showing of it would pass); an
/// accepted tap forgotten so frees its QR, since no rider went through.
#[test]
fn a_tap_whose_commit_fails_is_forgotten_and_a_replay_stays_refused() {
    use std::sync::Arc;
    use thudo_core::vault::{Unlock, Vault, VaultOptions};
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let options = VaultOptions {
        busy_timeout: std::time::Duration::from_millis(50),
        ..crate::common::fast()
    };
    let vault = Vault::open(
        dir.path(),
        Unlock::Provider(crate::common::TestProvider::new("k")),
        &options,
    )
    .unwrap();
    let config = ValidatorConfig {
        route: 32,
        ..Default::default()
    };
    let mut gate =
        Validator::open(Arc::new(vault), vec![w.issuer.trusted().clone()], config).unwrap();
    // Another writer holding the database makes the validator's commit fail.
    let other = rusqlite::Connection::open(thudo_core::vault::database_path(dir.path())).unwrap();
    let blocked = |gate: &mut Validator, text: &str, at: u64| {
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let shown = gate.validate(text, at);
        other.execute_batch("ROLLBACK").unwrap();
        shown
    };
    let qr = w.phone.current_qr(NOW).unwrap();
    assert!(gate.validate(&qr.text, NOW).unwrap().accepted);
    assert!(matches!(
        blocked(&mut gate, &qr.text, NOW + 2),
        Err(TransitError::Vault(_))
    ));
    assert_eq!(
        gate.validate(&qr.text, NOW + 3).unwrap().reason,
        Reason::Replayed
    );
    let later = w.phone.current_qr(NOW + 3600).unwrap();
    assert!(blocked(&mut gate, &later.text, NOW + 3600).is_err());
    assert!(gate.validate(&later.text, NOW + 3601).unwrap().accepted);
    // Only what was shown is in the log.
    let taps = gate.export_taps().unwrap();
    assert_eq!(taps.len(), 3, "{taps:?}");
    assert_eq!(
        taps.iter().map(|t| t.accepted).collect::<Vec<_>>(),
        [true, false, true]
    );
}

/// Taps the backend names as reused (a validator restored from a backup numbered them again)
/// move past the numbers it holds in one commit, keep their content, and later taps follow
/// them, also after a reboot.
#[test]
fn reused_tap_numbers_move_past_the_backends_and_stay_moved() {
    let mut w = world();
    for minute in 0..3 {
        let at = NOW + minute * 60;
        let qr = w.phone.current_qr(at).unwrap();
        w.validator.validate(&qr.text, at).unwrap();
    }
    let before = w.validator.export_taps().unwrap();
    // Taps 1 and 2 were uploaded (tap 3 was logged meanwhile), and the backend holds another
    // tap 2: tap 2 moves, and tap 3 after it, keeping the order they were made in.
    assert_eq!(w.validator.renumber_taps(&[2, 99], 2, 10).unwrap(), 2);
    let after = w.validator.export_taps().unwrap();
    assert_eq!(after.iter().map(|t| t.seq).collect::<Vec<_>>(), [1, 10, 11]);
    assert_eq!((after[1].at, &after[1].qr), (before[1].at, &before[1].qr));
    assert_eq!((after[2].at, &after[2].qr), (before[2].at, &before[2].qr));
    // The same receipt applied again moves nothing; no room left above `from` is refused.
    assert_eq!(w.validator.renumber_taps(&[2], 2, 10).unwrap(), 0);
    assert!(w.validator.renumber_taps(&[1], 1, u64::MAX - 5).is_err());
    // Acknowledging the upload's numbers leaves the moved taps.
    w.validator.acknowledge_taps(2).unwrap();
    let left = w.validator.export_taps().unwrap();
    assert_eq!(left.iter().map(|t| t.seq).collect::<Vec<_>>(), [10, 11]);
    drop(w.validator);
    let mut again = Validator::open(
        w.validator_vault.clone(),
        vec![w.issuer.trusted().clone()],
        ValidatorConfig::default(),
    )
    .unwrap();
    assert_eq!(again.tap_log_status().next_seq, 12);
    let qr = w.phone.current_qr(NOW + 600).unwrap();
    again.validate(&qr.text, NOW + 600).unwrap();
    let seqs: Vec<u64> = again.export_taps().unwrap().iter().map(|t| t.seq).collect();
    assert_eq!(seqs, [10, 11, 12]);
}

#[test]
fn junk_scans_are_counted_and_rejected_taps_are_bounded() {
    let mut w = world();
    for i in 0..3_000 {
        w.validator
            .validate_deferred(&format!("HNT1:junk{i}"), NOW)
            .unwrap();
    }
    w.validator.flush().unwrap();
    assert_eq!(w.validator_vault.count("transit.tap").unwrap(), 0);
    assert_eq!(w.validator.tap_log_status().unreadable_scans, 3_000);
    // Readable but refused scans are evidence, logged up to a bound between uploads.
    let qr = w.phone.current_qr(NOW).unwrap();
    let stale = NOW + 3_600; // every scan below is an expired QR
    let limit = thudo_core::transit::validator::MAX_LOGGED_REJECTED;
    for _ in 0..limit + 25 {
        w.validator.validate_deferred(&qr.text, stale).unwrap();
    }
    w.validator.flush().unwrap();
    assert_eq!(w.validator_vault.count("transit.tap").unwrap(), limit);
    let status = w.validator.tap_log_status();
    assert_eq!(status.rejected_not_logged, 25);
    // Export reads the log a page at a time, an upload's worth.
    assert_eq!(
        w.validator.export_taps().unwrap().len(),
        thudo_core::transit::validator::TAP_EXPORT_LIMIT
    );
    // After an upload, rejected taps are logged again; an accepted tap always is.
    w.validator.acknowledge_taps(status.next_seq - 1).unwrap();
    let fresh = w.phone.current_qr(stale).unwrap();
    assert!(w.validator.validate(&fresh.text, stale).unwrap().accepted);
    assert_eq!(w.validator.export_taps().unwrap().len(), 1);
}

#[test]
fn a_dependants_ticket_rides_only_after_its_holders_own() {
    use thudo_core::transit::presentation::Signal;
    let mut w = world_without_passback();
    let child = dependant_ticket(&w);
    // Shown first, it is refused, and its QR is not used up.
    let first = w.phone.current_qr_for(child, NOW).unwrap();
    let alone = w.validator.validate(&first.text, NOW).unwrap();
    assert_eq!(alone.reason, Reason::HolderNotTapped);
    assert_eq!(alone.presentation.message_key, "transit.holder_first");
    // The holder taps their own ticket; the same dependant's QR then rides, in amber, with
    // its category on the verdict.
    let own = w.phone.current_qr(NOW + 2).unwrap();
    assert!(w.validator.validate(&own.text, NOW + 2).unwrap().accepted);
    let together = w.validator.validate(&first.text, NOW + 5).unwrap();
    assert!(together.accepted, "{together:?}");
    assert_eq!(together.category, Some(Category::Elderly));
    assert_eq!(together.presentation.signal, Signal::Warn);
    assert_eq!(together.presentation.message_key, "transit.with_holder");
    // Another dependant's QR more than two minutes after the holder's tap: refused again.
    let late = w.phone.current_qr_for(child, NOW + 200).unwrap();
    assert_eq!(
        w.validator.validate(&late.text, NOW + 200).unwrap().reason,
        Reason::HolderNotTapped
    );
    // Another phone's ticket does not count as the holder's.
    let (_dir, stranger_vault) = vault();
    let stranger = thudo_core::transit::phone::Phone::open(
        stranger_vault,
        None,
        thudo_core::transit::phone::PhoneOptions::default(),
    )
    .unwrap();
    let theirs = w
        .issuer
        .issue(
            &thudo_core::transit::issuer::CredentialRequest {
                card_id: 9_704_000_000_999,
                ..request(&stranger, Product::MonthlyAllRoutes, Category::Standard, 0)
            },
            NOW as u32,
        )
        .unwrap();
    stranger.install_credential(&theirs).unwrap();
    let shown = stranger.current_qr(NOW + 300).unwrap();
    assert!(
        w.validator
            .validate(&shown.text, NOW + 300)
            .unwrap()
            .accepted
    );
    let after_stranger = w.phone.current_qr_for(child, NOW + 301).unwrap();
    assert_eq!(
        w.validator
            .validate(&after_stranger.text, NOW + 301)
            .unwrap()
            .reason,
        Reason::HolderNotTapped
    );
    // A reboot between the holder's tap and the dependant's keeps the holder in memory (from
    // the tap log), even with another rider's tap in between and no passback window.
    let own_again = w.phone.current_qr(NOW + 400).unwrap();
    assert!(
        w.validator
            .validate(&own_again.text, NOW + 400)
            .unwrap()
            .accepted
    );
    let between = stranger.current_qr(NOW + 490).unwrap();
    assert!(
        w.validator
            .validate(&between.text, NOW + 490)
            .unwrap()
            .accepted
    );
    let mut rebooted = Validator::open(
        w.validator_vault.clone(),
        vec![w.issuer.trusted().clone()],
        ValidatorConfig {
            route: 32,
            passback_secs: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let after_reboot = w.phone.current_qr_for(child, NOW + 500).unwrap();
    assert!(
        rebooted
            .validate(&after_reboot.text, NOW + 500)
            .unwrap()
            .accepted
    );
}

/// A tap record damaged on disk (a flash fault, an edited file) is read past: the validator
/// still starts, validates, and uploads the rest of its log; nothing else is lost.
#[test]
fn a_damaged_tap_record_neither_stops_the_validator_nor_its_upload() {
    let mut w = world();
    for minutes in [0, 5, 10] {
        let at = NOW + minutes * 60;
        let qr = w.phone.current_qr(at).unwrap();
        assert!(w.validator.validate(&qr.text, at).unwrap().accepted);
    }
    let db = thudo_core::vault::database_path(w._dirs[1].path());
    let conn = rusqlite::Connection::open(db).unwrap();
    let (position, mut envelope): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT record_id, envelope FROM records WHERE collection = 'transit.tap'
             ORDER BY record_id LIMIT 1 OFFSET 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let last = envelope.len() - 1;
    envelope[last] ^= 0x55;
    conn.execute(
        "UPDATE records SET envelope = ?1 WHERE record_id = ?2",
        (&envelope, position),
    )
    .unwrap();
    let mut reopened = Validator::open(
        w.validator_vault.clone(),
        vec![w.issuer.trusted().clone()],
        ValidatorConfig {
            route: 32,
            ..Default::default()
        },
    )
    .unwrap();
    let taps = reopened.export_taps().unwrap();
    assert_eq!(taps.iter().map(|t| t.seq).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(reopened.acknowledge_taps(3).unwrap(), 2);
    let qr = w.phone.current_qr(NOW + 900).unwrap();
    let verdict = reopened.validate(&qr.text, NOW + 900).unwrap();
    assert!(verdict.accepted);
    assert_eq!(reopened.export_taps().unwrap()[0].seq, 4);
}
