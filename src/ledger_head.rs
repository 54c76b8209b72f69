//! Signed ledger heads: after each run a party signs its budget as it stands and the other side
//! keeps it in its audit log (`peer.ledger`), so either side can later show what the other
//! charged, offline. Wire form in `protocols/node-wire-v1.md`.

use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use tandem_agreement::Agreement;
use tandem_dp::PrivacyLoss;
use tandem_store::Store;

use crate::overlap::budget_period_start;

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
    /// project's one canonical JSON form (RFC 8785, `tandem-canonical`).
    fn signing_bytes(budget: &BudgetView, agreement: &str, run: &str) -> Result<Vec<u8>> {
        let json = tandem_canonical::to_canonical_string(&serde_json::to_value(budget)?)?;
        Ok(format!("tandem-ledger-head-v1\n{agreement}\n{run}\n{json}").into_bytes())
    }

    /// Signs `budget` for one run.
    pub fn sign(
        budget: BudgetView,
        agreement: &str,
        run: &str,
        key: &ed25519_dalek::SigningKey,
    ) -> Result<SignedHead> {
        use ed25519_dalek::Signer;
        let signature = hex::encode(
            key.sign(&Self::signing_bytes(&budget, agreement, run)?)
                .to_bytes(),
        );
        Ok(SignedHead { budget, signature })
    }

    /// Verifies the signature with the party's key.
    pub fn verify(
        &self,
        agreement: &str,
        run: &str,
        key: &ed25519_dalek::VerifyingKey,
    ) -> Result<()> {
        let bytes: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("ledger head signature is not 64 hex bytes")?;
        key.verify_strict(
            &Self::signing_bytes(&self.budget, agreement, run)?,
            &ed25519_dalek::Signature::from_bytes(&bytes),
        )
        .map_err(|_| anyhow!("the ledger head of {} does not verify", self.budget.party))
    }
}

/// One side's budget, as shown in a report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BudgetView {
    /// Party name.
    pub party: String,
    /// ε charged for this run.
    pub epsilon_spent: f64,
    /// δ charged for this run.
    pub delta_spent: f64,
    /// ε spent so far under the agreement (in the current budget period, when the agreement
    /// refreshes budgets), this run included.
    pub epsilon_total_spent: f64,
    /// ε left under the agreement (in the current budget period, when it refreshes).
    pub epsilon_left: f64,
}

/// The party's budget view after a run.
pub fn budget_view(
    store: &Store,
    agreement: &Agreement,
    party: &str,
    charged: PrivacyLoss,
) -> Result<BudgetView> {
    let budget = agreement
        .terms
        .party(party)
        .context("party missing from agreement")?
        .budget;
    let status = store.budget(
        &agreement.id().to_string(),
        budget.epsilon_total,
        budget.delta_total,
        budget_period_start(agreement, crate::wire::now_ms()),
    )?;
    Ok(BudgetView {
        party: party.to_string(),
        epsilon_spent: charged.epsilon,
        delta_spent: charged.delta,
        epsilon_total_spent: status.spent_epsilon,
        epsilon_left: status.left_epsilon,
    })
}
