//! The change log on every engine: pushes applied once per key under each collection's
//! policy, a day's pushes bounded per account, pulls by scope and cursor.

use super::*;
use thudo_server::sync::store::{PushBudget, Pushed};

/// A budget no test reaches.
const ROOMY: PushBudget = PushBudget {
    day: 20_000,
    max_bytes: u64::MAX >> 2,
};

/// Pushes `mutations` within [`ROOMY`]: each one's outcome.
fn push<E: Engine>(s: &SqlStorage<E>, device: &Device, mutations: &[Mutation]) -> Vec<Outcome> {
    match s.push(device, mutations, ROOMY).unwrap() {
        Pushed::Done(results) => results.into_iter().map(|r| r.outcome).collect(),
        other => panic!("expected outcomes, got {other:?}"),
    }
}

pub(super) fn mutation(key: &str, collection: &str, id: &str, hlc: &str) -> Mutation {
    Mutation {
        idempotency_key: key.into(),
        seq: 1,
        collection: collection.into(),
        record_id: id.into(),
        op: "put".into(),
        payload: json!({"id": id, "text": key}),
        hlc: hlc.into(),
    }
}

pub(super) fn the_change_log<E: Engine>(s: &SqlStorage<E>) {
    let phone = device(s, CITIZEN, 1);
    let now = chrono::Utc::now().timestamp_millis();
    let hlc = |ms: i64| format!("{ms:013}-000000-phone");
    let first = push(
        s,
        &phone,
        &[mutation("k1", "handbook.note", "n1", &hlc(now))],
    );
    assert_eq!(first, vec![Outcome::Applied]);
    let again = push(
        s,
        &phone,
        &[mutation("k1", "handbook.note", "n1", &hlc(now))],
    );
    assert_eq!(again, vec![Outcome::Duplicate], "one key, applied once");
    let older = push(
        s,
        &phone,
        &[mutation("k2", "handbook.note", "n1", &hlc(now - 1000))],
    );
    assert_eq!(older, vec![Outcome::Superseded], "last writer wins");
    let unknown = push(s, &phone, &[mutation("k3", "nope", "x", &hlc(now))]);
    assert!(matches!(unknown[0], Outcome::Rejected { .. }));
    let scope = format!("acct:{}", phone.account_id);
    let published: Vec<Change> = (0..3)
        .map(|i| Change {
            collection: "handbook.note".into(),
            record_id: format!("p{i}"),
            op: "put".into(),
            payload: json!({"id": i}),
            hlc: String::new(),
        })
        .collect();
    assert_eq!(s.publish(&scope, &published).unwrap(), 3);
    let (page, cursor, more) = s.pull(&scope, "handbook.note", 0, 2).unwrap();
    assert_eq!((page.len(), more), (2, true));
    assert_eq!(page[0].record_id, "n1");
    let (rest, end, more) = s.pull(&scope, "handbook.note", cursor, 10).unwrap();
    let ids: Vec<&str> = rest.iter().map(|c| c.record_id.as_str()).collect();
    assert_eq!((ids, more), (vec!["p1", "p2"], false));
    let (none, same, _) = s.pull(&scope, "handbook.note", end, 10).unwrap();
    assert!(none.is_empty());
    assert_eq!(same, end, "a cursor at the end stays there");
    let (other, _, _) = s.pull("acct:someone-else", "handbook.note", 0, 10).unwrap();
    assert!(other.is_empty(), "scopes are apart");
    // Each position's mark names its change: another position's differs, none past the end or
    // in another scope or collection.
    let mark = |scope: &str, collection: &str, at: i64| s.mark_at(scope, collection, at).unwrap();
    assert!(mark(&scope, "handbook.note", cursor).is_some());
    assert_ne!(
        mark(&scope, "handbook.note", cursor),
        mark(&scope, "handbook.note", end)
    );
    assert_eq!(mark(&scope, "handbook.note", end + 1_000), None);
    assert_eq!(mark("acct:someone-else", "handbook.note", end), None);
    assert_eq!(mark(&scope, "health.records", end), None);
    // Pages across the rows a pull reads at once: every change once, in order, `more` exact.
    let many: Vec<Change> = (0..100)
        .map(|i| Change {
            record_id: format!("m{i:03}"),
            ..published[0].clone()
        })
        .collect();
    s.publish("acct:many", &many).unwrap();
    for limit in [1, 31, 32, 33, 64, 99, 100, 1000] {
        let (mut seen, mut cursor, mut pages) = (Vec::new(), 0, 0);
        loop {
            let (page, next, more) = s.pull("acct:many", "handbook.note", cursor, limit).unwrap();
            assert!(page.len() <= limit as usize);
            seen.extend(page.into_iter().map(|c| c.record_id));
            (cursor, pages) = (next, pages + 1);
            if !more {
                break;
            }
        }
        let expected: Vec<String> = (0..100).map(|i| format!("m{i:03}")).collect();
        assert_eq!(seen, expected, "limit {limit}");
        assert_eq!(pages, 100usize.div_ceil(limit as usize), "limit {limit}");
    }
    // What waits, for a progress bar: counted after a position, up to a cap, in one scope.
    assert_eq!(s.remaining(&scope, "handbook.note", 0, 100).unwrap(), 4);
    assert_eq!(
        s.remaining(&scope, "handbook.note", 0, 3).unwrap(),
        3,
        "capped"
    );
    assert_eq!(
        s.remaining(&scope, "handbook.note", cursor, 100).unwrap(),
        2
    );
    assert_eq!(s.remaining(&scope, "handbook.note", end, 100).unwrap(), 0);
    assert_eq!(
        s.remaining("acct:someone-else", "handbook.note", 0, 100)
            .unwrap(),
        0
    );
    assert_eq!(s.remaining(&scope, "health.records", 0, 100).unwrap(), 0);
    // A push authenticated before its device was revoked, and run after: it lands nowhere.
    let before = s.pull(&scope, "handbook.note", 0, 100).unwrap().0.len();
    s.revoke_device(&phone.account_id, &phone.id, 20, &|_, _, _| Ok(0))
        .unwrap()
        .unwrap();
    assert_eq!(
        s.push(
            &phone,
            &[mutation("k4", "handbook.note", "n4", &hlc(now))],
            ROOMY
        )
        .unwrap(),
        Pushed::Revoked
    );
    assert_eq!(
        s.pull(&scope, "handbook.note", 0, 100).unwrap().0.len(),
        before
    );
}

/// An account's pushes are counted by day, in the push: past the day's bytes a push is refused
/// whole, nothing applied or counted; retried keys count nothing (their answers always come);
/// another account, or the next day, has its own.
pub(super) fn a_days_pushes_are_bounded<E: Engine>(s: &SqlStorage<E>) {
    let (phone, other) = (device(s, CITIZEN, 1), device(s, OTHER, 2));
    let now = chrono::Utc::now().timestamp_millis();
    let note = |key: &str, bytes: usize| Mutation {
        payload: json!({"id": key, "text": "x".repeat(bytes)}),
        ..mutation(
            key,
            "handbook.note",
            key,
            &format!("{now:013}-000000-phone"),
        )
    };
    let day = |day: i64| PushBudget {
        day,
        max_bytes: 1_000,
    };
    let pushed = |d: &Device, batch: &[Mutation], budget: PushBudget| match s
        .push(d, batch, budget)
        .unwrap()
    {
        Pushed::Done(results) => Some(results.into_iter().map(|r| r.outcome).collect::<Vec<_>>()),
        Pushed::OverBudget => None,
        Pushed::Revoked => panic!("not revoked"),
    };
    let (a, b) = (note("a", 500), note("b", 300));
    let cost = |m: &Mutation| thudo_server::sync::store::push_cost(m, &m.payload.to_string());
    assert!(cost(&a) > 500 && cost(&a) + cost(&b) <= 1_000);
    assert_eq!(
        pushed(&phone, std::slice::from_ref(&a), day(100)),
        Some(vec![Outcome::Applied])
    );
    // Over the day's: refused whole, `b` not applied with it, nothing counted.
    let c = note("c", 600);
    assert_eq!(pushed(&phone, &[b.clone(), c.clone()], day(100)), None);
    let scope = format!("acct:{}", phone.account_id);
    let held = |s: &SqlStorage<E>| s.pull(&scope, "handbook.note", 0, 100).unwrap().0.len();
    assert_eq!(held(s), 1, "a refused batch applies nothing");
    // A retry of what was taken costs nothing, even beside a new key that fits.
    assert_eq!(
        pushed(&phone, &[a.clone(), b.clone()], day(100)),
        Some(vec![Outcome::Duplicate, Outcome::Applied])
    );
    assert_eq!(
        pushed(&phone, std::slice::from_ref(&c), day(100)),
        None,
        "the day is spent"
    );
    assert_eq!(
        pushed(&phone, &[a.clone(), b.clone()], day(100)),
        Some(vec![Outcome::Duplicate, Outcome::Duplicate]),
        "answers still come once the day is spent"
    );
    // A refused mutation is counted too (it was read and checked): the budget bounds work.
    let refused = Mutation {
        collection: "nope".into(),
        ..note("r", 10)
    };
    assert_eq!(
        pushed(&other, &[refused], day(100)).map(|o| o.len()),
        Some(1)
    );
    assert_eq!(
        pushed(&other, std::slice::from_ref(&c), day(100)).map(|o| o.len()),
        Some(1),
        "each account its own"
    );
    assert_eq!(
        pushed(&other, &[note("e", 200)], day(100)),
        None,
        "the refused mutation's 256 bytes were counted"
    );
    assert_eq!(
        pushed(&phone, std::slice::from_ref(&c), day(101)),
        Some(vec![Outcome::Applied]),
        "a new day"
    );
    // A day's first push is taken whatever its size (else a batch over the budget would be
    // refused every day, for ever); nothing more that day.
    assert_eq!(
        pushed(&phone, &[note("huge", 1_000)], day(102)),
        Some(vec![Outcome::Applied]),
        "more than a day's at once, first"
    );
    assert_eq!(pushed(&phone, &[note("f", 10)], day(102)), None);
    // An older day, come back (a clock set back): counted afresh, never a refusal for ever.
    assert_eq!(
        pushed(&phone, &[note("d", 10)], day(100)),
        Some(vec![Outcome::Applied])
    );
    assert_eq!(held(s), 5);
    // A key twice in one batch (a direct caller; the route refuses it): the second is the
    // first's retry, or another change under its key.
    let g = note("g", 10);
    let g_other = Mutation {
        payload: json!({"id": "g", "text": "other"}),
        ..g.clone()
    };
    assert_eq!(
        pushed(&phone, &[g.clone(), g.clone(), g_other], day(103)),
        Some(vec![
            Outcome::Applied,
            Outcome::Duplicate,
            Outcome::Rejected {
                reason: "idempotency_key_reused".into()
            }
        ])
    );
}

/// A key is bound to what it was first sent with: sent again with other content it is refused
/// (`idempotency_key_reused`), the first change left as it was; keys recorded before contents
/// were kept answer as before.
pub(super) fn a_key_is_bound_to_its_content<E: Engine>(s: &SqlStorage<E>) {
    let phone = device(s, CITIZEN, 1);
    let now = chrono::Utc::now().timestamp_millis();
    let first = mutation(
        "k1",
        "handbook.note",
        "n1",
        &format!("{now:013}-000000-phone"),
    );
    assert_eq!(
        push(s, &phone, std::slice::from_ref(&first)),
        vec![Outcome::Applied]
    );
    let reused = [
        Mutation {
            payload: json!({"id": "n1", "text": "other"}),
            ..first.clone()
        },
        Mutation {
            record_id: "n2".into(),
            ..first.clone()
        },
        Mutation {
            op: "delete".into(),
            ..first.clone()
        },
        Mutation {
            collection: "health.records".into(),
            ..first.clone()
        },
        Mutation {
            hlc: format!("{:013}-000000-phone", now + 1),
            ..first.clone()
        },
    ];
    for m in &reused {
        assert_eq!(
            push(s, &phone, std::slice::from_ref(m)),
            vec![Outcome::Rejected {
                reason: "idempotency_key_reused".into()
            }],
            "{m:?}"
        );
    }
    assert_eq!(
        push(s, &phone, std::slice::from_ref(&first)),
        vec![Outcome::Duplicate]
    );
    let scope = format!("acct:{}", phone.account_id);
    let (held, _, _) = s.pull(&scope, "handbook.note", 0, 100).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].payload, first.payload, "the first change stands");
    // Another account's same key is its own.
    let other = device(s, OTHER, 2);
    assert_eq!(push(s, &other, &reused[..1]), vec![Outcome::Applied]);
    // A key recorded before contents were kept: answered as before, whatever comes with it.
    s.write(|tx| {
        tx.exec(
            "UPDATE mutations SET digest = NULL WHERE idempotency_key = 'k1'",
            &[],
        )
    })
    .unwrap();
    assert_eq!(push(s, &phone, &reused[..1]), vec![Outcome::Duplicate]);
}

/// A published record is withdrawn by its publisher (or one it names) once, as a delete in the
/// scope's log; another publisher's, or one nobody published, is left alone.
pub(super) fn published_records_are_withdrawn_by_their_publisher<E: Engine>(s: &SqlStorage<E>) {
    use thudo_server::sync::store::{Published, Withdrawn};
    let scope = "cell:hn.ba-dinh.chi-bo-1";
    let change = |id: &str| Change {
        collection: "handbook.notice".into(),
        record_id: id.into(),
        op: "put".into(),
        payload: json!({"id": id, "title": "Thông báo"}),
        hlc: "1800000000000-000000-server".into(),
    };
    assert_eq!(
        s.publish_as(scope, &[change("tb-1")], "hn.ba-dinh", &|_| false)
            .unwrap(),
        Published::Published(1)
    );
    let withdraw = |id: &str, publisher: &str, may: &dyn Fn(&str) -> bool| {
        s.withdraw_as(scope, "handbook.notice", id, publisher, may)
            .unwrap()
    };
    assert_eq!(
        withdraw("tb-1", "hn.hoan-kiem", &|_| false),
        Withdrawn::NotYours
    );
    assert_eq!(
        withdraw("tb-2", "hn.ba-dinh", &|_| true),
        Withdrawn::NotFound
    );
    assert_eq!(
        withdraw("tb-1", "hn", &|o| o.starts_with("hn.")),
        Withdrawn::Withdrawn
    );
    assert_eq!(
        withdraw("tb-1", "hn.ba-dinh", &|_| false),
        Withdrawn::AlreadyWithdrawn
    );
    let (log, _, _) = s.pull(scope, "handbook.notice", 0, 100).unwrap();
    let ops: Vec<&str> = log.iter().map(|c| c.op.as_str()).collect();
    assert_eq!(ops, ["put", "delete"]);
    assert!(log[1].payload.is_null());
}
