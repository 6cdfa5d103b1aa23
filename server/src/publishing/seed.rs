//! Demo content: what `thudo demo`, the Kotlin and Swift sync tests and `--seed-citizen` publish.

use serde_json::{json, Value};
use thudo_core::sync::protocol::Change;

use crate::devices::store::DeviceStore;
use crate::secrets::CitizenKey;
use crate::storage::settings::SettingsStore;
use crate::sync::store::SyncStore;

/// The party cell of the demo citizen.
pub const DEMO_CELL: &str = "hn.ba-dinh.dien-bien.chi-bo-1";

/// Library documents (public content).
pub fn documents() -> Vec<Value> {
    vec![
        json!({"id": "nq-57-2024", "number": "57-NQ/TW", "issuer": "Bộ Chính trị", "issued_on": "2024-12-22",
               "kind": "Nghị quyết", "title": "Nghị quyết về đột phá phát triển khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số quốc gia",
               "body": "Khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số là đột phá quan trọng hàng đầu, là động lực chính để phát triển nhanh lực lượng sản xuất hiện đại."}),
        json!({"id": "qd-339-2025", "number": "339-QĐ/TW", "issuer": "Ban Chấp hành Trung ương", "issued_on": "2025-07-01",
               "kind": "Quy định", "title": "Quy định về sổ tay đảng viên điện tử và quản lý thông tin đảng viên",
               "body": "Thông tin đảng viên gồm họ và tên, ngày sinh, ngày vào Đảng, ngày chính thức, số thẻ đảng viên, chi bộ sinh hoạt."}),
        json!({"id": "qd-01-2026", "number": "01-QĐ/TW", "issuer": "Ban Chấp hành Trung ương", "issued_on": "2026-01-05",
               "kind": "Quy định", "title": "Quy định về chế độ đảng phí",
               "body": "Đảng viên đóng đảng phí hằng tháng theo tỷ lệ phần trăm tiền lương; đảng viên là học sinh, sinh viên đóng mức cố định."}),
        json!({"id": "ct-45-2025", "number": "45-CT/TW", "issuer": "Ban Bí thư", "issued_on": "2025-04-14",
               "kind": "Chỉ thị", "title": "Chỉ thị về đại hội đảng bộ các cấp tiến tới Đại hội toàn quốc lần thứ XIV",
               "body": "Chuẩn bị chu đáo văn kiện, nhân sự; phát huy dân chủ, giữ vững nguyên tắc tập trung dân chủ trong sinh hoạt chi bộ."}),
    ]
}

/// The next cell meeting and a notice.
pub fn meetings_and_notices() -> (Vec<Value>, Vec<Value>) {
    (
        vec![
            json!({"id": "sh-2026-12", "date": "2026-12-05", "topic": "Học tập, quán triệt Nghị quyết 57-NQ/TW",
                    "document_ids": ["nq-57-2024"]}),
        ],
        vec![
            json!({"id": "tb-2026-11-20", "title": "Thông báo thu đảng phí quý IV", "published_on": "2026-11-20",
                    "body": "Đề nghị đảng viên hoàn thành đóng đảng phí trước ngày 15/12/2026.", "read": false}),
        ],
    )
}

/// Health records a facility publishes for the demo citizen (Patient id `demo-citizen`).
pub fn health_records() -> Vec<Value> {
    let me = json!({"reference": "Patient/demo-citizen"});
    vec![
        json!({"resourceType": "Patient", "id": "demo-citizen", "name": [{"text": "Nguyễn Văn Minh"}],
               "gender": "male", "birthDate": "1988-05-20"}),
        json!({"resourceType": "Encounter", "id": "kham-2026-10-02", "status": "finished",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
               "subject": me, "period": {"start": "2026-10-02T08:00:00+07:00"},
               "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "J06.9", "display": "Nhiễm trùng hô hấp trên cấp"}]}],
               "serviceProvider": {"display": "Trạm y tế phường Điện Biên"}}),
        json!({"resourceType": "Immunization", "id": "cum-2025", "status": "completed",
               "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "141", "display": "Cúm mùa"}]},
               "patient": me, "occurrenceDateTime": "2025-10-15"}),
        json!({"resourceType": "AllergyIntolerance", "id": "di-ung-penicillin",
               "code": {"coding": [{"system": "http://snomed.info/sct", "code": "764146007", "display": "Penicillin"}]},
               "patient": me, "recordedDate": "2015-03-01"}),
        json!({"resourceType": "Observation", "id": "glucose-2026-10-02", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
               "subject": me, "effectiveDateTime": "2026-10-02T08:30:00+07:00",
               "valueQuantity": {"value": 5.4, "unit": "mmol/L"},
               "referenceRange": [{"low": {"value": 3.9}, "high": {"value": 6.4}}]}),
    ]
}

fn change(collection: &str, item: Value) -> Change {
    let record_id = match collection {
        "health.records" => thudo_core::health::fhir::key_of(&item).unwrap_or_default(),
        _ => item["id"].as_str().unwrap_or_default().to_owned(),
    };
    Change {
        collection: collection.into(),
        record_id,
        op: "put".into(),
        payload: item,
        hlc: crate::sync::store::server_hlc(),
    }
}

/// Publishes the demo content for a citizen and makes them a member of [`DEMO_CELL`]. Meetings
/// carry the cell and the attendance key, as the publishing route stamps them.
pub fn publish_demo<S: SyncStore + DeviceStore + SettingsStore + ?Sized>(
    storage: &S,
    citizen: &CitizenKey,
) -> anyhow::Result<()> {
    storage.set_cell(citizen, DEMO_CELL)?;
    let account = storage.account_for_citizen(citizen)?;
    let cell = format!("cell:{DEMO_CELL}");
    let docs: Vec<Change> = documents()
        .into_iter()
        .map(|d| change("handbook.documents", d))
        .collect();
    storage.publish(&cell, &docs)?;
    let (meetings, notices) = meetings_and_notices();
    let key = crate::attendance::published_key(storage)
        .map_err(|e| anyhow::anyhow!("attendance key: {e:?}"))?;
    storage.publish(
        &cell,
        &meetings
            .into_iter()
            .map(|mut m| {
                crate::attendance::stamp_meeting(DEMO_CELL, &key, &mut m);
                change("handbook.meeting", m)
            })
            .collect::<Vec<_>>(),
    )?;
    storage.publish(
        &cell,
        &notices
            .into_iter()
            .map(|n| change("handbook.notice", n))
            .collect::<Vec<_>>(),
    )?;
    storage.publish(
        &format!("acct:{account}"),
        &health_records()
            .into_iter()
            .map(|r| change("health.records", r))
            .collect::<Vec<_>>(),
    )?;
    Ok(())
}
