//! Runs and the write-ahead privacy-budget ledger.
//!
//! A run reserves its cost before any data is touched (`begin_run`), inside one
//! `BEGIN IMMEDIATE` transaction that also checks the cap, so concurrent callers — threads or
//! processes — can never overspend. The charge is then consumed (`finish_run`, or
//! `fail_run(.., true)`) or released (`fail_run(.., false)`). Amounts are kept in integer units
//! (ε and ρ in 1e-9, δ in 1e-18) so that sums are exact: with cost `c` and cap `C`, exactly
//! ⌊C/c⌋ runs fit (after rounding both to those units).
//!
//! A run is admitted if either of two valid accountings of the agreement's total loss stays
//! within its `(ε, δ)` caps (every run is charged in both, so both always bound the total):
//!
//! - **basic** composition: `Σε + ε ≤ cap_ε` and `Σδ + δ ≤ cap_δ`;
//! - **zCDP** (only when the caller gives [`NewRun::cap_rho`]): each run is `δ_i`-close to a
//!   pure-DP release with `ρ_i`-zCDP, so the total is `(ε_zCDP(Σρ, cap_δ/2), cap_δ/2 + Σδ)`-DP;
//!   the route holds iff `Σρ + ρ ≤ cap_ρ` and `Σδ + δ ≤ cap_δ/2`, where `cap_ρ` is the largest ρ
//!   whose ε at `cap_δ/2` is at most `cap_ε` (computed by the caller, e.g. with
//!   `tandem_dp::rho_for_epsilon`).
//!
//! Basic composition is tighter for a few large queries, zCDP for many small ones. On the zCDP
//! route ρ costs are rounded up and the ρ cap and `cap_δ/2` down, so rounding never admits more.
//!
//! **Budget periods.** The sums `Σε`, `Σδ`, `Σρ` cover the charges of runs started at or after
//! [`NewRun::budget_since_ms`] (0: the agreement's whole life). A caller whose agreement refreshes
//! its budget passes the start of the current period; charges of earlier periods stay recorded
//! but no longer count.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Value, json};
use tandem_audit::AuditEvent;

use crate::{Store, StoreError, audit_log, now_ms};

const EPSILON_UNIT: f64 = 1e9;
const DELTA_UNIT: f64 = 1e18;
const RHO_UNIT: f64 = 1e9;

/// A run about to start, with its privacy cost and the agreement's caps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewRun {
    /// Unique id (never reused on this node, in any role or agreement).
    pub run_id: String,
    /// Agreement the run is under; must be stored here with status `active`.
    pub agreement_id: String,
    /// `querier` or `responder`.
    pub role: String,
    /// Principal that asked (e.g. `token:alice(analyst)`, `peer:shopx`).
    pub actor: String,
    /// Template and parameters (JSON; no identifiers), recorded in the audit log.
    pub params_json: String,
    /// ε this run spends (ε-DP, or the ε-equivalent of its ρ at the agreement's δ).
    pub epsilon: f64,
    /// δ this run spends.
    pub delta: f64,
    /// ρ (zCDP) this run spends. Always recorded; charged against [`Self::cap_rho`] on the zCDP
    /// route, so it must be a valid zCDP bound of the run's pure-DP part (`ε²/2` for a pure
    /// ε-DP release). Must be > 0 when `epsilon` is and `cap_rho` is given.
    pub rho: f64,
    /// The agreement's ε cap for this party.
    pub cap_epsilon: f64,
    /// The agreement's δ cap for this party.
    pub cap_delta: f64,
    /// The zCDP route's ρ cap: the largest total ρ whose ε at `cap_delta / 2` is at most
    /// `cap_epsilon`. `None` admits runs by basic composition only.
    pub cap_rho: Option<f64>,
    /// Query fingerprint (agreement, template, parameters, [`Store::audience_version`], …);
    /// when set, `finish_run` makes the result available to [`Store::cached_result`].
    pub fingerprint: Option<String>,
    /// Start (Unix ms) of the budget period the caps apply to: only charges of runs started at
    /// or after it count. 0 (the default) counts the agreement's whole life.
    pub budget_since_ms: i64,
}

/// A run as recorded.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RunRecord {
    /// Run id.
    pub run_id: String,
    /// Agreement.
    pub agreement_id: String,
    /// `querier` or `responder`.
    pub role: String,
    /// Who asked.
    pub actor: String,
    /// Template and parameters.
    pub params_json: String,
    /// `started`, `finished`, `failed` or `refused`.
    pub status: String,
    /// ε cost.
    pub epsilon: f64,
    /// δ cost.
    pub delta: f64,
    /// ρ cost.
    pub rho: f64,
    /// Query fingerprint, if given.
    pub fingerprint: Option<String>,
    /// Budget charge: `reserved`, `spent`, `released`, or `None` (refused runs charge nothing).
    pub charge: Option<String>,
    /// Start (or refusal) time.
    pub started_at_ms: i64,
    /// End time.
    pub ended_at_ms: Option<i64>,
    /// Result (JSON), until purged.
    pub result_json: Option<String>,
    /// SHA-256 (hex) of the output.
    pub output_sha256: Option<String>,
    /// Failure or refusal reason.
    pub error: Option<String>,
}

/// Budget of one agreement for this party (both roles together).
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetStatus {
    /// Agreement.
    pub agreement_id: String,
    /// ε cap given.
    pub cap_epsilon: f64,
    /// δ cap given.
    pub cap_delta: f64,
    /// ε charged: consumed plus reserved by started runs.
    pub spent_epsilon: f64,
    /// δ charged.
    pub spent_delta: f64,
    /// ρ charged.
    pub spent_rho: f64,
    /// ρ cap of the zCDP route, if one was given (rounded down to the ledger's units).
    pub cap_rho: Option<f64>,
    /// Part of `spent_epsilon` reserved by runs still started.
    pub reserved_epsilon: f64,
    /// ε left under basic composition (never negative). Runs may still be admitted when it is
    /// 0, by the zCDP route.
    pub left_epsilon: f64,
    /// δ left (never negative).
    pub left_delta: f64,
    /// Runs holding a charge (started, finished, or failed after data left).
    pub runs: u64,
}

/// A stored result that an identical query may return instead of running again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedResult {
    /// Run that produced it.
    pub run_id: String,
    /// Its agreement.
    pub agreement_id: String,
    /// The result JSON.
    pub result_json: String,
    /// SHA-256 (hex) of the output.
    pub output_sha256: String,
    /// When the run finished.
    pub finished_at_ms: i64,
}

/// How [`units_rounded`] rounds to whole units.
#[derive(Clone, Copy)]
enum Rounding {
    /// To the nearest unit (ε and δ: exact counts of runs for round numbers).
    Nearest,
    /// Up, for costs that must never be under-charged (ρ).
    Up,
    /// Down, for caps that must never be exceeded (the ρ cap).
    Down,
}

/// `x` in integer units of `1/unit`, rounded to the nearest unit.
fn units(x: f64, unit: f64, what: &str) -> Result<i64, StoreError> {
    units_rounded(x, unit, what, Rounding::Nearest)
}

/// `x` in integer units of `1/unit`; refuses negative, non-finite and absurd values.
fn units_rounded(x: f64, unit: f64, what: &str, rounding: Rounding) -> Result<i64, StoreError> {
    let scaled = x * unit;
    let u = match rounding {
        Rounding::Nearest => scaled.round(),
        Rounding::Up => scaled.ceil(),
        Rounding::Down => scaled.floor(),
    };
    if !x.is_finite() || x < 0.0 || u > 4e18 {
        return Err(StoreError::Invalid(format!(
            "{what} must be a finite number ≥ 0 (and sane), got {x}"
        )));
    }
    Ok(u as i64)
}

struct Charged {
    epsilon: i64,
    delta: i64,
    rho: i64,
    reserved_epsilon: i64,
    runs: u64,
}

/// The agreement's charges (reserved or spent) of runs started at or after `since_ms`: a
/// ledger row's `at_ms` is its run's start.
fn charged(conn: &Connection, agreement_id: &str, since_ms: i64) -> Result<Charged, StoreError> {
    Ok(conn.prepare_cached(
        "SELECT COALESCE(SUM(epsilon_units), 0), COALESCE(SUM(delta_units), 0), COALESCE(SUM(rho_units), 0),
                COALESCE(SUM(CASE WHEN state = 'reserved' THEN epsilon_units END), 0), COUNT(*)
         FROM budget_ledger WHERE agreement_id = ?1 AND state IN ('reserved', 'spent') AND at_ms >= ?2",
    )?
    .query_row(params![agreement_id, since_ms], |r| {
        Ok(Charged {
            epsilon: r.get(0)?,
            delta: r.get(1)?,
            rho: r.get(2)?,
            reserved_epsilon: r.get(3)?,
            runs: r.get::<_, i64>(4)? as u64,
        })
    })?)
}

/// The ledger's caps for one agreement, in units.
#[derive(Clone, Copy)]
struct Caps {
    epsilon: i64,
    delta: i64,
    rho: Option<i64>,
}

impl Caps {
    fn new(cap_epsilon: f64, cap_delta: f64, cap_rho: Option<f64>) -> Result<Self, StoreError> {
        Ok(Caps {
            epsilon: units(cap_epsilon, EPSILON_UNIT, "cap_epsilon")?,
            delta: units(cap_delta, DELTA_UNIT, "cap_delta")?,
            rho: cap_rho
                .map(|r| units_rounded(r, RHO_UNIT, "cap_rho", Rounding::Down))
                .transpose()?,
        })
    }
}

/// Which accounting admitted a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Basic,
    Zcdp,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Basic => "basic",
            Route::Zcdp => "zcdp",
        }
    }
}

/// The first cap a route would exceed: `(what, spent, cost, cap)` in ledger units.
type Overrun = (&'static str, i64, i64, i64);

/// Basic composition: `Σε + ε ≤ cap_ε` and `Σδ + δ ≤ cap_δ`.
fn basic_overrun(c: &Charged, cost_e: i64, cost_d: i64, caps: Caps) -> Option<Overrun> {
    if c.epsilon + cost_e > caps.epsilon {
        Some(("epsilon", c.epsilon, cost_e, caps.epsilon))
    } else if c.delta + cost_d > caps.delta {
        Some(("delta", c.delta, cost_d, caps.delta))
    } else {
        None
    }
}

/// The zCDP route: `Σρ + ρ ≤ cap_ρ` and `Σδ + δ ≤ ⌊cap_δ / 2⌋`.
fn zcdp_overrun(
    c: &Charged,
    cost_r: i64,
    cost_d: i64,
    cap_rho: i64,
    caps: Caps,
) -> Option<Overrun> {
    let half_delta = caps.delta / 2;
    if c.rho + cost_r > cap_rho {
        Some(("rho", c.rho, cost_r, cap_rho))
    } else if c.delta + cost_d > half_delta {
        Some(("delta", c.delta, cost_d, half_delta))
    } else {
        None
    }
}

/// The unit of a charged quantity.
fn unit_of(what: &str) -> f64 {
    match what {
        "delta" => DELTA_UNIT,
        "rho" => RHO_UNIT,
        _ => EPSILON_UNIT,
    }
}

/// An overrun in the caller's units: `(what, spent, cost, cap)`.
fn overrun_values((what, spent, cost, cap): Overrun) -> (&'static str, f64, f64, f64) {
    let unit = unit_of(what);
    (
        what,
        spent as f64 / unit,
        cost as f64 / unit,
        cap as f64 / unit,
    )
}

fn status(agreement_id: &str, c: &Charged, caps: Caps) -> BudgetStatus {
    let (cap_epsilon, cap_delta) = (caps.epsilon, caps.delta);
    BudgetStatus {
        agreement_id: agreement_id.to_owned(),
        cap_epsilon: cap_epsilon as f64 / EPSILON_UNIT,
        cap_delta: cap_delta as f64 / DELTA_UNIT,
        spent_epsilon: c.epsilon as f64 / EPSILON_UNIT,
        spent_delta: c.delta as f64 / DELTA_UNIT,
        spent_rho: c.rho as f64 / RHO_UNIT,
        cap_rho: caps.rho.map(|r| r as f64 / RHO_UNIT),
        reserved_epsilon: c.reserved_epsilon as f64 / EPSILON_UNIT,
        left_epsilon: (cap_epsilon - c.epsilon).max(0) as f64 / EPSILON_UNIT,
        left_delta: (cap_delta - c.delta).max(0) as f64 / DELTA_UNIT,
        runs: c.runs,
    }
}

const RUN_COLUMNS: &str = "r.run_id, r.agreement_id, r.role, r.actor, r.params_json, r.status, r.epsilon, r.delta,
    r.rho, r.fingerprint, l.state, r.started_at_ms, r.ended_at_ms, r.result_json, r.output_sha256, r.error";

fn run_from_row(r: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        run_id: r.get(0)?,
        agreement_id: r.get(1)?,
        role: r.get(2)?,
        actor: r.get(3)?,
        params_json: r.get(4)?,
        status: r.get(5)?,
        epsilon: r.get(6)?,
        delta: r.get(7)?,
        rho: r.get(8)?,
        fingerprint: r.get(9)?,
        charge: r.get(10)?,
        started_at_ms: r.get(11)?,
        ended_at_ms: r.get(12)?,
        result_json: r.get(13)?,
        output_sha256: r.get(14)?,
        error: r.get(15)?,
    })
}

fn check_json(text: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Invalid(format!("{what} is not JSON: {e}")))
}

impl Store {
    /// Reserves the run's budget and records it as `started` — before any data is touched.
    ///
    /// In one `BEGIN IMMEDIATE` transaction: refuses a reused run id ([`StoreError::Replay`]),
    /// a missing or non-active agreement ([`StoreError::AgreementNotActive`]), and a run that
    /// neither route of the module docs admits, with the agreement's charges summed over both
    /// roles: basic composition (`Σε + ε ≤ cap_ε`, `Σδ + δ ≤ cap_δ`) or, when
    /// [`NewRun::cap_rho`] is given, zCDP (`Σρ + ρ ≤ cap_ρ`, `Σδ + δ ≤ cap_δ/2`)
    /// ([`StoreError::BudgetExceeded`], with the basic route's numbers; the refused run is
    /// recorded with status `refused` and charges nothing). Every refusal is audited as
    /// `query.refused`. On success the run and a `reserved` ledger charge are inserted and
    /// `run.started` + `budget.charged` (with the admitting `route`) audited; returns the budget
    /// after the charge. Only charges of runs started at or after [`NewRun::budget_since_ms`]
    /// count, in every sum.
    pub fn begin_run(&mut self, run: &NewRun) -> Result<BudgetStatus, StoreError> {
        if run.run_id.is_empty() || run.agreement_id.is_empty() {
            return Err(StoreError::Invalid(
                "run_id and agreement_id must not be empty".into(),
            ));
        }
        if run.role != "querier" && run.role != "responder" {
            return Err(StoreError::Invalid(format!(
                "role {:?}; expected querier or responder",
                run.role
            )));
        }
        let params = check_json(&run.params_json, "params_json")?;
        let cost_e = units(run.epsilon, EPSILON_UNIT, "epsilon")?;
        let cost_d = units(run.delta, DELTA_UNIT, "delta")?;
        let cost_r = units_rounded(run.rho, RHO_UNIT, "rho", Rounding::Up)?;
        let caps = Caps::new(run.cap_epsilon, run.cap_delta, run.cap_rho)?;
        if caps.rho.is_some() && cost_e > 0 && cost_r == 0 {
            return Err(StoreError::Invalid(
                "rho must be > 0 for a run with epsilon > 0 when cap_rho is given".into(),
            ));
        }
        let now = now_ms();
        let tx = self.write_tx()?;
        let refusal = |details: Value| {
            AuditEvent::now(&run.actor, "query.refused", details).with_agreement(&run.agreement_id)
        };

        let seen = tx
            .query_row(
                "SELECT 1 FROM runs WHERE run_id = ?1",
                [&run.run_id],
                |_| Ok(()),
            )
            .optional()?;
        if seen.is_some() {
            audit_log::append(
                &tx,
                refusal(json!({"run_id": run.run_id, "role": run.role, "reason": "replay"})),
            )?;
            tx.commit()?;
            return Err(StoreError::Replay {
                run_id: run.run_id.clone(),
            });
        }

        let agreement_status: Option<String> = tx
            .query_row(
                "SELECT status FROM agreements WHERE id = ?1",
                [&run.agreement_id],
                |r| r.get(0),
            )
            .optional()?;
        if agreement_status.as_deref() != Some("active") {
            audit_log::append(
                &tx,
                refusal(json!({
                    "run_id": run.run_id, "role": run.role, "reason": "agreement_not_active",
                    "agreement_status": agreement_status,
                })),
            )?;
            tx.commit()?;
            return Err(StoreError::AgreementNotActive {
                id: run.agreement_id.clone(),
                status: agreement_status,
            });
        }

        let before = charged(&tx, &run.agreement_id, run.budget_since_ms)?;
        let basic = basic_overrun(&before, cost_e, cost_d, caps);
        let zcdp = caps
            .rho
            .map(|cap_r| zcdp_overrun(&before, cost_r, cost_d, cap_r, caps));
        let route = match (basic, zcdp) {
            (None, _) => Route::Basic,
            (Some(_), Some(None)) => Route::Zcdp,
            (Some(basic), zcdp) => {
                let (what, spent, cost, cap) = overrun_values(basic);
                let zcdp = zcdp.flatten().map(overrun_values);
                let zcdp_note = zcdp.map(|(w, s, c, k)| {
                    let cap_name = if w == "delta" {
                        "half the delta cap"
                    } else {
                        "cap"
                    };
                    format!("{w} spent {s} + this query {c} > {cap_name} {k}")
                });
                let mut reason =
                    format!("budget exceeded: {what} spent {spent} + cost {cost} > cap {cap}");
                if let Some(note) = &zcdp_note {
                    reason.push_str(&format!("; zCDP route exhausted too: {note}"));
                }
                tx.execute(
                    "INSERT INTO runs (run_id, agreement_id, role, actor, params_json, status, epsilon, delta, rho,
                                       fingerprint, started_at_ms, ended_at_ms, error)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'refused', ?6, ?7, ?8, ?9, ?10, ?10, ?11)",
                    params![
                        run.run_id, run.agreement_id, run.role, run.actor, run.params_json, run.epsilon,
                        run.delta, run.rho, run.fingerprint, now, reason
                    ],
                )?;
                let mut details = json!({
                    "run_id": run.run_id, "role": run.role, "reason": "budget_exceeded", "what": what,
                    "spent": spent, "cost": cost, "cap": cap, "params": params,
                });
                if let Some((w, s, c, k)) = zcdp {
                    details["zcdp"] = json!({"what": w, "spent": s, "cost": c, "cap": k});
                }
                audit_log::append(&tx, refusal(details))?;
                tx.commit()?;
                return Err(StoreError::BudgetExceeded {
                    spent,
                    cost,
                    cap,
                    what,
                    zcdp: zcdp_note,
                });
            }
        };

        tx.execute(
            "INSERT INTO runs (run_id, agreement_id, role, actor, params_json, status, epsilon, delta, rho,
                               fingerprint, started_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, 'started', ?6, ?7, ?8, ?9, ?10)",
            params![
                run.run_id, run.agreement_id, run.role, run.actor, run.params_json, run.epsilon, run.delta, run.rho,
                run.fingerprint, now
            ],
        )?;
        tx.execute(
            "INSERT INTO budget_ledger (agreement_id, run_id, at_ms, epsilon_units, delta_units, rho_units, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'reserved')",
            params![run.agreement_id, run.run_id, now, cost_e, cost_d, cost_r],
        )?;
        let after = charged(&tx, &run.agreement_id, run.budget_since_ms)?;
        let budget = status(&run.agreement_id, &after, caps);
        let event = |action: &str, details: Value| {
            AuditEvent::now(&run.actor, action, details).with_agreement(&run.agreement_id)
        };
        audit_log::append(
            &tx,
            event(
                "run.started",
                json!({
                    "run_id": run.run_id, "role": run.role, "params": params, "epsilon": run.epsilon,
                    "delta": run.delta, "rho": run.rho, "fingerprint": run.fingerprint,
                }),
            ),
        )?;
        audit_log::append(
            &tx,
            event(
                "budget.charged",
                json!({
                    "run_id": run.run_id, "epsilon": run.epsilon, "delta": run.delta, "rho": run.rho,
                    "route": route.name(),
                    "spent_epsilon": budget.spent_epsilon, "spent_delta": budget.spent_delta,
                    "spent_rho": budget.spent_rho,
                    "cap_epsilon": budget.cap_epsilon, "cap_delta": budget.cap_delta,
                    "cap_rho": budget.cap_rho,
                    "left_epsilon": budget.left_epsilon, "left_delta": budget.left_delta,
                }),
            ),
        )?;
        tx.commit()?;
        Ok(budget)
    }

    /// Looks up a started run inside `tx`; errors if unknown or already ended.
    fn started_run(conn: &Connection, run_id: &str) -> Result<String, StoreError> {
        let row: Option<(String, String)> = conn
            .query_row(
                "SELECT status, agreement_id FROM runs WHERE run_id = ?1",
                [run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match row {
            None => Err(StoreError::NotFound(format!("run {run_id:?}"))),
            Some((status, agreement)) if status == "started" => Ok(agreement),
            Some((status, _)) => Err(StoreError::Conflict(format!(
                "run {run_id:?} is {status}, not started"
            ))),
        }
    }

    /// Marks a started run `finished`, stores its result (served by [`Store::cached_result`]
    /// for the run's fingerprint until purged) and consumes its budget charge. Audited as
    /// `run.finished` with the output hash. `output_sha256` is 64 hex digits.
    pub fn finish_run(
        &mut self,
        run_id: &str,
        result_json: &str,
        output_sha256: &str,
    ) -> Result<(), StoreError> {
        check_json(result_json, "result_json")?;
        if output_sha256.len() != 64 || !output_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Invalid(
                "output_sha256 must be 64 hex digits".into(),
            ));
        }
        let output_sha256 = output_sha256.to_ascii_lowercase();
        let now = now_ms();
        let tx = self.write_tx()?;
        let agreement = Self::started_run(&tx, run_id)?;
        tx.execute(
            "UPDATE runs SET status = 'finished', ended_at_ms = ?2, result_json = ?3, output_sha256 = ?4
             WHERE run_id = ?1",
            params![run_id, now, result_json, output_sha256],
        )?;
        tx.execute(
            "UPDATE budget_ledger SET state = 'spent' WHERE run_id = ?1",
            [run_id],
        )?;
        let fingerprint: Option<String> = tx.query_row(
            "SELECT fingerprint FROM runs WHERE run_id = ?1",
            [run_id],
            |r| r.get(0),
        )?;
        audit_log::append(
            &tx,
            AuditEvent::now(
                "node",
                "run.finished",
                json!({"run_id": run_id, "output_sha256": output_sha256, "fingerprint": fingerprint}),
            )
            .with_agreement(agreement),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks a started run `failed`. `budget_spent` says whether its charge is consumed.
    ///
    /// Pass `true` once any noised value of this run may have left the node — sent to the peer,
    /// returned to a caller, written to a file or log — or when that cannot be ruled out (e.g. a
    /// timeout after sending): an observed noisy answer has spent its privacy budget whether or
    /// not the run completes. Pass `false` only when the run failed before any noise was drawn
    /// for its output (peer unreachable or refused, input validation, PSI exchange error); the
    /// reservation is then released (`budget.released` audited).
    pub fn fail_run(
        &mut self,
        run_id: &str,
        reason: &str,
        budget_spent: bool,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = self.write_tx()?;
        let agreement = Self::started_run(&tx, run_id)?;
        tx.execute(
            "UPDATE runs SET status = 'failed', ended_at_ms = ?2, error = ?3 WHERE run_id = ?1",
            params![run_id, now, reason],
        )?;
        let (state, released_at) = if budget_spent {
            ("spent", None)
        } else {
            ("released", Some(now))
        };
        tx.execute(
            "UPDATE budget_ledger SET state = ?2, released_at_ms = ?3 WHERE run_id = ?1",
            params![run_id, state, released_at],
        )?;
        audit_log::append(
            &tx,
            AuditEvent::now(
                "node",
                "run.failed",
                json!({"run_id": run_id, "reason": reason, "budget_spent": budget_spent}),
            )
            .with_agreement(&agreement),
        )?;
        if !budget_spent {
            let (e, d, r): (f64, f64, f64) = tx.query_row(
                "SELECT epsilon, delta, rho FROM runs WHERE run_id = ?1",
                [run_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )?;
            audit_log::append(
                &tx,
                AuditEvent::now(
                    "node",
                    "budget.released",
                    json!({"run_id": run_id, "epsilon": e, "delta": d, "rho": r}),
                )
                .with_agreement(&agreement),
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Fails every run still `started`, keeping its charge (`budget_spent = true`: whether its
    /// output left cannot be known). For the node at startup only — never while it serves runs.
    /// Returns how many runs were failed.
    pub fn fail_interrupted_runs(&mut self) -> Result<u64, StoreError> {
        let ids: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT run_id FROM runs WHERE status = 'started'")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for id in &ids {
            self.fail_run(
                id,
                "interrupted: the node stopped before the run ended",
                true,
            )?;
        }
        Ok(ids.len() as u64)
    }

    /// Runs, oldest first, optionally of one agreement (refused runs included).
    pub fn runs(&self, agreement: Option<&str>) -> Result<Vec<RunRecord>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r LEFT JOIN budget_ledger l ON l.run_id = r.run_id
             WHERE ?1 IS NULL OR r.agreement_id = ?1 ORDER BY r.started_at_ms, r.rowid"
        ))?;
        let rows = stmt.query_map([agreement], run_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One run.
    pub fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs r LEFT JOIN budget_ledger l ON l.run_id = r.run_id
                     WHERE r.run_id = ?1"
                ),
                [run_id],
                run_from_row,
            )
            .optional()?)
    }

    /// The agreement's budget for this party (both roles) against the given caps (basic
    /// composition only: `cap_rho` is `None`), counting the charges of runs started at or after
    /// `since_ms` (as [`NewRun::budget_since_ms`]; 0 for the agreement's whole life).
    pub fn budget(
        &self,
        agreement_id: &str,
        cap_epsilon: f64,
        cap_delta: f64,
        since_ms: i64,
    ) -> Result<BudgetStatus, StoreError> {
        self.budget_with_rho_cap(agreement_id, cap_epsilon, cap_delta, None, since_ms)
    }

    /// The agreement's budget for this party (both roles) against the given caps, including
    /// the zCDP route's ρ cap (as given to [`NewRun::cap_rho`]), counting the charges of runs
    /// started at or after `since_ms` (as [`NewRun::budget_since_ms`]; 0 for the whole life).
    pub fn budget_with_rho_cap(
        &self,
        agreement_id: &str,
        cap_epsilon: f64,
        cap_delta: f64,
        cap_rho: Option<f64>,
        since_ms: i64,
    ) -> Result<BudgetStatus, StoreError> {
        let caps = Caps::new(cap_epsilon, cap_delta, cap_rho)?;
        Ok(status(
            agreement_id,
            &charged(&self.conn, agreement_id, since_ms)?,
            caps,
        ))
    }

    /// The newest unpurged result of a finished run with this fingerprint. Serving it instead of
    /// re-running keeps repeated identical queries from averaging the noise away.
    pub fn cached_result(&self, fingerprint: &str) -> Result<Option<CachedResult>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT run_id, agreement_id, result_json, output_sha256, ended_at_ms FROM runs
                 WHERE fingerprint = ?1 AND status = 'finished' AND result_json IS NOT NULL
                 ORDER BY ended_at_ms DESC, rowid DESC LIMIT 1",
                [fingerprint],
                |r| {
                    Ok(CachedResult {
                        run_id: r.get(0)?,
                        agreement_id: r.get(1)?,
                        result_json: r.get(2)?,
                        output_sha256: r.get(3)?,
                        finished_at_ms: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }
}
