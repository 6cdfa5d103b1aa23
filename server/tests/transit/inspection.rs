//! Inspections are recorded once and counted from their evidence.

use super::world::*;

/// An inspector restored from a backup (here reinstalled with its token: it numbers from 1
/// again) has its inspections under reused numbers named, moved past them and stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_inspectors_inspections_are_renumbered_not_lost() {
    let w = World::start().await;
    let (_, rider) = w.rider("rider", RIDER, Product::PayAsYouGo).await;
    let (token, first, _) = w.inspector("inspector", 32).await;
    let t = tomorrow_morning();
    let first = Arc::new(Mutex::new(first));
    for minute in 0..2 {
        let at = t + minute * 60;
        first
            .lock()
            .unwrap()
            .inspect(&rider.current_qr(at).unwrap().text, at, None)
            .unwrap();
    }
    let receipt = w
        .transit()
        .upload_inspections(token.clone(), first)
        .await
        .unwrap();
    assert_eq!((receipt.stored, receipt.acknowledged_seq), (2, 2));

    let feed = w.transit().validator_feed(token.clone()).await.unwrap();
    let restored = Validator::open(
        vault(&w.dir.path().join("inspector-restored")),
        feed.issuer_keys,
        ValidatorConfig {
            route: 32,
            ..ValidatorConfig::default()
        },
    )
    .unwrap();
    let restored = Arc::new(Mutex::new(restored));
    let at = t + 3600;
    let inspection = restored
        .lock()
        .unwrap()
        .inspect(&rider.current_qr(at).unwrap().text, at, None)
        .unwrap();
    assert_eq!(inspection.seq, 1, "numbered from 1 again");
    let receipt = w
        .transit()
        .upload_inspections(token, restored.clone())
        .await
        .unwrap();
    assert_eq!(receipt.reused, [1]);
    assert_eq!((receipt.stored, receipt.duplicates), (1, 0));
    let left = restored.lock().unwrap().export_inspections().unwrap();
    assert!(left.is_empty(), "{left:?}");
    let stats = w.admin_get("/v1/admin/transit/inspections").await;
    assert_eq!(stats["inspections"], 3, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspections_are_recorded_once_and_counted_from_their_evidence() {
    use thudo_core::transit::inspection::InspectionOutcome;
    let w = World::start().await;
    let (_, rider) = w.rider("rider", RIDER, Product::PayAsYouGo).await;
    let (_, dodger) = w.rider("dodger", VICTIM, Product::PayAsYouGo).await;
    let (bus_vault, mut bus, _) = w.bus("bus", 32).await;
    let (inspector_vault, inspector, _) = w.inspector("inspector", 32).await;
    let t = tomorrow_morning();
    // The rider taps on the bus; the dodger does not.
    assert!(
        bus.validate(&rider.current_qr(t).unwrap().text, t)
            .unwrap()
            .accepted
    );
    let bus_taps = bus.export_taps().unwrap();
    let inspector = Arc::new(std::sync::Mutex::new(inspector));
    let at = t + 300;
    let (found, missed) = {
        let mut i = inspector.lock().unwrap();
        let found = i
            .inspect(&rider.current_qr(at).unwrap().text, at, Some(&bus_taps))
            .unwrap();
        let missed = i
            .inspect(&dodger.current_qr(at).unwrap().text, at, Some(&bus_taps))
            .unwrap();
        (found, missed)
    };
    assert_eq!(found.outcome, InspectionOutcome::Valid);
    assert_eq!(missed.outcome, InspectionOutcome::NotTapped);
    // The inspection used nothing: the dodger can still tap on the bus.
    assert!(
        bus.validate(&dodger.current_qr(at + 5).unwrap().text, at + 5)
            .unwrap()
            .accepted
    );

    let receipt = w
        .transit()
        .upload_inspections(inspector_vault.clone(), inspector.clone())
        .await
        .unwrap();
    assert_eq!(
        (receipt.stored, receipt.duplicates, receipt.acknowledged_seq),
        (2, 0, 2)
    );
    assert!(inspector
        .lock()
        .unwrap()
        .export_inspections()
        .unwrap()
        .is_empty());

    // The same inspection again, and a made-up "valid ticket" with no real scan behind it.
    let mut forged = found.clone();
    forged.seq = 3;
    forged.qr = Some("HNT1:NOTATICKET".into());
    let r = w
        .device_post(
            &inspector_vault,
            "/v1/transit/inspections",
            &json!({"inspections": [found, forged]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let receipt = json_of(r).await;
    assert_eq!(
        (receipt["stored"].as_u64(), receipt["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    // A phone is not an inspector.
    let phone = w.phone_device("p2", RIDER).await;
    let r = w
        .device_post(
            &phone,
            "/v1/transit/inspections",
            &json!({"inspections": []}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    let stats = w.admin_get("/v1/admin/transit/inspections").await;
    assert_eq!(stats["inspections"], 3);
    assert_eq!(
        (stats["valid"].as_u64(), stats["not_tapped"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(stats["verified_not_tapped"], 1, "{stats}");
    assert_eq!(stats["disputed"], 1, "the made-up finding: {stats}");

    // The inspector's scans sent as taps (a rogue inspector charging the riders it checked)
    // are refused whole: nothing is stored or charged.
    let scans: Vec<Tap> = [(&found, &rider), (&missed, &dodger)]
        .iter()
        .enumerate()
        .map(|(i, (inspection, _))| Tap {
            seq: 100 + i as u64,
            at: inspection.at,
            route: 32,
            accepted: true,
            reason: Reason::Ok,
            card_id: None,
            product: None,
            qr_timestamp: None,
            qr_counter: None,
            qr: inspection.qr.clone(),
            gate: None,
        })
        .collect();
    refused(
        w.transit()
            .upload_taps(inspector_vault.clone(), scans.clone())
            .await
            .unwrap_err(),
        403,
        "inspector_device",
    );
    // The same scans from a bus validator are charged: the refusal is the inspector's role.
    let from_bus = w.transit().upload_taps(bus_vault, scans).await.unwrap();
    assert_eq!(from_bus.stored, 2);
    // An inspector still reads the feed (issuer keys and the deny list).
    w.transit().validator_feed(inspector_vault).await.unwrap();
    let listed = w.admin_get("/v1/admin/transit/validators").await;
    let roles: Vec<(String, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                v["inspector"] == true,
            )
        })
        .collect();
    assert!(roles.contains(&("inspector".into(), true)), "{listed}");
    assert!(roles.contains(&("bus".into(), false)), "{listed}");
    // An enrolment that says it is not an inspector's is no enrolment.
    let (status, body) = w
        .admin_post(
            "/v1/admin/transit/enrolments",
            json!({"label": "x", "inspector": false}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}
