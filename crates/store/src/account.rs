//! Budget accounts: which charges count together across agreements.
//!
//! A charge counts against its agreement and against the **budget account** of the pair of
//! signing keys the agreement names and the join key (identifier space) of its run, so every
//! agreement between the same two keys on the same join key shares one budget: re-signing an
//! agreement (say, with only `expires_at` moved) or signing a second one with the same partner
//! gives no fresh budget over the same customers. The node signs every agreement it acts under
//! with its own key, so the pair stands for the counterparty's key (`protocols/agreement-v1.md`
//! §2.6). Accounts are derived from the stored agreement document (`terms.parties[].signing_key`
//! and `terms.join_keys`); a document without two parties' keys has no account beyond itself.

use serde::Serialize;
use serde_json::Value;

use crate::{Store, StoreError};

/// The budget identity of an agreement document: its pair of signing keys and join keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccountKeys {
    /// `"<lower key>:<higher key>"` (hex signing keys in byte order).
    pair: String,
    /// The agreement's join keys, as written.
    join_keys: Vec<String>,
}

impl AccountKeys {
    /// Parses the parts of an agreement document (JSON text) that decide its accounts; `None`
    /// when the document does not name exactly two parties with string signing keys.
    pub(crate) fn of(doc_json: &str) -> Option<AccountKeys> {
        let doc: Value = serde_json::from_str(doc_json).ok()?;
        let terms = doc.get("terms")?;
        let keys: Vec<&str> = terms
            .get("parties")?
            .as_array()?
            .iter()
            .map(|p| p.get("signing_key").and_then(Value::as_str))
            .collect::<Option<_>>()?;
        let [a, b] = keys.as_slice() else {
            return None;
        };
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let join_keys = terms
            .get("join_keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Some(AccountKeys {
            pair: format!("{lo}:{hi}"),
            join_keys,
        })
    }

    /// The account of one join key: `pair:<lower key>:<higher key>/<join key>` (the schema
    /// migration that created accounts writes the same text).
    pub(crate) fn account(&self, join_key: &str) -> String {
        format!("pair:{}/{join_key}", self.pair)
    }

    /// The accounts a run on `join_key` is charged to: that join key's, or every join key's of
    /// the agreement when the run does not say (a run that may touch any of them is charged to
    /// all). A join key the agreement does not list is refused.
    pub(crate) fn accounts_for(&self, join_key: Option<&str>) -> Result<Vec<String>, StoreError> {
        match join_key {
            Some(key) if self.join_keys.iter().any(|k| k == key) => Ok(vec![self.account(key)]),
            Some(key) => Err(StoreError::Invalid(format!(
                "join key {key:?} is not one of the agreement's ({})",
                self.join_keys.join(", ")
            ))),
            None => Ok(self.join_keys.iter().map(|k| self.account(k)).collect()),
        }
    }

    /// The join keys both documents list, when they name the same pair of signing keys.
    fn shared_join_keys(&self, other: &AccountKeys) -> Vec<String> {
        if self.pair != other.pair {
            return Vec::new();
        }
        self.join_keys
            .iter()
            .filter(|k| other.join_keys.contains(k))
            .cloned()
            .collect()
    }
}

/// A stored agreement whose runs count against the same budget account as another agreement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SharedBudget {
    /// The stored agreement's id.
    pub agreement_id: String,
    /// Its status (`proposed`, `active` or `revoked`; a revoked agreement's charges still count).
    pub status: String,
    /// The join keys both agreements list: the identifier spaces whose budget they share.
    pub join_keys: Vec<String>,
}

impl Store {
    /// The stored agreements (other than `doc_json`'s own id, `own_id`) whose runs count against
    /// a budget account of the agreement document `doc_json` (JSON text of a signed agreement,
    /// `protocols/agreement-v1.md` §6): the same pair of signing keys and at least one common
    /// join key. Oldest first. Empty when the document names no two parties' keys.
    ///
    /// `agreement propose` / `accept` show it, so that nobody takes a new agreement with the
    /// same partner for a fresh budget.
    pub fn agreements_sharing_budget(
        &self,
        doc_json: &str,
        own_id: &str,
    ) -> Result<Vec<SharedBudget>, StoreError> {
        let Some(mine) = AccountKeys::of(doc_json) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for stored in self.agreements()? {
            if stored.id == own_id {
                continue;
            }
            let Some(theirs) = AccountKeys::of(&stored.doc_json) else {
                continue;
            };
            let join_keys = mine.shared_join_keys(&theirs);
            if !join_keys.is_empty() {
                out.push(SharedBudget {
                    agreement_id: stored.id,
                    status: stored.status,
                    join_keys,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::AccountKeys;

    fn doc(k1: &str, k2: &str, join_keys: &str) -> String {
        format!(
            r#"{{"terms":{{"join_keys":{join_keys},"parties":[{{"signing_key":"{k1}"}},{{"signing_key":"{k2}"}}]}}}}"#
        )
    }

    #[test]
    fn the_pair_is_unordered_and_accounts_follow_the_join_key() {
        let a = AccountKeys::of(&doc("bb", "aa", r#"["email","phone"]"#)).unwrap();
        let b = AccountKeys::of(&doc("aa", "bb", r#"["phone"]"#)).unwrap();
        assert_eq!(a.account("email"), "pair:aa:bb/email");
        assert_eq!(a.shared_join_keys(&b), ["phone"]);
        assert_eq!(
            a.accounts_for(None).unwrap(),
            ["pair:aa:bb/email", "pair:aa:bb/phone"]
        );
        assert_eq!(a.accounts_for(Some("phone")).unwrap(), ["pair:aa:bb/phone"]);
        assert!(a.accounts_for(Some("device_id")).is_err());
        let other = AccountKeys::of(&doc("aa", "cc", r#"["phone"]"#)).unwrap();
        assert!(a.shared_join_keys(&other).is_empty());
        for not_an_agreement in [
            "{}",
            "not json",
            r#"{"terms":{"parties":[{"signing_key":"aa"}]}}"#,
            r#"{"terms":{"parties":[{"signing_key":"aa"},{"signing_key":7}]}}"#,
        ] {
            assert_eq!(
                AccountKeys::of(not_an_agreement),
                None,
                "{not_an_agreement}"
            );
        }
    }
}
