//! Runs and the write-ahead privacy-budget ledger.
//!
//! A run reserves its cost before any data is touched (`begin_run`), inside one
//! `BEGIN IMMEDIATE` transaction that also checks the caps, so concurrent callers — threads or
//! processes — can never overspend. The charge is then consumed (`finish_run`, or
//! `fail_run(.., true)`) or released (`fail_run(.., false)`). Amounts are kept in integer units
//! (ε and ρ in 1e-9, δ in 1e-18) so that sums are exact: with cost `c` and cap `C`, exactly
//! ⌊C/c⌋ runs fit (after rounding both to those units).
//!
//! **Where a charge counts.** Every charge counts against its agreement and against the budget
//! account of the agreement's pair of signing keys and the run's join key ([`NewRun::join_key`];
//! `account.rs`), which every agreement between the same two keys shares. A run must fit the
//! caps it is given (its agreement's) in its agreement *and* in each of its accounts, so a
//! re-signed or second agreement with the same partner gives no fresh budget.
//!
//! **The admission rule** (one rule; the argument is in `protocols/psi-ca-v1.md` §6.1). Each run
//! `i` is `(ε_i, δ_i)`-DP and its pure part is `ρ_i`-zCDP (the caller gives `ρ_i`, the sum of
//! `ε_m²/2` over its pure-DP mechanisms `m`). With the caps `(cap_ε, cap_δ)` and `cap_ρ` (the
//! largest ρ whose ε at `cap_δ/2` is at most `cap_ε`, computed by the caller with
//! `tandem_dp::rho_for_epsilon`), a run is admitted in a scope iff, counting it,
//!
//! ```text
//! Σδ ≤ cap_δ/2   and   ( Σε ≤ cap_ε   or   Σρ ≤ cap_ρ )
//! ```
//!
//! The sequence of admitted runs is then `(cap_ε, cap_δ)`-DP whichever side of the `or` admitted
//! each run: a transcript that ends with `Σε ≤ cap_ε` has privacy loss at most `cap_ε`; one that
//! ends with `Σρ ≤ cap_ρ` is a transcript of the zCDP filter, `(cap_ε, cap_δ/2)`-DP; the runs' own
//! δ add at most `cap_δ/2`. The side that admitted a run is its **route** (`basic` when `Σε ≤
//! cap_ε` held in every scope, else `zcdp`), recorded with the charge. Without `cap_ρ` only
//! `Σε ≤ cap_ε` applies. ρ costs are rounded up and the ρ cap and `cap_δ/2` down, so rounding
//! never admits more.
//!
//! **The node-wide cap.** When the node has one ([`Store::set_node_cap`], from its
//! configuration), every run must also fit the same rule against it over **all** of this
//! node's charges — every agreement, counterparty and role — in the node's own window
//! ([`NodeCap::window_ms`]). A refusal there names the account `node`.
//!
//! **Windows.** The sums cover the charges of runs started at or after
//! [`NewRun::budget_since_ms`] (0: all of them). A caller whose agreement refreshes its budget
//! passes the start of a sliding window (now minus the period), so any window of that length
//! holds at most the caps.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Value, json};
use tandem_audit::AuditEvent;

use crate::account::AccountKeys;
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
    /// Join key (identifier space) the run reads, one of the agreement's `join_keys`: the
    /// budget account it is charged to. `None` charges every join key's account of the
    /// agreement (a run that may touch any of them).
    pub join_key: Option<String>,
    /// Principal that asked (e.g. `token:alice(analyst)`, `peer:shopx`).
    pub actor: String,
    /// Template and parameters (JSON; no identifiers), recorded in the audit log.
    pub params_json: String,
    /// ε this run spends: the sum of its mechanisms' ε (basic composition).
    pub epsilon: f64,
    /// δ this run spends: the sum of its mechanisms' δ.
    pub delta: f64,
    /// ρ (zCDP) this run spends. Always recorded; charged against [`Self::cap_rho`], so it must
    /// be a valid zCDP bound of the run's pure-DP part: `Σ ε_m²/2` over its pure `ε_m`-DP
    /// mechanisms (each `δ_m`-close to pure DP), not `(Σ ε_m)²/2`. Must be > 0 when `epsilon`
    /// is and `cap_rho` is given.
    pub rho: f64,
    /// The agreement's ε cap for this party.
    pub cap_epsilon: f64,
    /// The agreement's δ cap for this party; the runs' own δ may use half of it.
    pub cap_delta: f64,
    /// The ρ cap: the largest total ρ whose ε at `cap_delta / 2` is at most `cap_epsilon`.
    /// `None` admits runs only while `Σε ≤ cap_epsilon`.
    pub cap_rho: Option<f64>,
    /// Query fingerprint (agreement, template, parameters, [`Store::audience_version`], …);
    /// when set, `finish_run` makes the result available to [`Store::cached_result`].
    pub fingerprint: Option<String>,
    /// Start (Unix ms) of the window the caps apply to: only charges of runs started at or
    /// after it count, in the agreement and in its accounts. 0 (the default) counts them all.
    pub budget_since_ms: i64,
}

/// The node's own cap over all its charges (every agreement, counterparty and role), admitted
/// by the same rule as an agreement's caps.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeCap {
    /// ε cap.
    pub epsilon: f64,
    /// δ cap; the runs' own δ may use half of it. `None`: the node-wide cap bounds ε only
    /// (basic composition, so `rho` must be `None` too); each agreement's own δ cap still
    /// bounds its runs' δ. (`Some(0.0)` is a cap too: only runs with δ = 0 fit.)
    pub delta: Option<f64>,
    /// ρ cap (the largest ρ whose ε at `delta / 2` is at most `epsilon`), or `None` for basic
    /// composition only.
    pub rho: Option<f64>,
    /// A sliding window (ms): only charges of runs started in the last `window_ms` count. `None`:
    /// all charges ever (a lifetime cap).
    pub window_ms: Option<i64>,
}

/// The account name a refusal by the node-wide cap carries.
pub const NODE_ACCOUNT: &str = "node";

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
    /// Route that admitted the charge: `basic` (`Σε ≤ cap_ε` held) or `zcdp` (only
    /// `Σρ ≤ cap_ρ` did); `None` for refused runs and charges older than routes.
    pub route: Option<String>,
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

/// Budget of one agreement for this party (both roles together), including the budget accounts
/// it shares with other agreements: each `spent_*` figure is the largest over the agreement and
/// its accounts, so `left_*` is what the next run can still use.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetStatus {
    /// Agreement.
    pub agreement_id: String,
    /// Budget accounts counted besides the agreement (`pair:<key>:<key>/<join key>`).
    pub accounts: Vec<String>,
    /// ε cap given.
    pub cap_epsilon: f64,
    /// δ cap given (+∞ for a node-wide cap without one).
    pub cap_delta: f64,
    /// ε charged: consumed plus reserved by started runs.
    pub spent_epsilon: f64,
    /// δ charged.
    pub spent_delta: f64,
    /// ρ charged.
    pub spent_rho: f64,
    /// ρ cap, if one was given (rounded down to the ledger's units).
    pub cap_rho: Option<f64>,
    /// Part of `spent_epsilon` reserved by runs still started.
    pub reserved_epsilon: f64,
    /// ε left under `Σε ≤ cap_ε` (never negative). Runs may still be admitted when it is 0, by
    /// `Σρ ≤ cap_ρ` (the zCDP route).
    pub left_epsilon: f64,
    /// δ left for runs: half the δ cap minus `spent_delta` (never negative); the other half
    /// is kept for the zCDP route's conversion (+∞ without a δ cap).
    pub left_delta: f64,
    /// Runs of this agreement holding a charge (started, finished, or failed after data left).
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

#[derive(Clone, Copy, Default)]
struct Charged {
    epsilon: i64,
    delta: i64,
    rho: i64,
    reserved_epsilon: i64,
    runs: u64,
}

impl Charged {
    /// The largest of each figure (`runs` stays the first's: the agreement's).
    fn max(self, other: Charged) -> Charged {
        Charged {
            epsilon: self.epsilon.max(other.epsilon),
            delta: self.delta.max(other.delta),
            rho: self.rho.max(other.rho),
            reserved_epsilon: self.reserved_epsilon.max(other.reserved_epsilon),
            runs: self.runs,
        }
    }
}

/// What a sum of charges covers.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Scope {
    /// One agreement's charges.
    Agreement(String),
    /// One budget account's charges, across agreements.
    Account(String),
    /// Every charge of this node since `since_ms`, against the node-wide cap's `caps`.
    Node { since_ms: i64, caps: Caps },
}

impl Scope {
    /// The account name a refusal in this scope carries (`None`: the agreement).
    fn account(&self) -> Option<String> {
        match self {
            Scope::Account(a) => Some(a.clone()),
            Scope::Node { .. } => Some(NODE_ACCOUNT.to_owned()),
            Scope::Agreement(_) => None,
        }
    }

    /// The caps this scope admits against: its own for the node, else the run's.
    fn caps(&self, run: Caps) -> Caps {
        match self {
            Scope::Node { caps, .. } => *caps,
            _ => run,
        }
    }
}

/// The node-wide scope, if the node has a cap.
fn node_scope(conn: &Connection, now_ms: i64) -> Result<Option<Scope>, StoreError> {
    let Some(cap) = read_node_cap(conn)? else {
        return Ok(None);
    };
    Ok(Some(Scope::Node {
        since_ms: cap.window_ms.map_or(0, |w| now_ms.saturating_sub(w)),
        caps: Caps::node(&cap)?,
    }))
}

fn read_node_cap(conn: &Connection) -> Result<Option<NodeCap>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT epsilon, delta, rho, window_ms FROM node_cap WHERE id = 1",
            [],
            |r| {
                // No δ cap is stored as +∞ (the column predates optional δ caps).
                let delta: f64 = r.get(1)?;
                Ok(NodeCap {
                    epsilon: r.get(0)?,
                    delta: delta.is_finite().then_some(delta),
                    rho: r.get(2)?,
                    window_ms: r.get(3)?,
                })
            },
        )
        .optional()?)
}

/// The scope's charges (reserved or spent) of runs started at or after `since_ms`: a ledger
/// row's `at_ms` is its run's start.
fn charged(conn: &Connection, scope: &Scope, since_ms: i64) -> Result<Charged, StoreError> {
    const SUMS: &str = "SELECT COALESCE(SUM(l.epsilon_units), 0), COALESCE(SUM(l.delta_units), 0),
            COALESCE(SUM(l.rho_units), 0),
            COALESCE(SUM(CASE WHEN l.state = 'reserved' THEN l.epsilon_units END), 0), COUNT(*)";
    let (sql, key) = match scope {
        Scope::Node {
            since_ms: node_since,
            ..
        } => {
            let sql = format!(
                "{SUMS} FROM budget_ledger l
                 WHERE l.state IN ('reserved', 'spent') AND l.at_ms >= ?1"
            );
            return Ok(conn
                .prepare_cached(&sql)?
                .query_row(params![*node_since], |r| {
                    Ok(Charged {
                        epsilon: r.get(0)?,
                        delta: r.get(1)?,
                        rho: r.get(2)?,
                        reserved_epsilon: r.get(3)?,
                        runs: r.get::<_, i64>(4)? as u64,
                    })
                })?);
        }
        Scope::Agreement(id) => (
            format!(
                "{SUMS} FROM budget_ledger l
                 WHERE l.agreement_id = ?1 AND l.state IN ('reserved', 'spent') AND l.at_ms >= ?2"
            ),
            id,
        ),
        Scope::Account(account) => (
            format!(
                "{SUMS} FROM budget_accounts b JOIN budget_ledger l ON l.run_id = b.run_id
                 WHERE b.account = ?1 AND l.state IN ('reserved', 'spent') AND l.at_ms >= ?2"
            ),
            account,
        ),
    };
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![key, since_ms], |r| {
            Ok(Charged {
                epsilon: r.get(0)?,
                delta: r.get(1)?,
                rho: r.get(2)?,
                reserved_epsilon: r.get(3)?,
                runs: r.get::<_, i64>(4)? as u64,
            })
        })?)
}

/// The scopes an agreement's runs count in: the agreement, then the accounts of `join_key` (all
/// of its join keys when `None`), from the stored document. An agreement not stored (or not a
/// two-party document) counts in itself only.
fn scopes(
    conn: &Connection,
    agreement_id: &str,
    join_key: Option<&str>,
) -> Result<Vec<Scope>, StoreError> {
    let doc: Option<String> = conn
        .query_row(
            "SELECT doc_json FROM agreements WHERE id = ?1",
            [agreement_id],
            |r| r.get(0),
        )
        .optional()?;
    let mut out = vec![Scope::Agreement(agreement_id.to_owned())];
    if let Some(keys) = doc.as_deref().and_then(AccountKeys::of) {
        out.extend(keys.accounts_for(join_key)?.into_iter().map(Scope::Account));
    }
    Ok(out)
}

/// The largest charges over `scopes`.
fn charged_max(conn: &Connection, scopes: &[Scope], since_ms: i64) -> Result<Charged, StoreError> {
    let mut out: Option<Charged> = None;
    for scope in scopes {
        let c = charged(conn, scope, since_ms)?;
        out = Some(out.map_or(c, |o| o.max(c)));
    }
    Ok(out.unwrap_or_default())
}

/// The ledger's caps for one agreement, in units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Caps {
    epsilon: i64,
    /// `None`: δ is not bounded in this scope (a node-wide cap on ε only).
    delta: Option<i64>,
    rho: Option<i64>,
}

impl Caps {
    fn new(cap_epsilon: f64, cap_delta: f64, cap_rho: Option<f64>) -> Result<Self, StoreError> {
        Ok(Caps {
            epsilon: units(cap_epsilon, EPSILON_UNIT, "cap_epsilon")?,
            delta: Some(units(cap_delta, DELTA_UNIT, "cap_delta")?),
            rho: cap_rho
                .map(|r| units_rounded(r, RHO_UNIT, "cap_rho", Rounding::Down))
                .transpose()?,
        })
    }

    /// The caps of the node-wide scope. Errors: a ρ cap without a δ cap (zCDP converts to
    /// approximate DP only at some δ).
    fn node(cap: &NodeCap) -> Result<Self, StoreError> {
        match cap.delta {
            Some(delta) => Caps::new(cap.epsilon, delta, cap.rho),
            None if cap.rho.is_some() => Err(StoreError::Invalid(
                "the node cap's ρ cap needs a δ cap".into(),
            )),
            None => Ok(Caps {
                delta: None,
                ..Caps::new(cap.epsilon, 0.0, None)?
            }),
        }
    }

    /// The runs' share of the δ cap: half, rounded down (`None`: not bounded here).
    fn run_delta(self) -> Option<i64> {
        self.delta.map(|d| d / 2)
    }
}

/// Which side of the admission rule admitted a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Route {
    /// `Σε ≤ cap_ε` (basic composition).
    Basic,
    /// Only `Σρ ≤ cap_ρ` (the zCDP filter).
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

/// A cap a run would pass: `(what, spent, cost, cap)` in ledger units.
type Overrun = (&'static str, i64, i64, i64);

/// Why a scope refuses a run: the first cap passed (`delta` against half the δ cap, else
/// `epsilon`), and with `epsilon`, the ρ cap passed too when one was given.
type Refusal = (Overrun, Option<Overrun>);

/// The admission rule of the module docs in one scope with charges `c`.
fn admit(c: &Charged, cost_e: i64, cost_d: i64, cost_r: i64, caps: Caps) -> Result<Route, Refusal> {
    if let Some(cap_d) = caps.run_delta()
        && c.delta + cost_d > cap_d
    {
        return Err((("delta", c.delta, cost_d, cap_d), None));
    }
    if c.epsilon + cost_e <= caps.epsilon {
        return Ok(Route::Basic);
    }
    let basic = ("epsilon", c.epsilon, cost_e, caps.epsilon);
    match caps.rho {
        Some(cap_r) if c.rho + cost_r <= cap_r => Ok(Route::Zcdp),
        Some(cap_r) => Err((basic, Some(("rho", c.rho, cost_r, cap_r)))),
        None => Err((basic, None)),
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

/// A refusal: the error and its audit details (`reason`, `what`, `spent`, `cost`, `cap`,
/// `account`, and `zcdp` when the ρ cap refused too).
type Refused = (StoreError, Value);

/// The admission rule over `scopes` for `run` at costs `[ε, δ, ρ]` (units): the route that
/// admits it, or the first scope's refusal.
fn evaluate<'a>(
    conn: &Connection,
    run: &NewRun,
    scopes: impl Iterator<Item = &'a Scope>,
    [cost_e, cost_d, cost_r]: [i64; 3],
    caps: Caps,
) -> Result<Result<Route, Refused>, StoreError> {
    let mut route = Route::Basic;
    for scope in scopes {
        let before = charged(conn, scope, run.budget_since_ms)?;
        let (first, rho) = match admit(&before, cost_e, cost_d, cost_r, scope.caps(caps)) {
            Ok(r) => {
                route = route.max(r);
                continue;
            }
            Err(refused) => refused,
        };
        let account = scope.account();
        let (what, spent, cost, cap) = overrun_values(first);
        let rho = rho.map(overrun_values);
        let zcdp_note = rho.map(|(w, s, c, k)| format!("{w} spent {s} + this query {c} > cap {k}"));
        let err = StoreError::BudgetExceeded {
            spent,
            cost,
            cap,
            what,
            zcdp: zcdp_note,
            account: account.clone(),
        };
        let mut details = json!({
            "reason": "budget_exceeded", "what": what, "spent": spent, "cost": cost, "cap": cap,
            "account": account,
        });
        if let Some((w, s, c, k)) = rho {
            details["zcdp"] = json!({"what": w, "spent": s, "cost": c, "cap": k});
        }
        return Ok(Err((err, details)));
    }
    Ok(Ok(route))
}

fn status(agreement_id: &str, scopes: &[Scope], c: &Charged, caps: Caps) -> BudgetStatus {
    BudgetStatus {
        agreement_id: agreement_id.to_owned(),
        accounts: scopes
            .iter()
            .filter_map(|s| match s {
                Scope::Account(a) => Some(a.clone()),
                Scope::Agreement(_) | Scope::Node { .. } => None,
            })
            .collect(),
        cap_epsilon: caps.epsilon as f64 / EPSILON_UNIT,
        cap_delta: caps.delta.map_or(f64::INFINITY, |d| d as f64 / DELTA_UNIT),
        spent_epsilon: c.epsilon as f64 / EPSILON_UNIT,
        spent_delta: c.delta as f64 / DELTA_UNIT,
        spent_rho: c.rho as f64 / RHO_UNIT,
        cap_rho: caps.rho.map(|r| r as f64 / RHO_UNIT),
        reserved_epsilon: c.reserved_epsilon as f64 / EPSILON_UNIT,
        left_epsilon: (caps.epsilon - c.epsilon).max(0) as f64 / EPSILON_UNIT,
        left_delta: caps
            .run_delta()
            .map_or(f64::INFINITY, |d| (d - c.delta).max(0) as f64 / DELTA_UNIT),
        runs: c.runs,
    }
}

const RUN_COLUMNS: &str = "r.run_id, r.agreement_id, r.role, r.actor, r.params_json, r.status, r.epsilon, r.delta,
    r.rho, r.fingerprint, l.state, r.started_at_ms, r.ended_at_ms, r.result_json, r.output_sha256, r.error,
    l.route";

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
        route: r.get(16)?,
    })
}

fn check_json(text: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Invalid(format!("{what} is not JSON: {e}")))
}

impl Store {
    /// Reserves the run's budget and records it as `started` — before any data is touched.
    ///
    /// In one `BEGIN IMMEDIATE` transaction: refuses a reused run id ([`StoreError::Replay`]),
    /// a missing or non-active agreement ([`StoreError::AgreementNotActive`]), a join key the
    /// agreement does not list ([`StoreError::Invalid`]), and a run that the admission rule of
    /// the module docs refuses in its agreement or in one of its budget accounts, with charges
    /// summed over both roles and the window [`NewRun::budget_since_ms`]
    /// ([`StoreError::BudgetExceeded`]; the refused run is recorded with status `refused` and
    /// charges nothing). Every refusal is audited as `query.refused`. On success the run, a
    /// `reserved` ledger charge with its route, and its accounts are inserted, and
    /// `run.started` + `budget.charged` (with the `route` and `accounts`) audited; returns the
    /// budget after the charge (largest figures over the run's agreement and accounts).
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

        let scopes = scopes(&tx, &run.agreement_id, run.join_key.as_deref())?;
        let node = node_scope(&tx, now)?;
        let admitted = evaluate(
            &tx,
            run,
            scopes.iter().chain(&node),
            [cost_e, cost_d, cost_r],
            caps,
        )?;
        if let Err((err, mut details)) = admitted {
            details["run_id"] = json!(run.run_id);
            details["role"] = json!(run.role);
            details["params"] = params;
            tx.execute(
                "INSERT INTO runs (run_id, agreement_id, role, actor, params_json, status, epsilon, delta, rho,
                                   fingerprint, started_at_ms, ended_at_ms, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'refused', ?6, ?7, ?8, ?9, ?10, ?10, ?11)",
                params![
                    run.run_id, run.agreement_id, run.role, run.actor, run.params_json, run.epsilon,
                    run.delta, run.rho, run.fingerprint, now, err.to_string()
                ],
            )?;
            audit_log::append(&tx, refusal(details))?;
            tx.commit()?;
            return Err(err);
        }
        let route = admitted.unwrap_or(Route::Basic);

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
            "INSERT INTO budget_ledger (agreement_id, run_id, at_ms, epsilon_units, delta_units, rho_units, state, route)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'reserved', ?7)",
            params![run.agreement_id, run.run_id, now, cost_e, cost_d, cost_r, route.name()],
        )?;
        for scope in &scopes {
            if let Scope::Account(account) = scope {
                tx.execute(
                    "INSERT INTO budget_accounts (account, run_id) VALUES (?1, ?2)",
                    params![account, run.run_id],
                )?;
            }
        }
        let after = charged_max(&tx, &scopes, run.budget_since_ms)?;
        let budget = status(&run.agreement_id, &scopes, &after, caps);
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
                    "route": route.name(), "accounts": budget.accounts,
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

    /// The agreement's budget for this party (both roles, every join key's account) against the
    /// given caps without a ρ cap, counting the charges of runs started at or after `since_ms`
    /// (as [`NewRun::budget_since_ms`]; 0 for all of them).
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
    /// the ρ cap (as given to [`NewRun::cap_rho`]), counting the charges of runs started at or
    /// after `since_ms` (as [`NewRun::budget_since_ms`]; 0 for all of them). The figures are the
    /// largest over the agreement and the budget accounts of all its join keys.
    pub fn budget_with_rho_cap(
        &self,
        agreement_id: &str,
        cap_epsilon: f64,
        cap_delta: f64,
        cap_rho: Option<f64>,
        since_ms: i64,
    ) -> Result<BudgetStatus, StoreError> {
        let caps = Caps::new(cap_epsilon, cap_delta, cap_rho)?;
        let scopes = scopes(&self.conn, agreement_id, None)?;
        Ok(status(
            agreement_id,
            &scopes,
            &charged_max(&self.conn, &scopes, since_ms)?,
            caps,
        ))
    }

    /// When the oldest charge still counted in a budget window was made (Unix ms): the charges
    /// (reserved or spent) since `since_ms` of the agreement, or of the budget `account` when
    /// given ([`NODE_ACCOUNT`]: every charge of the node). In a sliding window that charge is the next to leave it, so the budget next
    /// refreshes one window length after it. `None` when nothing is charged in the window.
    pub fn oldest_charge_since(
        &self,
        agreement_id: &str,
        account: Option<&str>,
        since_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let at: Option<i64> = match account {
            Some(NODE_ACCOUNT) => self.conn.query_row(
                "SELECT MIN(at_ms) FROM budget_ledger
                 WHERE state IN ('reserved', 'spent') AND at_ms >= ?1",
                [since_ms],
                |r| r.get(0),
            )?,
            None => self.conn.query_row(
                "SELECT MIN(at_ms) FROM budget_ledger
                 WHERE agreement_id = ?1 AND state IN ('reserved', 'spent') AND at_ms >= ?2",
                params![agreement_id, since_ms],
                |r| r.get(0),
            )?,
            Some(account) => self.conn.query_row(
                "SELECT MIN(l.at_ms) FROM budget_accounts b JOIN budget_ledger l ON l.run_id = b.run_id
                 WHERE b.account = ?1 AND l.state IN ('reserved', 'spent') AND l.at_ms >= ?2",
                params![account, since_ms],
                |r| r.get(0),
            )?,
        };
        Ok(at)
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

impl Store {
    /// Sets (or with `None` removes) the node-wide cap over all of this node's charges (see the
    /// module docs). Audited as `budget.node_cap` when it changes; returns whether it did.
    pub fn set_node_cap(&mut self, cap: Option<&NodeCap>, actor: &str) -> Result<bool, StoreError> {
        if let Some(c) = cap {
            Caps::node(c)?;
            if c.window_ms.is_some_and(|w| w <= 0) {
                return Err(StoreError::Invalid(
                    "the node cap's window must be > 0".into(),
                ));
            }
        }
        if read_node_cap(&self.conn)?.as_ref() == cap {
            return Ok(false);
        }
        let tx = self.write_tx()?;
        tx.execute("DELETE FROM node_cap", [])?;
        if let Some(c) = cap {
            tx.execute(
                "INSERT INTO node_cap (id, epsilon, delta, rho, window_ms, set_at_ms)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5)",
                params![
                    c.epsilon,
                    c.delta.unwrap_or(f64::INFINITY),
                    c.rho,
                    c.window_ms,
                    now_ms()
                ],
            )?;
        }
        let details = match cap {
            Some(c) => {
                json!({"epsilon": c.epsilon, "delta": c.delta, "rho": c.rho, "window_ms": c.window_ms})
            }
            None => json!({"removed": true}),
        };
        audit_log::append(&tx, AuditEvent::now(actor, "budget.node_cap", details))?;
        tx.commit()?;
        Ok(true)
    }

    /// The node-wide cap, if set.
    pub fn node_cap(&self) -> Result<Option<NodeCap>, StoreError> {
        read_node_cap(&self.conn)
    }

    /// ε/δ/ρ charged (reserved or spent) under the node-wide cap now: every charge in its window.
    /// `None` without a cap.
    pub fn node_cap_status(&self) -> Result<Option<(NodeCap, BudgetStatus)>, StoreError> {
        let Some(cap) = read_node_cap(&self.conn)? else {
            return Ok(None);
        };
        let Some(scope) = node_scope(&self.conn, now_ms())? else {
            return Ok(None);
        };
        let c = charged(&self.conn, &scope, 0)?;
        let caps = scope.caps(Caps::node(&cap)?);
        let mut s = status(NODE_ACCOUNT, &[], &c, caps);
        s.accounts = vec![NODE_ACCOUNT.to_owned()];
        Ok(Some((cap, s)))
    }

    /// Whether [`Store::begin_run`] would admit `run` now, without recording or charging
    /// anything (for a peer's budget pre-check: the ledger is a function of the queries asked,
    /// not of data). Returns the budget before the run (as `begin_run` would count it), or the
    /// error `begin_run` would return: [`StoreError::BudgetExceeded`] (with the scope that
    /// refused), [`StoreError::AgreementNotActive`], [`StoreError::Invalid`]. Not audited.
    pub fn would_admit(&self, run: &NewRun) -> Result<BudgetStatus, StoreError> {
        let cost_e = units(run.epsilon, EPSILON_UNIT, "epsilon")?;
        let cost_d = units(run.delta, DELTA_UNIT, "delta")?;
        let cost_r = units_rounded(run.rho, RHO_UNIT, "rho", Rounding::Up)?;
        let caps = Caps::new(run.cap_epsilon, run.cap_delta, run.cap_rho)?;
        let status_text: Option<String> = self
            .conn
            .query_row(
                "SELECT status FROM agreements WHERE id = ?1",
                [&run.agreement_id],
                |r| r.get(0),
            )
            .optional()?;
        if status_text.as_deref() != Some("active") {
            return Err(StoreError::AgreementNotActive {
                id: run.agreement_id.clone(),
                status: status_text,
            });
        }
        let scopes = scopes(&self.conn, &run.agreement_id, run.join_key.as_deref())?;
        let node = node_scope(&self.conn, now_ms())?;
        if let Err((err, _)) = evaluate(
            &self.conn,
            run,
            scopes.iter().chain(&node),
            [cost_e, cost_d, cost_r],
            caps,
        )? {
            return Err(err);
        }
        Ok(status(
            &run.agreement_id,
            &scopes,
            &charged_max(&self.conn, &scopes, run.budget_since_ms)?,
            caps,
        ))
    }
}
