//! The modelling analysis (`protocols/model-v1.md`, issue 14): a propensity model of the peer's
//! label from this node's features, fitted from noised marginals of the overlap.
//!
//! A fit plans one overlap run per marginal — this node's feature × the peer's label column for
//! each feature, the chosen feature pairs × the label, and the features' joint over the overlap
//! (several group-by columns per run) — previews the whole batch for free (ε per party and per marginal, refused before any charge
//! if the batch would overspend either side), runs the marginals through the ordinary querier
//! path (each one charged, released and audited by the one release path), and fits naive Bayes
//! and logistic regression from the released cells (`tandem-model`: post-processing, free). The
//! fit is stored with the ids of the runs it used; showing, scoring and exporting it spend
//! nothing.

use std::fmt::Write;

use serde::{Deserialize, Serialize};
use tandem_agreement::Agreement;
use tandem_dp::{PrivacyLoss, ShiftedLaplace};
use tandem_model::{
    Feature, FitOptions, FitReport, FittedModel, MarginalSpec, NoisyMarginal, Schema,
};
use tandem_store::{NewModel, Store, StoredModel};

use crate::analysis::overlap::Overlap;
use crate::analysis::{LABEL_SEPARATOR, Query, Report, short};
use crate::error::{Code, NodeError, Result};
use crate::home::Home;
use crate::run::active_agreement;

/// Bootstrap replicates of a fit's intervals (`tandem_model::FitOptions`).
const BOOTSTRAP_REPLICATES: usize = 200;

/// What an analyst asks: the body of `POST /api/v1/models[/preview]`, the flags of
/// `tandem model fit`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelRequest {
    /// Agreement to act under: its hex id, or a unique prefix of at least 8 hex characters
    /// ([`crate::agreements::resolve_id`]).
    pub agreement_id: String,
    /// Join key kind; defaults to the agreement's first.
    #[serde(default)]
    pub join_key: Option<String>,
    /// This node's feature columns (each listed in the agreement with its public values).
    pub features: Vec<String>,
    /// The peer's label as `column=value`, e.g. `tier=gold`: the label is 1 for the peer's
    /// members whose `column` is `value`, 0 for the rest (other values, missing, `other`).
    pub peer_label: String,
    /// Feature pairs to measure by the label as well (`f_i × f_j × label`, one run each).
    #[serde(default)]
    pub pairs: Vec<(String, String)>,
    /// Measure the features' joint over the overlap (one run, no label split); default: yes
    /// when there are at least two features. With it the logistic fit approaches the
    /// maximum-likelihood fit on the joined rows (`protocols/model-v1.md` §2).
    #[serde(default)]
    pub feature_joint: Option<bool>,
    /// Total ε of the batch, split equally over the marginals; as for a query, the peer spends
    /// ε and this node ε/4 in all.
    pub epsilon: f64,
    /// Spend budget on fresh runs even where an identical marginal was answered before.
    #[serde(default)]
    pub fresh: bool,
}

/// One planned marginal of a fit and what it costs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MarginalPreview {
    /// e.g. `age_band × tier=gold` or `age_band × region × overlap`.
    pub name: String,
    /// This node's columns (querier buckets: the cross product of their labels).
    pub features: Vec<String>,
    /// Split by the peer's label (else the overlap as one responder bucket).
    pub by_label: bool,
    /// ε of the run (the batch ε over the number of marginals).
    pub epsilon: f64,
    /// Cells of the run (feature buckets × the peer column's buckets, or × 1).
    pub cells: usize,
    /// What this node would spend on it (0 if answered from a stored result).
    pub querier_cost: PrivacyLoss,
    /// What the peer would spend on it (0 if answered from a stored result).
    pub responder_cost: PrivacyLoss,
    /// Expected 95% half-width of each released cell.
    pub half_width_95: u64,
    /// An identical run on unchanged data was answered before: it is reused at no cost.
    pub cached: bool,
}

/// The free preview of a fit: the marginals, the ε split and whether both sides can afford it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelPreview {
    /// Agreement id.
    pub agreement_id: String,
    /// This node's features.
    pub features: Vec<String>,
    /// The peer's label (`column=value`).
    pub label: String,
    /// Batch ε.
    pub epsilon: f64,
    /// The marginals, one run each.
    pub marginals: Vec<MarginalPreview>,
    /// This node's cost of the batch (basic composition of the runs).
    pub querier_cost: PrivacyLoss,
    /// The peer's cost of the batch.
    pub responder_cost: PrivacyLoss,
    /// This node's ε left now.
    pub querier_epsilon_left: f64,
    /// The peer's ε left as it last reported it in a signed ledger head (its total cap when it
    /// has not answered this node yet).
    pub responder_epsilon_left: f64,
}

/// One marginal as run for a model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MarginalRun {
    /// e.g. `age_band × tier=gold`.
    pub name: String,
    /// The run whose released cells it used.
    pub run_id: String,
    /// The run was a stored answer (nothing spent for this fit).
    pub cached: bool,
    /// ε of the run.
    pub epsilon: f64,
    /// What this node spent on it for this fit.
    pub querier_epsilon: f64,
    /// What the peer spent on it for this fit.
    pub responder_epsilon: f64,
}

/// A stored model: the request, the runs it used and the fit.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelRecord {
    /// Model id (hex).
    pub model_id: String,
    /// Agreement id.
    pub agreement_id: String,
    /// This node (querier) and the peer (responder).
    pub querier: String,
    /// The peer.
    pub responder: String,
    /// What was asked.
    pub request: ModelRequest,
    /// The marginals and their runs.
    pub runs: Vec<MarginalRun>,
    /// Naive Bayes, logistic regression, segments, cross-tabs (`tandem_model::fit`).
    pub fit: FitReport,
}

/// A stored model in a listing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelSummary {
    /// Model id.
    pub model_id: String,
    /// Agreement id.
    pub agreement_id: String,
    /// When it was fitted (Unix ms).
    pub created_at_ms: i64,
    /// Who fitted it.
    pub actor: String,
    /// Features.
    pub features: Vec<String>,
    /// The peer's label.
    pub label: String,
    /// Batch ε.
    pub epsilon: f64,
    /// The runs it used.
    pub run_ids: Vec<String>,
}

/// Which fitted model a score table uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Which {
    /// Logistic regression (default).
    Logistic,
    /// Naive Bayes.
    NaiveBayes,
}

/// One planned marginal: its name, its features (indices into the request's features), whether
/// it splits by the label, and its query.
struct Planned {
    name: String,
    features: Vec<usize>,
    by_label: bool,
    query: Query,
}

/// The planned batch: the peer's label split and one query per marginal (the single features
/// first, in the request's order).
struct Batch {
    agreement: Agreement,
    peer: String,
    label_column: String,
    label_value: String,
    queries: Vec<Planned>,
}

fn plan_batch(store: &Store, me: &str, req: &ModelRequest) -> Result<Batch> {
    let (agreement, peer) = active_agreement(store, &req.agreement_id, me, Code::InvalidQuery)?;
    if req.features.is_empty() {
        return Err(NodeError::invalid_query("name at least one feature"));
    }
    for (i, f) in req.features.iter().enumerate() {
        if req.features[..i].contains(f) {
            return Err(NodeError::invalid_query(format!(
                "feature {f:?} is named twice"
            )));
        }
        agreement
            .bucket_labels(me, f)
            .map_err(|e| NodeError::invalid_query(format!("feature {f:?}: {e}")))?;
    }
    let (label_column, label_value) = req.peer_label.split_once('=').ok_or_else(|| {
        NodeError::invalid_query(format!(
            "the peer label {:?} is not column=value (e.g. tier=gold)",
            req.peer_label
        ))
    })?;
    let labels = agreement
        .bucket_labels(&peer, label_column)
        .map_err(|e| NodeError::invalid_query(format!("peer label column: {e}")))?;
    if !labels[..labels.len() - 1].iter().any(|l| l == label_value) {
        return Err(NodeError::invalid_query(format!(
            "{label_value:?} is not among {peer}'s public values of {label_column} ({})",
            labels[..labels.len() - 1].join(", ")
        )));
    }
    if !(req.epsilon.is_finite() && req.epsilon > 0.0) {
        return Err(NodeError::invalid_query(format!(
            "epsilon must be a positive number, got {}",
            req.epsilon
        )));
    }
    let index = |f: &str| {
        req.features.iter().position(|x| x == f).ok_or_else(|| {
            NodeError::invalid_query(format!("pair names {f:?}, which is not among the features"))
        })
    };
    let mut specs: Vec<(Vec<usize>, bool)> =
        (0..req.features.len()).map(|j| (vec![j], true)).collect();
    for (a, b) in &req.pairs {
        let (i, j) = (index(a)?, index(b)?);
        if i == j {
            return Err(NodeError::invalid_query(format!(
                "pair ({a}, {b}) repeats a feature"
            )));
        }
        let spec = (vec![i.min(j), i.max(j)], true);
        if !specs.contains(&spec) {
            specs.push(spec);
        }
    }
    if req.feature_joint.unwrap_or(req.features.len() >= 2) && req.features.len() >= 2 {
        specs.push(((0..req.features.len()).collect(), false));
    }
    let per_run = req.epsilon / specs.len() as f64;
    let queries = specs
        .into_iter()
        .map(|(features, by_label)| {
            let names: Vec<String> = features.iter().map(|&j| req.features[j].clone()).collect();
            let mut name = names.join(" × ");
            name += if by_label { " × " } else { " × overlap" };
            if by_label {
                name += &req.peer_label;
            }
            Planned {
                name,
                features,
                by_label,
                query: Query {
                    agreement_id: req.agreement_id.clone(),
                    join_key: req.join_key.clone(),
                    group_by: names,
                    peer_group_by: if by_label {
                        vec![label_column.to_string()]
                    } else {
                        Vec::new()
                    },
                    peer_value: None,
                    epsilon: per_run,
                    fresh: req.fresh,
                    options: Default::default(),
                },
            }
        })
        .collect();
    Ok(Batch {
        agreement,
        peer,
        label_column: label_column.to_string(),
        label_value: label_value.to_string(),
        queries,
    })
}

/// The peer's ε left as it last reported it (the latest finished run this node asked under
/// the agreement carries the peer's signed budget view), else its total cap.
fn peer_epsilon_left(store: &Store, agreement: &Agreement, peer: &str) -> Result<f64> {
    let id = agreement.id().to_string();
    let latest = store
        .runs(Some(&id))?
        .into_iter()
        .filter(|r| r.role == "querier")
        .filter_map(|r| Some((r.ended_at_ms?, r.result_json?)))
        .max_by_key(|(at, _)| *at);
    if let Some((_, json)) = latest
        && let Ok(report) = serde_json::from_str::<Report>(&json)
        && report.responder_budget.party == peer
    {
        return Ok(report.responder_budget.epsilon_left);
    }
    Ok(agreement
        .terms
        .party(peer)
        .map(|p| p.budget.epsilon_total)
        .unwrap_or_default())
}

fn add(a: PrivacyLoss, b: PrivacyLoss) -> PrivacyLoss {
    PrivacyLoss {
        epsilon: a.epsilon + b.epsilon,
        delta: a.delta + b.delta,
    }
}

/// Previews a fit: its marginals, each one's ε and cost, the batch's cost per party and what
/// each has left. Free. Errors: 422 `invalid_query` (unknown feature or label, a run over a
/// per-query cap), 403 `budget_exceeded` if the batch would overspend either side (details:
/// `party`, `batch_cost`, `epsilon_left`).
pub fn preview(store: &Store, me: &str, req: &ModelRequest) -> Result<ModelPreview> {
    let req = &resolved(store, req)?;
    let batch = plan_batch(store, me, req)?;
    let mut marginals = Vec::new();
    let (mut q_cost, mut r_cost) = (PrivacyLoss::default(), PrivacyLoss::default());
    for planned in &batch.queries {
        let q = &planned.query;
        let p = crate::querier::preview(store, me, &Overlap, q)?;
        let zero = PrivacyLoss::default();
        let (qc, rc) = if p.cached {
            (zero, zero)
        } else {
            (p.querier_cost, p.responder_cost)
        };
        q_cost = add(q_cost, qc);
        r_cost = add(r_cost, rc);
        marginals.push(MarginalPreview {
            name: planned.name.clone(),
            features: q.group_by.clone(),
            by_label: planned.by_label,
            epsilon: q.epsilon,
            cells: p.cells,
            querier_cost: qc,
            responder_cost: rc,
            half_width_95: p.half_width_95,
            cached: p.cached,
        });
    }
    let preview = ModelPreview {
        agreement_id: req.agreement_id.clone(),
        features: req.features.clone(),
        label: req.peer_label.clone(),
        epsilon: req.epsilon,
        marginals,
        querier_cost: q_cost,
        responder_cost: r_cost,
        querier_epsilon_left: crate::budget::epsilon_left(store, &batch.agreement, me)?,
        responder_epsilon_left: peer_epsilon_left(store, &batch.agreement, &batch.peer)?,
    };
    for (party, cost, left) in [
        (me, q_cost.epsilon, preview.querier_epsilon_left),
        (
            batch.peer.as_str(),
            r_cost.epsilon,
            preview.responder_epsilon_left,
        ),
    ] {
        if cost > left + 1e-9 {
            let cap = batch
                .agreement
                .terms
                .party(party)
                .map(|p| p.budget.epsilon_total)
                .unwrap_or_default();
            return Err(NodeError::new(
                Code::BudgetExceeded,
                format!(
                    "{party}: this model's {} runs cost ε = {cost:.4} in all, over the ε {left:.4} left of its cap of {cap}",
                    preview.marginals.len()
                ),
            )
            .with_details(serde_json::json!({
                "party": party, "batch_cost": cost, "epsilon_left": left, "epsilon_total": cap,
            })));
        }
    }
    Ok(preview)
}

/// `req` naming its agreement by the whole id (the operator may give a unique prefix,
/// [`crate::agreements::resolve_id`]), as the record and its runs store it.
fn resolved(store: &Store, req: &ModelRequest) -> Result<ModelRequest> {
    Ok(ModelRequest {
        agreement_id: crate::agreements::resolve_id(store, &req.agreement_id)?,
        ..req.clone()
    })
}

/// Fits a model: previews (refusing before any charge if the batch would overspend), runs each
/// marginal through the querier (each charged, released and audited on its own), fits naive
/// Bayes and logistic regression from the released cells and stores the fit with its runs.
///
/// If a run fails, the runs already finished keep their charges and stored answers: fitting
/// again without `fresh` reuses them at no cost (the error says which finished).
pub async fn fit(home: &Home, req: &ModelRequest, actor: &str) -> Result<ModelRecord> {
    let me = home.config.name.clone();
    let (store_path, r, m) = (home.store_path(), req.clone(), me.clone());
    let (req, batch, noises) = blocking(move || {
        let store = Store::open(&store_path)?;
        let r = resolved(&store, &r)?;
        preview(&store, &m, &r)?;
        let batch = plan_batch(&store, &m, &r)?;
        let noises = batch
            .queries
            .iter()
            .map(|p| crate::querier::cell_noise(&store, &m, &Overlap, &p.query))
            .collect::<Result<Vec<_>>>()?;
        Ok((r, batch, noises))
    })
    .await?;
    let req = &req;
    let mut reports = Vec::new();
    for planned in &batch.queries {
        let name = &planned.name;
        match crate::querier::run_query(home, &Overlap, &planned.query, actor).await {
            Ok(report) => reports.push((name.clone(), report)),
            Err(e) => {
                let done: Vec<String> = reports
                    .iter()
                    .map(|(n, r): &(String, Report)| format!("{n} (run {})", short(&r.run_id)))
                    .collect();
                return Err(e.note(format!(
                    "model marginal {name} failed; finished before it: {}",
                    if done.is_empty() {
                        "none".to_string()
                    } else {
                        done.join(", ")
                    }
                )));
            }
        }
    }
    let store_path = home.store_path();
    let (req, actor) = (req.clone(), actor.to_string());
    blocking(move || {
        let record = fit_reports(&batch, &me, &req, &reports, &noises)?;
        let mut store = Store::open(&store_path)?;
        store.put_model(
            &NewModel {
                model_id: record.model_id.clone(),
                agreement_id: record.agreement_id.clone(),
                run_ids: record.runs.iter().map(|r| r.run_id.clone()).collect(),
                model_json: serde_json::to_string(&record)?,
            },
            &actor,
        )?;
        Ok(record)
    })
    .await
}

/// The released cells of each run as `tandem-model` marginals, and the fit.
///
/// Each run's cells are (its features' labels, joined by `|`) × (the peer column's values and
/// `other`, or `all` for the joint); `other` is dropped from a feature none of this node's
/// members fall in (the single-feature runs' local counts).
/// The label cell `y = 1` is the `value` column; `y = 0` sums the others, so it carries the sum
/// of `r` independent cell noises (`r` = the peer column's buckets − 1). The fit is given one
/// noise per marginal; it is given the larger: scale `s·√r` (variance ≈ `r·2s²`) and bound
/// `r·T`. The label cells' weight is thus understated: conservative intervals, no bias.
fn fit_reports(
    batch: &Batch,
    me: &str,
    req: &ModelRequest,
    reports: &[(String, Report)],
    noises: &[ShiftedLaplace],
) -> Result<ModelRecord> {
    // A feature's `other` bucket is kept only if some of this node's own members fall in it
    // (an exact, local count): an empty bucket's cells hold noise alone.
    let features = req
        .features
        .iter()
        .zip(reports)
        .map(|(f, (_, report))| {
            let mut values = batch.agreement.bucket_labels(me, f)?;
            if report.querier_outside_value_set.as_ref().map(|(_, n)| *n) == Some(0) {
                values.pop();
            }
            Ok(Feature {
                name: f.clone(),
                values,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let schema = Schema::new(features, req.peer_label.clone()).map_err(model_error)?;
    let peer_labels = batch
        .agreement
        .bucket_labels(&batch.peer, &batch.label_column)?;
    let rest = (peer_labels.len() - 1) as f64;
    let mut marginals = Vec::new();
    let mut runs = Vec::new();
    for ((planned, (name, report)), noise) in batch.queries.iter().zip(reports).zip(noises) {
        let spec = MarginalSpec {
            features: planned.features.clone(),
            label: planned.by_label,
        };
        let mut counts = vec![0i64; spec.cells(&schema)];
        let mut values = vec![0usize; schema.features.len()];
        'cells: for cell in &report.cells {
            for (label, &j) in cell
                .querier_group
                .split(LABEL_SEPARATOR)
                .zip(&planned.features)
            {
                // Cells of a dropped (empty) `other` bucket are skipped.
                let Some(v) = schema.features[j].values.iter().position(|x| x == label) else {
                    continue 'cells;
                };
                values[j] = v;
            }
            let y = usize::from(cell.responder_group == batch.label_value);
            counts[spec.cell_of(&schema, &values, y)] += cell.estimate;
        }
        // Only the label split sums several responder buckets into one cell (`y = 0`).
        let noise = if planned.by_label {
            ShiftedLaplace {
                scale: noise.scale * rest.sqrt(),
                offset: noise.offset.saturating_mul(rest as u32),
            }
        } else {
            *noise
        };
        marginals.push(NoisyMarginal {
            spec,
            counts,
            noise,
        });
        runs.push(MarginalRun {
            name: name.clone(),
            run_id: report.run_id.clone(),
            cached: report.cached,
            epsilon: report.epsilon,
            querier_epsilon: report.querier_budget.epsilon_spent,
            responder_epsilon: report.responder_budget.epsilon_spent,
        });
    }
    let model_id = hex::encode(rand::random::<[u8; 16]>());
    let options = FitOptions {
        bootstrap_replicates: BOOTSTRAP_REPLICATES,
        seed: rand::random(),
        ..FitOptions::default()
    };
    let fit = tandem_model::fit(&schema, &marginals, &options).map_err(model_error)?;
    Ok(ModelRecord {
        model_id,
        agreement_id: req.agreement_id.clone(),
        querier: me.to_string(),
        responder: batch.peer.clone(),
        request: req.clone(),
        runs,
        fit,
    })
}

fn model_error(e: tandem_model::ModelError) -> NodeError {
    NodeError::invalid_query(format!("model: {e}"))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NodeError::internal(format!("model task failed: {e}")))?
}

/// A stored model (404 `not_found`; 500 `corrupt_data` if it does not parse). Free.
pub fn load(store: &Store, model_id: &str) -> Result<ModelRecord> {
    let stored = store
        .model(model_id)?
        .ok_or_else(|| NodeError::not_found(format!("no model {model_id}")))?;
    record_of(&stored)
}

fn record_of(stored: &StoredModel) -> Result<ModelRecord> {
    serde_json::from_str(&stored.model_json).map_err(|e| {
        NodeError::new(
            Code::CorruptData,
            format!("stored model {} does not parse: {e}", stored.model_id),
        )
    })
}

/// Stored models, oldest first. Free.
pub fn list(store: &Store, agreement: Option<&str>) -> Result<Vec<ModelSummary>> {
    store
        .models(agreement)?
        .iter()
        .map(|s| {
            let r = record_of(s)?;
            Ok(ModelSummary {
                model_id: s.model_id.clone(),
                agreement_id: s.agreement_id.clone(),
                created_at_ms: s.created_at_ms,
                actor: s.actor.clone(),
                features: r.request.features,
                label: r.request.peer_label,
                epsilon: r.request.epsilon,
                run_ids: s.run_ids.clone(),
            })
        })
        .collect()
}

impl ModelRecord {
    /// The chosen fitted model.
    pub fn model(&self, which: Which) -> &FittedModel {
        match which {
            Which::Logistic => &self.fit.logistic,
            Which::NaiveBayes => &self.fit.naive_bayes,
        }
    }

    /// Every feature combination → score, highest first (post-processing, free).
    pub fn score_table(&self, which: Which) -> Result<Vec<tandem_model::ScoreRow>> {
        self.model(which).score_table().map_err(model_error)
    }

    /// The score table as CSV: one column per feature, then `log_odds,score`.
    pub fn score_table_csv(&self, which: Which) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = self
            .fit
            .schema
            .features
            .iter()
            .map(|f| f.name.clone())
            .collect();
        header.extend(["log_odds".to_string(), "score".to_string()]);
        let csv_err = |e: csv::Error| NodeError::internal(format!("csv: {e}"));
        w.write_record(&header).map_err(csv_err)?;
        for row in self.score_table(which)? {
            let mut rec = row.values.clone();
            rec.push(format!("{:.4}", row.log_odds));
            rec.push(format!("{:.4}", row.score));
            w.write_record(&rec).map_err(csv_err)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| NodeError::internal(format!("csv: {e}")))?;
        String::from_utf8(bytes).map_err(|e| NodeError::internal(format!("csv: {e}")))
    }

    /// The model for people: runs, coefficients with intervals, segments with propensity and
    /// lift.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let r = &self.request;
        let pct = |c: f64| c * 100.0;
        let _ = writeln!(
            s,
            "Model {} · {} × {} under agreement {}",
            short(&self.model_id),
            self.querier,
            self.responder,
            short(&self.agreement_id)
        );
        let _ = writeln!(
            s,
            "P({} | {}) over the shared audience · batch ε = {} · {} marginals",
            r.peer_label,
            r.features.join(", "),
            r.epsilon,
            self.runs.len()
        );
        for run in &self.runs {
            let _ = writeln!(
                s,
                "  {:<36} run {}  ε {:.4}  spent: this node ε {:.4}, peer ε {:.4}{}",
                run.name,
                short(&run.run_id),
                run.epsilon,
                run.querier_epsilon,
                run.responder_epsilon,
                if run.cached { " (stored answer)" } else { "" }
            );
        }
        let f = &self.fit;
        let conf = pct(f.options.confidence);
        let _ = writeln!(
            s,
            "\nOverlap ≈ {:.0} [{:.0}, {:.0}] · base rate {:.2}% [{:.2}, {:.2}] · {conf:.0}% intervals (bootstrap, {} replicates)",
            f.overlap.estimate,
            f.overlap.lower,
            f.overlap.upper,
            pct(f.base_rate.estimate),
            pct(f.base_rate.lower),
            pct(f.base_rate.upper),
            f.options.bootstrap_replicates
        );
        for (title, m) in [
            ("Logistic regression", &f.logistic),
            ("Naive Bayes", &f.naive_bayes),
        ] {
            let _ = writeln!(
                s,
                "\n{title} (log-odds; reference value = 0)\n  {:<24} {:>8}  {:>19}",
                "term", "coef", "interval"
            );
            let _ = writeln!(
                s,
                "  {:<24} {:>8.3}  [{:>7.3}, {:>7.3}]",
                "intercept", m.intercept.estimate, m.intercept.lower, m.intercept.upper
            );
            for fc in &m.coefficients {
                for c in fc.values.iter().skip(1) {
                    let _ = writeln!(
                        s,
                        "  {:<24} {:>8.3}  [{:>7.3}, {:>7.3}]",
                        format!("{}={}", fc.feature, c.value),
                        c.log_odds.estimate,
                        c.log_odds.lower,
                        c.log_odds.upper
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            "\nSegments\n  {:<24} {:>9} {:>9} {:>22} {:>7}",
            "value", "overlap", "label", "propensity", "lift"
        );
        for seg in &f.segments {
            let _ = writeln!(
                s,
                "  {:<24} {:>9.0} {:>9.0} {:>7.2}% [{:>5.2}, {:>5.2}] {:>7.2}",
                format!("{}={}", seg.feature, seg.value),
                seg.overlap.estimate,
                seg.with_label.estimate,
                pct(seg.propensity.estimate),
                pct(seg.propensity.lower),
                pct(seg.propensity.upper),
                seg.lift.estimate
            );
        }
        s
    }
}
