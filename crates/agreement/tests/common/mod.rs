//! Shared fixtures: the example agreement with real keys filled in.

#![allow(dead_code)]

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};
use tandem_agreement::{Agreement, Terms, fingerprint};

pub const EXAMPLE: &str = include_str!("../../../../examples/agreement.toml");
pub const PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub fn acme_key() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

pub fn shopx_key() -> SigningKey {
    SigningKey::from_bytes(&[2; 32])
}

/// The example TOML with the placeholders replaced by the fixture keys and certificate digests.
pub fn example_toml() -> String {
    let acme_cert = hex::encode(Sha256::digest(b"acme certificate"));
    let shopx_cert = hex::encode(Sha256::digest(b"shopx certificate"));
    let keys = [
        fingerprint(&acme_key().verifying_key()),
        acme_cert,
        fingerprint(&shopx_key().verifying_key()),
        shopx_cert,
    ];
    let mut text = EXAMPLE.to_owned();
    for key in keys {
        text = text.replacen(PLACEHOLDER, &key, 1);
    }
    text
}

pub fn terms() -> Terms {
    Terms::from_toml(&example_toml()).unwrap()
}

pub fn signed() -> Agreement {
    let mut agreement = Agreement::new(terms());
    agreement.sign("acme", &acme_key()).unwrap();
    agreement.sign("shopx", &shopx_key()).unwrap();
    agreement
}
