//! Inspection: a ticket checked without being used, paired with the vehicle's taps.

use thudo_core::transit::validator::{Reason, Validator, ValidatorConfig};
use thudo_core::transit::Product;

use crate::world::{vault, world, NOW};

#[test]
fn an_inspection_uses_nothing_and_sees_whether_the_card_tapped_here() {
    use thudo_core::transit::inspection::InspectionOutcome;
    let mut w = world();
    let (_d, inspector_vault) = vault();
    let mut inspector = Validator::open(
        inspector_vault,
        vec![w.issuer.trusted().clone()],
        ValidatorConfig::default(),
    )
    .unwrap();
    // Inspected twice, then tapped: the ticket was not used by the inspections.
    let qr = w.phone.current_qr(NOW).unwrap().text;
    for _ in 0..2 {
        let i = inspector.inspect(&qr, NOW + 1, None).unwrap();
        assert_eq!(
            (i.outcome, i.reason),
            (InspectionOutcome::Valid, Reason::Ok)
        );
        assert_eq!(i.card_id, Some(9_704_000_000_123));
        assert_eq!(i.product, Some(Product::MonthlyAllRoutes));
        assert!(!i.paired);
    }
    assert_eq!(inspector.tap_log_status().next_seq, 1, "no tap logged");
    assert!(w.validator.validate(&qr, NOW + 2).unwrap().accepted);
    // Paired with the bus's log: this card tapped on it.
    let bus_taps = w.validator.recent_taps(NOW - 3600).unwrap();
    let later = w.phone.current_qr(NOW + 600).unwrap().text;
    let i = inspector
        .inspect(&later, NOW + 600, Some(&bus_taps))
        .unwrap();
    assert_eq!(i.outcome, InspectionOutcome::Valid);
    assert_eq!(i.tapped_at, Some(NOW + 2));
    assert_eq!(i.presentation(NOW + 600).line_en, "Valid ticket");
    // A rider who never tapped on this bus, or tapped more than three hours ago.
    let i = inspector.inspect(&later, NOW + 600, Some(&[])).unwrap();
    assert_eq!(i.outcome, InspectionOutcome::NotTapped);
    let much_later = w.phone.current_qr(NOW + 4 * 3600).unwrap().text;
    let i = inspector
        .inspect(&much_later, NOW + 4 * 3600, Some(&bus_taps))
        .unwrap();
    assert_eq!(
        (i.outcome, i.tapped_at),
        (InspectionOutcome::NotTapped, None)
    );
    // A screenshot (an old QR) and junk are invalid, with the reason.
    let i = inspector.inspect(&qr, NOW + 600, None).unwrap();
    assert_eq!(
        (i.outcome, i.reason),
        (InspectionOutcome::Invalid, Reason::Expired)
    );
    let i = inspector.inspect("not a ticket", NOW + 600, None).unwrap();
    assert_eq!((i.outcome, i.card_id), (InspectionOutcome::Invalid, None));
    assert_eq!(
        i.presentation(NOW).signal,
        thudo_core::transit::presentation::Signal::Stop
    );
    // Every inspection is recorded; acknowledged ones go, and numbers are never reused.
    // Junk is shown but not recorded (seq 0): it cannot fill the log.
    assert_eq!(i.seq, 0);
    let recorded = inspector.export_inspections().unwrap();
    assert_eq!(
        recorded.iter().map(|i| i.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(inspector.acknowledge_inspections(5).unwrap(), 5);
    let i = inspector.inspect(&later, NOW + 601, None).unwrap();
    assert_eq!(i.seq, 7);
    assert_eq!(inspector.export_inspections().unwrap().len(), 2);
    // The vehicle keeps its taps for pairing after they are uploaded and acknowledged.
    let seq = w.validator.tap_log_status().next_seq - 1;
    w.validator.acknowledge_taps(seq).unwrap();
    assert!(w.validator.export_taps().unwrap().is_empty());
    let recent = w.validator.recent_taps(NOW).unwrap();
    assert_eq!(recent.len(), 1);
    let i = inspector.inspect(&later, NOW + 602, Some(&recent)).unwrap();
    assert_eq!(
        (i.outcome, i.tapped_at),
        (InspectionOutcome::Valid, Some(NOW + 2))
    );
    // A vehicle clock a little ahead of the inspector's still counts its tap.
    let i = inspector.inspect(&later, NOW, Some(&recent)).unwrap();
    assert_eq!(i.tapped_at, Some(NOW + 2));
}

/// Inspections the backend names as reused move past its numbers with those recorded since the
/// upload, in the order they were made, and later ones follow them.
#[test]
fn reused_inspection_numbers_move_past_the_backends() {
    let w = world();
    let (_d, inspector_vault) = vault();
    let mut inspector = Validator::open(
        inspector_vault,
        vec![w.issuer.trusted().clone()],
        ValidatorConfig::default(),
    )
    .unwrap();
    for minute in 0..3 {
        let at = NOW + minute * 60;
        let qr = w.phone.current_qr(at).unwrap().text;
        inspector.inspect(&qr, at, None).unwrap();
    }
    // 1 and 2 were uploaded, 2 is reused, 3 was recorded meanwhile.
    assert_eq!(inspector.renumber_inspections(&[2], 2, 20).unwrap(), 2);
    assert_eq!(
        inspector.renumber_inspections(&[2], 2, 20).unwrap(),
        0,
        "once"
    );
    let recorded = inspector.export_inspections().unwrap();
    let moved: Vec<(u64, u64)> = recorded.iter().map(|i| (i.seq, i.at)).collect();
    assert_eq!(moved, [(1, NOW), (20, NOW + 60), (21, NOW + 120)]);
    inspector.acknowledge_inspections(2).unwrap();
    let qr = w.phone.current_qr(NOW + 600).unwrap().text;
    assert_eq!(inspector.inspect(&qr, NOW + 600, None).unwrap().seq, 22);
    assert!(inspector.renumber_inspections(&[20], 21, u64::MAX).is_err());
}
