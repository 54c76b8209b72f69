//! Value analyses over `psi-sum-v1` (issue 13): the responder's value column summed over the
//! overlap per cell (`revenue`), and the average value per overlapping customer
//! (`average_value`, the ratio of two noised figures with a delta-method interval).
//! Spec: `protocols/psi-sum-v1.md` §6 (intervals), `protocols/analyses-v1.md`.

use std::fmt::Write;

use super::{
    Analysis, CONFIDENCE, Cell, Format, InputKind, InputSpec, Inputs, NoisedCells, Releases,
    Report, cells_csv, common_inputs, short,
};
use crate::error::{NodeError, Result};
use crate::wire::RunRequest;

/// The responder's value column summed per cell of the overlap, with 95% intervals.
pub struct Revenue;

/// Average value per overlapping customer per cell: noised sum over noised count.
pub struct AverageValue;

pub(super) fn inputs(request: &RunRequest) -> Inputs {
    Inputs {
        querier_group_by: request.querier_columns.clone(),
        responder_group_by: request.responder_columns.clone(),
        querier_values: Vec::new(),
        // A value analysis without a value column is refused by `sums::plan`'s caller: with no
        // column the run would be a plain count, so ask for one here.
        responder_values: vec![request.responder_value.clone().unwrap_or_default()],
    }
}

/// The noised sums of a value run (500 `internal` if the run carried none).
pub(super) fn sums<'a>(
    noised: &NoisedCells<'a>,
) -> Result<(&'a tandem_sum::SumParams, &'a tandem_sum::CellSums)> {
    noised
        .sums
        .ok_or_else(|| NodeError::internal("a value analysis finished without its sums"))
}

/// The report cells of a value run: per cell the noised sum `S_c + clamp(Z, −T, T)` and the
/// interval of psi-sum-v1 §6 (`accounting::interval` at `1 − CONFIDENCE`), hidden under the
/// threshold by the cell's noised count.
pub(super) fn sum_cells(noised: &NoisedCells<'_>) -> Result<Vec<Cell>> {
    let (params, sums) = sums(noised)?;
    super::grid_cells(noised.grid, |i, _, _| {
        let estimate = *sums
            .sums
            .get(i)
            .ok_or_else(|| NodeError::internal("fewer sums than cells"))?;
        let (ci_low, ci_high) =
            tandem_sum::accounting::interval(&params.sum_noise, estimate, 1.0 - CONFIDENCE)
                .map_err(|e| NodeError::internal(e.to_string()))?;
        Ok(((estimate, ci_low, ci_high), below_threshold(noised, i)))
    })
}

/// `z` of a two-sided normal interval at [`CONFIDENCE`].
const Z95: f64 = 1.959_963_984_540_054;

/// The inputs of a value analysis: the common ones and the peer's value column (a top-level
/// [`super::Query::peer_value`], not an option).
pub(super) fn value_form() -> Vec<InputSpec> {
    let mut all = common_inputs();
    all.push(InputSpec {
        option: false,
        ..InputSpec::option(
            "peer_value",
            InputKind::Text,
            "Partner's value column",
            "A value column the agreement lists for the partner (e.g. revenue_cents): summed over the overlap",
        )
        .required()
    });
    all
}

/// [`value_form`] and a value analysis's own options (as [`super::with_options`] for a count
/// analysis).
pub(super) fn value_form_with(options: Vec<InputSpec>) -> Vec<InputSpec> {
    let mut all = value_form();
    all.extend(options);
    all
}

impl Analysis for Revenue {
    fn name(&self) -> &'static str {
        "revenue"
    }

    fn about(&self) -> &'static str {
        "The peer's value column (--peer-value) summed over the overlap per segment, with 95% intervals"
    }

    /// Per cell the released sum ([`sum_cells`], the default of a value analysis).
    fn releases(&self) -> Releases {
        Releases::Sums
    }

    fn render(&self, report: &Report, format: Format) -> Result<String> {
        render(report, format, "sum")
    }
}

impl Analysis for AverageValue {
    fn name(&self) -> &'static str {
        "average_value"
    }

    fn about(&self) -> &'static str {
        "Average of the peer's value column (--peer-value) per overlapping customer, per segment, with 95% intervals"
    }

    fn releases(&self) -> Releases {
        Releases::Sums
    }

    /// Per cell: `Ŝ/Ĉ` (rounded, in the column's unit) with the delta-method interval
    /// `± z·sqrt(Var(Ŝ)/Ĉ² + Ŝ²·Var(Ĉ)/Ĉ⁴)`, the variances bounded by
    /// `tandem_sum::accounting::noise_variance` of each figure's noise. A cell whose noised count
    /// is below 1 has no average: estimate 0, interval `[0, U]`.
    fn outputs(&self, noised: &NoisedCells<'_>) -> Result<Vec<Cell>> {
        let (params, sums) = sums(noised)?;
        let var_s = tandem_sum::accounting::noise_variance(&params.sum_noise);
        let var_c = tandem_sum::accounting::noise_variance(&noised.params.cell_noise);
        let u = i64::from(params.value_bound);
        super::grid_cells(noised.grid, |i, ga, gb| {
            let s = *sums
                .sums
                .get(i)
                .ok_or_else(|| NodeError::internal("fewer sums than cells"))?
                as f64;
            let c = noised.counts.get(ga, gb) as f64;
            let figures = if c < 1.0 {
                (0, 0, u)
            } else {
                let ratio = s / c;
                let se = (var_s / (c * c) + s * s * var_c / (c * c * c * c)).sqrt();
                let clamp = |x: f64| (x.round() as i64).clamp(0, u);
                (
                    clamp(ratio),
                    clamp(ratio - Z95 * se),
                    clamp(ratio + Z95 * se),
                )
            };
            Ok((figures, below_threshold(noised, i)))
        })
    }

    fn render(&self, report: &Report, format: Format) -> Result<String> {
        render(report, format, "average")
    }
}

/// The released sums of a value run as `tandem-analytics` reads them (each a
/// [`tandem_analytics::NoisyCount`] in the column's unit with its noise), the squares when the
/// run released them, and the bound `U`.
pub(super) fn noisy_sums(
    noised: &NoisedCells<'_>,
) -> Result<(
    u32,
    Vec<tandem_analytics::NoisyCount>,
    Option<Vec<tandem_analytics::NoisyCount>>,
)> {
    let (params, sums) = sums(noised)?;
    let with = |dist: &tandem_dp::ShiftedLaplace, v: &[i64]| -> Result<Vec<_>> {
        let noise = tandem_analytics::Noise::clamped_laplace(dist.scale, dist.offset)
            .map_err(super::analytics_error)?;
        if v.len() != noised.grid.len() {
            return Err(NodeError::internal("the run's sums do not fit its cells"));
        }
        Ok(v.iter()
            .map(|&x| tandem_analytics::NoisyCount::new(x, noise))
            .collect())
    };
    let squares = match (&params.square_noise, &sums.squares) {
        (Some(dist), Some(q)) => Some(with(dist, q)?),
        _ => None,
    };
    Ok((
        params.value_bound,
        with(&params.sum_noise, &sums.sums)?,
        squares,
    ))
}

/// Whether cell `i` (row-major) falls under the agreement's reporting threshold by its noised
/// count: its sum is then hidden in the table as the overlap report hides the count (post-
/// processing of the released count; JSON and CSV keep the figure with `below_threshold`).
fn below_threshold(noised: &NoisedCells<'_>, i: usize) -> bool {
    let threshold = i64::try_from(noised.threshold).unwrap_or(i64::MAX);
    noised
        .counts
        .noised
        .get(i)
        .is_some_and(|&count| count < threshold)
}

fn render(r: &Report, format: Format, what: &str) -> Result<String> {
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(r)?,
        Format::Csv => cells_csv(r),
        Format::Table => {
            let mut s = String::new();
            let _ = writeln!(
                s,
                "{} of {}'s values over the overlap with {} under agreement {} · ε = {} · run {}",
                r.analysis,
                r.responder,
                r.querier,
                short(&r.agreement_id),
                r.epsilon,
                short(&r.run_id)
            );
            let _ = writeln!(
                s,
                "\n{:<12}  {:<12}  {:>12}  {:>25}",
                r.querier, r.responder, what, "95% interval"
            );
            for c in &r.cells {
                let (estimate, interval) = if c.below_threshold {
                    (format!("< {} people", r.threshold), String::new())
                } else {
                    (
                        c.estimate.to_string(),
                        format!("[{}, {}]", c.ci_low, c.ci_high),
                    )
                };
                let _ = writeln!(
                    s,
                    "{:<12}  {:<12}  {:>12}  {:>25}",
                    c.querier_group, c.responder_group, estimate, interval
                );
            }
            let _ = writeln!(
                s,
                "signed estimates (noise may take one below 0); intervals are cut at 0, as a sum of values in [0, U] cannot be negative"
            );
            s += &super::budget_footer(r);
            s
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::analysis::CellGrid;
    use crate::analysis::testing::{noised, value_run};
    use tandem_psi::CellCounts;
    use tandem_sum::CellSums;
    use tandem_testkit::noise::SeededLaplace;

    use super::*;

    fn grid() -> CellGrid {
        CellGrid {
            querier: vec!["all".into()],
            responder: vec!["gold".into(), "silver".into()],
        }
    }

    /// Revenue per cell: over 2 000 seeded runs (fixed seed) of two cells with planted sums, the
    /// 95% interval covers the truth at least 1 860 times per cell. The interval is a tail bound,
    /// so its coverage is at least 95%; 1 860 is 4 standard deviations of a binomial(2 000, 0.95)
    /// below its mean (probability < 10⁻⁴ of a false failure).
    #[test]
    fn revenue_intervals_cover_planted_truths() {
        let (psi, sum) = value_run(1, 2, (0.25, 1.0), 1000, false);
        let counts = CellCounts {
            querier_buckets: 1,
            responder_buckets: 2,
            noised: vec![300, 40],
            responder_bucket_sizes_noised: vec![500, 100],
        };
        let truth = [151_234i64, 9_876];
        let mut noise = SeededLaplace::new(20_261_129);
        let mut covered = [0u32; 2];
        let (mut err_sum, mut n) = (0.0f64, 0.0f64);
        for _ in 0..2000 {
            let sums = CellSums {
                sums: noised(&mut noise, &sum.sum_noise, &truth),
                squares: None,
            };
            let g = grid();
            let noised = NoisedCells {
                grid: &g,
                params: &psi,
                counts: &counts,
                threshold: 0,
                my_sizes: &[],
                sums: Some((&sum, &sums)),
            };
            let cells = Revenue.outputs(&noised).expect("outputs");
            for (k, c) in cells.iter().enumerate() {
                if c.ci_low <= truth[k] && truth[k] <= c.ci_high {
                    covered[k] += 1;
                }
                err_sum += (c.estimate - truth[k]) as f64;
                n += 1.0;
            }
            assert_eq!(cells[1].responder_group, "silver");
        }
        assert!(covered.iter().all(|&c| c >= 1860), "{covered:?}");
        // Unbiased: the mean error over 4 000 estimates is within 5 standard errors of 0
        // (σ ≤ sqrt(noise_variance)).
        let sd = tandem_sum::accounting::noise_variance(&sum.sum_noise).sqrt();
        assert!(
            (err_sum / n).abs() <= 5.0 * sd / n.sqrt(),
            "{}",
            err_sum / n
        );
    }

    /// The average per overlapping customer is the ratio of the two noised figures, inside
    /// `[0, U]`, and a cell with no overlap has no average.
    #[test]
    fn average_value_is_a_ratio_with_an_interval() {
        let (psi, sum) = value_run(1, 2, (0.25, 1.0), 1000, false);
        let counts = CellCounts {
            querier_buckets: 1,
            responder_buckets: 2,
            noised: vec![300, -2],
            responder_bucket_sizes_noised: vec![500, 100],
        };
        let sums = CellSums {
            sums: vec![150_000, 40],
            squares: None,
        };
        let g = grid();
        let noised = NoisedCells {
            grid: &g,
            params: &psi,
            counts: &counts,
            threshold: 0,
            my_sizes: &[],
            sums: Some((&sum, &sums)),
        };
        let cells = AverageValue.outputs(&noised).expect("outputs");
        assert_eq!(cells[0].estimate, 500);
        assert!(
            cells[0].ci_low < 500 && cells[0].ci_high > 500,
            "{:?}",
            cells[0]
        );
        assert_eq!(
            (cells[1].estimate, cells[1].ci_low, cells[1].ci_high),
            (0, 0, 1000)
        );
    }
}
