//! Analyses 1–3 of issue 12 on one [`Grid`]: overlap with rates, affinity index, reach.
//!
//! All three are descriptive of the two audiences as they are: intervals account for the DP
//! noise only (there is no sampling: the counts are of whole audiences).

use serde::{Deserialize, Serialize};

use crate::AnalyticsError;
use crate::grid::Grid;
use crate::noise::{
    CountInterval, Estimate, Form, NoiseShare, bounded, check_alpha, linear, share,
};

/// One cell of an overlap result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverlapCell {
    /// My bucket.
    pub mine: String,
    /// The peer's bucket.
    pub peer: String,
    /// `|A_r ∩ B_c|`, persons, exact noise quantiles.
    pub count: CountInterval,
    /// `|A_r ∩ B_c| / |A_r|` in `[0, 1]` (my size exact: the count's interval divided);
    /// `None` when `|A_r| = 0`.
    pub rate_of_mine: Option<Estimate>,
    /// `|A_r ∩ B_c| / |B_c|` in `[0, 1]` (peer size noised: delta method); `None` (too small to
    /// estimate) when the noised size's interval reaches 0 (`noise::share`).
    pub rate_of_peer: Option<Estimate>,
}

/// One of my buckets against the peer's whole audience (the sum over its buckets).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverlapRow {
    /// My bucket.
    pub mine: String,
    /// `|A_r|`, exact.
    pub size: u64,
    /// `Σ_c |A_r ∩ B_c|`, persons.
    pub overlap: Estimate,
    /// `overlap / |A_r|` in `[0, 1]`; `None` (too small to estimate) when `|A_r| = 0`.
    pub rate: Option<Estimate>,
}

/// One of the peer's buckets against my whole audience.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverlapColumn {
    /// The peer's bucket.
    pub peer: String,
    /// `|B_c|` as the peer released it (noised), with its interval.
    pub size: CountInterval,
    /// `Σ_r |A_r ∩ B_c|`, persons.
    pub overlap: Estimate,
    /// `overlap / |B_c|` in `[0, 1]`; `None` (too small to estimate) when the noised size's
    /// interval reaches 0 (`noise::share`).
    pub rate: Option<Estimate>,
}

/// Analysis 1: overlap by bucket pair, with overlap rates against each side's sizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverlapResult {
    /// Every bucket pair, row-major.
    pub cells: Vec<OverlapCell>,
    /// Margins over my buckets.
    pub rows: Vec<OverlapRow>,
    /// Margins over the peer's buckets.
    pub columns: Vec<OverlapColumn>,
    /// `|A ∩ B|`, persons.
    pub total: Estimate,
    /// `|A ∩ B| / |A|`.
    pub rate_of_mine: Option<Estimate>,
    /// `|A ∩ B| / |B|`.
    pub rate_of_peer: Option<Estimate>,
    /// Noise-share indicator over the cells and peer sizes.
    pub noise_share: NoiseShare,
}

/// Analysis 1 (overlap) at confidence `1 − alpha`.
///
/// Errors: [`AnalyticsError::Shape`] for a malformed grid, [`AnalyticsError::InvalidParameter`]
/// for `alpha ∉ (0, 1)`.
pub fn overlap(grid: &Grid, alpha: f64) -> Result<OverlapResult, AnalyticsError> {
    grid.validate()?;
    check_alpha(alpha)?;
    let counts = grid.counts();
    let my_total: u64 = grid.my_sizes.iter().sum();
    let rate_of = |num: Form, den: Form| share(&counts, num, den, 0.0, alpha);
    let mut cells = Vec::with_capacity(grid.cells.len());
    for (r, mine) in grid.mine.iter().enumerate() {
        for (c, peer) in grid.peer.iter().enumerate() {
            let i = grid.cell_index(r, c);
            let count = grid.cells[i].interval(alpha)?;
            let n = grid.my_sizes[r] as f64;
            cells.push(OverlapCell {
                mine: mine.clone(),
                peer: peer.clone(),
                count,
                // The count's exact interval over the exact size, by the same rule as `share`.
                rate_of_mine: (n > 0.0)
                    .then(|| {
                        Estimate {
                            estimate: count.estimate as f64 / n,
                            ci_low: count.ci_low as f64 / n,
                            ci_high: count.ci_high as f64 / n,
                        }
                        .within(0.0, 1.0)
                    })
                    .flatten(),
                rate_of_peer: rate_of(Form::terms([i]), Form::terms([grid.peer_size_index(c)])),
            });
        }
    }
    let rows = grid
        .mine
        .iter()
        .enumerate()
        .map(|(r, mine)| OverlapRow {
            mine: mine.clone(),
            size: grid.my_sizes[r],
            overlap: linear(&counts, &grid.row_form(r), 0.0, alpha),
            rate: (grid.my_sizes[r] > 0)
                .then(|| rate_of(grid.row_form(r), Form::constant(grid.my_sizes[r] as f64)))
                .flatten(),
        })
        .collect();
    let columns = grid
        .peer
        .iter()
        .enumerate()
        .map(|(c, peer)| {
            Ok(OverlapColumn {
                peer: peer.clone(),
                size: grid.peer_sizes[c].interval(alpha)?,
                overlap: linear(&counts, &grid.col_form(c), 0.0, alpha),
                rate: rate_of(grid.col_form(c), Form::terms([grid.peer_size_index(c)])),
            })
        })
        .collect::<Result<_, AnalyticsError>>()?;
    Ok(OverlapResult {
        cells,
        rows,
        columns,
        total: linear(&counts, &grid.total_form(), 0.0, alpha),
        rate_of_mine: (my_total > 0)
            .then(|| rate_of(grid.total_form(), Form::constant(my_total as f64)))
            .flatten(),
        rate_of_peer: rate_of(grid.total_form(), grid.peer_total_form()),
        noise_share: grid.noise_share(),
    })
}

/// One of my buckets in an affinity result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AffinityRow {
    /// My bucket.
    pub mine: String,
    /// My bucket's overlap with the peer's whole audience, persons.
    pub overlap: Estimate,
    /// Share of the peer's segment among my bucket's overlap, in `[0, 1]`; `None` (too small to
    /// estimate) when the noised overlap's interval reaches 0 (`noise::share`).
    pub share: Option<Estimate>,
    /// Affinity index: `100 · share / overall share` (100 = as in the whole overlap), in
    /// `[0, ∞)`; `None` (too small to estimate) when the bucket's overlap or the segment's
    /// overlap has an interval reaching 0 (`noise::bounded`).
    pub index: Option<Estimate>,
}

/// Analysis 2: affinity index of one peer segment across my buckets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AffinityResult {
    /// The peer's segment (bucket label), e.g. `tier=gold`.
    pub peer_segment: String,
    /// Its share in the whole overlap, in `[0, 1]` (`None`: too small to estimate).
    pub overall_share: Option<Estimate>,
    /// One row per bucket of mine.
    pub rows: Vec<AffinityRow>,
    /// Noise-share indicator over the cells.
    pub noise_share: NoiseShare,
}

/// Analysis 2 (affinity / TGI index): for each of my buckets `r` and the peer's segment `g`,
/// `index_r = 100 · (x_rg / Σ_c x_rc) / (Σ_r' x_r'g / Σ x)`, the "affinity ratio" of Decentriq
/// and the TGI index of media planning. The peer's buckets must partition its audience (they
/// do in psi-ca-v1: one value per customer).
///
/// Intervals: delta method on `log index` over every cell (the four sums share cells), back-
/// transformed; on the linear scale when a sum is not positive. Shares likewise (linear). Every
/// share and index follows the known-range rule (`noise::bounded`, spec §1.3).
///
/// Errors: unknown `peer_segment`, malformed grid, bad `alpha`.
pub fn affinity(
    grid: &Grid,
    peer_segment: &str,
    alpha: f64,
) -> Result<AffinityResult, AnalyticsError> {
    grid.validate()?;
    check_alpha(alpha)?;
    let g = grid.col(peer_segment)?;
    let counts = grid.counts();
    let rows = grid
        .mine
        .iter()
        .enumerate()
        .map(|(r, mine)| {
            let x = Form::terms([grid.cell_index(r, g)]);
            AffinityRow {
                mine: mine.clone(),
                overlap: linear(&counts, &grid.row_form(r), 0.0, alpha),
                share: share(&counts, x.clone(), grid.row_form(r), 0.0, alpha),
                index: bounded(
                    &counts,
                    100.0,
                    &[
                        (x, 1.0),
                        (grid.row_form(r), -1.0),
                        (grid.col_form(g), -1.0),
                        (grid.total_form(), 1.0),
                    ],
                    0.0,
                    alpha,
                    true,
                    (0.0, f64::INFINITY),
                ),
            }
        })
        .collect();
    Ok(AffinityResult {
        peer_segment: peer_segment.to_owned(),
        overall_share: share(&counts, grid.col_form(g), grid.total_form(), 0.0, alpha),
        rows,
        noise_share: noise_share_of_cells(grid),
    })
}

fn noise_share_of_cells(grid: &Grid) -> NoiseShare {
    crate::noise::noise_share(&grid.cells)
}

/// Reach of one of my buckets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReachRow {
    /// My bucket.
    pub mine: String,
    /// `|A_r|`, exact.
    pub size: u64,
    /// `|A_r ∩ B|`.
    pub overlap: Estimate,
    /// `|A_r ∪ B| = |A_r| + |B| − |A_r ∩ B|`.
    pub union: Estimate,
    /// `|B \ A_r| = |B| − |A_r ∩ B|`: the peer's customers a campaign on `A_r` does not reach.
    pub incremental: Estimate,
}

/// Reach within one of the peer's buckets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerReachRow {
    /// The peer's bucket.
    pub peer: String,
    /// `|B_c|` as released (noised).
    pub size: CountInterval,
    /// `|A ∩ B_c|`.
    pub overlap: Estimate,
    /// `|B_c \ A|`: the bucket's customers a campaign on my whole audience does not reach.
    pub incremental: Estimate,
    /// `|B_c \ A| / |B_c|` in `[0, 1]`; `None` (too small to estimate) when the noised size's
    /// interval reaches 0.
    pub incremental_share: Option<Estimate>,
}

/// Analysis 3: union and incremental reach.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReachResult {
    /// `|A|`, exact.
    pub my_size: u64,
    /// `|B|`: sum of the peer's noised sizes.
    pub peer_size: Estimate,
    /// `|A ∩ B|`.
    pub overlap: Estimate,
    /// `|A ∪ B|`.
    pub union: Estimate,
    /// `|B \ A|`.
    pub incremental: Estimate,
    /// `|B \ A| / |B|`.
    pub incremental_share: Option<Estimate>,
    /// By bucket of mine.
    pub by_mine: Vec<ReachRow>,
    /// By bucket of the peer.
    pub by_peer: Vec<PeerReachRow>,
    /// Noise-share indicator over the cells and peer sizes.
    pub noise_share: NoiseShare,
}

/// Analysis 3 (reach): `|A ∪ B| = |A| + |B| − |A ∩ B|` and incremental reach `|B \ A|`, overall,
/// by my bucket and by the peer's bucket. `|A|` is exact; `|B|` and the overlaps are sums of
/// independent noised counts (linear form, kurtosis-corrected normal interval); the shares are
/// ratios (delta method; numerator and denominator share the peer-size terms). The peer's
/// buckets must partition its audience.
///
/// Errors: malformed grid, bad `alpha`.
pub fn reach(grid: &Grid, alpha: f64) -> Result<ReachResult, AnalyticsError> {
    grid.validate()?;
    check_alpha(alpha)?;
    let counts = grid.counts();
    let my_size: u64 = grid.my_sizes.iter().sum();
    let lin = |f: &Form| linear(&counts, f, 0.0, alpha);
    let b = grid.peer_total_form();
    let incremental = b.clone().plus(grid.total_form().neg());
    let by_mine = grid
        .mine
        .iter()
        .enumerate()
        .map(|(r, mine)| {
            let inc = b.clone().plus(grid.row_form(r).neg());
            ReachRow {
                mine: mine.clone(),
                size: grid.my_sizes[r],
                overlap: lin(&grid.row_form(r)),
                union: lin(&Form::constant(grid.my_sizes[r] as f64).plus(inc.clone())),
                incremental: lin(&inc),
            }
        })
        .collect();
    let by_peer = grid
        .peer
        .iter()
        .enumerate()
        .map(|(c, peer)| {
            let size = Form::terms([grid.peer_size_index(c)]);
            let inc = size.clone().plus(grid.col_form(c).neg());
            Ok(PeerReachRow {
                peer: peer.clone(),
                size: grid.peer_sizes[c].interval(alpha)?,
                overlap: lin(&grid.col_form(c)),
                incremental: lin(&inc),
                incremental_share: share(&counts, inc, size, 0.0, alpha),
            })
        })
        .collect::<Result<_, AnalyticsError>>()?;
    Ok(ReachResult {
        my_size,
        peer_size: lin(&b),
        overlap: lin(&grid.total_form()),
        union: lin(&Form::constant(my_size as f64).plus(incremental.clone())),
        incremental_share: share(&counts, incremental.clone(), b, 0.0, alpha),
        incremental: lin(&incremental),
        by_mine,
        by_peer,
        noise_share: grid.noise_share(),
    })
}
