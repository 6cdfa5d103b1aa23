//! Reminders across the domains: what is listed, when, with stable ids; what is left out; and
//! that every write they depend on is a change an app observing `SOURCES` hears of.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use common::member_profile as profile;

use std::sync::{Arc, Mutex};

use thudo_core::handbook::fees::{Assessment, FeeBasis, FeeLedger, YearMonth};
use thudo_core::handbook::member::{Meeting, MemberHandbook};
use thudo_core::health::records::{Gender, HealthBook, Person};
use thudo_core::health::schedule::{self, DoseState};
use thudo_core::reminders::{self, ReminderError, ReminderKind, ReminderSources, SOURCES};
use thudo_core::transit::issuer::{CredentialRequest, IssuerKey};
use thudo_core::transit::phone::{Phone, PhoneOptions};
use thudo_core::transit::{Category, Product};
use thudo_core::vault::{Unlock, Vault, VaultError};

/// 2026-09-21 13:33:20 UTC, 20:33 in Hanoi.
const NOW: i64 = 1_790_000_000;
const DAY: i64 = 86_400;
/// 2026-10-01 08:00 in Hanoi.
const OCT_1_MORNING: i64 = 1_790_816_400;

fn assessment(month: &str, due_vnd: u64) -> Assessment {
    Assessment {
        month: YearMonth::parse(month).unwrap(),
        regulation: "01-QĐ/TW".into(),
        basis: Some(FeeBasis::Pension),
        rule: "0.5% of the pension".into(),
        rule_confirmed: true,
        base_vnd: due_vnd,
        relief_percent: 0,
        due_vnd,
    }
}

fn person(name: &str, birth: &str) -> Person {
    Person {
        id: None,
        full_name: name.into(),
        birth_date: birth.into(),
        gender: Gender::Female,
        citizen_id: None,
        insurance: None,
    }
}

struct Home {
    _dir: tempfile::TempDir,
    vault: Arc<Vault>,
    phone: Phone,
    child: String,
    heard: Arc<Mutex<Vec<String>>>,
}

fn home() -> Home {
    let dir = tempfile::tempdir().unwrap();
    let vault =
        Arc::new(Vault::open(dir.path(), Unlock::passphrase("p"), &common::fast()).unwrap());
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = heard.clone();
    vault.observe(Arc::new(move |changed: &[String]| {
        sink.lock().unwrap().extend(changed.iter().cloned())
    }));
    let member = MemberHandbook::new(&vault);
    member.set_profile(&profile()).unwrap();
    member
        .upsert_meetings(&[
            Meeting {
                id: "m-sep".into(),
                date: "2026-09-10".into(),
                topic: "Tháng 9".into(),
                document_ids: vec![],
                cell: None,
                attendance_key: None,
                attachments: vec![],
            },
            Meeting {
                id: "m-oct".into(),
                date: "2026-10-05".into(),
                topic: "Học tập Nghị quyết 57".into(),
                document_ids: vec![],
                cell: None,
                attendance_key: None,
                attachments: vec![],
            },
            Meeting {
                id: "m-nov".into(),
                date: "2026-11-05".into(),
                topic: "Tháng 11".into(),
                document_ids: vec![],
                cell: None,
                attendance_key: None,
                attachments: vec![],
            },
        ])
        .unwrap();
    let ledger = FeeLedger::new(&vault);
    for (month, due) in [
        ("2026-07", 25_000),
        ("2026-08", 25_000),
        ("2026-10", 25_000),
    ] {
        ledger.record_assessment(assessment(month, due)).unwrap();
    }
    ledger
        .record_payment(YearMonth::parse("2026-07").unwrap(), 25_000)
        .unwrap();
    ledger
        .record_payment(YearMonth::parse("2026-08").unwrap(), 10_000)
        .unwrap();
    let book = HealthBook::new(&vault);
    let child = book
        .save_person(&person("Bé Lan", "2026-06-01"), NOW as u64)
        .unwrap();
    book.save_person(&person("Trần Thị Hoa", "1980-01-01"), NOW as u64)
        .unwrap();
    let (issuer, _) =
        IssuerKey::generate(7, (NOW - 30 * DAY) as u32, (NOW + 300 * DAY) as u32).unwrap();
    let phone = Phone::open(vault.clone(), None, PhoneOptions::default()).unwrap();
    let credential = issuer
        .issue(
            &CredentialRequest {
                card_id: 9_704_000_000_123,
                product: Product::MonthlyAllRoutes,
                category: Category::Standard,
                route: 0,
                pass_valid_from: (NOW - 20 * DAY) as u32,
                pass_valid_until: (NOW + 10 * DAY) as u32,
                device_public_key: phone.device_public_key().to_vec(),
                lifetime_secs: 72 * 3600,
                with_holder: false,
            },
            NOW as u32,
        )
        .unwrap();
    phone.install_credential(&credential).unwrap();
    Home {
        _dir: dir,
        vault,
        phone,
        child,
        heard,
    }
}

fn list(h: &Home, from: i64, to: i64) -> Vec<reminders::Reminder> {
    let sources = ReminderSources {
        vault: &h.vault,
        phone: Some(&h.phone),
        rotavirus: false,
    };
    reminders::upcoming(&sources, from, to, NOW).unwrap()
}

#[test]
fn one_list_across_the_domains_with_stable_ids() {
    let h = home();
    let all = list(&h, NOW, NOW + 30 * DAY);
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    // Soonest first, every id once.
    assert!(all.windows(2).all(|w| w[0].at <= w[1].at), "{ids:?}");
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());

    let find = |id: &str| all.iter().find(|r| r.id == id);
    // The meeting in the window, at 08:00 Hanoi time on its day; not the past or later ones.
    let meeting = find("meeting:m-oct").unwrap();
    assert_eq!(meeting.at, OCT_1_MORNING + 4 * DAY);
    assert!(meeting.text.contains("Nghị quyết 57"));
    assert!(find("meeting:m-sep").is_none() && find("meeting:m-nov").is_none());
    // Fees: August part-paid is overdue (listed though before the window), September (this
    // month, never assessed) and October are due; July is paid.
    let august = find("fee_unpaid:2026-08").unwrap();
    assert!(
        august.at < NOW && august.text.contains("15.000 đ"),
        "{}",
        august.text
    );
    assert!(find("fee_due:2026-09").is_some());
    let october = find("fee_due:2026-10").unwrap();
    assert_eq!(october.at, OCT_1_MORNING);
    assert!(october.text.contains("25.000 đ"));
    assert!(!ids.iter().any(|id| id.contains("2026-07")));
    // The monthly pass ends in 10 days: reminded 3 days before. Its credential lapses in 72 h
    // while the pass goes on: reminded a day before to go online.
    let pass = all
        .iter()
        .find(|r| r.kind == ReminderKind::PassEnding)
        .unwrap();
    assert_eq!(
        (pass.at, pass.subject.as_str()),
        (NOW + 7 * DAY, "9704000000123")
    );
    let renewal = all
        .iter()
        .find(|r| r.kind == ReminderKind::CredentialRenewal)
        .unwrap();
    assert_eq!(renewal.at, NOW + 2 * DAY);
    // The child's doses: the birth doses are overdue; each dose falling due in the window is
    // listed at 08:00 on its day. The adult, whose childhood doses are not recorded, gets none.
    let today = chrono::NaiveDate::from_ymd_opt(2026, 9, 21).unwrap();
    let doses = HealthBook::new(&h.vault)
        .schedule(&h.child, today, false)
        .unwrap();
    let mut expected = 0;
    for d in &doses {
        let id_tail = format!("{}/{}/{}", h.child, d.vaccine, d.dose);
        match d.state {
            DoseState::Overdue => {
                expected += 1;
                let r = find(&format!("vaccine_overdue:{id_tail}")).unwrap();
                assert!(r.at <= NOW && r.text.starts_with("Bé Lan"));
            }
            DoseState::Due => {
                expected += 1;
                assert!(find(&format!("vaccine_due:{id_tail}")).is_some());
            }
            DoseState::Upcoming => {
                let listed = find(&format!("vaccine_due:{id_tail}")).is_some();
                let falls = d.due_on.is_some_and(|due| {
                    due > today && due <= chrono::NaiveDate::from_ymd_opt(2026, 10, 21).unwrap()
                });
                assert_eq!(listed, falls, "{id_tail}");
                expected += usize::from(falls);
            }
            DoseState::Done => {}
        }
    }
    let vaccine_reminders = all
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                ReminderKind::VaccineDue | ReminderKind::VaccineOverdue
            )
        })
        .count();
    assert_eq!(vaccine_reminders, expected);
    assert!(
        expected >= 3,
        "birth doses overdue and a 4-month dose due: {expected}"
    );
    assert!(all.iter().all(|r| !r.text.contains("Trần Thị Hoa")));

    // The same call again gives the same reminders.
    assert_eq!(list(&h, NOW, NOW + 30 * DAY), all);
}

#[test]
fn what_is_done_leaves_the_list_and_each_source_is_observed() {
    let h = home();
    // Every write the reminders read from was heard in a collection of SOURCES.
    let heard: Vec<String> = h.heard.lock().unwrap().drain(..).collect();
    for source in [
        "handbook.profile",
        "handbook.meeting",
        "handbook.fee",
        "health.records",
        "transit.phone",
    ] {
        assert!(SOURCES.contains(&source));
        assert!(
            heard.iter().any(|c| c == source),
            "{source} not heard: {heard:?}"
        );
    }
    let before = list(&h, NOW, NOW + 30 * DAY);
    FeeLedger::new(&h.vault)
        .record_payment(YearMonth::parse("2026-08").unwrap(), 15_000)
        .unwrap();
    let after = list(&h, NOW, NOW + 30 * DAY);
    assert!(before.iter().any(|r| r.id == "fee_unpaid:2026-08"));
    assert!(!after.iter().any(|r| r.id == "fee_unpaid:2026-08"));
    assert_eq!(before.len(), after.len() + 1);
    // A short window holds only what falls in it, plus what is overdue.
    let tonight = list(&h, NOW, NOW + 3600);
    assert!(tonight.iter().all(|r| r.at <= NOW + 3600), "{tonight:?}");
    assert!(tonight
        .iter()
        .any(|r| r.kind == ReminderKind::VaccineOverdue));
    // Without a member profile there are no fee reminders; without a phone, no transit ones.
    let dir = tempfile::tempdir().unwrap();
    let bare = Vault::open(dir.path(), Unlock::passphrase("p"), &common::fast()).unwrap();
    FeeLedger::new(&bare)
        .record_assessment(assessment("2026-08", 25_000))
        .unwrap();
    let sources = ReminderSources {
        vault: &bare,
        phone: None,
        rotavirus: false,
    };
    assert!(reminders::upcoming(&sources, NOW, NOW + 30 * DAY, NOW)
        .unwrap()
        .is_empty());
}

#[test]
fn bad_windows_and_a_closed_vault_are_errors_and_odd_records_are_skipped() {
    let h = home();
    let sources = ReminderSources {
        vault: &h.vault,
        phone: Some(&h.phone),
        rotavirus: true,
    };
    assert!(matches!(
        reminders::upcoming(&sources, NOW, NOW - 1, NOW),
        Err(ReminderError::Invalid { .. })
    ));
    assert!(matches!(
        reminders::upcoming(&sources, i64::MAX - 1, i64::MAX, NOW),
        Err(ReminderError::Invalid { .. })
    ));
    // A person without a date of birth (as a facility may publish) is left out, not an error.
    HealthBook::new(&h.vault)
        .put_resource(
            r#"{"resourceType":"Patient","id":"nobirth","name":[{"text":"Ai đó"}]}"#,
            NOW as u64,
        )
        .unwrap();
    let with_rota = reminders::upcoming(&sources, NOW, NOW + 30 * DAY, NOW).unwrap();
    assert!(with_rota.iter().any(|r| r.subject.contains("/Rota/")));
    assert!(!with_rota.iter().any(|r| r.text.contains("Ai đó")));
    // Which schedule doses exist is the schedule's business; rotavirus adds two.
    assert_eq!(schedule::ROTAVIRUS.len(), 2);
    h.vault.close();
    assert!(matches!(
        reminders::upcoming(&sources, NOW, NOW + DAY, NOW),
        Err(ReminderError::Vault(VaultError::Closed))
    ));
}
