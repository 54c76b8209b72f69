//! The terms both parties sign, as written in `agreement.toml`.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{AgreementError, AgreementId, time};

/// Domain-separation tag hashed (and signed) before the canonical bytes.
pub(crate) const ID_DOMAIN: &[u8] = b"tandem-agreement-v1\n";

/// What the two parties agree to, as humans write it in `agreement.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    /// Format version; must be 1.
    pub version: u32,
    /// Purpose of the processing (PIPL Art. 6, 17; GDPR Art. 5(1)(b)); non-empty.
    pub purpose: String,
    /// Legal basis, e.g. `PIPL Art. 13(1) consent; GDPR Art. 6(1)(a)`; non-empty.
    pub legal_basis: String,
    /// End of the agreement, RFC 3339 UTC (`2027-06-30T00:00:00Z`), kept as written.
    pub expires_at: String,
    /// Identifier kinds joined on: `email`, `phone`, `device_id`, `sha256`; non-empty, distinct.
    pub join_keys: Vec<String>,
    /// Noised cells below this are reported as `< threshold` instead of a number.
    #[serde(default)]
    pub min_reporting_threshold: u64,
    /// How many days results and audiences may be kept (GDPR Art. 5(1)(e)); at least 1.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Cross-border transfer mechanism (PIPL Art. 38), required when the parties' regions
    /// differ. Left out of the canonical bytes when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_mechanism: Option<String>,
    /// Reference to the personal-information protection impact assessment (PIPL Arts. 55–56)
    /// made for this processing, e.g. `PIA-2026-014 (filed 2026-10-02)`; non-empty when given.
    /// Recorded, not required. Left out of the canonical bytes when absent, so terms written
    /// without it keep the id they had before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact_assessment: Option<String>,
    /// Length in days of the budget period, when the parties agree that budgets refresh: each
    /// party's `epsilon_total` / `delta_total` then cap the runs started in one period instead
    /// of over the agreement's whole life. Periods are aligned to the Unix epoch (a period
    /// starts at a multiple of `days × 86 400` seconds, UTC), so both nodes agree on them
    /// without coordinating. At least 1 when given; absent (the default) means no refresh.
    /// Left out of the canonical bytes when absent, so terms written without it keep the id
    /// they had before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_refresh_days: Option<u32>,
    /// The PSI protocol the runs under this agreement use (`protocols/agreement-v1.md` §2.1).
    /// Absent means [`Protocol::PsiCaV1`], and v1 is left out of the canonical bytes, so terms
    /// written before the field existed keep their id.
    #[serde(default, skip_serializing_if = "Protocol::is_v1")]
    pub protocol: Protocol,
    /// The two parties.
    pub parties: Vec<Party>,
}

/// The PSI protocol an agreement selects, written `psi-ca-v1` or `psi-ca-v2` in the terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// `protocols/psi-ca-v1.md`: the querier counts; the responder's noise is injected as
    /// fake matches (DP against a semi-honest querier only).
    #[default]
    #[serde(rename = "psi-ca-v1")]
    PsiCaV1,
    /// `protocols/psi-ca-v2.md`: the responder counts and adds central noise after verifying
    /// the querier's shuffle proof (DP against any querier).
    #[serde(rename = "psi-ca-v2")]
    PsiCaV2,
}

impl Protocol {
    /// The name written in the terms and reports: `psi-ca-v1` or `psi-ca-v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::PsiCaV1 => "psi-ca-v1",
            Protocol::PsiCaV2 => "psi-ca-v2",
        }
    }

    /// Whether this is the default, [`Protocol::PsiCaV1`] (left out of the canonical bytes).
    pub fn is_v1(&self) -> bool {
        *self == Protocol::PsiCaV1
    }

    /// What the agreement's protocol guarantees each party, in one sentence per party:
    /// `(responder's data, querier's data)`, as `psi-ca-v1.md` §6 and `psi-ca-v2.md` §1 state.
    pub fn threat_model(self) -> ThreatModel {
        match self {
            Protocol::PsiCaV1 => ThreatModel {
                responder: "the responder's cells are DP against a semi-honest querier only \
                            (a querier that deviates can strip the injected noise)",
                querier: "the querier's bucket sizes are DP against any responder; \
                          the counts stay with the querier",
            },
            Protocol::PsiCaV2 => ThreatModel {
                responder: "the responder's cells are DP against any querier \
                            (central noise added after counting, shuffle proof verified)",
                querier: "the querier's bucket sizes are DP against any responder; its \
                          segment counts (which the responder counts) are DP against a \
                          semi-honest responder only (a cheating responder can strip the \
                          querier's dummies); no output integrity",
            },
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What each role's data is protected against under a [`Protocol`] (plain sentences).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ThreatModel {
    /// The guarantee for the responder's (B's) data.
    pub responder: &'static str,
    /// The guarantee for the querier's (A's) data.
    pub querier: &'static str,
}

/// One of the two parties.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// Short name, `[a-z0-9_-]{1,64}`.
    pub name: String,
    /// Base URL of the party's node, `https://host:port`.
    pub url: String,
    /// Lower-case hex of the party's ed25519 public key (32 bytes).
    pub signing_key: String,
    /// Lower-case hex SHA-256 of the DER TLS certificate the node serves (pinned by the peer).
    pub tls_cert_sha256: String,
    /// Data-residency region, e.g. `CN`, `EU`, `US-CA`.
    pub region: String,
    /// Group-by columns this party may use, each with its public value set (non-empty, distinct
    /// values; `other` is reserved for values outside the set).
    #[serde(default)]
    pub columns: BTreeMap<String, Vec<String>>,
    /// Value columns this party holds (revenue, orders, …) that `psi-sum-v1` may sum over the
    /// overlap, each with its unit and clamping bound `U` (`protocols/agreement-v1.md` §2.3a).
    /// Left out of the canonical bytes when empty, so terms written without it keep the id they
    /// had before the field existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, ValueColumn>,
    /// The party's differential-privacy budget.
    pub budget: Budget,
}

/// One value column of a party: its unit and the bound `U` its values are clamped to at import
/// (`[0, U]`, so one customer moves a sum by at most `U`; `protocols/psi-sum-v1.md` §4.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueColumn {
    /// The column's integer unit, e.g. `cents`, `fen`, `orders`; 1–32 characters.
    pub unit: String,
    /// `U`: values lie in `[0, U]`; `1 ≤ U ≤` [`crate::MAX_VALUE_BOUND`], and
    /// `U ≤` [`crate::MAX_SQUARED_VALUE_BOUND`] when `squares` is set.
    pub bound: u32,
    /// Whether runs may also release sums of squares (for variances: value lift, intervals of
    /// means). Left out of the canonical bytes when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub squares: bool,
}

/// A party's differential-privacy budget.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// ε spent by one query; > 0.
    pub epsilon_per_query: f64,
    /// ε for the life of the agreement (or for each budget period, when
    /// [`Terms::budget_refresh_days`] is set); ≥ `epsilon_per_query`.
    pub epsilon_total: f64,
    /// δ spent by one query; in (0, 1): the clamped noise of every query costs a δ > 0, so
    /// δ = 0 is refused (`protocols/agreement-v1.md` §2.4).
    pub delta_per_query: f64,
    /// δ for the life of the agreement (or for each budget period, when
    /// [`Terms::budget_refresh_days`] is set); in (0, 1) and ≥ `delta_per_query`.
    pub delta_total: f64,
}

fn default_retention_days() -> u32 {
    365
}

impl Terms {
    /// Parses `agreement.toml` and validates it.
    pub fn from_toml(text: &str) -> Result<Terms, AgreementError> {
        let terms: Terms =
            toml::from_str(text).map_err(|e| AgreementError::Parse(e.to_string()))?;
        terms.validate()?;
        Ok(terms)
    }

    /// The canonical bytes of the terms (`protocols/agreement-v1.md` §3): the terms as JSON,
    /// absent options left out, written by [`tandem_canonical::to_canonical_string`] (RFC 8785:
    /// keys sorted, no whitespace, floats as ECMAScript prints them, so `5.0` is `5`).
    /// The id and both signatures are computed over `b"tandem-agreement-v1\n"` followed by them.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serialising `Terms` cannot fail: every map key is a string and every field has an
        // infallible `Serialize`. Non-finite floats become `null` (and fail validation).
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        // Nor can writing it: every number comes from an integer or a finite `f64` field, and
        // only a number outside the range of a double has no canonical form. The fallback
        // (serde_json's compact text) is unreachable.
        tandem_canonical::to_canonical_string(&value)
            .unwrap_or_else(|_| value.to_string())
            .into_bytes()
    }

    /// SHA-256 of `b"tandem-agreement-v1\n"` followed by [`Terms::canonical_bytes`].
    pub fn id(&self) -> AgreementId {
        AgreementId(Sha256::digest(self.signed_message()).into())
    }

    /// The message each party signs: the id's preimage (domain tag, then canonical bytes).
    pub(crate) fn signed_message(&self) -> Vec<u8> {
        let mut message = ID_DOMAIN.to_vec();
        message.extend_from_slice(&self.canonical_bytes());
        message
    }

    /// The party called `name`.
    pub fn party(&self, name: &str) -> Option<&Party> {
        self.parties.iter().find(|p| p.name == name)
    }

    /// The other party, seen from party `name` (`None` if `name` is not a party).
    pub fn peer_of(&self, name: &str) -> Option<&Party> {
        self.party(name)?;
        self.parties.iter().find(|p| p.name != name)
    }

    /// `expires_at` as seconds since the Unix epoch.
    pub fn expires_at_unix(&self) -> Result<i64, AgreementError> {
        time::parse_rfc3339_utc(&self.expires_at).map_err(AgreementError::Parse)
    }
}

impl Party {
    /// The party's ed25519 public key, parsed from `signing_key`.
    pub fn verifying_key(&self) -> Result<VerifyingKey, AgreementError> {
        let bytes = decode_hex32(&self.signing_key).ok_or_else(|| {
            AgreementError::Invalid(format!(
                "party {}: signing_key must be 64 lower-case hex characters",
                self.name
            ))
        })?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| {
            AgreementError::Invalid(format!(
                "party {}: signing_key is not an ed25519 public key",
                self.name
            ))
        })
    }

    /// The pinned TLS certificate digest, parsed from `tls_cert_sha256`.
    pub fn tls_cert_digest(&self) -> Result<[u8; 32], AgreementError> {
        decode_hex32(&self.tls_cert_sha256).ok_or_else(|| {
            AgreementError::Invalid(format!(
                "party {}: tls_cert_sha256 must be 64 lower-case hex characters",
                self.name
            ))
        })
    }
}

/// Decodes exactly 64 lower-case hex characters.
pub(crate) fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}
