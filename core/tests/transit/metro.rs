//! Metro gates: an exit lets out only a card that entered, checks the phone but not the pass
//! window, a capped card rides free, and an exit whose commit fails is not shown.

use std::sync::Arc;

use thudo_core::crypto::p256::SoftwareKey;
use thudo_core::transit::metro::{EntryFeed, Gate, GateDirection, GateEntry};
use thudo_core::transit::presentation::Signal;
use thudo_core::transit::validator::{Reason, Validator, ValidatorConfig};
use thudo_core::transit::{Category, Product};
use thudo_core::vault::{Unlock, Vault};

use crate::world::{
    gate, gate_over, inside_feed, qr_signed_by, request, vault, world, world_with, NOW,
};

#[test]
fn a_metro_exit_lets_out_only_a_card_that_entered() {
    let w = world_with(
        Product::PayAsYouGo,
        Category::Standard,
        0,
        ValidatorConfig::default(),
    );
    let card = 9_704_000_000_123;
    let (_d1, mut entry) = gate(&w, 201, GateDirection::Entry);
    let (d2, exit_vault) = vault();
    let mut exit = gate_over(&w, exit_vault.clone(), 205, GateDirection::Exit);

    // In at Cát Linh: a gate's tap says where and which way.
    let tapped_in = entry
        .validate(&w.phone.current_qr(NOW).unwrap().text, NOW)
        .unwrap();
    assert!(tapped_in.accepted, "{tapped_in:?}");
    let logged = entry.export_taps().unwrap();
    assert_eq!(
        logged[0].gate,
        Some(Gate {
            station: 201,
            direction: GateDirection::Entry
        })
    );
    assert!(entry.apply_entry_feed(&EntryFeed::default(), NOW).is_err());

    // The backend knows every entry up to NOW - 10 and passes this one on; an entry of another
    // card long ago is dropped.
    let feed = EntryFeed {
        entries: vec![
            GateEntry {
                card_id: card,
                station: 201,
                at: NOW,
            },
            GateEntry {
                card_id: 42,
                station: 203,
                at: NOW - 25 * 3600,
            },
        ],
        cursor: 2,
        complete_until: NOW + 600,
        now: 0,
    };
    assert_eq!(exit.apply_entry_feed(&feed, NOW + 600).unwrap(), 1);
    let out = exit
        .validate(&w.phone.current_qr(NOW + 610).unwrap().text, NOW + 610)
        .unwrap();
    assert!(out.accepted, "{out:?}");
    // The gate closed on the rider, who taps again: the same exit, let out again.
    assert!(
        exit.validate(&w.phone.current_qr(NOW + 650).unwrap().text, NOW + 650)
            .unwrap()
            .accepted
    );

    // Once: the phone passed back through the same gate for a third rider is sent to staff,
    // however soon, and so it stays after a power cut (the used entry stays used, the feed
    // position is kept, and so is the memory of who just went out here).
    let third = exit
        .validate(&w.phone.current_qr(NOW + 655).unwrap().text, NOW + 655)
        .unwrap();
    assert_eq!(third.reason, Reason::NoEntry);
    drop(exit);
    let mut exit = gate_over(&w, exit_vault.clone(), 205, GateDirection::Exit);
    let status = exit.entry_feed_status(NOW + 660);
    assert_eq!((status.cursor, status.open_entries), (2, 0));
    assert!(status.refusing_unknown_exits);
    assert_eq!(
        exit.validate(&w.phone.current_qr(NOW + 660).unwrap().text, NOW + 660)
            .unwrap()
            .reason,
        Reason::NoEntry
    );
    // Two minutes on, with a current feed: the entry was used, so the card is sent to staff.
    let current = EntryFeed {
        entries: vec![],
        cursor: 2,
        complete_until: NOW + 780,
        now: NOW + 780,
    };
    exit.apply_entry_feed(&current, NOW + 780).unwrap();
    let again = exit
        .validate(&w.phone.current_qr(NOW + 781).unwrap().text, NOW + 781)
        .unwrap();
    assert_eq!(again.reason, Reason::NoEntry);
    assert!(!again.accepted);
    assert_eq!(again.presentation.line_en, "No entry tap: see staff");
    // The same feed delivered twice, or an older one, opens nothing again.
    exit.apply_entry_feed(&feed, NOW + 782).unwrap();
    assert_eq!(exit.entry_feed_status(NOW + 782).open_entries, 0);
    assert_eq!(
        exit.validate(&w.phone.current_qr(NOW + 783).unwrap().text, NOW + 783)
            .unwrap()
            .reason,
        Reason::NoEntry
    );
    // A refused QR is not used up: once its entry is known, the same QR lets the rider out.
    let refused = w.phone.current_qr(NOW + 784).unwrap().text;
    assert_eq!(
        exit.validate(&refused, NOW + 784).unwrap().reason,
        Reason::NoEntry
    );
    let later_entry = EntryFeed {
        entries: vec![GateEntry {
            card_id: card,
            station: 202,
            at: NOW + 760,
        }],
        cursor: 3,
        complete_until: NOW + 785,
        now: 0,
    };
    assert_eq!(exit.apply_entry_feed(&later_entry, NOW + 785).unwrap(), 1);
    assert!(exit.validate(&refused, NOW + 786).unwrap().accepted);
    assert_eq!(
        exit.validate(&refused, NOW + 787).unwrap().reason,
        Reason::Replayed,
        "once used, it is used"
    );
    let stale = EntryFeed {
        cursor: 1,
        complete_until: NOW,
        ..feed.clone()
    };
    exit.apply_entry_feed(&stale, NOW + 790).unwrap();
    let status = exit.entry_feed_status(NOW + 790);
    assert_eq!((status.cursor, status.complete_until), (3, NOW + 785));

    // A feed that has not been complete for over a minute: nobody is locked in; the tap goes
    // to the backend as an exit, which prices it.
    let late = NOW + 785 + 61;
    assert!(!exit.entry_feed_status(late + 100).refusing_unknown_exits);
    let let_out = exit
        .validate(&w.phone.current_qr(late + 100).unwrap().text, late + 100)
        .unwrap();
    assert!(let_out.accepted, "{let_out:?}");
    let taps = exit.export_taps().unwrap();
    assert!(taps.iter().all(|t| t.gate
        == Some(Gate {
            station: 205,
            direction: GateDirection::Exit
        })));
    assert_eq!(taps.iter().filter(|t| t.accepted).count(), 4);
    drop(d2);

    // The feed's age is counted on the backend's clock: a gate whose own clock is 10 minutes
    // behind still stops refusing a minute after the entries were last complete.
    let (_d3, mut behind) = gate(&w, 205, GateDirection::Exit);
    let backend_now = NOW + 5_000;
    behind
        .apply_entry_feed(
            &EntryFeed {
                entries: vec![],
                cursor: 9,
                complete_until: backend_now - 50,
                now: backend_now,
            },
            backend_now - 600,
        )
        .unwrap();
    assert!(
        behind
            .entry_feed_status(backend_now - 600 + 10)
            .refusing_unknown_exits
    );
    assert!(
        !behind
            .entry_feed_status(backend_now - 600 + 11)
            .refusing_unknown_exits
    );
    assert!(
        !behind
            .entry_feed_status(backend_now - 700)
            .refusing_unknown_exits,
        "a clock that went back"
    );
}

#[test]
fn an_exit_gate_checks_the_phone_but_not_the_pass_window() {
    // A pass that ends while the rider is on the train still gets them out; a forged QR over
    // the same credential does not.
    let w = world_with(
        Product::MonthlyAllRoutes,
        Category::Standard,
        0,
        ValidatorConfig::default(),
    );
    let mut ending = request(&w.phone, Product::DayPass, Category::Standard, 0);
    ending.pass_valid_until = NOW as u32 + 300;
    let credential = w.issuer.issue(&ending, NOW as u32).unwrap();
    w.phone.install_credential(&credential).unwrap();
    let (_d, mut exit) = gate(&w, 212, GateDirection::Exit);
    let (_d2, mut entry) = gate(&w, 201, GateDirection::Entry);
    let out_at = NOW + 900;
    assert_eq!(
        entry
            .validate(&w.phone.current_qr(out_at).unwrap().text, out_at)
            .unwrap()
            .reason,
        Reason::PassExpired,
        "an entry checks the pass"
    );
    exit.apply_entry_feed(
        &EntryFeed {
            entries: vec![GateEntry {
                card_id: 9_704_000_000_123,
                station: 201,
                at: NOW + 100,
            }],
            cursor: 1,
            complete_until: out_at,
            now: 0,
        },
        out_at,
    )
    .unwrap();
    let (thief, _) = SoftwareKey::generate().unwrap();
    let forged = qr_signed_by(&w, &thief, out_at as u32, 7);
    assert_eq!(
        exit.validate(&forged, out_at).unwrap().reason,
        Reason::BadDeviceSignature
    );
    let out = exit
        .validate(&w.phone.current_qr(out_at + 5).unwrap().text, out_at + 5)
        .unwrap();
    assert!(out.accepted, "{out:?}");
    // The gate closed on the rider, who taps again: let out again, not sent to the staff.
    let again = exit
        .validate(&w.phone.current_qr(out_at + 40).unwrap().text, out_at + 40)
        .unwrap();
    assert!(again.accepted, "{again:?}");
    // A fail-closed setting never keeps riders in: exits ignore it.
    let (_d3, strict_vault) = vault();
    let mut strict = Validator::open(
        strict_vault,
        vec![w.issuer.trusted().clone()],
        ValidatorConfig {
            route: 902,
            gate: Some(Gate {
                station: 212,
                direction: GateDirection::Exit,
            }),
            fail_closed_when_stale: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(strict.deny_list_status(out_at).stale);
    let let_out = strict
        .validate(&w.phone.current_qr(out_at + 60).unwrap().text, out_at + 60)
        .unwrap();
    assert!(let_out.accepted, "{let_out:?}");
}

#[test]
fn a_card_capped_today_is_let_through_in_amber_with_a_free_ride() {
    let mut w = world_with(
        Product::PayAsYouGo,
        Category::Standard,
        0,
        ValidatorConfig {
            route: 32,
            passback_secs: 0,
            ..Default::default()
        },
    );
    let card = 9_704_000_000_123;
    let before = w
        .validator
        .validate(&w.phone.current_qr(NOW).unwrap().text, NOW)
        .unwrap();
    assert_eq!(before.presentation.line_en, "Welcome aboard");
    // The feed says the card reached today's cap; today ends in an hour.
    w.validator.set_capped_cards(&[card], NOW + 3_600);
    let capped = w
        .validator
        .validate(&w.phone.current_qr(NOW + 60).unwrap().text, NOW + 60)
        .unwrap();
    assert!(capped.accepted);
    assert_eq!(
        (
            capped.presentation.signal,
            capped.presentation.line_en.as_str()
        ),
        (Signal::Warn, "Cap reached today: this ride is free")
    );
    assert_eq!(
        capped.presentation.line_vi,
        "Đã đủ mức trần hôm nay: miễn phí"
    );
    // Tomorrow it is a fare again; a refusal stays a refusal.
    let tomorrow = w
        .validator
        .validate(&w.phone.current_qr(NOW + 3_700).unwrap().text, NOW + 3_700)
        .unwrap();
    assert_eq!(tomorrow.presentation.signal, Signal::Go);
    let replayed = w
        .validator
        .validate(&w.phone.current_qr(NOW + 3_700).unwrap().text, NOW + 3_701)
        .unwrap();
    assert_eq!(replayed.presentation.signal, Signal::Stop);
    // A pass holder's card in the list is not told about a cap it does not pay toward.
    let mut pass = world();
    pass.validator.set_capped_cards(&[card], NOW + 3_600);
    let v = pass
        .validator
        .validate(&pass.phone.current_qr(NOW).unwrap().text, NOW)
        .unwrap();
    assert_eq!(v.presentation.signal, Signal::Go);
}

#[test]
fn an_exit_whose_commit_fails_is_not_shown_and_does_not_use_the_entry() {
    // The exit's tap and the entry marked used go to disk in one commit. When that commit
    // fails (the storage goes away mid-decision), no verdict is shown, and after a restart the
    // entry still lets the rider out.
    let w = world_with(
        Product::PayAsYouGo,
        Category::Standard,
        0,
        ValidatorConfig::default(),
    );
    let dir = tempfile::tempdir().unwrap();
    let keys = crate::common::TestProvider::new("k");
    let open = || {
        Arc::new(
            Vault::open(
                dir.path(),
                Unlock::Provider(keys.clone()),
                &crate::common::fast(),
            )
            .unwrap(),
        )
    };
    let exit_vault = open();
    let mut exit = gate_over(&w, exit_vault.clone(), 205, GateDirection::Exit);
    let feed = EntryFeed {
        entries: vec![GateEntry {
            card_id: 9_704_000_000_123,
            station: 201,
            at: NOW,
        }],
        cursor: 1,
        complete_until: NOW + 600,
        now: NOW + 600,
    };
    exit.apply_entry_feed(&feed, NOW + 600).unwrap();
    exit_vault.close();
    let qr = w.phone.current_qr(NOW + 610).unwrap().text;
    assert!(
        exit.validate(&qr, NOW + 610).is_err(),
        "no verdict without its tap on disk"
    );
    drop(exit);
    let mut exit = gate_over(&w, open(), 205, GateDirection::Exit);
    assert_eq!(exit.entry_feed_status(NOW + 611).open_entries, 1);
    let out = exit.validate(&qr, NOW + 611).unwrap();
    assert!(out.accepted, "the same QR, not used up: {out:?}");
    assert_eq!(exit.export_taps().unwrap().len(), 1);
}

#[test]
fn an_entry_gate_refuses_a_card_inside_only_while_its_feed_is_current() {
    let w = world_with(
        Product::PayAsYouGo,
        Category::Standard,
        0,
        ValidatorConfig::default(),
    );
    let card = w.phone.credential().unwrap().card_id;
    let (_d, mut entry) = gate(&w, 201, GateDirection::Entry);
    // No feed yet: nobody is refused as inside.
    let status = entry.entry_feed_status(NOW);
    assert!(!status.refusing_cards_inside);
    // Exits known ten seconds ago, the card inside: refused, and its QR is not used up.
    assert_eq!(
        entry
            .apply_inside_feed(&inside_feed(&[card, 42], NOW - 10, NOW), NOW)
            .unwrap(),
        2
    );
    let status = entry.entry_feed_status(NOW);
    assert!(status.refusing_cards_inside);
    assert_eq!((status.open_entries, status.complete_until), (2, NOW - 10));
    let qr = w.phone.current_qr(NOW).unwrap();
    let verdict = entry.validate(&qr.text, NOW).unwrap();
    assert_eq!(verdict.reason, Reason::AlreadyInside);
    assert_eq!(verdict.presentation.signal, Signal::Stop);
    assert_eq!(verdict.presentation.message_key, "transit.already_inside");
    // The card left: the next feed does not list it, and the same QR lets the rider in.
    entry
        .apply_inside_feed(&inside_feed(&[42], NOW - 5, NOW + 5), NOW + 5)
        .unwrap();
    assert!(entry.validate(&qr.text, NOW + 5).unwrap().accepted);
    // A feed whose exits are old, or one fetched too long ago, refuses nobody.
    let (_d2, mut other) = gate(&w, 205, GateDirection::Entry);
    other
        .apply_inside_feed(
            &inside_feed(&[card], NOW + 500 - 3_600, NOW + 500),
            NOW + 500,
        )
        .unwrap();
    let later = w.phone.current_qr(NOW + 500).unwrap();
    assert!(other.validate(&later.text, NOW + 500).unwrap().accepted);
    let (_d3, mut third) = gate(&w, 206, GateDirection::Entry);
    third
        .apply_inside_feed(&inside_feed(&[card], NOW + 600, NOW + 600), NOW + 600)
        .unwrap();
    assert!(third.entry_feed_status(NOW + 600).refusing_cards_inside);
    assert!(!third.entry_feed_status(NOW + 700).refusing_cards_inside);
    let stale = w.phone.current_qr(NOW + 700).unwrap();
    assert!(third.validate(&stale.text, NOW + 700).unwrap().accepted);
    // A malformed feed is refused whole and changes nothing; only entry gates take one.
    let mut bad = inside_feed(&[card], NOW + 800, NOW + 800);
    bad.cards.push("zz".into());
    assert!(third.apply_inside_feed(&bad, NOW + 800).is_err());
    bad.cards.pop();
    bad.salt = "00".into();
    assert!(third.apply_inside_feed(&bad, NOW + 800).is_err());
    assert!(!third.entry_feed_status(NOW + 800).refusing_cards_inside);
    let (_d4, mut exit) = gate(&w, 212, GateDirection::Exit);
    assert!(exit
        .apply_inside_feed(&inside_feed(&[card], NOW, NOW), NOW)
        .is_err());
    // The same feed delivered twice changes nothing; a gate restarted over its vault holds no
    // feed (kept in memory) and refuses nobody as inside until it fetches one.
    let (_d5, restart_vault) = vault();
    let mut restarted = gate_over(&w, restart_vault.clone(), 207, GateDirection::Entry);
    let feed = inside_feed(&[card], NOW + 900, NOW + 900);
    assert_eq!(restarted.apply_inside_feed(&feed, NOW + 900).unwrap(), 1);
    assert_eq!(restarted.apply_inside_feed(&feed, NOW + 900).unwrap(), 1);
    assert!(restarted.entry_feed_status(NOW + 900).refusing_cards_inside);
    drop(restarted);
    let reopened = gate_over(&w, restart_vault, 207, GateDirection::Entry);
    assert!(!reopened.entry_feed_status(NOW + 900).refusing_cards_inside);
    // A bus has no feed of either kind.
    assert!(!w.validator.entry_feed_status(NOW).refusing_cards_inside);
}

/// An exit gate whose clock jumped two days ahead (a GPS or RTC fault) while it refreshed its
/// entries keeps them, since they expire by the backend's clock: once its clock is right, the
/// rider inside is let out, not sent to staff.
#[test]
fn a_gate_clock_jumping_ahead_keeps_the_riders_inside() {
    let w = world_with(
        Product::PayAsYouGo,
        Category::Standard,
        0,
        ValidatorConfig::default(),
    );
    let card = 9_704_000_000_123;
    let (_d, mut exit) = gate(&w, 205, GateDirection::Exit);
    let feed = EntryFeed {
        entries: vec![GateEntry {
            card_id: card,
            station: 201,
            at: NOW,
        }],
        cursor: 1,
        complete_until: NOW + 600,
        now: NOW + 600,
    };
    assert_eq!(exit.apply_entry_feed(&feed, NOW + 2 * 86_400).unwrap(), 1);
    let current = EntryFeed {
        entries: vec![],
        cursor: 1,
        complete_until: NOW + 700,
        now: NOW + 700,
    };
    exit.apply_entry_feed(&current, NOW + 700).unwrap();
    assert!(exit.entry_feed_status(NOW + 710).refusing_unknown_exits);
    let out = exit
        .validate(&w.phone.current_qr(NOW + 710).unwrap().text, NOW + 710)
        .unwrap();
    assert!(out.accepted, "{out:?}");
}
