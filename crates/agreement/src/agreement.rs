//! A signed agreement: the terms plus each party's signature, and the checks a node makes.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey};
use serde::{Deserialize, Serialize};

use crate::validate::OTHER_LABEL;
use crate::{AgreementError, AgreementId, Party, Terms, ValueColumn, fingerprint};

/// Terms and the signatures collected on them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agreement {
    /// What was agreed.
    pub terms: Terms,
    /// Party name → lower-case hex ed25519 signature over `b"tandem-agreement-v1\n"` followed by
    /// the canonical bytes of the terms (the preimage of the id).
    #[serde(default)]
    pub signatures: BTreeMap<String, String>,
}

impl Agreement {
    /// An agreement on `terms` with no signatures yet.
    pub fn new(terms: Terms) -> Agreement {
        Agreement {
            terms,
            signatures: BTreeMap::new(),
        }
    }

    /// The id of the terms (signatures do not change it).
    pub fn id(&self) -> AgreementId {
        self.terms.id()
    }

    /// Signs as `party_name`. The terms must be valid and `key` must be the party's
    /// `signing_key`; an earlier signature of that party is replaced.
    pub fn sign(&mut self, party_name: &str, key: &SigningKey) -> Result<(), AgreementError> {
        self.terms.validate()?;
        let party = self.party_or_err(party_name)?;
        let own = fingerprint(&key.verifying_key());
        if own != party.signing_key {
            return Err(AgreementError::Invalid(format!(
                "the key given ({own}) is not party {party_name}'s signing_key ({})",
                party.signing_key
            )));
        }
        let signature = key.sign(&self.terms.signed_message());
        self.signatures
            .insert(party_name.to_owned(), hex::encode(signature.to_bytes()));
        Ok(())
    }

    /// Checks every signature present: each must name a party and verify (strictly) under that
    /// party's `signing_key`. Missing signatures are not an error here.
    pub fn verify_signatures(&self) -> Result<(), AgreementError> {
        let message = self.terms.signed_message();
        for (name, signature_hex) in &self.signatures {
            let party = self.party_or_err(name)?;
            let key = party.verifying_key()?;
            let bad = || AgreementError::BadSignature {
                party: name.clone(),
            };
            let mut bytes = [0u8; 64];
            hex::decode_to_slice(signature_hex, &mut bytes).map_err(|_| bad())?;
            key.verify_strict(&message, &Signature::from_bytes(&bytes))
                .map_err(|_| bad())?;
        }
        Ok(())
    }

    /// Whether both parties signed and every signature verifies.
    pub fn is_fully_signed(&self) -> bool {
        self.missing_signature().is_none() && self.verify_signatures().is_ok()
    }

    /// The one check a node makes before acting: the terms are valid, both parties signed, every
    /// signature verifies, and `now_unix` is before `expires_at`.
    pub fn check_active(&self, now_unix: i64) -> Result<(), AgreementError> {
        self.terms.validate()?;
        if let Some(party) = self.missing_signature() {
            return Err(AgreementError::NotSigned {
                party: party.name.clone(),
            });
        }
        self.verify_signatures()?;
        if now_unix >= self.terms.expires_at_unix()? {
            return Err(AgreementError::Expired {
                expires_at: self.terms.expires_at.clone(),
            });
        }
        Ok(())
    }

    /// Public bucket index of a raw attribute `value` of `party`'s `column`: its position in the
    /// column's value set (exact match after trimming surrounding whitespace), or
    /// `values.len()` ("other") for values outside the set and for missing values.
    pub fn bucket_of(
        &self,
        party: &str,
        column: &str,
        value: Option<&str>,
    ) -> Result<u32, AgreementError> {
        let values = self.column_values(party, column)?;
        let index = value
            .map(str::trim)
            .and_then(|v| values.iter().position(|known| known == v))
            .unwrap_or(values.len());
        u32::try_from(index)
            .map_err(|_| AgreementError::Invalid(format!("column {column:?} is too large")))
    }

    /// The bucket labels of `party`'s `column`: its value set followed by `other`.
    pub fn bucket_labels(&self, party: &str, column: &str) -> Result<Vec<String>, AgreementError> {
        let mut labels = self.column_values(party, column)?.to_vec();
        labels.push(OTHER_LABEL.to_owned());
        Ok(labels)
    }

    /// `party`'s value column `column` (unit and bound `U`); `UnknownColumn` if the agreement
    /// does not list it among the party's `values`.
    pub fn value_column(&self, party: &str, column: &str) -> Result<&ValueColumn, AgreementError> {
        let values = &self.party_or_err(party)?.values;
        values
            .get(column)
            .ok_or_else(|| AgreementError::UnknownColumn {
                party: party.to_owned(),
                column: column.to_owned(),
                known: values.keys().cloned().collect(),
            })
    }

    fn party_or_err(&self, name: &str) -> Result<&Party, AgreementError> {
        self.terms
            .party(name)
            .ok_or_else(|| AgreementError::UnknownParty(name.to_owned()))
    }

    fn column_values(&self, party: &str, column: &str) -> Result<&[String], AgreementError> {
        let columns = &self.party_or_err(party)?.columns;
        columns
            .get(column)
            .map(Vec::as_slice)
            .ok_or_else(|| AgreementError::UnknownColumn {
                party: party.to_owned(),
                column: column.to_owned(),
                known: columns.keys().cloned().collect(),
            })
    }

    /// The first party (in the order of the terms) without a signature.
    fn missing_signature(&self) -> Option<&Party> {
        self.terms
            .parties
            .iter()
            .find(|p| !self.signatures.contains_key(&p.name))
    }
}
