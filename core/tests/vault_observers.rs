//! The vault's change observers: they hear of committed writes only, a burst merged, never on
//! the writer's thread.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use std::sync::Arc;

use common::open_pass;
use thudo_core::vault::VaultError;

#[test]
fn observers_hear_of_committed_writes_only() {
    use std::sync::Mutex;
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "pass").unwrap();
    let heard: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let sink = heard.clone();
    let id = v.observe(Arc::new(move |c: &[String]| {
        sink.lock().unwrap().push(c.to_vec())
    }));

    v.put("notes", "a", &[], b"1").unwrap();
    v.write_batch(&[
        thudo_core::vault::WriteOp::Put {
            collection: "notes".into(),
            id: "b".into(),
            index: vec![],
            body: b"2".to_vec(),
        },
        thudo_core::vault::WriteOp::Put {
            collection: "health".into(),
            id: "c".into(),
            index: vec![],
            body: b"3".to_vec(),
        },
    ])
    .unwrap();
    // Reads, a rolled-back transaction and deleting nothing are not changes.
    v.get("notes", "a").unwrap();
    let failed: Result<(), VaultError> = v.transaction(|tx| {
        tx.put("notes", "z", &[], b"x")?;
        Err(VaultError::InvalidArgument {
            reason: "changed my mind".into(),
        })
    });
    assert!(failed.is_err());
    assert!(!v.delete("notes", "nothing").unwrap());
    assert!(v.delete("notes", "a").unwrap());
    // Observers hear on the store's notifier thread: every collection written, each once per
    // call, and nothing of the rolled-back transaction ("z") or of the reads. Transactions that
    // commit while the notifier is busy arrive merged.
    let heard_all = |seen: &Mutex<Vec<Vec<String>>>| -> std::collections::BTreeSet<String> {
        seen.lock().unwrap().iter().flatten().cloned().collect()
    };
    // A last write to another collection: once it is heard, every earlier commit has been
    // (a merged call carries all that waited), so nothing of them can arrive later.
    v.put("marker", "m", &[], b"m").unwrap();
    for _ in 0..500 {
        if heard_all(&heard).contains("marker") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        heard_all(&heard),
        [
            "health".to_string(),
            "marker".to_string(),
            "notes".to_string()
        ]
        .into()
    );
    let calls = heard.lock().unwrap().clone();
    assert!((1..=4).contains(&calls.len()), "{calls:?}");
    for call in &calls {
        assert!(
            call.windows(2).all(|w| w[0] < w[1]),
            "sorted, each once: {call:?}"
        );
    }
    // An observer may read the vault (it is called after the lock is released), and stops
    // when asked.
    let reader_vault = Arc::new(v);
    let reads = Arc::new(Mutex::new(0u64));
    let (rv, counter) = (Arc::downgrade(&reader_vault), reads.clone());
    reader_vault.observe(Arc::new(move |_: &[String]| {
        if let Some(v) = rv.upgrade() {
            *counter.lock().unwrap() = v.count("notes").unwrap();
        }
    }));
    assert!(reader_vault.unobserve(id));
    assert!(!reader_vault.unobserve(id));
    reader_vault.put("notes", "d", &[], b"4").unwrap();
    for _ in 0..500 {
        if *reads.lock().unwrap() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(*reads.lock().unwrap(), 2);
    assert_eq!(
        heard.lock().unwrap().len(),
        calls.len(),
        "nothing after unobserve"
    );
}

#[test]
fn a_slow_observer_hears_a_burst_merged_and_nothing_piles_up() {
    use std::sync::mpsc;
    use std::sync::Mutex;
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "pass").unwrap();
    // The observer blocks in its first call until the test lets it go.
    let (release, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let heard: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let sink = heard.clone();
    v.observe(Arc::new(move |c: &[String]| {
        let first = sink.lock().unwrap().is_empty();
        sink.lock().unwrap().push(c.to_vec());
        if first {
            let _ = gate.lock().unwrap().recv();
        }
    }));
    v.put("notes", "first", &[], b"0").unwrap();
    for _ in 0..500 {
        if !heard.lock().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // 2,000 transactions while the observer is stuck: one notification's worth waits.
    for i in 0..2_000 {
        let collection = if i % 2 == 0 { "notes" } else { "health" };
        v.put(collection, &format!("r{i}"), &[], b"x").unwrap();
    }
    release.send(()).unwrap();
    for _ in 0..500 {
        if heard.lock().unwrap().len() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    let heard = heard.lock().unwrap();
    assert_eq!(
        *heard,
        vec![
            vec!["notes".to_string()],
            vec!["health".to_string(), "notes".to_string()],
        ],
        "the burst arrives as one call"
    );
}

#[test]
fn an_observer_never_runs_on_the_writer_thread() {
    use std::sync::Mutex;
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "pass").unwrap();
    // A writer holding its own lock while it writes (as a validator logs a tap), and an
    // observer that takes that lock: on the writer's thread this would deadlock.
    let writer_lock = Arc::new(Mutex::new(()));
    let (lock_for_observer, seen) = (writer_lock.clone(), Arc::new(Mutex::new(Vec::new())));
    let sink = seen.clone();
    v.observe(Arc::new(move |c: &[String]| {
        let _held = lock_for_observer.lock().unwrap();
        sink.lock()
            .unwrap()
            .push((std::thread::current().name().map(str::to_owned), c.to_vec()));
    }));
    {
        let _held = writer_lock.lock().unwrap();
        v.put("transit.tap", "1", &[], b"tap").unwrap();
    }
    for _ in 0..500 {
        if !seen.lock().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0.as_deref(), Some("thudo-changes"));
    assert_eq!(seen[0].1, vec!["transit.tap".to_string()]);
}
