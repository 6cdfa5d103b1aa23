//! A person's immunizations read against the childhood vaccination schedule.

use serde_json::Value;

use super::{invalid, HealthBook, HealthError};
use crate::health::fhir::{self, Kind};
use crate::health::schedule::{self, DoseStatus, GivenDose, NaiveDate};

impl HealthBook<'_> {
    /// The person's immunizations that count for the childhood schedule.
    pub fn given_doses(&self, person: &str) -> Result<Vec<GivenDose>, HealthError> {
        let mut out = Vec::new();
        for r in self.records(person, Some(Kind::Immunization), None, None)? {
            let status = r.resource.get("status").and_then(Value::as_str);
            if matches!(status, Some("not-done" | "entered-in-error")) {
                continue;
            }
            let Some(date) = r.day().and_then(|d| schedule::parse_date(&d)) else {
                continue;
            };
            let codings = r
                .resource
                .pointer("/vaccineCode/coding")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let vaccine = codings.iter().find_map(|c| {
                schedule::vaccine_for(c.get("system")?.as_str()?, c.get("code")?.as_str()?)
            });
            if let Some(v) = vaccine {
                out.push(GivenDose {
                    vaccine: v.to_owned(),
                    date,
                });
            }
        }
        Ok(out)
    }

    /// The childhood schedule ([`schedule::CURRENT`]) for a person on `today`, from their date
    /// of birth and recorded immunizations; with `rotavirus`, where the programme gives it.
    pub fn schedule(
        &self,
        person: &str,
        today: NaiveDate,
        rotavirus: bool,
    ) -> Result<Vec<DoseStatus>, HealthError> {
        let patient =
            self.get(&format!("Patient/{person}"))?
                .ok_or_else(|| HealthError::NotFound {
                    what: format!("person {person}"),
                })?;
        let birth = patient
            .resource
            .get("birthDate")
            .and_then(Value::as_str)
            .and_then(fhir::day_of)
            .and_then(|d| schedule::parse_date(&d))
            .ok_or_else(|| invalid("birthDate", "the person has no date of birth"))?;
        if today < birth {
            return Err(invalid("today", "is before the date of birth"));
        }
        let given = self.given_doses(person)?;
        let regional: &'static [schedule::ScheduledDose] =
            if rotavirus { schedule::ROTAVIRUS } else { &[] };
        Ok(schedule::CURRENT.status_with(regional, birth, &given, today))
    }
}
