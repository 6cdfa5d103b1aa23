//! The childhood immunization schedule for a child at several ages.

#![allow(clippy::unwrap_used)] // tests fail by panicking

use chrono::NaiveDate;
use thudo_core::health::schedule::{DoseState, GivenDose, VN_EPI_2024};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn given(list: &[(&str, &str)]) -> Vec<GivenDose> {
    list.iter()
        .map(|(v, date)| GivenDose {
            vaccine: v.to_string(),
            date: d(date),
        })
        .collect()
}

fn state(
    statuses: &[thudo_core::health::schedule::DoseStatus],
    vaccine: &str,
    dose: u32,
) -> DoseState {
    statuses
        .iter()
        .find(|s| s.vaccine == vaccine && s.dose == dose)
        .unwrap()
        .state
}

const BIRTH: &str = "2026-01-15";

#[test]
fn newborn() {
    let s = VN_EPI_2024.status(d(BIRTH), &[], d(BIRTH));
    assert_eq!(state(&s, "HepB", 1), DoseState::Due);
    assert_eq!(state(&s, "BCG", 1), DoseState::Due);
    assert_eq!(state(&s, "DPT-HepB-Hib", 1), DoseState::Upcoming);
    assert_eq!(state(&s, "JE", 2), DoseState::Upcoming, "waits for JE 1");
    // Two days later the birth dose is overdue, BCG still due.
    let s = VN_EPI_2024.status(d(BIRTH), &[], d("2026-01-17"));
    assert_eq!(state(&s, "HepB", 1), DoseState::Overdue);
    assert_eq!(state(&s, "BCG", 1), DoseState::Due);
}

#[test]
fn three_months_on_track_and_five_months_behind() {
    let done = given(&[
        ("HepB", "2026-01-15"),
        ("BCG", "2026-01-20"),
        ("DPT-HepB-Hib", "2026-03-16"),
        ("OPV", "2026-03-16"),
    ]);
    let s = VN_EPI_2024.status(d(BIRTH), &done, d("2026-04-16"));
    assert_eq!(state(&s, "HepB", 1), DoseState::Done);
    assert_eq!(state(&s, "DPT-HepB-Hib", 1), DoseState::Done);
    assert_eq!(state(&s, "DPT-HepB-Hib", 2), DoseState::Due);
    assert_eq!(state(&s, "OPV", 2), DoseState::Due);
    assert_eq!(state(&s, "IPV", 1), DoseState::Upcoming);
    let due = s
        .iter()
        .find(|x| x.vaccine == "DPT-HepB-Hib" && x.dose == 2)
        .unwrap()
        .due_on;
    assert_eq!(due, Some(d("2026-04-15")));
    // The same child at 5.5 months without further visits.
    let s = VN_EPI_2024.status(d(BIRTH), &done, d("2026-07-01"));
    assert_eq!(state(&s, "DPT-HepB-Hib", 2), DoseState::Overdue);
    assert_eq!(state(&s, "IPV", 1), DoseState::Due);
    assert_eq!(state(&s, "Measles", 1), DoseState::Upcoming);
}

#[test]
fn japanese_encephalitis_follows_the_previous_dose() {
    let done = given(&[("JE", "2027-01-20")]);
    let s = VN_EPI_2024.status(d(BIRTH), &done, d("2027-01-25"));
    assert_eq!(state(&s, "JE", 1), DoseState::Done);
    assert_eq!(state(&s, "JE", 2), DoseState::Upcoming);
    let s = VN_EPI_2024.status(d(BIRTH), &done, d("2027-01-30"));
    assert_eq!(state(&s, "JE", 2), DoseState::Due);
    let done = given(&[("JE", "2027-01-20"), ("JE", "2027-02-01")]);
    let s = VN_EPI_2024.status(d(BIRTH), &done, d("2028-02-05"));
    assert_eq!(state(&s, "JE", 3), DoseState::Due);
    assert_eq!(
        s.iter()
            .find(|x| x.vaccine == "JE" && x.dose == 3)
            .unwrap()
            .due_on,
        Some(d("2028-02-01"))
    );
}

#[test]
fn school_age_booster() {
    let s = VN_EPI_2024.status(d(BIRTH), &[], d("2033-02-01"));
    assert_eq!(state(&s, "DT", 1), DoseState::Due);
    assert_eq!(state(&s, "MR", 1), DoseState::Overdue);
    assert_eq!(VN_EPI_2024.version, "VN-EPI-2024");
}
