//! Stored results (issue 12): every report a query produced, fresh or cached, is kept whole
//! with its parameters, this node's ε/δ spent and its intervals, so an analyst re-reads and
//! exports it later at no cost — no budget, no peer contact. `tandem results list|show|export`
//! and `GET /api/v1/results[/{id}[/export]]` read them; `tandem purge` deletes them with the
//! node's retention. Each read is audited (`result.read`), as a cached answer is.

use serde::{Deserialize, Serialize};
use tandem_store::{AuditEvent, NewResult, Store, StoredResult};

use crate::analysis::{self, Format, Query, Report};
use crate::error::{Code, NodeError, Result};

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
        NodeError::not_found(format!("no stored result {id} (purged, or never made)"))
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
