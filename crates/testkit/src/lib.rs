//! Test fixtures for Tandem, used only as a dev-dependency (`publish = false`):
//!
//! - [`AgreementBuilder`] / [`PartySpec`]: agreement terms without hand-written TOML;
//! - [`noise`]: [`noise::NoNoise`] (every draw is the offset `T`) and [`noise::SeededLaplace`]
//!   (reproducible discrete Laplace) for the PSI state machines;
//! - [`NodePair`]: two nodes (`acme` querier, `shopx` responder) in a temporary directory with
//!   audiences, an active agreement and their HTTPS servers running in process on loopback;
//! - [`api_call`]: one request to a node's API through its router, status and JSON body.

#![forbid(unsafe_code)]

mod api;
pub mod noise;
mod pair;

pub use api::{api_call, api_call_bytes};
pub use pair::{NodePair, REVENUE_BOUND, Side, revenue_cents};

use tandem_agreement::{Agreement, Terms};

/// The key and fingerprint placeholder `tandem agreement propose` fills in for the proposer.
pub const PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One party of an agreement under construction.
#[derive(Clone, Debug)]
pub struct PartySpec {
    name: String,
    url: String,
    signing_key: String,
    tls_cert_sha256: String,
    region: String,
    columns: Vec<(String, Vec<String>)>,
    values: Vec<(String, String, u32, bool)>,
    budget: [f64; 4],
}

impl PartySpec {
    /// A party in region `CN` with placeholder keys, no columns, ε 2 a query and 50 in all,
    /// δ 1e-9 a query and 1e-6 in all.
    pub fn new(name: &str) -> PartySpec {
        PartySpec {
            name: name.to_string(),
            url: "https://127.0.0.1:1".to_string(),
            signing_key: PLACEHOLDER.to_string(),
            tls_cert_sha256: PLACEHOLDER.to_string(),
            region: "CN".to_string(),
            columns: Vec::new(),
            values: Vec::new(),
            budget: [2.0, 50.0, 1e-9, 1e-6],
        }
    }

    /// The party of a node: its URL, signing key and certificate.
    pub fn node(name: &str, home: &tandem_node::Home) -> PartySpec {
        PartySpec::new(name)
            .url(&home.config.public_url)
            .keys(&home.key_fingerprint(), &home.tls_fingerprint())
    }

    /// Keys derived from a seed byte (signing key of `[seed; 32]`, certificate hash of `seed`
    /// repeated), for tests that need no running node.
    pub fn seeded(name: &str, seed: u8) -> PartySpec {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        PartySpec::new(name).keys(
            &tandem_agreement::fingerprint(&key.verifying_key()),
            &format!("{seed:02x}").repeat(32),
        )
    }

    /// The node URL.
    pub fn url(mut self, url: &str) -> PartySpec {
        self.url = url.to_string();
        self
    }

    /// Hex signing key and hex SHA-256 of the TLS certificate.
    pub fn keys(mut self, signing_key: &str, tls_cert_sha256: &str) -> PartySpec {
        self.signing_key = signing_key.to_string();
        self.tls_cert_sha256 = tls_cert_sha256.to_string();
        self
    }

    /// Data-residency region.
    pub fn region(mut self, region: &str) -> PartySpec {
        self.region = region.to_string();
        self
    }

    /// A group-by column and its public values.
    pub fn column(mut self, name: &str, values: &[&str]) -> PartySpec {
        self.columns.push((
            name.to_string(),
            values.iter().map(|v| v.to_string()).collect(),
        ));
        self
    }

    /// A value column (`psi-sum-v1`): its unit, clamping bound `U` and whether sums of squares
    /// may be released.
    pub fn value(mut self, name: &str, unit: &str, bound: u32, squares: bool) -> PartySpec {
        self.values
            .push((name.to_string(), unit.to_string(), bound, squares));
        self
    }

    /// ε per query and in all (δ stays 1e-9 a query, 1e-6 in all).
    pub fn epsilon(mut self, per_query: f64, total: f64) -> PartySpec {
        self.budget[0] = per_query;
        self.budget[1] = total;
        self
    }

    fn toml(&self) -> String {
        let quoted = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = format!(
            "[[parties]]\nname = {:?}\nurl = {:?}\nsigning_key = {:?}\ntls_cert_sha256 = {:?}\nregion = {:?}\n[parties.columns]\n",
            self.name, self.url, self.signing_key, self.tls_cert_sha256, self.region
        );
        for (c, values) in &self.columns {
            s += &format!("{c} = [{}]\n", quoted(values));
        }
        if !self.values.is_empty() {
            s += "[parties.values]\n";
        }
        for (c, unit, bound, squares) in &self.values {
            s += &format!("{c} = {{ unit = {unit:?}, bound = {bound}, squares = {squares} }}\n");
        }
        let [pq, total, dpq, dtotal] = self.budget;
        s += &format!(
            "[parties.budget]\nepsilon_per_query = {pq:?}\nepsilon_total = {total:?}\ndelta_per_query = {dpq:e}\ndelta_total = {dtotal:e}\n"
        );
        s
    }
}

/// Agreement terms for tests: `version = 1`, expiring 2099, join key `email`, threshold 0,
/// retention 30 days, unless changed.
#[derive(Clone, Debug)]
pub struct AgreementBuilder {
    purpose: String,
    expires_at: String,
    threshold: u64,
    refresh_days: Option<u32>,
    protocol: Option<String>,
    parties: Vec<PartySpec>,
}

impl Default for AgreementBuilder {
    fn default() -> Self {
        AgreementBuilder {
            purpose: "tests".to_string(),
            expires_at: "2099-01-01T00:00:00Z".to_string(),
            threshold: 0,
            refresh_days: None,
            protocol: None,
            parties: Vec::new(),
        }
    }
}

impl AgreementBuilder {
    /// The defaults.
    pub fn new() -> AgreementBuilder {
        AgreementBuilder::default()
    }

    /// The purpose.
    pub fn purpose(mut self, purpose: &str) -> AgreementBuilder {
        self.purpose = purpose.to_string();
        self
    }

    /// `expires_at` (RFC 3339).
    pub fn expires_at(mut self, when: &str) -> AgreementBuilder {
        self.expires_at = when.to_string();
        self
    }

    /// The minimum reporting threshold.
    pub fn threshold(mut self, threshold: u64) -> AgreementBuilder {
        self.threshold = threshold;
        self
    }

    /// `budget_refresh_days`.
    pub fn refresh_days(mut self, days: u32) -> AgreementBuilder {
        self.refresh_days = Some(days);
        self
    }

    /// `protocol` (`psi-ca-v1` or `psi-ca-v2`); absent by default (v1).
    pub fn protocol(mut self, protocol: &str) -> AgreementBuilder {
        self.protocol = Some(protocol.to_string());
        self
    }

    /// Adds a party (the first is usually the querier).
    pub fn party(mut self, party: PartySpec) -> AgreementBuilder {
        self.parties.push(party);
        self
    }

    /// The terms as TOML (what `tandem agreement propose --file` reads).
    pub fn toml(&self) -> String {
        let mut s = format!(
            "version = 1\npurpose = {:?}\nlegal_basis = \"test\"\nexpires_at = {:?}\njoin_keys = [\"email\"]\nmin_reporting_threshold = {}\nretention_days = 30\n",
            self.purpose, self.expires_at, self.threshold
        );
        if let Some(days) = self.refresh_days {
            s += &format!("budget_refresh_days = {days}\n");
        }
        if let Some(protocol) = &self.protocol {
            s += &format!("protocol = {protocol:?}\n");
        }
        for p in &self.parties {
            s.push('\n');
            s += &p.toml();
        }
        s
    }

    /// The terms, parsed.
    pub fn terms(&self) -> Terms {
        Terms::from_toml(&self.toml()).expect("the builder's terms parse")
    }

    /// An unsigned agreement.
    pub fn agreement(&self) -> Agreement {
        Agreement::new(self.terms())
    }

    /// The agreement signed by each `(party, key)`.
    pub fn signed(&self, keys: &[(&str, &ed25519_dalek::SigningKey)]) -> Agreement {
        let mut agreement = self.agreement();
        for (party, key) in keys {
            agreement.sign(party, key).expect("sign");
        }
        agreement
    }
}

/// Stores `agreement` as active in `store`.
pub fn store_active(store: &mut tandem_store::Store, agreement: &Agreement) {
    let json = serde_json::to_string(agreement).expect("agreement JSON");
    store
        .put_agreement(&agreement.id().to_string(), &json, "active", "test")
        .expect("store the agreement");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_terms_parse_and_validate() {
        let terms = AgreementBuilder::new()
            .refresh_days(30)
            .party(PartySpec::seeded("acme", 1).column("seg", &["x", "y"]))
            .party(PartySpec::seeded("shopx", 2).epsilon(1.0, 10.0))
            .terms();
        terms.validate().expect("valid");
        assert_eq!(terms.budget_refresh_days, Some(30));
        assert_eq!(terms.parties[1].budget.epsilon_total, 10.0);
        assert_eq!(terms.parties[0].columns["seg"], ["x", "y"]);
    }
}
