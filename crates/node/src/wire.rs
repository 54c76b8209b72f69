//! The node-to-node envelope (`protocols/node-wire-v1.md`): every request and response between
//! paired nodes carries the agreement id, the run id, the sender's party name, a timestamp and an
//! ed25519 signature over those and the SHA-256 of the body. The server authenticates the caller
//! by this signature (the TLS layer authenticates the server by pinning); the run id makes each
//! message single-use, and the timestamp bounds how long a captured message could be replayed.
//!
//! Everything two nodes exchange is here and nowhere else: the envelope, the frame, the peer
//! endpoints' paths, the run's JSON parts ([`RunRequest`], [`RunOpening`], [`Receipt`]) and the
//! signed ledger heads ([`SignedHead`]). This module knows HTTP headers (`http`), not a server.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hex::FromHex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tandem_dp::PrivacyLoss;

use crate::error::{Code, NodeError, Result};

/// Path of the PSI run endpoint.
pub const PSI_PATH: &str = "/v1/psi/run";
/// Signature kind of a PSI request.
pub const PSI_REQUEST: &str = "request POST /v1/psi/run";
/// Signature kind of a PSI response.
pub const PSI_RESPONSE: &str = "response POST /v1/psi/run";
/// Path of psi-ca-v2's second round trip (`protocols/node-wire-v1.md` §psi-ca-v2): the
/// querier's Msg3 (its evaluation and shuffle proofs), answered with the responder's Msg4 (the
/// noised counts). Msg1 → Msg2 is the first round trip on [`PSI_PATH`].
pub const PSI_V2_FINISH_PATH: &str = "/v1/psi/v2/finish";
/// Signature kind of a psi-ca-v2 Msg3 request.
pub const PSI_V2_FINISH_REQUEST: &str = "request POST /v1/psi/v2/finish";
/// Signature kind of a psi-ca-v2 Msg4 response.
pub const PSI_V2_FINISH_RESPONSE: &str = "response POST /v1/psi/v2/finish";
/// Path of the audience-version check (signed, uncharged): is the version a cached answer used
/// still current?
pub const AUDIENCE_VERSION_PATH: &str = "/v1/psi/audience-version";
/// Signature kind of an audience-version request.
pub const AUDIENCE_VERSION_REQUEST: &str = "request POST /v1/psi/audience-version";
/// Signature kind of an audience-version response.
pub const AUDIENCE_VERSION_RESPONSE: &str = "response POST /v1/psi/audience-version";
/// Path of the budget pre-check (signed, uncharged): would the responder admit this run now?
pub const BUDGET_CHECK_PATH: &str = "/v1/psi/budget-check";
/// Signature kind of a budget pre-check request.
pub const BUDGET_CHECK_REQUEST: &str = "request POST /v1/psi/budget-check";
/// Signature kind of a budget pre-check response.
pub const BUDGET_CHECK_RESPONSE: &str = "response POST /v1/psi/budget-check";
/// Path where a peer delivers a proposed agreement.
pub const PROPOSE_PATH: &str = "/v1/agreements/propose";
/// Path where a peer delivers a countersigned agreement.
pub const COUNTERSIGN_PATH: &str = "/v1/agreements/countersign";
/// Path of the health check.
pub const HEALTH_PATH: &str = "/v1/health";
/// Largest JSON part of a frame, bytes.
pub const MAX_FRAME_JSON: usize = 1 << 20;
/// The protocol a run speaks unless its agreement selects another (`psi-ca-v2`).
pub const PROTOCOL: &str = "psi-ca-v1";

/// Header carrying the agreement id (hex).
pub const H_AGREEMENT: &str = "tandem-agreement";
/// Header carrying the run id (hex, 16 bytes).
pub const H_RUN: &str = "tandem-run";
/// Header carrying the sender's party name.
pub const H_SENDER: &str = "tandem-sender";
/// Header carrying the sender's clock, Unix milliseconds.
pub const H_TIMESTAMP: &str = "tandem-timestamp";
/// Header carrying the hex ed25519 signature.
pub const H_SIGNATURE: &str = "tandem-signature";

/// How far a message's timestamp may be from the receiver's clock.
pub const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

/// The authenticated fields of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Agreement the message acts under (hex).
    pub agreement_id: String,
    /// Run the message belongs to (hex, 32 characters).
    pub run_id: String,
    /// Party name of the sender.
    pub sender: String,
    /// Sender's clock, Unix milliseconds.
    pub timestamp_ms: i64,
}

impl Envelope {
    /// The exact bytes signed: a domain label, the message kind (`"request POST /v1/psi/run"` or
    /// `"response POST /v1/psi/run"`), the fields, and the body's SHA-256, one per line.
    pub fn signing_bytes(&self, kind: &str, body: &[u8]) -> Vec<u8> {
        format!(
            "tandem-wire-v1\n{kind}\n{}\n{}\n{}\n{}\n{}",
            self.agreement_id,
            self.run_id,
            self.sender,
            self.timestamp_ms,
            hex::encode(Sha256::digest(body))
        )
        .into_bytes()
    }

    /// Signs the envelope and body; returns the headers to send.
    pub fn sign(&self, kind: &str, body: &[u8], key: &SigningKey) -> Vec<(&'static str, String)> {
        let sig = key.sign(&self.signing_bytes(kind, body));
        vec![
            (H_AGREEMENT, self.agreement_id.clone()),
            (H_RUN, self.run_id.clone()),
            (H_SENDER, self.sender.clone()),
            (H_TIMESTAMP, self.timestamp_ms.to_string()),
            (H_SIGNATURE, hex::encode(sig.to_bytes())),
        ]
    }

    /// Reads the envelope fields from headers (not yet verified).
    /// Errors: 400 `bad_request` naming the missing or malformed header.
    pub fn from_headers(headers: &http::HeaderMap) -> Result<(Envelope, Signature)> {
        let get = |name: &str| -> Result<String> {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| NodeError::bad_request(format!("missing header {name}")))
        };
        let timestamp_ms = get(H_TIMESTAMP)?
            .parse()
            .map_err(|_| NodeError::bad_request("bad tandem-timestamp"))?;
        let sig_bytes: [u8; 64] = parse_hex(&get(H_SIGNATURE)?, "tandem-signature")?;
        let run_id = get(H_RUN)?;
        parse_run_id(&run_id)?;
        Ok((
            Envelope {
                agreement_id: get(H_AGREEMENT)?,
                run_id,
                sender: get(H_SENDER)?,
                timestamp_ms,
            },
            Signature::from_bytes(&sig_bytes),
        ))
    }

    /// Verifies the signature with the sender's key from the agreement and the timestamp against
    /// `now_ms`. Errors: 401 `bad_signature`, 401 `clock_skew` ([`Envelope::check_fresh`]).
    pub fn verify(
        &self,
        kind: &str,
        body: &[u8],
        sig: &Signature,
        key: &VerifyingKey,
        now_ms: i64,
    ) -> Result<()> {
        key.verify_strict(&self.signing_bytes(kind, body), sig)
            .map_err(|_| {
                NodeError::bad_signature(format!(
                    "signature of {} does not verify with its agreement key",
                    self.sender
                ))
            })?;
        self.check_fresh(now_ms)
    }

    /// Checks the timestamp is within [`MAX_SKEW_MS`] of `now_ms` (the receiver's clock, ms
    /// since the Unix epoch). Errors: 401 `clock_skew`, naming both clocks and the window, with
    /// `details` `sender_clock_ms`, `receiver_clock_ms`, `difference_ms` (sender − receiver) and
    /// `allowed_ms`.
    pub fn check_fresh(&self, now_ms: i64) -> Result<()> {
        let difference = self.timestamp_ms.saturating_sub(now_ms);
        if difference.saturating_abs() > MAX_SKEW_MS {
            let direction = if difference > 0 { "ahead of" } else { "behind" };
            return Err(NodeError::new(
                Code::ClockSkew,
                format!(
                    "clock difference: {}'s clock ({} ms since the epoch) is {:.1} s {direction} \
                     the receiver's ({now_ms} ms); the allowed window is ±{} s — check both \
                     nodes' time synchronisation (NTP)",
                    self.sender,
                    self.timestamp_ms,
                    difference.saturating_abs() as f64 / 1000.0,
                    MAX_SKEW_MS / 1000
                ),
            )
            .with_details(serde_json::json!({
                "sender_clock_ms": self.timestamp_ms,
                "receiver_clock_ms": now_ms,
                "difference_ms": difference,
                "allowed_ms": MAX_SKEW_MS,
            })));
        }
        Ok(())
    }
}

/// Parses `2·N` hex digits into `N` bytes; `what` names the field in the 400 `bad_request`.
pub fn parse_hex<const N: usize>(hex_str: &str, what: &str) -> Result<[u8; N]>
where
    [u8; N]: FromHex,
{
    <[u8; N]>::from_hex(hex_str.trim())
        .map_err(|_| NodeError::bad_request(format!("{what} is not {N} bytes of hex")))
}

/// Parses a hex run id (16 bytes).
pub fn parse_run_id(hex_str: &str) -> Result<[u8; 16]> {
    parse_hex(hex_str, "the run id (tandem-run)")
}

/// Parses a hex SHA-256 fingerprint (of a TLS certificate).
pub fn parse_fingerprint(hex_str: &str) -> Result<[u8; 32]> {
    parse_hex(hex_str, "the TLS certificate fingerprint")
}

/// Parses a hex ed25519 public key from an agreement.
pub fn verifying_key(hex_key: &str) -> Result<VerifyingKey> {
    let bytes: [u8; 32] = parse_hex(hex_key, "the ed25519 key")?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| NodeError::bad_request("not a valid ed25519 public key"))
}

/// Frames a JSON header and a binary payload as one body: `u32 LE length ‖ JSON ‖ payload`.
pub fn frame(json: &serde_json::Value, payload: &[u8]) -> Vec<u8> {
    let json = json.to_string().into_bytes();
    let mut out = Vec::with_capacity(4 + json.len() + payload.len());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(payload);
    out
}

/// Splits a body framed by [`frame`], refusing a JSON part over `max_json` bytes (400
/// `bad_request`).
pub fn unframe(body: &[u8], max_json: usize) -> Result<(serde_json::Value, &[u8])> {
    let len_bytes: [u8; 4] = body
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| NodeError::bad_request("body shorter than its 4-byte header length"))?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > max_json {
        return Err(NodeError::bad_request(format!(
            "JSON header of {len} bytes exceeds the limit of {max_json}"
        )));
    }
    let json = body
        .get(4..4 + len)
        .ok_or_else(|| NodeError::bad_request("body shorter than its declared JSON header"))?;
    let value = serde_json::from_slice(json)
        .map_err(|e| NodeError::bad_request(format!("JSON header does not parse: {e}")))?;
    Ok((value, &body[4 + len..]))
}

/// The analysis a request names when it names none (requests before the registry).
fn default_analysis() -> String {
    "overlap".to_string()
}

/// The request the querier sends with its first PSI message (JSON part of the frame).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// Protocol name, [`PROTOCOL`].
    pub protocol: String,
    /// The analysis (a name in the node's analysis registry); `overlap` when absent.
    #[serde(default = "default_analysis")]
    pub analysis: String,
    /// Join key kind.
    pub join_key: String,
    /// Querier's grouping columns (none: one bucket). On the wire `querier_column`: `null`, one
    /// name, or a list of several names, so that a one-column request keeps its old bytes (and
    /// its cache fingerprint).
    #[serde(rename = "querier_column", default, with = "columns")]
    pub querier_columns: Vec<String>,
    /// Responder's grouping columns, as [`RunRequest::querier_columns`] (`responder_column`).
    #[serde(rename = "responder_column", default, with = "columns")]
    pub responder_columns: Vec<String>,
    /// ε of the run.
    pub epsilon: f64,
    /// δ of each mechanism's clamping, from the agreement.
    pub delta: f64,
    /// Identifier normalisation rules the querier hashed with (`tandem-id-v1`); the responder
    /// refuses a run under other rules rather than report a silently smaller overlap.
    pub identity_rules: String,
    /// The responder's value column summed over the overlap by `psi-sum-v1` (value analyses;
    /// `protocols/node-wire-v1.md` §sums). Absent for count analyses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responder_value: Option<String>,
}

/// Serde form of a list of grouping columns that older peers and clients also understand:
/// none is `null` (or absent), one column is its name, several are a list of names. Reading
/// also accepts a list of one, an empty list, and a comma-separated string (`"age_band,region"`,
/// what `--group-by` takes).
pub mod columns {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    /// Splits `"a,b"` into `["a", "b"]`, trimming each name and dropping empty ones.
    pub fn split(text: &str) -> Vec<String> {
        text.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Writes `null`, `"name"` or `["a", "b"]`.
    pub fn serialize<S: Serializer>(columns: &[String], s: S) -> Result<S::Ok, S::Error> {
        match columns {
            [] => s.serialize_none(),
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    /// Reads `null`, `"name"`, `"a,b"` or `["a", "b"]` (names trimmed, empty ones dropped).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Option::<OneOrMany>::deserialize(d)? {
            None => Vec::new(),
            Some(OneOrMany::One(text)) => split(&text),
            Some(OneOrMany::Many(list)) => list
                .iter()
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect(),
        })
    }
}

/// What the querier sends beside its first PSI message (the JSON part of the frame).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunOpening {
    /// The query.
    pub request: RunRequest,
    /// The querier's ledger after reserving this run, signed.
    pub querier_head: SignedHead,
}

/// What the responder returns beside its PSI reply.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Receipt {
    /// ε/δ the responder charged for this run.
    pub charged: PrivacyLoss,
    /// The responder's ledger after the run, signed.
    pub head: SignedHead,
    /// Version of the responder's audience for the run's join key that the answer used (a
    /// counter bumped by every import, opt-out and purge that changes it; absent from nodes
    /// before it). The querier reuses a cached answer only while the peer says it is current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience_version: Option<u64>,
}

/// Body of an audience-version request and of its answer (`audience_version` only in the
/// answer): the responder's current version of its audience for `join_key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudienceVersion {
    /// A join key of the agreement.
    pub join_key: String,
    /// The responder's current version (in the answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience_version: Option<u64>,
}

/// The answer to a budget pre-check (`POST /v1/psi/budget-check`, body: the [`RunRequest`] the
/// querier would send): whether the responder's ledger would admit the run now, and its budget.
/// The responder's ledger is a function of the queries it was asked, not of its data, so the
/// answer is uncharged; nothing is reserved by it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BudgetCheck {
    /// The responder's party name.
    pub party: String,
    /// The responder would admit the run now.
    pub admits: bool,
    /// ε the run would cost the responder.
    pub epsilon_cost: f64,
    /// ε the responder has left under the agreement (and the accounts it shares), before the
    /// run; 0 when not known (a refusal by a per-query cap or the agreement).
    pub epsilon_left: f64,
    /// When refused: the code a run would get (`budget_exceeded`, `refused`, `invalid_query`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// When refused: why (which cap, what is left, when it refreshes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When refused: the refusal's details (`budget`, `cap`, `spent`, `left`, `account`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// One side's budget, as shown in a report and signed in a ledger head.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BudgetView {
    /// Party name.
    pub party: String,
    /// ε charged for this run.
    pub epsilon_spent: f64,
    /// δ charged for this run.
    pub delta_spent: f64,
    /// ε spent so far under the agreement and the budget accounts it shares with other
    /// agreements with the same partner (in the sliding window, when the agreement refreshes
    /// budgets), this run included.
    pub epsilon_total_spent: f64,
    /// ε left under `Σε ≤ ε cap` (the zCDP route may admit runs past 0).
    pub epsilon_left: f64,
    /// ρ spent so far, counted as `epsilon_total_spent` is.
    #[serde(default)]
    pub rho_total_spent: f64,
    /// Which side of the ledger's admission rule admitted this run: `basic` (`Σε ≤ ε cap`) or
    /// `zcdp` (only `Σρ ≤ ρ cap`); `protocols/psi-ca-v1.md` §6.1.
    #[serde(default)]
    pub route: Option<String>,
    /// About how many more runs costing what this one did still fit this party's budget
    /// ([`crate::budget::queries_left`]); `None` when the run cost nothing. A guide for people,
    /// outside the ledger head's signature (so heads of nodes without it verify unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries_left_like_this: Option<u64>,
}

/// A party's ledger after a run, signed with its node key, so that each side keeps offline
/// evidence of what the other charged (stored in its audit log as `peer.ledger`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignedHead {
    /// The ledger view.
    pub budget: BudgetView,
    /// Hex ed25519 signature over [`SignedHead::signing_bytes`].
    pub signature: String,
}

impl SignedHead {
    /// `"tandem-ledger-head-v1" LF agreement LF run LF canonical(budget)`, the budget in the
    /// project's one canonical JSON form (RFC 8785, `tandem-canonical`), without the unsigned
    /// `queries_left_like_this`.
    fn signing_bytes(budget: &BudgetView, agreement: &str, run: &str) -> Result<Vec<u8>> {
        let signed = BudgetView {
            queries_left_like_this: None,
            ..budget.clone()
        };
        let json = tandem_canonical::to_canonical_string(&serde_json::to_value(&signed)?)
            .map_err(NodeError::internal)?;
        Ok(format!("tandem-ledger-head-v1\n{agreement}\n{run}\n{json}").into_bytes())
    }

    /// Signs `budget` for one run.
    pub fn sign(
        budget: BudgetView,
        agreement: &str,
        run: &str,
        key: &SigningKey,
    ) -> Result<SignedHead> {
        let signature = hex::encode(
            key.sign(&Self::signing_bytes(&budget, agreement, run)?)
                .to_bytes(),
        );
        Ok(SignedHead { budget, signature })
    }

    /// Verifies the signature with the party's key (401 `bad_signature`).
    pub fn verify(&self, agreement: &str, run: &str, key: &VerifyingKey) -> Result<()> {
        let bytes: [u8; 64] = parse_hex(&self.signature, "the ledger head signature")
            .map_err(|e| NodeError::bad_signature(e.message()))?;
        key.verify_strict(
            &Self::signing_bytes(&self.budget, agreement, run)?,
            &Signature::from_bytes(&bytes),
        )
        .map_err(|_| {
            NodeError::bad_signature(format!(
                "the ledger head of {} does not verify",
                self.budget.party
            ))
        })
    }
}

/// Current Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            agreement_id: "ab".repeat(32),
            run_id: "01".repeat(16),
            sender: "acme".into(),
            timestamp_ms: 1_000_000,
        }
    }

    /// A small-order key with the signature (R = identity, s = 0) passes plain `verify` for every
    /// message; `verify_strict` refuses it.
    #[test]
    fn weak_key_signature_is_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).expect("a point");
        let mut sig = [0u8; 64];
        sig[0] = 1;
        let sig = Signature::from_bytes(&sig);
        let env = envelope();
        let msg = env.signing_bytes("request POST /v1/psi/run", b"body");
        assert!(ed25519_dalek::Verifier::verify(&weak, &msg, &sig).is_ok());
        assert!(
            env.verify("request POST /v1/psi/run", b"body", &sig, &weak, 1_000_500)
                .is_err()
        );
    }

    fn headers(pairs: Vec<(&'static str, String)>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn sign_verify_round_trip_and_tamper() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let env = envelope();
        let hs = headers(env.sign("request POST /v1/psi/run", b"body", &key));
        let (parsed, sig) = Envelope::from_headers(&hs).unwrap();
        assert_eq!(parsed, env);
        let vk = key.verifying_key();
        parsed
            .verify("request POST /v1/psi/run", b"body", &sig, &vk, 1_000_500)
            .unwrap();
        assert!(
            parsed
                .verify("request POST /v1/psi/run", b"bodx", &sig, &vk, 1_000_500)
                .is_err()
        );
        assert!(
            parsed
                .verify("response POST /v1/psi/run", b"body", &sig, &vk, 1_000_500)
                .is_err()
        );
        assert!(
            parsed
                .verify(
                    "request POST /v1/psi/run",
                    b"body",
                    &sig,
                    &vk,
                    1_000_000 + MAX_SKEW_MS + 1
                )
                .is_err()
        );
        let mut other = parsed.clone();
        other.run_id = "02".repeat(16);
        assert!(
            other
                .verify("request POST /v1/psi/run", b"body", &sig, &vk, 1_000_500)
                .is_err()
        );
    }

    #[test]
    fn clock_skew_names_both_clocks_and_the_window() {
        let env = Envelope {
            agreement_id: "a".into(),
            run_id: "01".repeat(16),
            sender: "acme".into(),
            timestamp_ms: 1_000_000,
        };
        assert!(env.check_fresh(1_000_000 + MAX_SKEW_MS).is_ok());
        assert!(env.check_fresh(1_000_000 - MAX_SKEW_MS).is_ok());
        let now = 1_000_000 + 301_000;
        let e = env.check_fresh(now).expect_err("301 s off");
        assert_eq!(e.code(), Code::ClockSkew);
        assert_eq!(e.code_str(), "clock_skew");
        assert_eq!(e.status(), axum::http::StatusCode::UNAUTHORIZED);
        let m = e.message();
        assert!(m.contains("clock difference"), "{m}");
        assert!(m.contains("1000000") && m.contains(&now.to_string()), "{m}");
        assert!(m.contains("301.0 s behind") && m.contains("±300 s"), "{m}");
        let d = e.details().expect("details");
        assert_eq!(d["sender_clock_ms"], 1_000_000);
        assert_eq!(d["receiver_clock_ms"], now);
        assert_eq!(d["difference_ms"], -301_000);
        assert_eq!(d["allowed_ms"], MAX_SKEW_MS);
        let ahead = env.check_fresh(1_000_000 - 400_000).expect_err("ahead");
        assert!(ahead.message().contains("400.0 s ahead of"), "{ahead}");
    }

    /// One column keeps the request's old bytes (and so its cache fingerprint); several travel
    /// as a list; requests from before several columns still parse.
    #[test]
    fn grouping_columns_keep_the_one_column_form() {
        let mut req = RunRequest {
            protocol: PROTOCOL.into(),
            analysis: "overlap".into(),
            join_key: "email".into(),
            querier_columns: vec!["seg".into()],
            responder_columns: Vec::new(),
            responder_value: None,
            epsilon: 1.0,
            delta: 1e-9,
            identity_rules: "tandem-id-v1".into(),
        };
        let json = serde_json::to_value(&req).expect("json");
        assert_eq!(json["querier_column"], "seg");
        assert!(json["responder_column"].is_null());
        req.querier_columns = vec!["age_band".into(), "region".into()];
        let json = serde_json::to_value(&req).expect("json");
        assert_eq!(
            json["querier_column"],
            serde_json::json!(["age_band", "region"])
        );
        let back: RunRequest = serde_json::from_value(json).expect("parses");
        assert_eq!(back, req);
        let old = r#"{"protocol":"psi-ca-v1","join_key":"email","querier_column":"seg",
            "epsilon":1.0,"delta":1e-9,"identity_rules":"tandem-id-v1"}"#;
        let old: RunRequest = serde_json::from_str(old).expect("old request parses");
        assert_eq!(old.querier_columns, ["seg"]);
        assert!(old.responder_columns.is_empty());
    }

    #[test]
    fn framing() {
        let body = frame(&serde_json::json!({"a": 1}), b"xyz");
        let (v, rest) = unframe(&body, 100).unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(rest, b"xyz");
        assert!(unframe(&body, 3).is_err());
        assert!(unframe(&body[..6], 100).is_err());
        assert!(unframe(&[1, 2], 100).is_err());
    }
}
