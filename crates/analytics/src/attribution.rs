//! Analysis 7 of issue 12: multi-touch attribution over at most six channels.
//!
//! My side holds, per customer, the set of channels that touched them (a coalition, as a
//! bitmask over the channel list) and the first and last channel; the peer's holds conversion.
//! The input is one row per my bucket (coalition, first, last) with my exact size and the
//! noised converters of that bucket.
//!
//! * **Shapley value** of each channel in the game `v(S) = r(S) − r(∅)`, where `r(S)` is the
//!   conversion rate of the customers touched by exactly the channels `S` (Dalessandro et al.
//!   2012, "Causally motivated attribution for online advertising"): the channel's incremental
//!   conversion probability per touched customer. Under an additive model
//!   `P(convert | S) = b + Σ_{i∈S} βᵢ` it equals `βᵢ`. (With the other common game,
//!   `v(S) = conversions of customers whose coalition ⊆ S`, the Shapley value is exactly the
//!   linear split below — Zhao et al. 2018 — so it would add nothing.) A coalition with no
//!   customers gets `v(S) = max_{i∈S} v(S \ {i})` (the best it is known to do without one of its
//!   channels). `φ` is linear in the coalition rates, so its variance is propagated exactly:
//!   noise `Σ g²σ²` (kurtosis-corrected) plus, with [`Inference::Population`], binomial
//!   sampling `Σ g² r(1 − r)/n`.
//! * **Linear**: each converter's credit split equally among its coalition's channels.
//! * **First / last touch**: converters by first / last channel.
//!
//! Linear, first and last touch count this audience's conversions: noise only.

use serde::{Deserialize, Serialize};

use crate::AnalyticsError;
use crate::conversion::Inference;
use crate::grid::Grid;
use crate::noise::{Estimate, Form, NoiseShare, NoisyCount, check_alpha, linear, noise_share};

/// The most channels an attribution takes (`2⁶ = 64` coalitions).
pub const MAX_CHANNELS: usize = 6;

/// One of my buckets: a coalition with its first and last channel.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TouchRow {
    /// Bitmask of the channels that touched these customers (bit `i` = `channels[i]`); 0 for
    /// untouched customers.
    pub coalition: u8,
    /// Index of the first channel, `None` for untouched customers (or when not collected).
    pub first: Option<u8>,
    /// Index of the last channel, likewise.
    pub last: Option<u8>,
    /// Customers in the bucket, exact.
    pub size: u64,
    /// Converters in the bucket, noised.
    pub conversions: NoisyCount,
}

/// Credit of one channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelCredit {
    /// Channel name.
    pub channel: String,
    /// My customers the channel touched, exact.
    pub reach: u64,
    /// Shapley value: incremental conversion probability per touched customer, in `[−1, 1]`.
    pub shapley: Estimate,
    /// `shapley × reach`: incremental converters credited to the channel.
    pub shapley_conversions: Estimate,
    /// Linear (equal split) credit, converters.
    pub linear: Estimate,
    /// Converters whose first channel it was; `None` when no row has a first channel.
    pub first_touch: Option<Estimate>,
    /// Converters whose last channel it was; `None` when no row has a last channel.
    pub last_touch: Option<Estimate>,
}

/// Analysis 7 result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributionResult {
    /// One entry per channel, in input order.
    pub channels: Vec<ChannelCredit>,
    /// Conversion rate of untouched customers, the game's baseline, in `[0, 1]`; `None` when no
    /// row has untouched customers (the Shapley values then include the baseline propensity).
    pub baseline_rate: Option<Estimate>,
    /// Converters among touched customers.
    pub conversions: Estimate,
    /// Coalitions (bitmasks) with no customers, filled as described in the module docs.
    pub missing_coalitions: Vec<u8>,
    /// The interval semantics of the Shapley values.
    pub inference: Inference,
    /// Noise-share indicator over the rows' noised conversions.
    pub noise_share: NoiseShare,
}

/// A value of the game: its estimate and its coefficients over the coalition rates.
#[derive(Clone)]
struct Value {
    estimate: f64,
    coef: Vec<f64>,
}

/// Attribution over `channels` (1 to [`MAX_CHANNELS`] names) from `rows` at confidence
/// `1 − alpha`; `inference` applies to the Shapley values.
///
/// Errors: [`AnalyticsError::InvalidParameter`] for a channel count out of range or a bad
/// channel name (see [`touch_buckets`]), a coalition
/// naming an unknown channel, a first/last channel outside its coalition (or given for
/// untouched customers), or a bad `alpha`.
pub fn attribution(
    channels: &[String],
    rows: &[TouchRow],
    inference: Inference,
    alpha: f64,
) -> Result<AttributionResult, AnalyticsError> {
    check_alpha(alpha)?;
    check_channels(channels)?;
    let k = channels.len();
    let m = 1usize << k;
    for (j, row) in rows.iter().enumerate() {
        if usize::from(row.coalition) >= m {
            return Err(invalid(format!(
                "row {j}: coalition names an unknown channel"
            )));
        }
        for touch in [row.first, row.last].into_iter().flatten() {
            if usize::from(touch) >= k || row.coalition & (1 << touch) == 0 {
                return Err(invalid(format!(
                    "row {j}: first/last channel {touch} is not in its coalition"
                )));
            }
        }
    }
    let counts: Vec<NoisyCount> = rows.iter().map(|r| r.conversions).collect();
    let mut size = vec![0u64; m];
    let mut conv = vec![0.0f64; m];
    for row in rows {
        size[usize::from(row.coalition)] += row.size;
        conv[usize::from(row.coalition)] += row.conversions.estimate as f64;
    }
    let r: Vec<f64> = (0..m)
        .map(|s| {
            if size[s] > 0 {
                conv[s] / size[s] as f64
            } else {
                0.0
            }
        })
        .collect();
    let baseline_observed = size[0] > 0;

    // v(S) as coefficients over the coalition rates, coalitions in increasing popcount order.
    let mut order: Vec<usize> = (1..m).collect();
    order.sort_by_key(|s| s.count_ones());
    let mut v = vec![
        Value {
            estimate: 0.0,
            coef: vec![0.0; m],
        };
        m
    ];
    let mut missing = Vec::new();
    for &s in &order {
        if size[s] > 0 {
            let mut coef = vec![0.0; m];
            coef[s] = 1.0;
            if baseline_observed {
                coef[0] = -1.0;
            }
            v[s] = Value {
                estimate: r[s] - if baseline_observed { r[0] } else { 0.0 },
                coef,
            };
        } else {
            missing.push(s as u8);
            let best = (0..k)
                .filter(|i| s & (1 << i) != 0)
                .map(|i| s & !(1 << i))
                .max_by(|&a, &b| v[a].estimate.total_cmp(&v[b].estimate))
                .unwrap_or(0);
            v[s] = v[best].clone();
        }
    }

    // Shapley weights |S|!(k − |S| − 1)!/k!.
    let fact = |n: usize| (1..=n).product::<usize>() as f64;
    let weight = |s: usize| fact(s) * fact(k - s - 1) / fact(k);
    let sampling_var = |coef: &[f64]| match inference {
        Inference::Descriptive => 0.0,
        Inference::Population => (0..m)
            .filter(|&s| size[s] > 0)
            .map(|s| {
                let p = r[s].clamp(0.0, 1.0);
                coef[s] * coef[s] * p * (1.0 - p) / size[s] as f64
            })
            .sum(),
    };
    // The form over rows whose value is Σ coef[S]·r(S).
    let row_form = |coef: &[f64]| {
        rows.iter()
            .enumerate()
            .fold(Form::default(), |f, (j, row)| {
                let s = usize::from(row.coalition);
                if size[s] > 0 && coef[s] != 0.0 {
                    f.term(j, coef[s] / size[s] as f64)
                } else {
                    f
                }
            })
    };

    let has_first = rows.iter().any(|r| r.first.is_some());
    let has_last = rows.iter().any(|r| r.last.is_some());
    let mut credits = Vec::with_capacity(k);
    for (i, name) in channels.iter().enumerate() {
        let bit = 1usize << i;
        let mut coef = vec![0.0; m];
        for s in (0..m).filter(|s| s & bit == 0) {
            let w = weight(s.count_ones() as usize);
            for (c, (a, b)) in coef.iter_mut().zip(v[s | bit].coef.iter().zip(&v[s].coef)) {
                *c += w * (a - b);
            }
        }
        // A difference of rates: its known range is [−1, 1] (spec §1.3).
        let raw = linear(&counts, &row_form(&coef), sampling_var(&coef), alpha);
        let shapley = raw.within(-1.0, 1.0).unwrap_or(raw);
        let reach: u64 = (0..m).filter(|s| s & bit != 0).map(|s| size[s]).sum();
        let scale = reach as f64;
        let by = |pick: &dyn Fn(&TouchRow) -> bool, share: &dyn Fn(&TouchRow) -> f64| {
            let form = rows
                .iter()
                .enumerate()
                .filter(|(_, row)| pick(row))
                .fold(Form::default(), |f, (j, row)| f.term(j, share(row)));
            linear(&counts, &form, 0.0, alpha)
        };
        let i8 = i as u8;
        credits.push(ChannelCredit {
            channel: name.clone(),
            reach,
            shapley_conversions: Estimate {
                estimate: shapley.estimate * scale,
                ci_low: shapley.ci_low * scale,
                ci_high: shapley.ci_high * scale,
            },
            shapley,
            linear: by(&|row| usize::from(row.coalition) & bit != 0, &|row| {
                1.0 / f64::from(row.coalition.count_ones())
            }),
            first_touch: has_first.then(|| by(&|row| row.first == Some(i8), &|_| 1.0)),
            last_touch: has_last.then(|| by(&|row| row.last == Some(i8), &|_| 1.0)),
        });
    }
    let touched = Form::terms((0..rows.len()).filter(|&j| rows[j].coalition != 0));
    let mut base = vec![0.0; m];
    base[0] = 1.0;
    Ok(AttributionResult {
        channels: credits,
        baseline_rate: baseline_observed
            .then(|| linear(&counts, &row_form(&base), sampling_var(&base), alpha).within(0.0, 1.0))
            .flatten(),
        conversions: linear(&counts, &touched, 0.0, alpha),
        missing_coalitions: missing,
        inference,
        noise_share: noise_share(&counts),
    })
}

/// One bucket of my attribution column: its public label and what it stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TouchBucket {
    /// The label: the coalition's channels joined by `+` in channel order (`none` for untouched
    /// customers), then, with first and last touch, `|first|last`: `search+video|video|search`.
    pub label: String,
    /// Bitmask of the coalition.
    pub coalition: u8,
    /// First channel's index, with first and last touch.
    pub first: Option<u8>,
    /// Last channel's index, with first and last touch.
    pub last: Option<u8>,
}

/// Every bucket of the attribution column over `channels` (the public value set the agreement
/// lists, and what the import computes per customer with [`touch_label`]): `2ᵏ` coalitions, or
/// with `first_last`, `1 + Σ_S |S|²` (coalition, first, last) buckets (673 for six channels).
///
/// Errors: [`AnalyticsError::InvalidParameter`] for a channel count outside 1 to
/// [`MAX_CHANNELS`], or a channel name that is empty or holds `+` or `|`, or repeats.
pub fn touch_buckets(
    channels: &[String],
    first_last: bool,
) -> Result<Vec<TouchBucket>, AnalyticsError> {
    check_channels(channels)?;
    let k = channels.len() as u8;
    let mut out = Vec::new();
    for s in 0u8..(1 << k) {
        let members: Vec<u8> = (0..k).filter(|i| s & (1 << i) != 0).collect();
        if !first_last || s == 0 {
            out.push(bucket(channels, s, None, None));
            continue;
        }
        for &f in &members {
            for &l in &members {
                out.push(bucket(channels, s, Some(f), Some(l)));
            }
        }
    }
    Ok(out)
}

/// The label of one customer's bucket: `coalition` bitmask and, with first and last touch,
/// their channel indices (see [`TouchBucket::label`]). Indices are not checked here; the
/// import checks a customer's channels against the agreement's list.
pub fn touch_label(
    channels: &[String],
    coalition: u8,
    first: Option<u8>,
    last: Option<u8>,
) -> String {
    bucket(channels, coalition, first, last).label
}

fn bucket(channels: &[String], coalition: u8, first: Option<u8>, last: Option<u8>) -> TouchBucket {
    let names: Vec<&str> = channels
        .iter()
        .enumerate()
        .filter(|(i, _)| coalition & (1 << i) != 0)
        .map(|(_, c)| c.as_str())
        .collect();
    let mut label = if names.is_empty() {
        "none".to_owned()
    } else {
        names.join("+")
    };
    let name = |i: u8| channels.get(usize::from(i)).map_or("?", String::as_str);
    if let (Some(f), Some(l)) = (first, last) {
        label = format!("{label}|{}|{}", name(f), name(l));
    }
    TouchBucket {
        label,
        coalition,
        first,
        last,
    }
}

/// [`attribution`] read off a grid whose buckets of mine are [`touch_buckets`] labels (with or
/// without first and last touch, detected from the labels) and whose peer bucket `converted`
/// holds the converters. My buckets with other labels (the agreement's `other`) are left out.
///
/// Errors: as [`attribution`] and [`touch_buckets`]; unknown `converted`; malformed grid.
pub fn attribution_from_grid(
    grid: &Grid,
    channels: &[String],
    converted: &str,
    inference: Inference,
    alpha: f64,
) -> Result<AttributionResult, AnalyticsError> {
    grid.validate()?;
    let c = grid.col(converted)?;
    let first_last = grid.mine.iter().any(|l| l.contains('|'));
    let rows: Vec<TouchRow> = touch_buckets(channels, first_last)?
        .into_iter()
        .filter_map(|b| {
            let r = grid.row(&b.label).ok()?;
            Some(TouchRow {
                coalition: b.coalition,
                first: b.first,
                last: b.last,
                size: grid.my_sizes[r],
                conversions: *grid.cell(r, c),
            })
        })
        .collect();
    attribution(channels, &rows, inference, alpha)
}

fn check_channels(channels: &[String]) -> Result<(), AnalyticsError> {
    let k = channels.len();
    if k == 0 || k > MAX_CHANNELS {
        return Err(invalid(format!(
            "attribution takes 1 to {MAX_CHANNELS} channels, got {k}"
        )));
    }
    for (i, c) in channels.iter().enumerate() {
        if c.is_empty() || c.contains(['+', '|']) || c == "none" || channels[..i].contains(c) {
            return Err(invalid(format!(
                "channel name {c:?} is empty, holds '+' or '|', is 'none' or repeats"
            )));
        }
    }
    Ok(())
}

fn invalid(reason: String) -> AnalyticsError {
    AnalyticsError::InvalidParameter(reason)
}
