//! Attendance that proves itself, between two phones with no network: the secretary's phone
//! shows a meeting QR under a credential the backend issued; a member's phone checks and
//! countersigns it. Forged, replayed, late, stale, wrong-cell, truncated and oversized QRs are
//! refused; the evidence verifies as the backend checks it.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use thudo_core::handbook::attendance::{
    self, format_attendance_key, AttendanceError, CheckInStatus, CheckIns, MeetingIssuer,
    MeetingSecretary, CHECK_IN_LEN, MAX_SCAN_SKEW_SECS, QR_PREFIX,
};
use thudo_core::handbook::member::{Attendance, AttendanceStatus, Meeting, MemberHandbook};
use thudo_core::vault::{Unlock, Vault};

const CELL: &str = "hn.ba-dinh.chi-bo-1";
/// 2026-12-05 00:00 in Hanoi, and the meeting's day after it.
const OPENS: u32 = 1_796_403_600;
const CLOSES: u32 = OPENS + 86_399;
const NOW: u32 = OPENS + 9 * 3600;

fn vault(dir: &tempfile::TempDir, name: &str) -> Vault {
    Vault::open(
        dir.path().join(name),
        Unlock::passphrase("p"),
        &common::fast(),
    )
    .unwrap()
}

fn meeting(id: &str, cell: &str, key: Option<String>) -> Meeting {
    Meeting {
        id: id.into(),
        date: "2026-12-05".into(),
        topic: "Sinh hoạt chi bộ tháng 12".into(),
        document_ids: vec![],
        cell: Some(cell.into()),
        attendance_key: key,
        attachments: vec![],
    }
}

struct Room {
    _dir: tempfile::TempDir,
    issuer: MeetingIssuer,
    secretary: Vault,
    member: Vault,
}

fn room() -> Room {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, _) = MeetingIssuer::generate(1).unwrap();
    let secretary = vault(&dir, "secretary");
    let member = vault(&dir, "member");
    let key = Some(format_attendance_key(1, &issuer.public_key()));
    for v in [&secretary, &member] {
        MemberHandbook::new(v)
            .upsert_meetings(&[
                meeting("m-12", CELL, key.clone()),
                meeting("m-old", CELL, None),
            ])
            .unwrap();
    }
    let (public, _) = MeetingSecretary::new(&secretary)
        .key_and_proof("m-12")
        .unwrap();
    let credential = issuer.issue("m-12", CELL, OPENS, CLOSES, &public).unwrap();
    MeetingSecretary::new(&secretary)
        .install("m-12", &credential)
        .unwrap();
    Room {
        _dir: dir,
        issuer,
        secretary,
        member,
    }
}

fn refused(r: Result<impl std::fmt::Debug, AttendanceError>) -> AttendanceError {
    r.unwrap_err()
}

#[test]
fn a_member_checks_in_offline_and_the_evidence_verifies() {
    let r = room();
    let qr = MeetingSecretary::new(&r.secretary).qr("m-12", NOW).unwrap();
    assert!(qr.starts_with(QR_PREFIX));
    assert_eq!(qr.len(), 323, "alphanumeric mode, as a transit QR");
    // Each QR differs, even within one second.
    assert_ne!(
        qr,
        MeetingSecretary::new(&r.secretary).qr("m-12", NOW).unwrap()
    );
    let check_in = CheckIns::new(&r.member).scan(&qr, NOW + 40).unwrap();
    assert_eq!(check_in.status, CheckInStatus::Pending);
    assert_eq!((check_in.shown_at, check_in.scanned_at), (NOW, NOW + 40));
    // Attendance is recorded present in the same transaction.
    assert_eq!(
        CheckIns::new(&r.member).pending().unwrap(),
        vec![check_in.clone()]
    );
    let evidence = thudo_core::hex::decode(&check_in.evidence).unwrap();
    assert_eq!(evidence.len(), CHECK_IN_LEN);
    let public = r.issuer.public_key().to_vec();
    let verified =
        attendance::verify_check_in(&evidence, |id| (id == 1).then(|| public.clone())).unwrap();
    assert_eq!(verified.qr.credential.cell, attendance::cell_hash(CELL));
    assert_eq!(
        verified.qr.credential.meeting,
        attendance::meeting_hash("m-12")
    );
    // Under another backend key, it is forged.
    let (other, _) = MeetingIssuer::generate(1).unwrap();
    let other = other.public_key().to_vec();
    assert!(matches!(
        attendance::verify_check_in(&evidence, |_| Some(other.clone())),
        Err(AttendanceError::Forged { .. })
    ));
    // Settled by the backend, it leaves the pending list.
    CheckIns::new(&r.member)
        .settle("m-12", CheckInStatus::Accepted)
        .unwrap();
    assert!(CheckIns::new(&r.member).pending().unwrap().is_empty());
}

#[test]
fn forged_replayed_late_stale_and_wrong_cell_qrs_are_refused() {
    let r = room();
    let qr = MeetingSecretary::new(&r.secretary).qr("m-12", NOW).unwrap();
    let member = CheckIns::new(&r.member);

    // Altered: one character of the base45 text changed.
    let mut altered: Vec<char> = qr.chars().collect();
    let at = QR_PREFIX.len() + 200;
    altered[at] = if altered[at] == 'A' { 'B' } else { 'A' };
    let altered: String = altered.into_iter().collect();
    assert!(matches!(
        refused(member.scan(&altered, NOW + 1)),
        AttendanceError::Forged { .. } | AttendanceError::BadQr { .. }
    ));
    // Truncated, oversized, another code altogether.
    assert!(matches!(
        refused(member.scan(&qr[..qr.len() - 3], NOW + 1)),
        AttendanceError::BadQr { .. }
    ));
    assert!(matches!(
        refused(member.scan(&format!("{qr}{}", "0".repeat(600)), NOW + 1)),
        AttendanceError::BadQr { .. }
    ));
    assert!(matches!(
        refused(member.scan("HNT1:ABCDEF", NOW + 1)),
        AttendanceError::BadQr { .. }
    ));
    assert!(matches!(
        refused(member.scan("", NOW + 1)),
        AttendanceError::BadQr { .. }
    ));
    // Stale: a screenshot scanned twenty minutes later, or a clock far behind.
    assert!(matches!(
        refused(member.scan(&qr, NOW + 1_200)),
        AttendanceError::Stale { seconds: 1_200 }
    ));
    assert!(matches!(
        refused(member.scan(&qr, NOW - MAX_SCAN_SKEW_SECS as u32 - 1)),
        AttendanceError::Stale { .. }
    ));
    // A QR signed by a phone that holds no credential for its key: the credential is another
    // phone's, so the signature does not verify.
    let dir = tempfile::tempdir().unwrap();
    let impostor = vault(&dir, "impostor");
    let held: attendance::HeldMeetingCredential = r.secretary.get_doc("m-12").unwrap().unwrap();
    assert!(matches!(
        MeetingSecretary::new(&impostor)
            .install("m-12", &thudo_core::hex::decode(&held.credential).unwrap()),
        Err(AttendanceError::InvalidCredential { .. })
    ));
    // The secretary's phone will not show a QR outside the meeting's day.
    assert!(matches!(
        MeetingSecretary::new(&r.secretary).qr("m-12", CLOSES + 1),
        Err(AttendanceError::NotOpen)
    ));
    // A credential issued by a key the meeting does not carry.
    let (rogue, _) = MeetingIssuer::generate(1).unwrap();
    let (public, _) = MeetingSecretary::new(&r.secretary)
        .key_and_proof("m-12")
        .unwrap();
    let rogue_credential = rogue.issue("m-12", CELL, OPENS, CLOSES, &public).unwrap();
    MeetingSecretary::new(&r.secretary)
        .install("m-12", &rogue_credential)
        .unwrap();
    let rogue_qr = MeetingSecretary::new(&r.secretary).qr("m-12", NOW).unwrap();
    assert!(matches!(
        refused(member.scan(&rogue_qr, NOW + 1)),
        AttendanceError::Forged { .. }
    ));
    // Another cell's meeting of the same id: the member's meeting is in CELL.
    let other_cell = r
        .issuer
        .issue("m-12", "hn.ba-dinh.chi-bo-2", OPENS, CLOSES, &public)
        .unwrap();
    MeetingSecretary::new(&r.secretary)
        .install("m-12", &other_cell)
        .unwrap();
    let wrong = MeetingSecretary::new(&r.secretary).qr("m-12", NOW).unwrap();
    assert!(matches!(
        refused(member.scan(&wrong, NOW + 1)),
        AttendanceError::WrongCell
    ));
    // A meeting this phone does not hold.
    let unknown = r
        .issuer
        .issue("m-99", CELL, OPENS, CLOSES, &public)
        .unwrap();
    MeetingSecretary::new(&r.secretary)
        .install("m-99", &unknown)
        .unwrap();
    let unknown = MeetingSecretary::new(&r.secretary).qr("m-99", NOW).unwrap();
    assert!(matches!(
        refused(member.scan(&unknown, NOW + 1)),
        AttendanceError::UnknownMeeting
    ));
    // A meeting published without an attendance key takes self-declared attendance only.
    let old = r
        .issuer
        .issue("m-old", CELL, OPENS, CLOSES, &public)
        .unwrap();
    MeetingSecretary::new(&r.secretary)
        .install("m-old", &old)
        .unwrap();
    let old = MeetingSecretary::new(&r.secretary)
        .qr("m-old", NOW)
        .unwrap();
    assert!(matches!(
        refused(member.scan(&old, NOW + 1)),
        AttendanceError::NotVerifiable { .. }
    ));
    // Nothing refused was kept.
    assert!(member.all().unwrap().is_empty());

    // The real QR checks in once; scanning it again (a replay) is refused.
    let real = r
        .issuer
        .issue("m-12", CELL, OPENS, CLOSES, &public)
        .unwrap();
    MeetingSecretary::new(&r.secretary)
        .install("m-12", &real)
        .unwrap();
    let qr = MeetingSecretary::new(&r.secretary).qr("m-12", NOW).unwrap();
    member.scan(&qr, NOW + 2).unwrap();
    assert!(matches!(
        refused(member.scan(&qr, NOW + 3)),
        AttendanceError::AlreadyCheckedIn { .. }
    ));
    // A check-in the backend refused may be made again.
    member
        .settle(
            "m-12",
            CheckInStatus::Refused {
                reason: "stale".into(),
            },
        )
        .unwrap();
    member.scan(&qr, NOW + 4).unwrap();
    // The member is recorded present, queued for sync with the check-in.
    let recorded: Attendance = r.member.get_doc("m-12").unwrap().unwrap();
    assert_eq!(recorded.status, AttendanceStatus::Present);
}

/// The published vector (docs/protocol/meeting-qr.md): a third party's implementation checks
/// against it, and this one must keep reading it.
#[test]
fn the_published_vector_verifies() {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("data/attendance/vector.json")).unwrap();
    let text = |k: &str| v[k].as_str().unwrap().to_owned();
    let bytes = |k: &str| thudo_core::hex::decode(v[k].as_str().unwrap()).unwrap();
    assert_eq!(
        bytes("meeting_hash"),
        attendance::meeting_hash(&text("meeting_id"))
    );
    assert_eq!(bytes("cell_hash"), attendance::cell_hash(&text("cell")));
    let (key_id, issuer_key) = attendance::parse_attendance_key(&text("attendance_key")).unwrap();
    // The secretary's proof of its key.
    let secretary = bytes("secretary_key");
    let full = thudo_core::crypto::p256::decompress(&secretary).unwrap();
    assert!(thudo_core::crypto::p256::verify(
        &full,
        &attendance::key_proof_message(&text("meeting_id"), &secretary),
        &bytes("key_proof")
    ));
    // The QR as a member's phone reads it, and the check-in as the backend checks it.
    let shown = attendance::read_qr(&text("qr_text"), key_id, &issuer_key).unwrap();
    assert_eq!(u64::from(shown.shown_at), v["shown_at"].as_u64().unwrap());
    assert_eq!(
        shown.payload[..attendance::CREDENTIAL_LEN],
        bytes("credential")[..]
    );
    assert_eq!(
        (
            u64::from(shown.credential.opens),
            u64::from(shown.credential.closes)
        ),
        (v["opens"].as_u64().unwrap(), v["closes"].as_u64().unwrap())
    );
    let checked = attendance::verify_check_in(&bytes("check_in"), |id| {
        (id == key_id).then(|| issuer_key.clone())
    })
    .unwrap();
    assert_eq!(
        u64::from(checked.scanned_at),
        v["scanned_at"].as_u64().unwrap()
    );
    assert_eq!(checked.qr.payload, shown.payload);
}
