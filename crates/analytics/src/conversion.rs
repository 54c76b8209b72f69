//! Analyses 4, 5 and 8 of issue 12 on one [`Grid`]: frequency, funnel, cohorts.
//!
//! Each rate here has my exact bucket size as its denominator and a sum of noised cells as its
//! numerator. Its interval covers the DP noise (linear form, kurtosis-corrected normal) and,
//! with [`Inference::Population`], binomial sampling as well (Wald: `p(1 − p)/n`).

use serde::{Deserialize, Serialize};

use crate::AnalyticsError;
use crate::grid::Grid;
use crate::noise::{
    CountInterval, Estimate, Form, NoiseShare, NoisyCount, check_alpha, linear, share,
};

/// What a rate's interval is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Inference {
    /// The rate of these customers, as they are: DP noise only.
    #[default]
    Descriptive,
    /// The rate as an estimate of the propensity of a population these customers are a sample
    /// of: DP noise plus binomial sampling variance.
    Population,
}

/// `Σ form / n` over an exact `n` by the rule of [`share`] (estimate and interval in `[0, 1]`);
/// `None` when `n = 0`.
pub(crate) fn rate(
    counts: &[NoisyCount],
    form: Form,
    n: u64,
    inference: Inference,
    alpha: f64,
) -> Option<Estimate> {
    if n == 0 {
        return None;
    }
    let n = n as f64;
    let p = (form.value(counts) / n).clamp(0.0, 1.0);
    let sampling = match inference {
        Inference::Descriptive => 0.0,
        Inference::Population => p * (1.0 - p) / n,
    };
    share(counts, form, Form::constant(n), sampling, alpha)
}

/// One exposure bucket of a frequency result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrequencyRow {
    /// My exposure bucket (`1`, `2`, …, `k+`).
    pub bucket: String,
    /// My customers exposed this often, exact.
    pub exposed: u64,
    /// Of them, customers of the peer.
    pub overlap: Estimate,
    /// The peer's customers exposed at least this often (this bucket and every later one).
    pub reach_at_least: Estimate,
    /// `reach_at_least / |B|` in `[0, 1]`; `None` (too small to estimate) when the interval of
    /// the noised `|B|` reaches 0.
    pub reach_at_least_share: Option<Estimate>,
    /// Converters (the peer's conversion bucket) among the exposed; `None` without a
    /// conversion bucket.
    pub conversions: Option<Estimate>,
    /// `conversions / exposed` in `[0, 1]`.
    pub conversion_rate: Option<Estimate>,
}

/// Analysis 4: reach at `k+` and conversion rate by frequency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrequencyResult {
    /// One row per exposure bucket, in the grid's order.
    pub rows: Vec<FrequencyRow>,
    /// The interval semantics of the rates.
    pub inference: Inference,
    /// Noise-share indicator over the cells and peer sizes.
    pub noise_share: NoiseShare,
}

/// Analysis 4 (frequency). My buckets are exposure counts per person, capped; `levels` names
/// them **in increasing order** (`1, 2, …, k+`), and my buckets not named (such as the
/// agreement's `other`) are left out. The peer's buckets partition its audience (presence, or a
/// conversion flag whose converting value is `conversion`). A customer outside the peer's
/// audience counts as not converted.
///
/// Errors: unknown or repeated level, unknown `conversion` label, malformed grid, bad `alpha`.
pub fn frequency(
    grid: &Grid,
    levels: &[&str],
    conversion: Option<&str>,
    inference: Inference,
    alpha: f64,
) -> Result<FrequencyResult, AnalyticsError> {
    grid.validate()?;
    check_alpha(alpha)?;
    let conv = conversion.map(|l| grid.col(l)).transpose()?;
    let order = ordered_rows(grid, levels)?;
    let counts = grid.counts();
    let rows = order
        .iter()
        .enumerate()
        .map(|(k, &r)| {
            let at_least = order[k..]
                .iter()
                .fold(Form::default(), |f, &j| f.plus(grid.row_form(j)));
            let conv_form = conv.map(|c| Form::terms([grid.cell_index(r, c)]));
            FrequencyRow {
                bucket: grid.mine[r].clone(),
                exposed: grid.my_sizes[r],
                overlap: linear(&counts, &grid.row_form(r), 0.0, alpha),
                reach_at_least: linear(&counts, &at_least, 0.0, alpha),
                reach_at_least_share: share(&counts, at_least, grid.peer_total_form(), 0.0, alpha),
                conversions: conv_form.as_ref().map(|f| linear(&counts, f, 0.0, alpha)),
                conversion_rate: conv_form
                    .and_then(|f| rate(&counts, f, grid.my_sizes[r], inference, alpha)),
            }
        })
        .collect();
    Ok(FrequencyResult {
        rows,
        inference,
        noise_share: grid.noise_share(),
    })
}

/// Row indices of `levels`, in their order. Errors: unknown or repeated level, none at all.
fn ordered_rows(grid: &Grid, levels: &[&str]) -> Result<Vec<usize>, AnalyticsError> {
    if levels.is_empty() {
        return Err(AnalyticsError::InvalidParameter("no levels given".into()));
    }
    let rows = levels
        .iter()
        .map(|l| grid.row(l))
        .collect::<Result<Vec<_>, _>>()?;
    if (1..rows.len()).any(|i| rows[..i].contains(&rows[i])) {
        return Err(AnalyticsError::InvalidParameter("a level repeats".into()));
    }
    Ok(rows)
}

/// One stage of a funnel result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunnelStage {
    /// The stage.
    pub stage: String,
    /// My customers whose deepest stage is this one, exact.
    pub deepest: u64,
    /// My customers who reached this stage (this one or deeper), exact.
    pub reached: u64,
    /// `reached / reached at the previous stage`, exact; `None` at the first stage or after an
    /// empty one.
    pub step_rate: Option<f64>,
    /// Purchasers (the peer's purchase bucket) among those who reached this stage.
    pub purchasers: Estimate,
    /// `purchasers / reached`: conversion from this stage.
    pub purchase_rate: Option<Estimate>,
    /// Purchasers among those whose deepest stage is this one (one cell).
    pub purchasers_at_deepest: CountInterval,
    /// `purchasers_at_deepest / deepest`.
    pub purchase_rate_at_deepest: Option<Estimate>,
}

/// Analysis 5: funnel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunnelResult {
    /// Stages from the first (shallowest) to the deepest.
    pub stages: Vec<FunnelStage>,
    /// The interval semantics of the rates.
    pub inference: Inference,
    /// Noise-share indicator over the cells and peer sizes.
    pub noise_share: NoiseShare,
}

/// Analysis 5 (funnel). My buckets are the deepest stage each customer reached (one column, so
/// each customer is in one bucket and sensitivity stays 1); `stages` names them **shallowest
/// first**, and my buckets not named (such as `other`) are left out. The peer's buckets include
/// the purchase value `purchased`. Stage counts are mine and exact; purchasers from a stage are
/// sums of noised cells.
///
/// Errors: unknown or repeated stage, unknown `purchased` label, malformed grid, bad `alpha`.
pub fn funnel(
    grid: &Grid,
    stages: &[&str],
    purchased: &str,
    inference: Inference,
    alpha: f64,
) -> Result<FunnelResult, AnalyticsError> {
    grid.validate()?;
    check_alpha(alpha)?;
    let p = grid.col(purchased)?;
    let order = ordered_rows(grid, stages)?;
    let counts = grid.counts();
    let mut out = Vec::with_capacity(order.len());
    let mut previous: Option<u64> = None;
    for (k, &r) in order.iter().enumerate() {
        let reached: u64 = order[k..].iter().map(|&j| grid.my_sizes[j]).sum();
        let purchasers = Form::terms(order[k..].iter().map(|&j| grid.cell_index(j, p)));
        let cell = Form::terms([grid.cell_index(r, p)]);
        out.push(FunnelStage {
            stage: grid.mine[r].clone(),
            deepest: grid.my_sizes[r],
            reached,
            step_rate: previous
                .filter(|&n| n > 0)
                .map(|n| reached as f64 / n as f64),
            purchasers: linear(&counts, &purchasers, 0.0, alpha),
            purchase_rate: rate(&counts, purchasers, reached, inference, alpha),
            purchasers_at_deepest: grid.cell(r, p).interval(alpha)?,
            purchase_rate_at_deepest: rate(&counts, cell, grid.my_sizes[r], inference, alpha),
        });
        previous = Some(reached);
    }
    Ok(FunnelResult {
        stages: out,
        inference,
        noise_share: grid.noise_share(),
    })
}

/// One flag value of one cohort.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CohortCell {
    /// The peer's activity value (e.g. `active`).
    pub flag: String,
    /// Customers of the cohort with that value at the peer.
    pub count: CountInterval,
    /// `count / cohort size`: retention or conversion.
    pub rate: Option<Estimate>,
}

/// One acquisition cohort.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CohortRow {
    /// My cohort (e.g. `2026-03`).
    pub cohort: String,
    /// Customers acquired in it, exact.
    pub size: u64,
    /// One entry per peer value, in the grid's order.
    pub flags: Vec<CohortCell>,
    /// Customers of the cohort known to the peer at all.
    pub overlap: Estimate,
    /// `overlap / size`.
    pub overlap_rate: Option<Estimate>,
}

/// Analysis 8: conversion or retention by acquisition cohort × the peer's activity flag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CohortResult {
    /// One row per cohort, in the grid's order.
    pub rows: Vec<CohortRow>,
    /// The interval semantics of the rates.
    pub inference: Inference,
    /// Noise-share indicator over the cells and peer sizes.
    pub noise_share: NoiseShare,
}

/// Analysis 8 (cohorts). My buckets are acquisition cohorts (e.g. month); the peer's are the
/// values of its activity flag. Each rate is a cell over my exact cohort size.
///
/// Errors: malformed grid, bad `alpha`.
pub fn cohorts(
    grid: &Grid,
    inference: Inference,
    alpha: f64,
) -> Result<CohortResult, AnalyticsError> {
    grid.validate()?;
    check_alpha(alpha)?;
    let counts = grid.counts();
    let rows = grid
        .mine
        .iter()
        .enumerate()
        .map(|(r, cohort)| {
            let size = grid.my_sizes[r];
            let flags = grid
                .peer
                .iter()
                .enumerate()
                .map(|(c, flag)| {
                    Ok(CohortCell {
                        flag: flag.clone(),
                        count: grid.cell(r, c).interval(alpha)?,
                        rate: rate(
                            &counts,
                            Form::terms([grid.cell_index(r, c)]),
                            size,
                            inference,
                            alpha,
                        ),
                    })
                })
                .collect::<Result<_, AnalyticsError>>()?;
            Ok(CohortRow {
                cohort: cohort.clone(),
                size,
                flags,
                overlap: linear(&counts, &grid.row_form(r), 0.0, alpha),
                overlap_rate: rate(&counts, grid.row_form(r), size, inference, alpha),
            })
        })
        .collect::<Result<_, AnalyticsError>>()?;
    Ok(CohortResult {
        rows,
        inference,
        noise_share: grid.noise_share(),
    })
}
