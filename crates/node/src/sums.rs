//! Value columns and `psi-sum-v1` in the node (issue 13): the bounds an import clamps to, the
//! holder's per-run state between its PSI reply and the decryption request, and both sides of the
//! decryption call. Spec: `protocols/psi-sum-v1.md`, wire: `protocols/node-wire-v1.md` §sums.

use tandem_agreement::Agreement;
use tandem_store::Store;

use crate::error::{NodeError, Result};

/// The bound `U` to import value column `column` under, from the agreements this node holds
/// (`[parties.values]` of this node's party, `protocols/agreement-v1.md` §2.3a). Errors (422
/// `invalid_query`): no agreement names the column for this node, or several name different
/// bounds (then give it as `--value COLUMN=U`).
pub fn import_bound(store: &Store, me: &str, column: &str) -> Result<u32> {
    let mut bounds = std::collections::BTreeSet::new();
    for stored in store.agreements()? {
        let Ok(agreement) = serde_json::from_str::<Agreement>(&stored.doc_json) else {
            continue;
        };
        if let Some(v) = agreement.terms.party(me).and_then(|p| p.values.get(column)) {
            bounds.insert(v.bound);
        }
    }
    let listed = || {
        bounds
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match bounds.len() {
        1 => Ok(bounds.into_iter().next().unwrap_or(1)),
        0 => Err(NodeError::invalid_query(format!(
            "no agreement of this node ({me}) lists the value column {column:?} under \
             [parties.values]; give its bound as --value {column}=U"
        ))),
        _ => Err(NodeError::invalid_query(format!(
            "this node's agreements give the value column {column:?} different bounds ({}); \
             choose one with --value {column}=U",
            listed()
        ))),
    }
}
