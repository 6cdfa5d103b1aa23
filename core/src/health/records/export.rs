//! A person's book given out as an International Patient Summary document: their records and
//! the supporting resources those reference, never another person's records.

use serde_json::Value;

use super::{HealthBook, HealthError, HealthRecord};
use crate::health::fhir;

impl HealthBook<'_> {
    /// The person's International Patient Summary (see [`fhir::ips_document`]): their records
    /// and the supporting resources those reference. `timestamp` is RFC 3339.
    pub fn export_ips(&self, person: &str, timestamp: &str) -> Result<Value, HealthError> {
        let patient =
            self.get(&format!("Patient/{person}"))?
                .ok_or_else(|| HealthError::NotFound {
                    what: format!("person {person}"),
                })?;
        let mut resources: Vec<Value> = self
            .vault
            .query_docs::<HealthRecord>("person", person)?
            .into_iter()
            .filter(|r| r.resource_type != "Patient")
            .map(|r| r.resource)
            .collect();
        // Supporting resources (Organization, Practitioner, Medication, ...) that records point to.
        let mut included: std::collections::HashSet<String> =
            resources.iter().filter_map(fhir::key_of).collect();
        included.insert(patient.key.clone());
        let mut frontier = resources.clone();
        while !frontier.is_empty() {
            let mut refs = Vec::new();
            frontier.iter().for_each(|r| fhir::references(r, &mut refs));
            frontier.clear();
            for key in refs {
                if included.insert(key.clone()) {
                    // Shared resources and this person's own, never another person's records
                    // (a reference to a relative does not bring their book along).
                    if let Some(found) = self
                        .get(&key)?
                        .filter(|r| r.person.is_empty() || r.person == person)
                    {
                        frontier.push(found.resource.clone());
                        resources.push(found.resource);
                    }
                }
            }
        }
        resources.sort_by_key(|r| fhir::key_of(r).unwrap_or_default());
        let (documents, resources): (Vec<Value>, Vec<Value>) = resources
            .into_iter()
            .partition(|r| fhir::resource_type(r) == Some("Composition"));
        Ok(fhir::ips_document(
            &patient.resource,
            &resources,
            &documents,
            timestamp,
        ))
    }
}
