//! The one release path. Every number that leaves the node goes, in this order:
//!
//! 1. **charge**: [`Reservation::charge`] reserves the run's loss in the budget ledger (one
//!    SQLite transaction checks `spent + cost ≤ cap` and records the run);
//! 2. **draw**: [`Reservation::noise`] is the only way the node obtains a noise sampler
//!    ([`tandem_dp::OpenDpNoise`] needs a [`tandem_dp::Charged`] value, and [`Reservation`] is
//!    the node's only one; [`ReleaseNoise`] cannot be built outside this module);
//! 3. **release** ([`Reservation::release`]: the result is stored, the charge consumed) or
//!    **abandon** ([`Reservation::abandon`]: the charge is kept if anything noised may have
//!    left, else released);
//! 4. **audit**: both end in the audit log (`run.finished` + `result.released`, or
//!    `run.failed` [+ `budget.released`]), in the same order for both roles and every analysis.
//!
//! A reservation dropped without either end stays `started` in the ledger; `serve` fails such
//! runs at its next start with their charge kept.

use tandem_dp::{
    CentralNoise, Charged, DpError, NoiseSource, OpenDpNoise, PrivacyLoss, ShiftedLaplace,
};
use tandem_store::{AuditEvent, NewRun, Store, StoreError};

use crate::error::{NodeError, Result};

/// A charged, not yet ended run: the capability to draw noise and release its result.
#[must_use = "a reservation ends in release() or abandon()"]
#[derive(Debug)]
pub struct Reservation {
    run_id: String,
    agreement_id: String,
    loss: PrivacyLoss,
}

/// Whether anything computed with a reservation's noise may have left the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// Nothing noised left the node (the peer was unreachable, the input was refused before
    /// any output): the charge is released.
    NothingLeft,
    /// Something may have left (a message was sent, perhaps partly): the charge stands.
    MayHaveLeft,
}

impl Reservation {
    /// Step 1: charges `entry`'s loss to the ledger of `party` (this node). Errors: 403
    /// `budget_exceeded` naming the party, the cap, what was spent and what is left; 409
    /// `replay` for a used run id; 403 `refused` when the agreement is not active here.
    pub fn charge(store: &mut Store, entry: &NewRun, party: &str) -> Result<Reservation> {
        match store.begin_run(entry) {
            Ok(_) => Ok(Reservation {
                run_id: entry.run_id.clone(),
                agreement_id: entry.agreement_id.clone(),
                loss: PrivacyLoss {
                    epsilon: entry.epsilon,
                    delta: entry.delta,
                },
            }),
            Err(e @ StoreError::BudgetExceeded { .. }) => {
                let (account, left, what) = match &e {
                    StoreError::BudgetExceeded {
                        account,
                        cap,
                        spent,
                        what,
                        ..
                    } => (account.clone(), (cap - spent).max(0.0), *what),
                    _ => (None, 0.0, "epsilon"),
                };
                let refresh = crate::budget::refresh(store, entry, account.as_deref())?;
                let err = NodeError::from(e);
                let mut details = err.details().cloned().unwrap_or_default();
                details["party"] = serde_json::json!(party);
                details["period"] = serde_json::json!(refresh.period);
                details["refreshes_at"] = serde_json::json!(refresh.refreshes_at);
                Err(err
                    .context(format!("refused by {party}"))
                    .note(format!("{what} left {left:.6}; {}", refresh.text))
                    .with_details(details))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Step 2: the noise sampler for this run's release.
    pub fn noise(&self) -> ReleaseNoise {
        ReleaseNoise(OpenDpNoise::for_release(self))
    }

    /// The run id (hex).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The loss charged.
    pub fn loss(&self) -> PrivacyLoss {
        self.loss
    }

    /// Step 3 and 4: stores the result and consumes the charge (`run.finished`), then records
    /// the release to `recipient` with `details` (`result.released`, with the run id and the
    /// output's SHA-256 added). Returns the output's hex SHA-256.
    pub fn release(
        self,
        store: &mut Store,
        result_json: &str,
        output: &[u8],
        recipient: &str,
        mut details: serde_json::Value,
    ) -> Result<String> {
        let digest = crate::home::sha256_hex(output);
        store.finish_run(&self.run_id, result_json, &digest)?;
        details["run_id"] = serde_json::json!(self.run_id);
        details["output_sha256"] = serde_json::json!(digest);
        details["recipient"] = serde_json::json!(recipient);
        store.append_audit(
            AuditEvent::now(recipient, "result.released", details)
                .with_agreement(&self.agreement_id),
        )?;
        Ok(digest)
    }

    /// Step 3 and 4, when the run fails: records it `failed` with `reason`; the charge stands
    /// unless nothing left the node ([`Exposure`]).
    pub fn abandon(self, store: &mut Store, reason: &str, exposure: Exposure) -> Result<()> {
        store.fail_run(&self.run_id, reason, exposure == Exposure::MayHaveLeft)?;
        Ok(())
    }
}

impl Charged for Reservation {
    fn charged_loss(&self) -> PrivacyLoss {
        self.loss
    }
}

/// The noise sampler of one reservation (opendp's discrete Laplace with OpenSSL randomness).
/// Only [`Reservation::noise`] and [`benchmark_noise`] make one.
#[derive(Debug)]
pub struct ReleaseNoise(OpenDpNoise);

impl NoiseSource for ReleaseNoise {
    fn shifted(&mut self, dist: &ShiftedLaplace, count: usize) -> Result<Vec<u32>, DpError> {
        self.0.shifted(dist, count)
    }
}

/// psi-ca-v2's central (unclamped) cell noise, drawn like the rest only after the charge.
impl CentralNoise for ReleaseNoise {
    fn laplace(&mut self, scale: f64, count: usize) -> Result<Vec<i64>, DpError> {
        self.0.laplace(scale, count)
    }
}

/// Synthetic data made up by a benchmark: nothing about a person is released, so nothing is
/// charged.
struct Synthetic;

impl Charged for Synthetic {
    fn charged_loss(&self) -> PrivacyLoss {
        PrivacyLoss::default()
    }
}

/// The production sampler for `tandem bench`, which runs both roles on synthetic items it made
/// up and prints only timings: the one use of noise that releases nothing about anyone.
pub fn benchmark_noise() -> ReleaseNoise {
    ReleaseNoise(OpenDpNoise::for_release(&Synthetic))
}

#[cfg(test)]
mod tests {
    use tandem_dp::{NoiseSource, ShiftedLaplace};
    use tandem_testkit::{AgreementBuilder, PartySpec, store_active};

    use super::*;
    use crate::budget::{EntryFor, ledger_entry};

    fn setup() -> (tempfile::TempDir, Store, tandem_agreement::Agreement) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(dir.path()).expect("store");
        let agreement = AgreementBuilder::new()
            .party(PartySpec::seeded("acme", 1).epsilon(1.0, 1.5))
            .party(PartySpec::seeded("shopx", 2))
            .agreement();
        store_active(&mut store, &agreement);
        (dir, store, agreement)
    }

    fn entry(agreement: &tandem_agreement::Agreement, run: &str) -> NewRun {
        let e = EntryFor {
            party: "acme",
            role: "querier",
            run_id: run,
            actor: "test",
            params_json: "{}".into(),
            join_key: "email",
            rho: 0.5,
        };
        let loss = PrivacyLoss {
            epsilon: 1.0,
            delta: 1e-9,
        };
        ledger_entry(agreement, e, loss).expect("entry")
    }

    fn actions(store: &Store, run: &str) -> Vec<String> {
        store
            .audit_entries(None, None)
            .expect("audit")
            .into_iter()
            .filter(|e| e.event.details["run_id"] == run)
            .map(|e| e.event.action)
            .collect()
    }

    #[test]
    fn charge_draw_release_audit_in_that_order() {
        let (_dir, mut store, agreement) = setup();
        let r = Reservation::charge(&mut store, &entry(&agreement, "r1"), "acme").expect("fits");
        let dist = ShiftedLaplace::for_epsilon(1.0, 1, 1e-9).expect("dist");
        assert_eq!(r.noise().shifted(&dist, 4).expect("draws").len(), 4);
        r.release(&mut store, "{}", b"out", "test", serde_json::json!({}))
            .expect("release");
        assert_eq!(
            actions(&store, "r1"),
            [
                "run.started",
                "budget.charged",
                "run.finished",
                "result.released"
            ]
        );
        // The cap (1.5) cannot afford a second ε 1: refused before any noise, naming the cap.
        let err = Reservation::charge(&mut store, &entry(&agreement, "r2"), "acme")
            .expect_err("over the cap");
        assert_eq!(err.code_str(), "budget_exceeded");
        let d = err.details().expect("details");
        assert_eq!(
            (d["party"].as_str(), d["cap"].as_f64()),
            (Some("acme"), Some(1.5))
        );
        assert!(
            (d["left"].as_f64().expect("left") - 0.5).abs() < 1e-9,
            "{d}"
        );
        assert_eq!(d["period"], "lifetime", "{d}");
        assert!(d["refreshes_at"].is_null(), "{d}");
        let m = err.message();
        assert!(
            m.contains("epsilon left 0.5") && m.contains("does not refresh"),
            "{m}"
        );
    }

    /// Issue 12: a refusal under a sliding window says so and when the window's oldest charge
    /// leaves it (its time plus the window).
    #[test]
    fn a_window_refusal_says_when_the_budget_refreshes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(dir.path()).expect("store");
        let agreement = AgreementBuilder::new()
            .refresh_days(30)
            .party(PartySpec::seeded("acme", 1).epsilon(1.0, 1.5))
            .party(PartySpec::seeded("shopx", 2))
            .agreement();
        store_active(&mut store, &agreement);
        let before = crate::wire::now_ms();
        let r = Reservation::charge(&mut store, &entry(&agreement, "r1"), "acme").expect("fits");
        r.release(&mut store, "{}", b"out", "test", serde_json::json!({}))
            .expect("release");
        let err = Reservation::charge(&mut store, &entry(&agreement, "r2"), "acme")
            .expect_err("over the window's cap");
        let d = err.details().expect("details");
        assert_eq!(d["period"], "window", "{d}");
        let at = d["refreshes_at"].as_str().expect("a time");
        let at_s = tandem_agreement::parse_rfc3339(at).expect("RFC 3339");
        let expected = (before + 30 * 86_400_000) / 1000;
        assert!((at_s - expected).abs() <= 2, "{at} vs {expected}");
        assert!(
            err.message().contains("sliding 30-day window") && err.message().contains(at),
            "{err}"
        );
    }

    #[test]
    fn abandon_keeps_the_charge_only_if_something_may_have_left() {
        let (_dir, mut store, agreement) = setup();
        let r = Reservation::charge(&mut store, &entry(&agreement, "r1"), "acme").expect("fits");
        r.abandon(&mut store, "peer unreachable", Exposure::NothingLeft)
            .expect("abandon");
        assert_eq!(
            actions(&store, "r1"),
            [
                "run.started",
                "budget.charged",
                "run.failed",
                "budget.released"
            ]
        );
        let r = Reservation::charge(&mut store, &entry(&agreement, "r2"), "acme").expect("fits");
        r.abandon(&mut store, "timeout after send", Exposure::MayHaveLeft)
            .expect("abandon");
        assert_eq!(
            actions(&store, "r2"),
            ["run.started", "budget.charged", "run.failed"]
        );
        let left = crate::budget::epsilon_left(&store, &agreement, "acme").expect("left");
        assert!((left - 0.5).abs() < 1e-9, "{left}");
    }
}
