//! The health book for Kotlin and Swift: SMART Health Card and vaccine passport (EU DCC)
//! verification.

use std::sync::{Arc, Mutex};

use thudo_core::health::dcc::{self, CertificateKind};
use thudo_core::health::shc;

/// Why a health card was refused (or trust data was bad).
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum HealthCardError {
    /// Not a `shc:/` text, or bad digits.
    #[error("bad QR: {detail}")]
    BadQr {
        /// What was wrong.
        detail: String,
    },
    /// Chunks missing, duplicated or inconsistent.
    #[error("bad chunks: {detail}")]
    BadChunks {
        /// What was wrong.
        detail: String,
    },
    /// Not a compact JWS or card file.
    #[error("malformed: {detail}")]
    Malformed {
        /// What was wrong.
        detail: String,
    },
    /// Header without ES256, DEF or kid.
    #[error("bad header: {detail}")]
    BadHeader {
        /// What was wrong.
        detail: String,
    },
    /// No trusted key with this kid.
    #[error("unknown key {kid}")]
    UnknownKey {
        /// The kid.
        kid: String,
    },
    /// DER signature instead of raw r||s.
    #[error("DER-encoded signature")]
    DerSignature,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Payload not inflatable, not a health card, or the issuer does not own the key.
    #[error("bad payload: {detail}")]
    BadPayload {
        /// What was wrong.
        detail: String,
    },
    /// Not valid yet.
    #[error("not valid before {nbf}")]
    NotYetValid {
        /// Seconds since the epoch.
        nbf: i64,
    },
    /// Expired.
    #[error("expired at {exp}")]
    Expired {
        /// Seconds since the epoch.
        exp: i64,
    },
    /// On the issuer's revocation list.
    #[error("revoked")]
    Revoked {
        /// The card's rid.
        rid: String,
    },
    /// A JWKS, CRL or signer certificate was malformed.
    #[error("bad trust data: {detail}")]
    BadTrustData {
        /// What was wrong.
        detail: String,
    },
    /// The signer may not sign this certificate: its key usage excludes the certificate's kind,
    /// or it was not valid (vaccine passports).
    #[error("signer not allowed: {detail}")]
    SignerNotAllowed {
        /// What was wrong.
        detail: String,
    },
}

impl From<dcc::DccError> for HealthCardError {
    fn from(e: dcc::DccError) -> Self {
        use dcc::DccError as E;
        let detail = e.to_string();
        match e {
            E::BadPrefix { .. } => HealthCardError::BadQr { detail },
            E::Base45 | E::Inflate { .. } | E::Cose { .. } | E::Cwt { .. } => {
                HealthCardError::Malformed { detail }
            }
            E::UnsupportedAlgorithm { .. } => HealthCardError::BadHeader { detail },
            E::UnknownKey { kid } => HealthCardError::UnknownKey { kid },
            E::BadSignature => HealthCardError::BadSignature,
            E::KeyUsage { .. } | E::SignerNotValid { .. } => {
                HealthCardError::SignerNotAllowed { detail }
            }
            E::Schema { .. } => HealthCardError::BadPayload { detail },
            E::Revoked { certificate_id } => HealthCardError::Revoked {
                rid: certificate_id,
            },
            E::NotYetValid { issued_at } => HealthCardError::NotYetValid { nbf: issued_at },
            E::Expired { expires_at } => HealthCardError::Expired { exp: expires_at },
            E::BadTrustData { detail } => HealthCardError::BadTrustData { detail },
        }
    }
}

/// What a vaccine passport attests (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum CertificateKind {
    /// A vaccination.
    Vaccination,
    /// A test.
    Test,
    /// A recovery.
    Recovery,
}

/// A verified EU Digital COVID Certificate (vaccine passport).
#[derive(Debug, Clone, uniffi::Record)]
pub struct VerifiedVaccinePassport {
    /// What it attests.
    pub kind: CertificateKind,
    /// The signer's country.
    pub country: String,
    /// The certificate identifier (UVCI).
    pub certificate_id: String,
    /// The signer's key id (base64).
    pub kid: String,
    /// Issued (seconds since the epoch), when the certificate says.
    pub issued_at: Option<i64>,
    /// Expiry (seconds since the epoch), when the certificate says.
    pub expires_at: Option<i64>,
    /// Whether it had expired at verification (only `authenticateVaccinePassport` returns one).
    pub expired: bool,
    /// The certificate's schema version.
    pub version: String,
    /// The certificate (`nam`, `dob`, `v`/`t`/`r`) as JSON.
    pub certificate_json: String,
    /// The certificate as a FHIR Bundle (Patient and records), as the health book imports it.
    pub fhir_bundle_json: String,
}

impl From<dcc::VerifiedDcc> for VerifiedVaccinePassport {
    fn from(c: dcc::VerifiedDcc) -> Self {
        let fhir_bundle_json = dcc::fhir::bundle(&c).to_string();
        VerifiedVaccinePassport {
            kind: c.kind,
            country: c.country,
            certificate_id: c.certificate_id,
            kid: c.kid,
            issued_at: c.issued_at,
            expires_at: c.expires_at,
            expired: c.expired,
            version: c.version,
            certificate_json: c.certificate.to_string(),
            fhir_bundle_json,
        }
    }
}

impl From<shc::ShcError> for HealthCardError {
    fn from(e: shc::ShcError) -> Self {
        use shc::ShcError as E;
        match e {
            E::BadQr { detail } => HealthCardError::BadQr { detail },
            E::BadChunks { detail } => HealthCardError::BadChunks { detail },
            E::MalformedJws { detail } => HealthCardError::Malformed { detail },
            E::BadHeader { detail } => HealthCardError::BadHeader { detail },
            E::UnknownKey { kid } => HealthCardError::UnknownKey { kid },
            E::DerSignature => HealthCardError::DerSignature,
            E::BadSignature => HealthCardError::BadSignature,
            E::Inflate { detail } => HealthCardError::BadPayload {
                detail: format!("inflate: {detail}"),
            },
            E::BadPayload { detail } => HealthCardError::BadPayload { detail },
            E::IssuerMismatch { iss, kid } => HealthCardError::BadPayload {
                detail: format!("issuer {iss} does not own key {kid}"),
            },
            E::NotYetValid { nbf } => HealthCardError::NotYetValid { nbf },
            E::Expired { exp } => HealthCardError::Expired { exp },
            E::Revoked { rid } => HealthCardError::Revoked { rid },
            E::BadTrustData { detail } => HealthCardError::BadTrustData { detail },
        }
    }
}

/// A verified card.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VerifiedHealthCard {
    /// Issuer URL.
    pub issuer: String,
    /// Signing key id.
    pub kid: String,
    /// Issued (seconds since the epoch).
    pub nbf: i64,
    /// Expiry, if any.
    pub exp: Option<i64>,
    /// Revocation id, if any.
    pub rid: Option<String>,
    /// The resource types in the bundle, in order.
    pub resource_types: Vec<String>,
    /// The FHIR Bundle as JSON.
    pub fhir_bundle_json: String,
}

impl From<shc::VerifiedCard> for VerifiedHealthCard {
    fn from(c: shc::VerifiedCard) -> Self {
        let resource_types = c.resource_types();
        VerifiedHealthCard {
            issuer: c.issuer,
            kid: c.kid,
            nbf: c.nbf,
            exp: c.exp,
            rid: c.rid,
            resource_types,
            fhir_bundle_json: c.fhir_bundle.to_string(),
        }
    }
}

/// Verifies SMART Health Cards offline against trusted issuers' keys and revocation lists.
#[derive(uniffi::Object, Default)]
pub struct HealthCardVerifier {
    trust: Mutex<shc::TrustStore>,
}

impl HealthCardVerifier {
    pub(crate) fn with_trust(trust: shc::TrustStore) -> Arc<Self> {
        Arc::new(HealthCardVerifier {
            trust: Mutex::new(trust),
        })
    }

    pub(crate) fn trust(&self) -> std::sync::MutexGuard<'_, shc::TrustStore> {
        self.trust.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[uniffi::export]
impl HealthCardVerifier {
    /// An empty verifier: add issuers' JWKS before verifying.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(HealthCardVerifier::default())
    }

    /// Trusts `issuer`'s keys from its JWKS document; returns how many were added.
    pub fn add_jwks(&self, issuer: String, jwks_json: String) -> Result<i64, HealthCardError> {
        Ok(crate::signed(self.trust().add_jwks(&issuer, &jwks_json)?))
    }

    /// Loads a revocation list; returns how many entries it has.
    pub fn add_crl(&self, crl_json: String) -> Result<i64, HealthCardError> {
        Ok(crate::signed(self.trust().add_crl(&crl_json)?))
    }

    /// Verifies a card from its QR text(s): one `shc:/` text, or all chunks of one card.
    pub fn verify_qr(
        &self,
        qr_texts: Vec<String>,
        now_unix: i64,
    ) -> Result<VerifiedHealthCard, HealthCardError> {
        let texts: Vec<&str> = qr_texts.iter().map(String::as_str).collect();
        let jws = shc::jws_from_qr(&texts)?;
        self.verify_jws(jws, now_unix)
    }

    /// Verifies a compact JWS card.
    pub fn verify_jws(
        &self,
        jws: String,
        now_unix: i64,
    ) -> Result<VerifiedHealthCard, HealthCardError> {
        Ok(shc::verify(&jws, &self.trust(), now_unix)?.into())
    }

    /// Trusts an EU DCC Document Signer Certificate (base64 DER, as trust lists carry it) for
    /// `country` (default: the certificate's own); returns its key id (base64).
    #[uniffi::method(default(country = None))]
    pub fn add_dcc_signer(
        &self,
        certificate_base64: String,
        country: Option<String>,
    ) -> Result<String, HealthCardError> {
        let kid = self
            .trust()
            .dcc
            .add_base64(&certificate_base64, country.as_deref())?;
        Ok(dcc::kid_text(&kid))
    }

    /// Verifies a vaccine passport (EU DCC) from its `HC1:` QR text at `now_unix`, as a
    /// verifier at a border would: signature, signer's key usage and validity, schema, and
    /// the certificate current.
    pub fn verify_vaccine_passport(
        &self,
        qr_text: String,
        now_unix: i64,
    ) -> Result<VerifiedVaccinePassport, HealthCardError> {
        let trust = self.trust().dcc.clone();
        Ok(dcc::verify(&qr_text, &trust, now_unix)?.into())
    }

    /// [`HealthCardVerifier::verify_vaccine_passport`] without requiring the certificate or its
    /// signer to be current: an authentic certificate that has expired is returned with
    /// `expired` set (a vaccination record stays true).
    pub fn authenticate_vaccine_passport(
        &self,
        qr_text: String,
        now_unix: i64,
    ) -> Result<VerifiedVaccinePassport, HealthCardError> {
        let trust = self.trust().dcc.clone();
        Ok(dcc::authenticate(&qr_text, &trust, now_unix)?.into())
    }

    /// The JWS cards inside a `.smart-health-card` file.
    pub fn cards_in_file(&self, file_contents: String) -> Result<Vec<String>, HealthCardError> {
        Ok(shc::jws_from_file(&file_contents)?)
    }
}

use thudo_core::health::schedule::{self, DoseState};

/// A recorded immunization, for the schedule.
#[derive(Debug, Clone, uniffi::Record)]
pub struct GivenDose {
    /// Vaccine code (HepB, BCG, DPT-HepB-Hib, OPV, IPV, Measles, JE, DPT, MR, Td, DT, Rota).
    pub vaccine: String,
    /// `YYYY-MM-DD`.
    pub date: String,
}

/// Where a dose stands (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum DoseState {
    /// Given.
    Done,
    /// Due now.
    Due,
    /// Past due and grace period.
    Overdue,
    /// Not yet due.
    Upcoming,
}

/// One dose of the schedule for a child.
#[derive(Debug, Clone, uniffi::Record)]
pub struct DoseStatus {
    /// Vaccine code.
    pub vaccine: String,
    /// Dose number.
    pub dose: i32,
    /// State.
    pub state: DoseState,
    /// Due date `YYYY-MM-DD`, when known.
    pub due_on: Option<String>,
    /// Date given, when done.
    pub given_on: Option<String>,
}

impl From<schedule::DoseStatus> for DoseStatus {
    fn from(s: schedule::DoseStatus) -> Self {
        DoseStatus {
            vaccine: s.vaccine.to_owned(),
            dose: crate::small(s.dose),
            state: s.state,
            due_on: s.due_on.map(|d| d.to_string()),
            given_on: s.given_on.map(|d| d.to_string()),
        }
    }
}

/// Errors of the schedule.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum ScheduleError {
    /// A date is not `YYYY-MM-DD`.
    #[error("invalid date {value}")]
    InvalidDate {
        /// The value.
        value: String,
    },
}

fn date(value: &str) -> Result<schedule::NaiveDate, ScheduleError> {
    schedule::parse_date(value).ok_or_else(|| ScheduleError::InvalidDate {
        value: value.to_owned(),
    })
}

/// Each dose of Vietnam's childhood schedule (the current version, VN-EPI-2024) for a child
/// born on `birth_date`, with the doses given, on `today` (all `YYYY-MM-DD`); with `rotavirus`
/// where the programme gives it (regional).
#[uniffi::export(default(rotavirus = false))]
pub fn vaccination_schedule(
    birth_date: String,
    given: Vec<GivenDose>,
    today: String,
    rotavirus: bool,
) -> Result<Vec<DoseStatus>, ScheduleError> {
    let birth = date(&birth_date)?;
    let today = date(&today)?;
    let given = given
        .into_iter()
        .map(|g| {
            Ok(schedule::GivenDose {
                date: date(&g.date)?,
                vaccine: g.vaccine,
            })
        })
        .collect::<Result<Vec<_>, ScheduleError>>()?;
    if today < birth {
        return Err(ScheduleError::InvalidDate {
            value: today.to_string(),
        });
    }
    let regional: &'static [schedule::ScheduledDose] =
        if rotavirus { schedule::ROTAVIRUS } else { &[] };
    Ok(schedule::CURRENT
        .status_with(regional, birth, &given, today)
        .into_iter()
        .map(DoseStatus::from)
        .collect())
}

crate::error_api!(HealthCardError, {
        BadQr => ("health_card.bad_qr", false),
        BadChunks => ("health_card.bad_chunks", false),
        Malformed => ("health_card.malformed", false),
        BadHeader => ("health_card.bad_header", false),
        UnknownKey => ("health_card.unknown_key", false),
        DerSignature => ("health_card.der_signature", false),
        BadSignature => ("health_card.bad_signature", false),
        BadPayload => ("health_card.bad_payload", false),
        NotYetValid => ("health_card.not_yet_valid", false),
        Expired => ("health_card.expired", false),
        Revoked => ("health_card.revoked", false),
        BadTrustData => ("health_card.bad_trust_data", false),
        SignerNotAllowed => ("health_card.signer_not_allowed", false),
});

crate::error_api!(ScheduleError, {
        InvalidDate => ("schedule.invalid_date", false),
});

use thudo_core::health::ddcc::{Coding as DdccCoding, Vaccination as DdccVaccination};

/// A code of the WHO DDCC core data set (core's type, carried as it is).
#[uniffi::remote(Record)]
pub struct DdccCoding {
    /// The code system (may be empty when only a display is given).
    pub system: String,
    /// The code (may be empty when only a display is given).
    pub code: String,
    /// The text shown for it.
    pub display: Option<String>,
}

/// One vaccination of the WHO DDCC:VS core data set, with its person (core's type, carried as
/// it is).
#[uniffi::remote(Record)]
pub struct DdccVaccination {
    /// The person's full name.
    pub name: String,
    /// Date of birth.
    pub birth_date: Option<String>,
    /// The person's identifier.
    pub identifier: Option<String>,
    /// Sex.
    pub sex: Option<String>,
    /// The vaccine or prophylaxis.
    pub vaccine: Option<DdccCoding>,
    /// The brand.
    pub brand: Option<DdccCoding>,
    /// The manufacturer.
    pub manufacturer: Option<DdccCoding>,
    /// The market authorization holder.
    pub ma_holder: Option<DdccCoding>,
    /// The lot number.
    pub lot: Option<String>,
    /// When it was given.
    pub date: Option<String>,
    /// From when it counts.
    pub valid_from: Option<String>,
    /// The dose number.
    pub dose: Option<u32>,
    /// The total doses of the series.
    pub total_doses: Option<u32>,
    /// The country of vaccination.
    pub country: Option<DdccCoding>,
    /// The administering centre.
    pub centre: Option<String>,
    /// The health worker's identifier.
    pub practitioner: Option<String>,
    /// The disease or agent targeted.
    pub disease: Option<DdccCoding>,
    /// When the next dose is due.
    pub next_dose: Option<String>,
    /// The certificate's issuer.
    pub issuer: Option<String>,
    /// The health certificate identifier (HCID).
    pub certificate_id: Option<String>,
}
