//! Operators: who may call the operator routes, in which role, for which organisation.
//!
//! An operator (a person at a clinic's desk, the transit operator's back office, a party
//! organisation's secretary, an auditor) signs in at the city's staff identity provider and
//! calls the API with the provider's access token: a JWT signed by a key of the provider's JWKS,
//! issued by it for this backend's operator audience, carrying `sub` (who), `thudo_role` (one
//! [`Role`]) and `thudo_org` (the organisation acted for). The gate checks the token before any
//! body is read and hands the [`Operator`] to the route, which asks for the role it needs and
//! scopes the action to the organisation. docs/security.md says why a provider and not keys.

pub mod audit;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use jsonwebtoken::jwk::JwkSet;
use serde::{Deserialize, Serialize};
use thudo_core::sync::protocol::ServerErrorCode;

use crate::http::{bearer, ApiError};
use crate::jwt::{verify_jws, JwksSource};

/// What an operator may do: each role holds one concern's powers and no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Fares, validators, the deny list, the issuer's keys, transit entitlements, sales.
    TransitOperator,
    /// Publishes health records for citizens, only as itself.
    HealthFacility,
    /// Its own party cells: their members, documents, meetings and notices.
    PartyOrganisation,
    /// Guardianship, from the household registry, with an evidence reference.
    CivilRegistry,
    /// Ends a lost or stolen phone's session at a citizen's request.
    AccountSupport,
    /// Reads what the others read, and the audit trail; changes nothing.
    Auditor,
    /// Publishes the health trust bundle: whom devices trust to sign health cards and vaccine
    /// passports.
    HealthAuthority,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 7] = [
        Role::TransitOperator,
        Role::HealthFacility,
        Role::PartyOrganisation,
        Role::CivilRegistry,
        Role::AccountSupport,
        Role::Auditor,
        Role::HealthAuthority,
    ];

    /// The claim's value (`transit_operator`, …).
    pub fn code(self) -> &'static str {
        match self {
            Role::TransitOperator => "transit_operator",
            Role::HealthFacility => "health_facility",
            Role::PartyOrganisation => "party_organisation",
            Role::CivilRegistry => "civil_registry",
            Role::AccountSupport => "account_support",
            Role::Auditor => "auditor",
            Role::HealthAuthority => "health_authority",
        }
    }

    /// The roles whose data has one owner city-wide, held for no organisation of their own:
    /// each is pinned to the organisations that hold it ([`Operators::pinned`]).
    pub const CITY_WIDE: [Role; 5] = [
        Role::TransitOperator,
        Role::HealthAuthority,
        Role::CivilRegistry,
        Role::AccountSupport,
        Role::Auditor,
    ];

    /// The role a code names (`transit_operator`).
    pub fn from_code(code: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// A verified operator: who, in which role, for which organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The provider's subject (a person or a system).
    pub subject: String,
    /// The role the token grants.
    pub role: Role,
    /// The organisation acted for (a facility's code, a party organisation's dotted path).
    pub organisation: String,
}

impl Operator {
    /// Refused (403 `forbidden`) unless the operator holds one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                ServerErrorCode::Forbidden,
                &format!("the {} role may not do this", self.role.code()),
            ))
        }
    }

    /// Whether a party organisation governs `cell`: its own path, or one below it
    /// (`hn.ba-dinh` governs `hn.ba-dinh.dien-bien.chi-bo-1`).
    pub fn governs_cell(&self, cell: &str) -> bool {
        self.role == Role::PartyOrganisation && governs(&self.organisation, cell)
    }
}

/// Whether the party path `organisation` is `path` or above it (`hn.ba-dinh` governs
/// `hn.ba-dinh` and `hn.ba-dinh.dien-bien.chi-bo-1`, not `hn.ba-dinhx`): the rule for the
/// cells an organisation acts on and for the records and files it may replace there.
pub fn governs(organisation: &str, path: &str) -> bool {
    path.strip_prefix(organisation)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// The route's operator, as the gate verified it (401 when the request carries none).
impl<S: Send + Sync> FromRequestParts<S> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Operator>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("an operator's token is required"))
    }
}

/// The staff identity provider the backend trusts for operators.
#[derive(Clone)]
pub struct Operators {
    issuer: String,
    audience: String,
    keys: JwksSource,
    /// The organisations each pinned role may act for (a role not named: any the provider
    /// gives it).
    pinned: std::collections::HashMap<Role, Vec<String>>,
}

/// The longest an operator's token may be valid for: a stolen one expires within the hour.
pub const MAX_TOKEN_LIFETIME_SECS: i64 = 3600;

impl Operators {
    /// Operators signed in at `issuer`, for `audience`, with the provider's keys.
    pub fn new(issuer: &str, audience: &str, keys: JwksSource) -> Operators {
        Operators {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys,
            pinned: Default::default(),
        }
    }

    /// These operators, with `role` held only for `organisation` (repeatable: each call adds
    /// one). The roles whose data has one owner city-wide (the transit operator's validators,
    /// sales and deny list; the health authority's trust list; the civil registry; account
    /// support; auditors) carry no organisation of their own: pinned, a token the staff
    /// provider gives another organisation (a contractor, a second transit company) is refused
    /// instead of holding the city's power.
    pub fn pinned(mut self, role: Role, organisation: &str) -> Operators {
        self.pinned
            .entry(role)
            .or_default()
            .push(organisation.to_owned());
        self
    }

    /// Operators whose provider's keys never change (tests).
    pub fn fixed(issuer: &str, audience: &str, jwks: JwkSet) -> Operators {
        Operators::new(issuer, audience, JwksSource::fixed(jwks))
    }

    /// The operator whose token the request carries (401 otherwise).
    pub async fn verify(&self, headers: &HeaderMap) -> Result<Operator, ApiError> {
        let refused = |why: &str| ApiError::unauthorized(&format!("operator token refused: {why}"));
        let token = bearer(headers).ok_or_else(|| refused("none given"))?;
        let claims = self
            .keys
            .verify_with(token, |jwks| {
                verify_jws(jwks, &self.issuer, &self.audience, token)
            })
            .await
            .map_err(|e| refused(&e))?;
        let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
        if lifetime > MAX_TOKEN_LIFETIME_SECS {
            return Err(refused("valid for longer than an hour"));
        }
        let text = |name: &str| {
            claims[name]
                .as_str()
                .filter(|v| crate::http::valid_id(v, 100))
                .map(str::to_owned)
        };
        let subject = text("sub").ok_or_else(|| refused("no subject"))?;
        let role = text("thudo_role")
            .and_then(|r| Role::from_code(&r))
            .ok_or_else(|| refused("no known thudo_role"))?;
        let organisation = text("thudo_org")
            .filter(|o| {
                o.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
            })
            .ok_or_else(|| refused("no thudo_org (lower-case letters, digits, - . _)"))?;
        if let Some(allowed) = self.pinned.get(&role) {
            if !allowed.contains(&organisation) {
                // The staff provider gave a city-wide role to another organisation: a wrongly
                // provisioned or hostile account, for whoever runs the backend to hear of.
                eprintln!(
                    "warning: an operator token for {} from organisation {organisation} was refused (pinned)",
                    role.code()
                );
                return Err(ApiError::forbidden(
                    ServerErrorCode::Forbidden,
                    &format!(
                        "the {} role is not held for organisation {organisation}",
                        role.code()
                    ),
                ));
            }
        }
        Ok(Operator {
            subject,
            role,
            organisation,
        })
    }
}
