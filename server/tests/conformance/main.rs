//! One conformance suite for every store, run on both engines: each scenario below is written
//! once over [`SqlStorage`] and instantiated for SQLite (always) and PostgreSQL (with
//! `THUDO_TEST_POSTGRES`, under `scripts/with-postgres.sh`; without it those tests are reported
//! as ignored, never passed). The stores' behaviour an engine must keep: identities, the change
//! log, settings, validators, the deny list, riders, taps and journeys, the lock order, and the
//! refusal of a newer schema. `migrations.rs` compares the two engines' tables.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../common/mod.rs"]
mod common;
mod sales;
mod sync;
use common::citizen_key;
use sales::*;
use sync::*;

use serde_json::json;
use thudo_core::sync::protocol::{Change, Mutation, Outcome};
use thudo_core::transit::metro::{Gate, GateDirection};
use thudo_core::transit::validator::{Reason, Tap};
use thudo_core::transit::{Category, Product};
use thudo_server::devices::store::Device;
use thudo_server::prelude::*;
use thudo_server::storage::engine::{Engine, Tx};
use thudo_server::storage::locks::Lock;
use thudo_server::storage::{PostgresStorage, SqlStorage, SqliteStorage};
use thudo_server::transit::fares::FarePolicy;
use thudo_server::transit::rules::{Evidence, FraudKind, VerifiedScan};
use thudo_server::transit::store::{
    deny_device_keys, CheckedTap, EnrolOutcome, Entitlement, IssueOutcome, IssuedCredential,
    NewEnrolment, ValidatorRecord, DENY_MARGIN_SECS, MAX_LIVE_KEYS_PER_DEVICE, MAX_ORDERS_PER_HOUR,
};

const CITIZEN: &str = "001090000001";
const OTHER: &str = "001090000002";

/// A fresh database on `engine`, kept until the guard drops.
struct Fresh<E: Engine> {
    storage: SqlStorage<E>,
    _dir: tempfile::TempDir,
}

fn sqlite() -> Fresh<thudo_server::storage::SqliteEngine> {
    let dir = tempfile::tempdir().unwrap();
    Fresh {
        storage: SqliteStorage::open(&dir.path().join("server.db"), thudo_server::SCHEMA).unwrap(),
        _dir: dir,
    }
}

fn postgres() -> Fresh<thudo_server::storage::PostgresEngine> {
    Fresh {
        storage: PostgresStorage::connect(&common::postgres_database(), thudo_server::SCHEMA)
            .unwrap(),
        _dir: tempfile::tempdir().unwrap(),
    }
}

/// Instantiates every scenario for one engine.
macro_rules! conformance {
    ($engine:ident, $open:ident, #[$attr:meta]) => {
        mod $engine {
            use super::*;
            conformance!(@each $open, #[$attr];
                accounts_and_devices, nonces_are_used_once, the_change_log,
                a_days_pushes_are_bounded, a_key_is_bound_to_its_content,
                settings_claim_and_update, validators_enrol_once, the_deny_list_only_grows,
                riders_entitlements_and_dependants, taps_are_judged_once, gate_taps_make_journeys,
                locks_out_of_order_are_refused,
                a_device_holds_few_keys_and_an_account_orders_within_limits,
                the_deny_list_stays_bounded_over_a_year, sales_are_paid_once_and_add_up,
                the_operators_fraud_policy_is_applied_once,
                the_deny_list_is_capped_at_what_a_feed_carries,
                an_operators_denial_counts_from_its_own_time,
                a_refused_value_is_the_requests_fault,
                an_accounts_racing_orders_stay_within_its_limit,
                published_records_are_withdrawn_by_their_publisher);
        }
    };
    (@each $open:ident, #[$attr:meta]; $($scenario:ident),*) => {
        $(
            #[test]
            #[$attr]
            fn $scenario() {
                super::$scenario(&$open().storage);
            }
        )*
    };
}

conformance!(on_sqlite, sqlite, #[cfg(all())]);
conformance!(
    on_postgres,
    postgres,
    #[ignore = "needs PostgreSQL: scripts/with-postgres.sh cargo test -- --include-ignored"]
);

fn device<E: Engine>(s: &SqlStorage<E>, citizen: &str, token: u8) -> Device {
    s.register_device(&citizen_key(citizen), "phone", "phone", &[token; 32], None)
        .unwrap();
    s.device_by_token(&[token; 32]).unwrap().unwrap()
}

fn accounts_and_devices<E: Engine>(s: &SqlStorage<E>) {
    let account = s.account_for_citizen(&citizen_key(CITIZEN)).unwrap();
    assert_eq!(
        s.account_for_citizen(&citizen_key(CITIZEN)).unwrap(),
        account,
        "one account per citizen"
    );
    assert_ne!(s.account_for_citizen(&citizen_key(OTHER)).unwrap(), account);
    let phone = device(s, CITIZEN, 1);
    let old = device(s, CITIZEN, 2);
    let stranger = device(s, OTHER, 3);
    assert_eq!(phone.account_id, account);
    assert_eq!(phone.card_id, old.card_id, "the account's card");
    assert!((100_000_000_000_000..1_000_000_000_000_000).contains(&phone.card_id));
    assert_eq!(s.device_by_token(&[9; 32]).unwrap(), None);
    let ids: Vec<String> = s
        .devices_of(&account)
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, [phone.id.clone(), old.id.clone()], "oldest first");
    // A device registered for the account its data belongs to; another citizen's sign-in
    // (or one with no account yet) makes nothing.
    let expecting = |citizen: &str, token: u8| {
        s.register_device(
            &citizen_key(citizen),
            "p",
            "phone",
            &[token; 32],
            Some(&account),
        )
        .unwrap()
    };
    assert_eq!(expecting(CITIZEN, 4).map(|(_, a)| a), Some(account.clone()));
    assert_eq!(expecting(OTHER, 5), None);
    assert_eq!(expecting("001090000003", 6), None);
    assert_eq!(s.device_by_token(&[5; 32]).unwrap(), None);
    assert_eq!(s.devices_of(&stranger.account_id).unwrap().len(), 1);
    s.revoke_device(
        &account,
        &s.device_by_token(&[4; 32]).unwrap().unwrap().id,
        10,
        &|_, _, _| Ok(0),
    )
    .unwrap();
    // Revocation runs the hook in its transaction and ends the token at once.
    fn hook(_: &mut dyn Tx, _: &str, _: i64) -> thudo_server::storage::Result<usize> {
        Ok(7)
    }
    assert_eq!(
        s.revoke_device(&account, &old.id, 10, &hook).unwrap(),
        Some(7)
    );
    assert_eq!(s.device_by_token(&[2; 32]).unwrap(), None);
    assert_eq!(
        s.revoke_device(&account, &old.id, 11, &hook).unwrap(),
        None,
        "once"
    );
    assert_eq!(
        s.revoke_device(&account, &stranger.id, 12, &hook).unwrap(),
        None,
        "another account's device"
    );
    assert!(s.device_by_token(&[3; 32]).unwrap().is_some());
    s.set_cell(&citizen_key(CITIZEN), "cell-1").unwrap();
    assert_eq!(
        s.device_by_token(&[1; 32])
            .unwrap()
            .unwrap()
            .cell
            .as_deref(),
        Some("cell-1")
    );
}

fn nonces_are_used_once<E: Engine>(s: &SqlStorage<E>) {
    assert!(s.spend_nonce(&[1; 32], 100, 60).unwrap());
    assert!(!s.spend_nonce(&[1; 32], 100, 61).unwrap());
    assert!(s.spend_nonce(&[2; 32], 100, 61).unwrap());
    // A spent nonce stays spent past its expiry (a replay checked an instant before it, or on
    // an instance whose clock is behind, still finds it), for two of its lifetimes.
    assert!(!s.spend_nonce(&[2; 32], 100, 100).unwrap());
    assert!(s.spend_nonce(&[3; 32], 2_000, 1_000).unwrap());
    assert!(!s.spend_nonce(&[1; 32], 100, 1_000).unwrap());
    assert!(s.spend_nonce(&[4; 32], 3_000, 1_301).unwrap());
    assert!(s.spend_nonce(&[1; 32], 3_000, 1_301).unwrap());
}

fn settings_claim_and_update<E: Engine>(s: &SqlStorage<E>) {
    assert_eq!(s.get_setting("k").unwrap(), None);
    assert_eq!(s.claim_setting("k", b"first").unwrap(), b"first");
    assert_eq!(
        s.claim_setting("k", b"second").unwrap(),
        b"first",
        "the first claim wins"
    );
    let updated = s
        .update_setting("k", &mut |v| {
            Ok([v.unwrap_or_default(), b"+".to_vec()].concat())
        })
        .unwrap();
    assert_eq!(updated, b"first+");
    s.set_setting("k", b"set").unwrap();
    assert_eq!(s.get_setting("k").unwrap().as_deref(), Some(&b"set"[..]));
}

/// A text with a NUL is stored as it is (SQLite) or refused as a value (PostgreSQL, class 22):
/// never a failure of the database, which the API would answer "503, retry later" for ever.
fn a_refused_value_is_the_requests_fault<E: Engine>(s: &SqlStorage<E>) {
    use thudo_server::storage::StorageError;
    match s.set_setting("a\u{0}b", b"v") {
        Ok(()) => assert_eq!(
            s.get_setting("a\u{0}b").unwrap().as_deref(),
            Some(&b"v"[..])
        ),
        Err(e) => assert!(matches!(e, StorageError::ValueRefused(_)), "{e:?}"),
    }
    // Only the value's fault is the request's: a statement the engine cannot run is not.
    let broken = s.write(|tx| tx.exec("INSERT INTO no_such_table VALUES (1)", &[]));
    assert!(matches!(broken, Err(StorageError::Failed(_))), "{broken:?}");
}

fn enrol<E: Engine>(
    s: &SqlStorage<E>,
    code: u8,
    route: Option<u16>,
    gate: Option<&str>,
) -> ValidatorRecord {
    s.create_enrolment(&NewEnrolment {
        code_hash: [code; 32],
        label: format!("validator {code}"),
        route,
        gate: gate.map(str::to_owned),
        inspector: false,
        expires_at: i64::MAX / 2,
    })
    .unwrap();
    match s
        .enrol_validator(&[code; 32], "v", &[code + 100; 32], 1)
        .unwrap()
    {
        EnrolOutcome::Enrolled(v) => v,
        other => panic!("{other:?}"),
    }
}

fn validators_enrol_once<E: Engine>(s: &SqlStorage<E>) {
    let bus = enrol(s, 1, Some(32), None);
    assert_eq!((bus.route, bus.gate.clone()), (Some(32), None));
    assert_eq!(
        s.enrol_validator(&[1; 32], "again", &[50; 32], 2).unwrap(),
        EnrolOutcome::Used
    );
    assert_eq!(
        s.enrol_validator(&[2; 32], "x", &[51; 32], 2).unwrap(),
        EnrolOutcome::Unknown
    );
    s.create_enrolment(&NewEnrolment {
        code_hash: [3; 32],
        label: "late".into(),
        route: Some(1),
        gate: None,
        inspector: false,
        expires_at: 10,
    })
    .unwrap();
    assert_eq!(
        s.enrol_validator(&[3; 32], "x", &[52; 32], 11).unwrap(),
        EnrolOutcome::Expired
    );
    assert_eq!(
        s.validator_by_token(&[101; 32], 6).unwrap(),
        Some(bus.clone())
    );
    assert_eq!(s.validators().unwrap(), std::slice::from_ref(&bus));
    assert!(s.decommission_validator(&bus.id, 5).unwrap());
    assert!(!s.decommission_validator("v-none", 5).unwrap());
    let after = s.validator_by_token(&[101; 32], 6).unwrap().unwrap();
    assert_eq!(after.decommissioned_at, Some(5));
}

/// A credential for `key` on `card`, issued at `now` for 72 hours, its pass ending at `pass`.
fn issued(key: u8, card: u64, now: i64, pass: i64) -> IssuedCredential {
    IssuedCredential {
        key_hash: [key; 32],
        card_id: card,
        product: Product::PayAsYouGo,
        pass_until: pass,
        not_after: now + 72 * 3600,
    }
}

fn the_deny_list_only_grows<E: Engine>(s: &SqlStorage<E>) {
    let now = 1_000_000;
    let (v0, cards, keys) = s.deny_list(now).unwrap();
    assert_eq!((v0, cards.len(), keys.len()), (1, 0, 0), "version 1, empty");
    let v1 = s.deny(&[42], &[[7; 32]], now).unwrap();
    let v2 = s.deny(&[], &[], now + 1).unwrap();
    assert!(v0 < v1 && v1 < v2, "strictly increasing");
    let (v, cards, keys) = s.deny_list(now + 2).unwrap();
    assert_eq!((v, cards, keys), (v2, vec![42], vec![[7; 32]]));
    // A transit key is one account's: another's claim is refused.
    let mine = device(s, CITIZEN, 1);
    let theirs = device(s, OTHER, 2);
    let record = |d: &Device, key: u8, at: i64| {
        s.record_credential(d, &issued(key, d.card_id, at, at + 86_400), None, at)
            .unwrap()
    };
    assert_eq!(record(&mine, 8, now), IssueOutcome::Recorded);
    assert_eq!(
        record(&mine, 8, now + 10),
        IssueOutcome::Recorded,
        "a renewal"
    );
    assert_eq!(record(&theirs, 8, now), IssueOutcome::KeyTaken);
    assert_eq!(record(&theirs, 7, now), IssueOutcome::KeyDenied);
    assert_eq!(s.device_keys(&mine.id).unwrap(), [[8; 32]]);
    // Revoking the device denies its key, under a new version, while its credential lasts.
    assert_eq!(
        s.revoke_device(&mine.account_id, &mine.id, now + 20, &deny_device_keys)
            .unwrap(),
        Some(1)
    );
    let (v3, _, keys) = s.deny_list(now + 30).unwrap();
    assert!(v3 > v2);
    assert!(keys.contains(&[8; 32]));
    assert_eq!(record(&mine, 9, now + 40), IssueOutcome::DeviceRevoked);
    // Once every credential it could hold has ended (and the margin), the key leaves the list
    // but stays denied for new purchases.
    let gone = now + 20 + 72 * 3600 + DENY_MARGIN_SECS + 1;
    let (_, cards, keys) = s.deny_list(gone).unwrap();
    assert!(!keys.contains(&[8; 32]), "{keys:?}");
    assert!(
        cards.is_empty(),
        "card 42 held nothing: it leaves after a lifetime"
    );
    let other = device(s, OTHER, 3);
    assert_eq!(record(&other, 8, gone), IssueOutcome::KeyTaken);
    assert_eq!(record(&other, 7, gone), IssueOutcome::KeyDenied);
}

/// A card denied for what it owes, then by the operator: the rides between the two still pay
/// (uploaded late, they are judged under the balance denial), those after are refused.
fn an_operators_denial_counts_from_its_own_time<E: Engine>(s: &SqlStorage<E>) {
    let fares = FarePolicy::default();
    let card = device(s, CITIZEN, 1).card_id;
    let bus = enrol(s, 1, Some(32), None);
    let t0 = chrono::Utc::now().timestamp() as u64 - 3_000;
    s.record_taps(&bus, &[tap(1, t0, card, 1, None)], &fares, None)
        .unwrap();
    assert!(s
        .enforce_balances(&[card], 0, t0 as i64 + 60)
        .unwrap()
        .is_some());
    let t1 = t0 + 1_800;
    s.deny(&[card], &[], t1 as i64).unwrap();
    let between = s
        .record_taps(&bus, &[tap(2, t0 + 600, card, 2, None)], &fares, None)
        .unwrap();
    assert!(between.charged_vnd > 0, "{between:?}");
    let after = s
        .record_taps(&bus, &[tap(3, t1 + 60, card, 3, None)], &fares, None)
        .unwrap();
    assert_eq!(after.charged_vnd, 0, "{after:?}");
}

/// An operator's mass denial that would take the list past what every validator's feed
/// carries is refused whole (nothing listed, no new version); a few entries, or a version bump
/// alone, never are.
fn the_deny_list_is_capped_at_what_a_feed_carries<E: Engine>(s: &SqlStorage<E>) {
    use thudo_server::storage::StorageError;
    use thudo_server::transit::store::MAX_LISTED;
    let now = 1_000_000;
    let v = s.deny(&[1, 2], &[], now).unwrap();
    let too_many: Vec<u64> = (10..10 + MAX_LISTED as u64 - 1).collect();
    match s.deny(&too_many, &[], now + 1) {
        Err(StorageError::ValueRefused(why)) => {
            assert!(why.contains(&MAX_LISTED.to_string()), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let (version, cards, _) = s.deny_list(now + 2).unwrap();
    assert_eq!((version, cards), (v, vec![1, 2]));
    assert!(s.deny(&[], &[], now + 3).unwrap() > v);
    // A few entries (a stolen card, a lost phone) are taken whatever the list holds.
    let few: Vec<u64> = (10..10 + thudo_server::transit::store::ALWAYS_TAKEN as u64).collect();
    assert!(s.deny(&few, &[], now + 4).unwrap() > v);
    assert_eq!(s.deny_list(now + 5).unwrap().1.len(), 2 + few.len());
    // Past a full list small denials go into the reserve, and stop where it does: a flood of
    // them never outgrows a validator's feed.
    use thudo_server::storage::engine::Val;
    use thudo_server::transit::store::{ALWAYS_TAKEN, LISTED_RESERVE};
    let fill = |from: usize, to: usize| {
        s.write(|tx| {
            tx.exec(
                "INSERT INTO deny_cards(card_id, denied_at, until, reason)
                 WITH RECURSIVE n(i) AS (SELECT CAST(?1 AS BIGINT) UNION ALL
                                         SELECT i + 1 FROM n WHERE i < ?2)
                 SELECT i, ?3, NULL, NULL FROM n",
                &[
                    Val::from(from as i64),
                    Val::from(to as i64 - 1),
                    Val::from(now),
                ][..],
            )
        })
        .unwrap()
    };
    let listed = 2 + ALWAYS_TAKEN;
    assert_eq!(
        fill(1_000_000, 1_000_000 + MAX_LISTED - listed),
        (MAX_LISTED - listed) as u64
    );
    assert!(
        s.deny(&[7_000_001], &[], now + 6).is_ok(),
        "one more on a full list"
    );
    assert!(s
        .deny(&(7_000_002..7_000_050).collect::<Vec<_>>(), &[], now + 6)
        .is_ok());
    let listed = MAX_LISTED + 49;
    fill(2_000_000, 2_000_000 + MAX_LISTED + LISTED_RESERVE - listed);
    match s.deny(&[7_000_100], &[], now + 7) {
        Err(StorageError::ValueRefused(_)) => {}
        other => panic!("expected a refusal past the reserve, got {other:?}"),
    }
    // A card listed already adds nothing: its denial again (a retry) is taken.
    assert!(s.deny(&[7_000_001], &[], now + 7).is_ok());
    assert_eq!(
        s.deny_list(now + 8).unwrap().1.len(),
        MAX_LISTED + LISTED_RESERVE
    );
}

fn a_device_holds_few_keys_and_an_account_orders_within_limits<E: Engine>(s: &SqlStorage<E>) {
    let now = 2_000_000;
    let phone = device(s, CITIZEN, 1);
    for key in 0..MAX_LIVE_KEYS_PER_DEVICE as u8 {
        let c = issued(key, phone.card_id, now, now + 86_400);
        assert_eq!(
            s.record_credential(&phone, &c, None, now).unwrap(),
            IssueOutcome::Recorded
        );
    }
    let one_more = issued(99, phone.card_id, now, now + 86_400);
    assert_eq!(
        s.record_credential(&phone, &one_more, None, now).unwrap(),
        IssueOutcome::TooManyKeys
    );
    // Renewing a key it holds is fine; once the old credentials end, a new key is too.
    let renewal = issued(0, phone.card_id, now + 60, now + 86_400);
    assert_eq!(
        s.record_credential(&phone, &renewal, None, now + 60)
            .unwrap(),
        IssueOutcome::Recorded
    );
    let later = now + 73 * 3600;
    let fresh = issued(99, phone.card_id, later, later + 86_400);
    assert_eq!(
        s.record_credential(&phone, &fresh, None, later).unwrap(),
        IssueOutcome::Recorded
    );
    // An hour's orders from one account are bounded.
    let mut outcome = IssueOutcome::Recorded;
    for i in 0..=MAX_ORDERS_PER_HOUR {
        outcome = s
            .record_credential(
                &phone,
                &issued(99, phone.card_id, later + i as i64, later),
                None,
                later + i as i64,
            )
            .unwrap();
    }
    assert_eq!(outcome, IssueOutcome::TooManyOrders);
    let next_hour = later + 3_700;
    let c = issued(99, phone.card_id, next_hour, next_hour);
    assert_eq!(
        s.record_credential(&phone, &c, None, next_hour).unwrap(),
        IssueOutcome::Recorded
    );
    // A denied card buys nothing more, and leaves the list after its passes end.
    s.deny(&[phone.card_id], &[], next_hour).unwrap();
    let c = issued(99, phone.card_id, next_hour + 1, next_hour + 1);
    assert_eq!(
        s.record_credential(&phone, &c, None, next_hour + 1)
            .unwrap(),
        IssueOutcome::CardDenied
    );
    let pass_end = now + 86_400;
    let listed = |t| s.deny_list(t).unwrap().1.contains(&phone.card_id);
    assert!(listed(next_hour + 72 * 3600));
    assert!(!listed(
        pass_end.max(next_hour + 72 * 3600) + DENY_MARGIN_SECS + 1
    ));
}

/// A year of revocations at a steady rate: the list holds only what can still ride, so its
/// size is bounded by the rate times a credential's lifetime and the margin, whatever the
/// year's total. (docs/performance.md gives the figure at the city's rate.)
fn the_deny_list_stays_bounded_over_a_year<E: Engine>(s: &SqlStorage<E>) {
    const PER_DAY: i64 = 4;
    let start = 10_000_000;
    let mut largest = 0;
    for day in 0..365 {
        let t = start + day * 86_400;
        for n in 0..PER_DAY {
            let citizen = format!("{:012}", 500_000_000 + day * PER_DAY + n);
            let mut token = [0u8; 32];
            token[..8].copy_from_slice(&(day * PER_DAY + n).to_le_bytes());
            token[31] = 0xEE;
            s.register_device(&citizen_key(&citizen), "p", "phone", &token, None)
                .unwrap();
            let account = s.account_for_citizen(&citizen_key(&citizen)).unwrap();
            let d = s.devices_of(&account).unwrap().remove(0);
            let device = Device {
                id: d.id.clone(),
                account_id: account.clone(),
                role: "phone".into(),
                cell: None,
                card_id: 0,
            };
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(day * PER_DAY + n).to_be_bytes());
            let c = IssuedCredential {
                key_hash: key,
                card_id: 1,
                product: Product::PayAsYouGo,
                pass_until: t,
                not_after: t + 72 * 3600,
            };
            assert_eq!(
                s.record_credential(&device, &c, None, t).unwrap(),
                IssueOutcome::Recorded
            );
            s.revoke_device(&account, &d.id, t, &deny_device_keys)
                .unwrap();
        }
        largest = largest.max(s.deny_list(t).unwrap().2.len() as i64);
    }
    let bound = PER_DAY * ((72 * 3600 + DENY_MARGIN_SECS + 86_399) / 86_400) + PER_DAY;
    assert!(largest <= bound, "{largest} entries, bound {bound}");
    assert!(
        largest >= PER_DAY * 3,
        "the list holds what can still ride: {largest}"
    );
}

fn riders_entitlements_and_dependants<E: Engine>(s: &SqlStorage<E>) {
    let grant = |from, until| Entitlement {
        category: Category::Priority,
        valid_from: from,
        valid_until: until,
        evidence_ref: "case-1".into(),
    };
    s.grant_entitlement(&citizen_key(CITIZEN), &grant(0, 100))
        .unwrap();
    s.grant_entitlement(&citizen_key(CITIZEN), &grant(50, 500))
        .unwrap();
    let account = s.account_for_citizen(&citizen_key(CITIZEN)).unwrap();
    let at = |t| s.entitlement_at(&account, Category::Priority, t).unwrap();
    assert_eq!(
        at(60).map(|e| e.valid_until),
        Some(500),
        "the longest in force"
    );
    assert_eq!(at(600), None);
    assert_eq!(
        s.entitlement_at(&account, Category::Child, 60).unwrap(),
        None
    );
    assert_eq!(s.entitlements(&citizen_key(CITIZEN)).unwrap().len(), 2);
    s.add_dependant(&citizen_key(CITIZEN), &citizen_key(OTHER), false)
        .unwrap();
    s.add_dependant(&citizen_key(CITIZEN), &citizen_key(OTHER), false)
        .unwrap();
    let (dependant, card) = s
        .dependant_of(&account, &citizen_key(OTHER))
        .unwrap()
        .unwrap();
    assert_eq!(
        dependant,
        s.account_for_citizen(&citizen_key(OTHER)).unwrap()
    );
    assert!(card > 0);
    let other = s.account_for_citizen(&citizen_key(OTHER)).unwrap();
    assert_eq!(
        s.dependant_of(&other, &citizen_key(CITIZEN)).unwrap(),
        None,
        "not the other way"
    );
    assert!(s
        .remove_dependant(&citizen_key(CITIZEN), &citizen_key(OTHER))
        .unwrap());
    assert!(!s
        .remove_dependant(&citizen_key(CITIZEN), &citizen_key(OTHER))
        .unwrap());
    assert_eq!(s.dependant_of(&account, &citizen_key(OTHER)).unwrap(), None);
}

/// A tap whose scan verified (the stores trust the evidence they are given).
fn tap(seq: u64, at: u64, card: u64, counter: u32, gate: Option<Gate>) -> CheckedTap {
    CheckedTap {
        tap: Tap {
            seq,
            at,
            route: 32,
            accepted: true,
            reason: Reason::Ok,
            card_id: Some(card),
            product: Some(Product::PayAsYouGo),
            qr_timestamp: Some(at as u32),
            qr_counter: Some(counter),
            qr: None,
            gate,
        },
        evidence: Evidence::Verified(VerifiedScan {
            card_id: card,
            product: Product::PayAsYouGo,
            qr_timestamp: at as u32,
            qr_counter: counter,
            device_key_hash: [1; 32],
            invalid: None,
            pass_valid: true,
            pass: Default::default(),
        }),
    }
}

fn taps_are_judged_once<E: Engine>(s: &SqlStorage<E>) {
    let fares = FarePolicy::default();
    let card = device(s, CITIZEN, 1).card_id;
    let bus = enrol(s, 1, Some(32), None);
    let other_bus = enrol(s, 2, Some(33), None);
    let at = chrono::Utc::now().timestamp() as u64 - 60;
    let upload = [tap(1, at, card, 1, None), tap(2, at + 30, card, 2, None)];
    let first = s.record_taps(&bus, &upload, &fares, None).unwrap();
    assert_eq!(
        (first.stored, first.duplicates, first.highest_seq),
        (2, 0, 2)
    );
    assert!(first.charged_vnd > 0);
    let again = s.record_taps(&bus, &upload, &fares, None).unwrap();
    assert_eq!(
        (again.stored, again.duplicates, again.charged_vnd),
        (0, 2, 0)
    );
    // A retried upload (its answer lost) reports what the first stored for each tap.
    assert_eq!(again.stored_charged_vnd, first.charged_vnd);
    assert_eq!(again.outcomes.len(), 2);
    assert!(again.outcomes.iter().all(|o| o.duplicate));
    assert_eq!(
        again
            .outcomes
            .iter()
            .map(|o| o.charged_vnd)
            .collect::<Vec<_>>(),
        first
            .outcomes
            .iter()
            .map(|o| o.charged_vnd)
            .collect::<Vec<_>>()
    );
    // The same QR on another validator: a suspected relay, not charged.
    let relayed = s
        .record_taps(&other_bus, &[tap(1, at, card, 1, None)], &fares, None)
        .unwrap();
    assert_eq!(
        (relayed.stored, relayed.not_charged, relayed.charged_vnd),
        (1, 1, 0)
    );
    let mut missing = tap(2, at, card, 9, None);
    missing.evidence = Evidence::Missing;
    s.record_taps(&other_bus, &[missing], &fares, None).unwrap();
    let kinds: Vec<FraudKind> = s
        .fraud_records(0, 10_000)
        .unwrap()
        .iter()
        .map(|f| f.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            FraudKind::SuspectedRelay,
            FraudKind::AcceptedWithoutEvidence
        ]
    );
    // A page at a time: the first, then the rest after its last id, then nothing.
    let first_page = s.fraud_records(0, 1).unwrap();
    assert_eq!(first_page.len(), 1);
    let rest = s.fraud_records(first_page[0].id, 1_000).unwrap();
    assert_eq!(
        rest.iter().map(|f| f.kind).collect::<Vec<_>>(),
        [FraudKind::AcceptedWithoutEvidence]
    );
    assert!(rest[0].id > first_page[0].id);
    assert!(s.fraud_records(rest[0].id, 1_000).unwrap().is_empty());
    let charged: u64 = s.charges(card).unwrap().iter().map(|(_, v)| v).sum();
    assert_eq!(charged, first.charged_vnd);
    let (day, _) = fares.local_day_and_month(at);
    assert_eq!(s.capped_cards(&day, 1).unwrap(), [card]);
    assert!(s.capped_cards(&day, charged + 1).unwrap().is_empty());
}

fn the_operators_fraud_policy_is_applied_once<E: Engine>(s: &SqlStorage<E>) {
    use thudo_server::transit::rules::FraudAction;
    let card = device(s, CITIZEN, 1).card_id;
    let (one, two) = (enrol(s, 1, Some(32), None), enrol(s, 2, Some(33), None));
    let mut fares = FarePolicy::default();
    fares.fraud_policy.0.insert(
        FraudKind::ImpossibleTravel,
        FraudAction::Fare { vnd: 50_000 },
    );
    let at = chrono::Utc::now().timestamp() as u64 - 600;
    // One card on two buses 30 s apart: a shared pass.
    s.record_taps(&one, &[tap(1, at, card, 1, None)], &fares, None)
        .unwrap();
    let uploaded_from = chrono::Utc::now().timestamp() as u64;
    s.record_taps(&two, &[tap(1, at + 30, card, 2, None)], &fares, None)
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let charged_before: u64 = s.charges(card).unwrap().iter().map(|(_, v)| v).sum();
    let fined = s.act_on_fraud(&fares, now).unwrap();
    assert_eq!((fined.acted, fined.fined, fined.denied), (1, 1, 0));
    let charged: u64 = s.charges(card).unwrap().iter().map(|(_, v)| v).sum();
    assert_eq!(
        charged,
        charged_before + 50_000,
        "the penalty counts with the fares"
    );
    assert_eq!(s.act_on_fraud(&fares, now).unwrap().acted, 0, "once");
    // A penalty is booked on the local day its fraud was recorded (the upload), which may be
    // a day after the taps, and the upload itself may straddle midnight: both days are read.
    let mut days = vec![
        fares.local_day_and_month(uploaded_from).0,
        fares.local_day_and_month(now as u64).0,
    ];
    days.dedup();
    let penalties: Vec<_> = days
        .iter()
        .flat_map(|day| s.reconciliation(day).unwrap().lines)
        .filter(|l| l.product == "penalty")
        .map(|l| (l.charges, l.charged_vnd))
        .collect();
    assert_eq!(penalties, [(1, 50_000)]);
    // A stolen validator's flood of accepted taps with no scan (more than one round of
    // actions takes): recorded, and never queued before a card's record.
    let flood: Vec<CheckedTap> = (100..1_300)
        .map(|seq| {
            let mut t = tap(seq, at + 90, card, 0, None);
            t.tap.card_id = None;
            t.evidence = Evidence::Missing;
            t
        })
        .collect();
    assert_eq!(
        s.record_taps(&two, &flood, &fares, None).unwrap().stored,
        1_200
    );
    // The operator now denies such cards: the next record denies the card.
    fares
        .fraud_policy
        .0
        .insert(FraudKind::ImpossibleTravel, FraudAction::Deny);
    let version = s.deny_list(now).unwrap().0;
    s.record_taps(&one, &[tap(2, at + 60, card, 3, None)], &fares, None)
        .unwrap();
    let denied = s.act_on_fraud(&fares, now).unwrap();
    assert_eq!((denied.acted, denied.denied), (1, 1));
    assert!(denied.deny_version.unwrap() > version);
    assert!(s.deny_list(now).unwrap().1.contains(&card));
}

fn gate_taps_make_journeys<E: Engine>(s: &SqlStorage<E>) {
    let fares = FarePolicy::default();
    let card = device(s, CITIZEN, 1).card_id;
    let other = device(s, OTHER, 2).card_id;
    let entry = enrol(s, 1, None, Some("201:entry"));
    let exit = enrol(s, 2, None, Some("205:exit"));
    let gate = |station, direction| Some(Gate { station, direction });
    let now = chrono::Utc::now().timestamp() as u64;
    let at = now - 600;
    s.record_taps(
        &entry,
        &[
            tap(1, at, card, 1, gate(201, GateDirection::Entry)),
            tap(2, at, other, 1, gate(201, GateDirection::Entry)),
        ],
        &fares,
        Some(now as i64),
    )
    .unwrap();
    let feed = s.entry_feed(0, now as i64, 86_400, 100).unwrap();
    assert_eq!(feed.entries.len(), 2);
    assert!(feed.complete_until > 0);
    // A drained upload holding a tap under a reused number (the gate restored from a backup)
    // is not complete: exit gates wait for that entry to come back renumbered.
    let later = now as i64 + 100;
    let mut refused = tap(1, at + 5, other, 3, gate(201, GateDirection::Entry));
    refused.tap.accepted = false;
    let reused = s
        .record_taps(&entry, std::slice::from_ref(&refused), &fares, Some(later))
        .unwrap();
    assert_eq!((reused.stored, reused.reused.clone()), (0, vec![1]));
    assert_eq!(reused.next_free_seq, Some(3));
    let complete = |s: &SqlStorage<E>| {
        s.entry_feed(0, now as i64, 86_400, 100)
            .unwrap()
            .complete_until
    };
    assert_eq!(complete(s), feed.complete_until);
    refused.tap.seq = 3;
    s.record_taps(&entry, &[refused], &fares, Some(later))
        .unwrap();
    assert_eq!(complete(s), later as u64);
    let exited = s
        .record_taps(
            &exit,
            &[tap(1, at + 900, card, 2, gate(205, GateDirection::Exit))],
            &fares,
            None,
        )
        .unwrap();
    assert!(exited.charged_vnd > 0, "the journey is priced at the exit");
    // The exit uploaded again: its journey's fare is what is stored for it.
    let again = s
        .record_taps(
            &exit,
            &[tap(1, at + 900, card, 2, gate(205, GateDirection::Exit))],
            &fares,
            None,
        )
        .unwrap();
    assert_eq!(
        (again.charged_vnd, again.stored_charged_vnd),
        (0, exited.charged_vnd)
    );
    let feed = s.entry_feed(0, now as i64, 86_400, 100).unwrap();
    let open: Vec<u64> = feed.entries.iter().map(|e| e.card_id).collect();
    assert_eq!(open, [other], "only the journey still open");
    // Three hours on, the other card's journey is settled at the line's maximum.
    assert_eq!(s.settle_journeys(now as i64 + 3 * 3600, &fares).unwrap(), 1);
    assert_eq!(
        s.settle_journeys(now as i64 + 3 * 3600, &fares).unwrap(),
        0,
        "once"
    );
    let charged: u64 = s.charges(other).unwrap().iter().map(|(_, v)| v).sum();
    assert_eq!(charged, 15_000);
}

fn locks_out_of_order_are_refused<E: Engine>(s: &SqlStorage<E>) {
    let err = s
        .write(|tx| {
            tx.lock(Lock::Scope("acct:a"))?;
            tx.lock(Lock::Deny)
        })
        .unwrap_err();
    assert!(err.message().contains("lock order"), "{err}");
    s.write(|tx| tx.lock_all(&[Lock::Deny, Lock::Card(1), Lock::Card(2), Lock::Scope("a")]))
        .unwrap();
}
