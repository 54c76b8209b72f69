//! The node-to-node envelope (`protocols/node-wire-v1.md`): every request and response between
//! paired nodes carries the agreement id, the run id, the sender's party name, a timestamp and an
//! ed25519 signature over those and the SHA-256 of the body. The server authenticates the caller
//! by this signature (the TLS layer authenticates the server by pinning); the run id makes each
//! message single-use, and the timestamp bounds how long a captured message could be replayed.

use anyhow::{Context, Result, bail};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

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
    pub fn from_headers(headers: &http::HeaderMap) -> Result<(Envelope, Signature)> {
        let get = |name: &str| -> Result<String> {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .with_context(|| format!("missing header {name}"))
        };
        let timestamp_ms = get(H_TIMESTAMP)?.parse().context("bad tandem-timestamp")?;
        let sig_bytes: [u8; 64] = hex::decode(get(H_SIGNATURE)?)
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("tandem-signature is not 64 hex bytes")?;
        let run_id = get(H_RUN)?;
        if run_id.len() != 32 || hex::decode(&run_id).is_err() {
            bail!("tandem-run must be 16 bytes of hex");
        }
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
    /// `now_ms`.
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
                anyhow::anyhow!(
                    "signature of {} does not verify with its agreement key",
                    self.sender
                )
            })?;
        if (now_ms - self.timestamp_ms).abs() > MAX_SKEW_MS {
            bail!(
                "message timestamp {} is more than {} s from this node's clock",
                self.timestamp_ms,
                MAX_SKEW_MS / 1000
            );
        }
        Ok(())
    }
}

/// Parses a hex ed25519 public key from an agreement.
pub fn verifying_key(hex_key: &str) -> Result<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{hex_key:?} is not a 32-byte hex key"))?;
    VerifyingKey::from_bytes(&bytes).context("not a valid ed25519 public key")
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

/// Splits a body framed by [`frame`], refusing a JSON part over `max_json` bytes.
pub fn unframe(body: &[u8], max_json: usize) -> Result<(serde_json::Value, &[u8])> {
    let len_bytes: [u8; 4] = body
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .context("body shorter than its 4-byte header length")?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > max_json {
        bail!("JSON header of {len} bytes exceeds the limit of {max_json}");
    }
    let json = body
        .get(4..4 + len)
        .context("body shorter than its declared JSON header")?;
    let value = serde_json::from_slice(json).context("JSON header does not parse")?;
    Ok((value, &body[4 + len..]))
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

    /// A small-order key with the signature (R = identity, s = 0) passes plain `verify` for every
    /// message; `verify_strict` refuses it.
    #[test]
    fn weak_key_signature_is_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
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
