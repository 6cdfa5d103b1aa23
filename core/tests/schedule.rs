//! The childhood immunization schedule for a child at several ages.

#![allow(clippy::unwrap_used)] // tests fail by panicking

use chrono::NaiveDate;
use thudo_core::health::schedule::{
    self, DoseState, GivenDose, CURRENT, ROTAVIRUS, VN_EPI_2022, VN_EPI_2024,
};

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

/// One dose recorded twice (a card imported again, the same visit from two sources) is one
/// dose: the copy never fills the next dose of the series, which stays due, then overdue.
#[test]
fn a_dose_recorded_twice_the_same_day_is_one_dose() {
    let done = given(&[
        ("DPT-HepB-Hib", "2026-03-16"),
        ("DPT-HepB-Hib", "2026-03-16"),
    ]);
    let s = VN_EPI_2024.status(d(BIRTH), &done, d("2026-04-16"));
    assert_eq!(state(&s, "DPT-HepB-Hib", 1), DoseState::Done);
    assert_eq!(state(&s, "DPT-HepB-Hib", 2), DoseState::Due);
    let s = VN_EPI_2024.status(d(BIRTH), &done, d("2026-07-01"));
    assert_eq!(state(&s, "DPT-HepB-Hib", 2), DoseState::Overdue);
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
fn school_age_booster_is_td_and_a_dt_dose_counts() {
    let s = VN_EPI_2024.status(d(BIRTH), &[], d("2033-02-01"));
    assert_eq!(state(&s, "Td", 1), DoseState::Due);
    assert_eq!(state(&s, "MR", 1), DoseState::Overdue);
    assert!(s.iter().all(|x| x.vaccine != "DT"), "Td replaced DT");
    assert_eq!(CURRENT, VN_EPI_2024);
    assert_eq!(VN_EPI_2022.doses.last().unwrap().vaccine, "DT");
    // A DT dose given at 7 years still counts for the Td booster, and the other way round.
    let dt = given(&[("DT", "2033-01-20")]);
    assert_eq!(
        state(&VN_EPI_2024.status(d(BIRTH), &dt, d("2033-02-01")), "Td", 1),
        DoseState::Done
    );
    let td = given(&[("Td", "2033-01-20")]);
    assert_eq!(
        state(&VN_EPI_2022.status(d(BIRTH), &td, d("2033-02-01")), "DT", 1),
        DoseState::Done
    );
    // The CVX codes that count as Td; DT's own code counts too.
    for cvx in ["09", "113", "138", "139"] {
        assert_eq!(
            schedule::vaccine_for(schedule::CVX_SYSTEM, cvx),
            Some("Td"),
            "{cvx}"
        );
    }
    assert_eq!(
        schedule::vaccine_for(schedule::CVX_SYSTEM, "28"),
        Some("DT")
    );
}

#[test]
fn the_second_injected_polio_dose_falls_at_nine_months() {
    let s = CURRENT.status(d(BIRTH), &[], d("2026-10-20"));
    assert_eq!(state(&s, "IPV", 2), DoseState::Due);
    let due = s
        .iter()
        .find(|x| x.vaccine == "IPV" && x.dose == 2)
        .unwrap()
        .due_on;
    assert_eq!(due, Some(d("2026-10-15")));
}

#[test]
fn every_version_is_dated_and_sourced() {
    for v in [VN_EPI_2022, VN_EPI_2024] {
        assert!(
            v.dated.len() >= 4 && v.dated.starts_with("20"),
            "{}",
            v.version
        );
        assert!(!v.source.is_empty(), "{}", v.version);
    }
    assert!(VN_EPI_2022.dated < VN_EPI_2024.dated);
}

/// A child vaccinated on the day of every dose of the current schedule: nothing is ever
/// overdue, on any day from birth to age eight.
#[test]
fn a_child_vaccinated_on_schedule_shows_nothing_overdue() {
    let birth = d("2018-03-31"); // month ends make age arithmetic honest
    let mut done: Vec<GivenDose> = Vec::new();
    // Walk the schedule in time: each dose given the day it falls due.
    for _ in 0..CURRENT.doses.len() + ROTAVIRUS.len() {
        let s = CURRENT.status_with(ROTAVIRUS, birth, &done, d("2026-12-05"));
        let Some(next) = s
            .iter()
            .filter(|x| x.given_on.is_none() && x.due_on.is_some())
            .min_by_key(|x| x.due_on)
        else {
            break;
        };
        done.push(GivenDose {
            vaccine: next.vaccine.to_owned(),
            date: next.due_on.unwrap(),
        });
    }
    let mut day = birth;
    while day <= d("2026-12-05") {
        let given_by: Vec<GivenDose> = done.iter().filter(|g| g.date <= day).cloned().collect();
        let s = CURRENT.status_with(ROTAVIRUS, birth, &given_by, day);
        let overdue: Vec<_> = s.iter().filter(|x| x.state == DoseState::Overdue).collect();
        assert!(overdue.is_empty(), "{day}: {overdue:?}");
        day = day.succ_opt().unwrap();
    }
    let s = CURRENT.status_with(ROTAVIRUS, birth, &done, d("2026-12-05"));
    assert!(s.iter().all(|x| x.state == DoseState::Done), "{s:?}");
    assert_eq!(state(&s, "Rota", 2), DoseState::Done);
}

/// The ministry's schedule written out by hand (not derived from this module's data): a child
/// born in 2018 who had every dose at its age shows everything done today.
#[test]
fn the_ministrys_schedule_written_out_is_all_done() {
    let done = given(&[
        ("HepB", "2018-03-01"),
        ("BCG", "2018-03-10"),
        ("DPT-HepB-Hib", "2018-05-01"),
        ("OPV", "2018-05-01"),
        ("DPT-HepB-Hib", "2018-06-01"),
        ("OPV", "2018-06-01"),
        ("DPT-HepB-Hib", "2018-07-01"),
        ("OPV", "2018-07-01"),
        ("IPV", "2018-08-01"),
        ("IPV", "2018-12-01"),
        ("Measles", "2018-12-01"),
        ("JE", "2019-03-01"),
        ("JE", "2019-03-10"),
        ("JE", "2020-03-10"),
        ("DPT", "2019-09-01"),
        ("MR", "2019-09-01"),
        ("Td", "2025-03-05"),
    ]);
    let s = CURRENT.status(d("2018-03-01"), &done, d("2026-12-05"));
    let open: Vec<_> = s.iter().filter(|x| x.state != DoseState::Done).collect();
    assert!(open.is_empty(), "{open:?}");
}
