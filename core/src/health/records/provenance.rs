//! Where a record came from: entered here, imported from a bundle or a verified health card,
//! published by a facility, or another device's claim.

/// Where a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Entered on this device.
    Entered,
    /// Imported from a FHIR bundle (not signed).
    FhirImport,
    /// Imported from a signed health card whose signature verified: a SMART Health Card or an
    /// EU Digital COVID Certificate (a vaccine passport).
    HealthCard,
    /// Published by a facility through the backend.
    Server,
    /// Entered or imported on another device of the citizen, and not verified here: a claim,
    /// never shown as verified (a health card claim whose card does not verify lands here).
    OtherDevice,
}

/// Where a record came from and, for a health card, who signed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// The source.
    pub source: Source,
    /// The card's issuer (`iss`).
    pub issuer: Option<String>,
    /// The card's signing key id.
    pub kid: Option<String>,
    /// When the card was verified (unix seconds).
    pub verified_at: Option<i64>,
    /// The signed card itself (a compact JWS, or an EU DCC's `HC1:` text), for a health-card
    /// record: the evidence another device of the citizen re-verifies against its own trust
    /// store when it pulls the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// Which entry of the card's bundle this record is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_entry: Option<u32>,
    /// For an EU DCC: the signer's country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// For an EU DCC: the certificate identifier (UVCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<String>,
}

impl Provenance {
    /// Provenance without a signer.
    pub fn of(source: Source) -> Provenance {
        Provenance {
            source,
            issuer: None,
            kid: None,
            verified_at: None,
            card: None,
            card_entry: None,
            country: None,
            certificate_id: None,
        }
    }
}

impl Provenance {
    /// Whether the signer of a health-card record is still trusted by `trust` (the installed
    /// trust bundle): `None` for a record that is not a verified card's; `Some(false)` once its
    /// issuer or signer has left the list or the card was revoked, which an app shows instead
    /// of "verified".
    pub fn signer_trusted(&self, trust: &crate::health::shc::TrustStore) -> Option<bool> {
        if self.source != Source::HealthCard {
            return None;
        }
        let kid = self.kid.as_deref()?;
        Some(
            if let (Some(_), Some(card), Some(at)) =
                (&self.certificate_id, &self.card, self.verified_at)
            {
                // The passport authenticated again as at its verification, under today's signers
                // and revocations (by any of the scheme's hashes).
                crate::health::dcc::authenticate(card, &trust.dcc, at).is_ok()
            } else if let Some(uvci) = &self.certificate_id {
                use base64::Engine;
                // Still listed, and not revoked since.
                base64::engine::general_purpose::STANDARD
                    .decode(kid)
                    .is_ok_and(|k| !trust.dcc.by_kid(&k).is_empty())
                    && !trust.dcc.is_revoked(uvci)
            } else if let (Some(card), Some(at)) = (&self.card, self.verified_at) {
                // The card checked again as at its verification, under today's keys and revocation
                // lists: a key removed or a card revoked since shows here.
                crate::health::shc::verify(card, trust, at).is_ok_and(|c| {
                    c.kid == kid && Some(c.issuer.as_str()) == self.issuer.as_deref()
                })
            } else {
                self.issuer
                    .as_deref()
                    .is_some_and(|issuer| trust.is_key_of(kid, issuer))
            },
        )
    }
}
