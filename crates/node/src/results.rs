//! Stored results (issue 12): every report a query produced, fresh or cached, is kept whole
//! with its parameters, this node's ε/δ spent and its intervals, so an analyst re-reads and
//! exports it later at no cost — no budget, no peer contact. `tandem results list|show|export`
//! and `GET /api/v1/results[/{id}[/export]]` read them; `tandem purge` deletes them with the
//! node's retention. Each read is audited (`result.read`), as a cached answer is.
//!
//! A stored report is **querier-internal** (psi-ca-v1 §8.7): the responder chose the matches
//! `K_c` it injected into every cell, so it could subtract them from a shared report and recover
//! the exact cell counts of the shared audience — counts about the querier's customers. What may
//! be shared with the partner is a [`partner_export`]: every cell with fresh noise of the
//! querier's own, charged to the querier's ledger before anything is output.

use serde::{Deserialize, Serialize};
use tandem_store::{AuditEvent, NewResult, Store, StoredResult};

use crate::analysis::{self, Cell, Format, Query, Report};
use crate::budget::{EntryFor, ledger_entry, run_delta};
use crate::error::{Code, NodeError, Result};
use crate::release::{Exposure, Reservation};

/// One stored result without its report: the rows of `tandem results list`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResultSummary {
    /// Result id (hex, 16 bytes).
    pub result_id: String,
    /// When it was stored, Unix ms.
    pub created_at_ms: i64,
    /// Agreement id (hex).
    pub agreement_id: String,
    /// The analysis.
    pub analysis: String,
    /// The run whose noised numbers it shows (hex).
    pub run_id: String,
    /// It was answered from the cache (nothing spent then).
    pub cached: bool,
    /// Who asked.
    pub actor: String,
    /// ε this node spent on it (0 when cached).
    pub epsilon_spent: f64,
    /// δ this node spent on it.
    pub delta_spent: f64,
    /// The query's parameters (the body of the query request).
    pub params: serde_json::Value,
}

/// A stored result with its report (the report's JSON whole, as produced).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredReport {
    /// The stored result's fields.
    #[serde(flatten)]
    pub summary: ResultSummary,
    /// The report.
    pub report: serde_json::Value,
}

/// Stores `report`, the answer to `query` (fresh or cached); returns its id.
pub fn save(store: &mut Store, report: &Report, query: &Query, actor: &str) -> Result<String> {
    let report_json = serde_json::to_string(report)?;
    let params_json = serde_json::to_string(query)?;
    Ok(store.save_result(&NewResult {
        agreement_id: &report.agreement_id,
        analysis: &report.analysis,
        run_id: &report.run_id,
        cached: report.cached,
        actor,
        params_json: &params_json,
        epsilon_spent: report.querier_budget.epsilon_spent,
        delta_spent: report.querier_budget.delta_spent,
        report_json: &report_json,
    })?)
}

fn corrupt(what: &str, e: serde_json::Error) -> NodeError {
    NodeError::new(
        Code::CorruptData,
        format!("stored result's {what} does not parse: {e}"),
    )
}

fn summary(r: &StoredResult) -> Result<ResultSummary> {
    Ok(ResultSummary {
        result_id: r.result_id.clone(),
        created_at_ms: r.created_at_ms,
        agreement_id: r.agreement_id.clone(),
        analysis: r.analysis.clone(),
        run_id: r.run_id.clone(),
        cached: r.cached,
        actor: r.actor.clone(),
        epsilon_spent: r.epsilon_spent,
        delta_spent: r.delta_spent,
        params: serde_json::from_str(&r.params_json).map_err(|e| corrupt("parameters", e))?,
    })
}

/// The stored results, newest first (of one agreement when given).
pub fn list(store: &Store, agreement: Option<&str>) -> Result<Vec<ResultSummary>> {
    store.results(agreement)?.iter().map(summary).collect()
}

/// The stored result `id` with its report; the read is audited as `result.read`. Errors: 404
/// `not_found` (unknown or purged), 500 `corrupt_data`.
pub fn show(store: &mut Store, id: &str, actor: &str) -> Result<StoredReport> {
    let r = store.result(id)?.ok_or_else(|| {
        NodeError::not_found(format!("no stored result {id}: give its whole id as `tandem results list` prints it (or it was purged, or never made)"))
    })?;
    store.append_audit(
        AuditEvent::now(
            actor,
            "result.read",
            serde_json::json!({"result_id": r.result_id, "run_id": r.run_id, "stored": true}),
        )
        .with_agreement(&r.agreement_id),
    )?;
    Ok(StoredReport {
        summary: summary(&r)?,
        report: serde_json::from_str(&r.report_json).map_err(|e| corrupt("report", e))?,
    })
}

/// The stored result `id` rendered by its analysis (`Format::Json`: the stored report JSON
/// whole, pretty-printed). Errors as [`show`], and 404 `not_found` for an analysis this node
/// no longer runs (JSON still works).
pub fn render(store: &mut Store, id: &str, format: Format, actor: &str) -> Result<String> {
    let stored = show(store, id, actor)?;
    if format == Format::Json {
        return Ok(serde_json::to_string_pretty(&stored.report)?);
    }
    let report: Report = serde_json::from_value(stored.report).map_err(|e| corrupt("report", e))?;
    analysis::find(&report.analysis)?.render(&report, format)
}

/// Why a partner export may be shared with the responder.
pub const PARTNER_EXPORT_NOTE: &str = "safe to share with the partner: every cell carries fresh noise of the querier's own (added_noise), which the responder does not know; the querier's ledger was charged for it";

/// The noise a partner export added to every cell: `clamp(T + Z, 0, 2T) − T` with
/// `Z ~ DiscreteLaplace(scale)` (opendp), for cells of L1 sensitivity 1 in the querier's data
/// (each of its identifiers is in one querier bucket and matches at most one responder item, so
/// it moves one cell by at most 1). The whole export is `(epsilon, delta)`-DP for the querier's
/// audience (psi-ca-v1 §8.7).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AddedNoise {
    /// `discrete_laplace_clamped` (opendp's discrete Laplace, clamped to `[−T, T]`).
    pub mechanism: String,
    /// ε charged to the querier's ledger.
    pub epsilon: f64,
    /// δ charged (the clamping's): the agreement's per-query δ.
    pub delta: f64,
    /// L1 sensitivity of the cell vector (1).
    pub sensitivity: u32,
    /// Scale of the discrete Laplace noise (`sensitivity / ε`).
    pub scale: f64,
    /// The clamp `T`: every cell moved by at most `T`, so each interval is widened by `T` on
    /// both sides and keeps its confidence.
    pub offset: u32,
    /// The charge: the run id in the querier's ledger (hex).
    pub run_id: String,
    /// Whose ledger paid (the querier).
    pub charged_to: String,
}

/// A stored report re-noised for the partner (`tandem results export ID --for-partner`,
/// `POST /api/v1/results/{id}/partner-export`): the cells only (derived figures, overlap
/// rates and the querier's exact local counts stay internal), each with the querier's own
/// noise ([`AddedNoise`]).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartnerExport {
    /// Always true.
    pub safe_to_share: bool,
    /// Always false (the stored report it came from is querier-internal).
    pub querier_internal: bool,
    /// Why it is safe to share ([`PARTNER_EXPORT_NOTE`]).
    pub note: String,
    /// The stored result exported.
    pub result_id: String,
    /// The analysis.
    pub analysis: String,
    /// Agreement id (hex).
    pub agreement_id: String,
    /// Purpose from the agreement.
    pub purpose: String,
    /// The run whose numbers were re-noised (hex).
    pub source_run_id: String,
    /// Querier party.
    pub querier: String,
    /// Responder party (the partner).
    pub responder: String,
    /// Join key.
    pub join_key: String,
    /// Querier's grouping columns.
    pub querier_columns: Vec<String>,
    /// Responder's grouping columns.
    pub responder_columns: Vec<String>,
    /// Confidence of every interval (as the stored report's).
    pub confidence: f64,
    /// The agreement's reporting threshold, applied to the re-noised values.
    pub threshold: u64,
    /// The cells, re-noised; intervals widened by `added_noise.offset`.
    pub cells: Vec<Cell>,
    /// What was added.
    pub added_noise: AddedNoise,
    /// When it was made (RFC 3339 UTC).
    pub exported_at: Option<String>,
}

/// Makes a [`PartnerExport`] of the stored result `id` at `epsilon` (default: the report's ε),
/// through the one release path: a ledger entry under the report's agreement and join key,
/// charged to this node (`me`) before any noise is drawn ([`Reservation::charge`]), noise from
/// the reservation, then `run.finished` + `result.released` to `partner:<responder>`. Every
/// call is a new charge and fresh noise. Errors: 404 `not_found` (no such result), 403
/// `budget_exceeded` (naming the cap and what is left), 422 `invalid_query` (ε over the
/// per-query cap, or not > 0, or a value analysis, whose cells are sums of sensitivity `U`:
/// refused before any charge), 403 `refused` (the agreement is no longer active), 500
/// `corrupt_data`.
pub fn partner_export(
    store: &mut Store,
    me: &str,
    id: &str,
    epsilon: Option<f64>,
    actor: &str,
) -> Result<PartnerExport> {
    let stored = show(store, id, actor)?;
    let report: Report = serde_json::from_value(stored.report).map_err(|e| corrupt("report", e))?;
    if stored
        .summary
        .params
        .get("peer_value")
        .is_some_and(|v| !v.is_null())
    {
        // A value analysis's cells are sums (and ratios of sums): one customer moves a sum by
        // up to the value column's bound `U`, so noise sized for counts (sensitivity 1) would
        // not make the copy ε-DP for this node's members.
        return Err(NodeError::invalid_query(format!(
            "{} is a value analysis: its cells are sums, which one customer moves by up to the \
             value column's bound, and a partner export re-noises counts only (sensitivity 1); \
             nothing was charged",
            report.analysis
        )));
    }
    let epsilon = epsilon.unwrap_or(report.epsilon);
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return Err(NodeError::invalid_query(format!(
            "the partner export's ε must be a number > 0, got {epsilon}"
        )));
    }
    let (agreement, _) =
        crate::run::active_agreement(store, &report.agreement_id, me, Code::Refused)?;
    let delta = run_delta(&agreement);
    let dist = tandem_dp::ShiftedLaplace::for_epsilon(epsilon, 1, delta)
        .map_err(|e| NodeError::invalid_query(format!("the partner export's noise: {e}")))?;
    let loss = tandem_dp::PrivacyLoss { epsilon, delta };
    let run_id = hex::encode(rand::random::<[u8; 16]>());
    let params = serde_json::json!({
        "partner_export": {"result_id": id, "source_run_id": report.run_id, "epsilon": epsilon},
    });
    let entry = ledger_entry(
        &agreement,
        EntryFor {
            party: me,
            role: "querier",
            run_id: &run_id,
            actor,
            params_json: params.to_string(),
            join_key: &report.join_key,
            rho: epsilon * epsilon / 2.0,
        },
        loss,
    )?;
    let reservation = Reservation::charge(store, &entry, me)?;
    let noised = (|| -> Result<PartnerExport> {
        use tandem_dp::NoiseSource;
        let draws = reservation.noise().shifted(&dist, report.cells.len())?;
        let t = i64::from(dist.offset);
        let cells = report
            .cells
            .iter()
            .zip(draws)
            .map(|(c, d)| {
                let estimate = c.estimate + i64::from(d) - t;
                Cell {
                    querier_group: c.querier_group.clone(),
                    responder_group: c.responder_group.clone(),
                    estimate,
                    ci_low: c.ci_low - t,
                    ci_high: c.ci_high + t,
                    below_threshold: estimate < report.threshold as i64,
                    truth: None,
                }
            })
            .collect();
        Ok(PartnerExport {
            safe_to_share: true,
            querier_internal: false,
            note: PARTNER_EXPORT_NOTE.to_string(),
            result_id: id.to_string(),
            analysis: report.analysis.clone(),
            agreement_id: report.agreement_id.clone(),
            purpose: report.purpose.clone(),
            source_run_id: report.run_id.clone(),
            querier: report.querier.clone(),
            responder: report.responder.clone(),
            join_key: report.join_key.clone(),
            querier_columns: report.querier_columns.clone(),
            responder_columns: report.responder_columns.clone(),
            confidence: report.confidence,
            threshold: report.threshold,
            cells,
            added_noise: AddedNoise {
                mechanism: "discrete_laplace_clamped".into(),
                epsilon,
                delta,
                sensitivity: 1,
                scale: dist.scale,
                offset: dist.offset,
                run_id: run_id.clone(),
                charged_to: me.to_string(),
            },
            exported_at: tandem_agreement::format_rfc3339(crate::wire::now_ms() / 1000),
        })
    })();
    let export = match noised {
        Ok(x) => x,
        Err(e) => {
            reservation.abandon(store, e.message(), Exposure::NothingLeft)?;
            return Err(e);
        }
    };
    let json = serde_json::to_string(&export)?;
    let details = serde_json::json!({
        "partner_export": true, "result_id": id, "source_run_id": report.run_id,
        "cells": export.cells.len(),
    });
    reservation.release(
        store,
        &json,
        json.as_bytes(),
        &format!("partner:{}", report.responder),
        details,
    )?;
    Ok(export)
}

/// A [`PartnerExport`] as text: `Format::Json` (pretty) or `Format::Csv` (the cells, with
/// `querier_internal` false on every row); `Format::Table` is refused.
pub fn render_partner_export(export: &PartnerExport, format: Format) -> Result<String> {
    match format {
        Format::Json => Ok(serde_json::to_string_pretty(export)?),
        Format::Csv => Ok(analysis::cells_csv_rows(&export.cells, false)),
        Format::Table => Err(NodeError::bad_request(
            "a partner export is CSV or JSON".to_string(),
        )),
    }
}
