//! Every rule the terms must satisfy before anyone signs or acts under them.

use std::collections::BTreeSet;

use tandem_identity::IdKind;

use crate::terms::decode_hex32;
use crate::{AgreementError, Budget, Party, Terms, ValueColumn, time};

/// Most values one group-by column may list (bounds the number of noised cells).
pub const MAX_COLUMN_VALUES: usize = 1024;
/// Largest value bound `U` of a value column: keeps the noise offset of a sum
/// (`T ≈ U·ln(1/δ)/ε`, `protocols/psi-sum-v1.md` §2) below `2^31` for ε ≥ 0.2 at δ = 10⁻⁹, and a
/// cell of 4096 matched customers inside the querier's 2^36 search range.
pub const MAX_VALUE_BOUND: u32 = 1 << 24;
/// Largest value bound `U` of a value column that releases sums of squares: `U²` is their
/// sensitivity and must fit 32 bits (`tandem_sum::MAX_SQUARED_BOUND`).
pub const MAX_SQUARED_VALUE_BOUND: u32 = u16::MAX as u32;
/// The bucket label for values outside a column's value set; no value may use it.
pub const OTHER_LABEL: &str = "other";

impl Terms {
    /// Checks every rule and reports all problems at once, separated by `; `.
    pub fn validate(&self) -> Result<(), AgreementError> {
        let mut problems = Vec::new();
        self.check_header(&mut problems);
        self.check_parties(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(AgreementError::Invalid(problems.join("; ")))
        }
    }

    fn check_header(&self, problems: &mut Vec<String>) {
        if self.version != 1 {
            problems.push(format!("version must be 1, found {}", self.version));
        }
        if self.purpose.trim().is_empty() {
            problems.push("purpose is empty".into());
        }
        if self.legal_basis.trim().is_empty() {
            problems.push("legal_basis is empty".into());
        }
        if let Err(e) = time::parse_rfc3339_utc(&self.expires_at) {
            problems.push(format!("expires_at: {e}"));
        }
        if self.join_keys.is_empty() {
            problems.push("join_keys is empty".into());
        }
        let mut seen = BTreeSet::new();
        for key in &self.join_keys {
            if let Err(e) = key.parse::<IdKind>() {
                problems.push(format!("join_keys: {e}"));
            } else if !seen.insert(key.as_str()) {
                problems.push(format!("join_keys lists {key:?} twice"));
            }
        }
        if self.retention_days == 0 {
            problems.push("retention_days must be at least 1".into());
        }
        if let Some(mechanism) = &self.transfer_mechanism
            && mechanism.trim().is_empty()
        {
            problems.push("transfer_mechanism is empty: name the mechanism or leave it out".into());
        }
        if let Some(assessment) = &self.impact_assessment
            && assessment.trim().is_empty()
        {
            problems.push(
                "impact_assessment is empty: name the assessment (PIPL Art. 55) or leave it out"
                    .into(),
            );
        }
        if self.budget_refresh_days == Some(0) {
            problems.push(
                "budget_refresh_days must be at least 1: give the period in days or leave it out"
                    .into(),
            );
        }
    }

    fn check_parties(&self, problems: &mut Vec<String>) {
        if self.parties.len() != 2 {
            problems.push(format!(
                "exactly 2 parties are required, found {}",
                self.parties.len()
            ));
        }
        for party in &self.parties {
            check_party(party, problems);
        }
        if let [a, b] = self.parties.as_slice() {
            if a.name == b.name {
                problems.push(format!("both parties are named {:?}", a.name));
            }
            if a.signing_key == b.signing_key {
                problems.push("both parties have the same signing_key".into());
            }
            if a.tls_cert_sha256 == b.tls_cert_sha256 {
                problems.push("both parties have the same tls_cert_sha256".into());
            }
            if a.region != b.region && self.transfer_mechanism.is_none() {
                problems.push(format!(
                    "cross-border transfer between {} and {} needs a transfer_mechanism \
                     (PIPL Art. 38: CAC security assessment, certification or standard contract)",
                    a.region, b.region
                ));
            }
        }
    }
}

fn check_party(party: &Party, problems: &mut Vec<String>) {
    let mut push = |problem: String| problems.push(format!("party {:?}: {problem}", party.name));
    let name_ok = (1..=64).contains(&party.name.len())
        && party
            .name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
    if !name_ok {
        push("name must match [a-z0-9_-]{1,64}".into());
    }
    if let Err(e) = check_url(&party.url) {
        push(format!("url {e}"));
    }
    check_signing_key(&party.signing_key, &mut push);
    check_digest_field("tls_cert_sha256", &party.tls_cert_sha256, &mut push);
    let region_ok = (1..=16).contains(&party.region.len())
        && party.region.starts_with(|c: char| c.is_ascii_uppercase())
        && party
            .region
            .bytes()
            .all(|b| matches!(b, b'A'..=b'Z' | b'0'..=b'9' | b'-'));
    if !region_ok {
        push("region must be an upper-case code like CN, EU or US-CA".into());
    }
    for (column, values) in &party.columns {
        if let Err(e) = check_column(column, values) {
            push(format!("column {column:?}: {e}"));
        }
    }
    for (column, value) in &party.values {
        if let Err(e) = check_value_column(column, value) {
            push(format!("value column {column:?}: {e}"));
        }
        if party.columns.contains_key(column) {
            push(format!(
                "{column:?} is both a group-by column and a value column"
            ));
        }
    }
    if let Err(e) = check_budget(&party.budget) {
        push(format!("budget: {e}"));
    }
}

/// `https://host:port` with nothing after the port.
fn check_url(url: &str) -> Result<(), String> {
    let shape = "must look like https://host:port";
    let authority = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url:?} {shape} (https only)"))?;
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| format!("{url:?} {shape} (port missing)"))?;
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ipv6) => {
            !ipv6.is_empty()
                && ipv6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        }
    };
    if !host_ok {
        return Err(format!("{url:?} {shape} (bad host)"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(format!("{url:?} {shape} (bad port)")),
    }
}

fn check_signing_key(key: &str, push: &mut impl FnMut(String)) {
    if !check_digest_field("signing_key", key, push) {
        return;
    }
    let parsed = decode_hex32(key).map(|bytes| ed25519_dalek::VerifyingKey::from_bytes(&bytes));
    match parsed {
        Some(Ok(k)) if !k.is_weak() => {}
        _ => push("signing_key is not a usable ed25519 public key".into()),
    }
}

/// Checks a 64-hex field; returns whether it is well formed and not the all-zero placeholder.
fn check_digest_field(field: &str, value: &str, push: &mut impl FnMut(String)) -> bool {
    match decode_hex32(value) {
        None => {
            push(format!("{field} must be 64 lower-case hex characters"));
            false
        }
        Some(bytes) if bytes == [0u8; 32] => {
            push(format!(
                "{field} is the all-zero placeholder: paste the value `tandem init` printed"
            ));
            false
        }
        Some(_) => true,
    }
}

fn check_column(column: &str, values: &[String]) -> Result<(), String> {
    check_column_name(column)?;
    if values.is_empty() {
        return Err("value set is empty".into());
    }
    if values.len() > MAX_COLUMN_VALUES {
        return Err(format!(
            "{} values, at most {MAX_COLUMN_VALUES} allowed",
            values.len()
        ));
    }
    let mut seen = BTreeSet::new();
    for value in values {
        if value.trim().is_empty() || value.trim() != value {
            return Err(format!(
                "value {value:?} is empty or has surrounding whitespace"
            ));
        }
        if value.eq_ignore_ascii_case(OTHER_LABEL) {
            return Err(format!(
                "value {value:?} is reserved for values outside the set"
            ));
        }
        if !seen.insert(value.as_str()) {
            return Err(format!("value {value:?} is listed twice"));
        }
    }
    Ok(())
}

fn check_value_column(column: &str, value: &ValueColumn) -> Result<(), String> {
    check_column_name(column)?;
    let unit_ok = (1..=32).contains(&value.unit.len())
        && value
            .unit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !unit_ok {
        return Err("unit must match [A-Za-z0-9_.-]{1,32}, e.g. cents".into());
    }
    if value.bound == 0 || value.bound > MAX_VALUE_BOUND {
        return Err(format!(
            "bound must be in 1..={MAX_VALUE_BOUND}, found {}",
            value.bound
        ));
    }
    if value.squares && value.bound > MAX_SQUARED_VALUE_BOUND {
        return Err(format!(
            "bound {} is above {MAX_SQUARED_VALUE_BOUND}, the most a column with squares may \
             have (U² must fit 32 bits)",
            value.bound
        ));
    }
    Ok(())
}

fn check_column_name(column: &str) -> Result<(), String> {
    let name_ok = (1..=64).contains(&column.len())
        && column
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !name_ok {
        return Err("name must match [A-Za-z0-9_.-]{1,64}".into());
    }
    Ok(())
}

fn check_budget(budget: &Budget) -> Result<(), String> {
    let Budget {
        epsilon_per_query: eps_q,
        epsilon_total: eps_t,
        delta_per_query: delta_q,
        delta_total: delta_t,
    } = *budget;
    if !(eps_q.is_finite() && eps_q > 0.0) {
        return Err(format!(
            "epsilon_per_query must be a finite number > 0, found {eps_q}"
        ));
    }
    if !(eps_t.is_finite() && eps_t >= eps_q) {
        return Err(format!(
            "epsilon_total must be finite and at least epsilon_per_query ({eps_q}), found {eps_t}"
        ));
    }
    // δ = 0 cannot run: every query's noise is clamped to a public range, which costs a δ > 0
    // per mechanism (protocols/psi-ca-v1.md §6), and the zCDP route of the ledger converts to
    // (ε, δ)-DP only at δ > 0. Refused here rather than at the first query.
    if !(delta_q > 0.0 && delta_q < 1.0) {
        return Err(format!(
            "delta_per_query must be in (0, 1), found {delta_q}: every query clamps its noise to a \
             public range, which costs a δ > 0 (pure ε-DP, δ = 0, cannot run); 1e-9 is typical"
        ));
    }
    if !(delta_t > 0.0 && delta_t < 1.0 && delta_t >= delta_q) {
        return Err(format!(
            "delta_total must be in (0, 1) and at least delta_per_query ({delta_q}), found {delta_t}"
        ));
    }
    Ok(())
}
