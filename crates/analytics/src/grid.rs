//! The output of one psi-ca-v1 run as the querier sees it, and its consistent view.

use serde::{Deserialize, Serialize};

use crate::AnalyticsError;
use crate::noise::{Form, NoiseShare, NoisyCount, noise_share};

/// What the querier ("mine", rows) holds after one psi-ca-v1 run (spec §1): the noised overlap
/// of every bucket pair, its own bucket sizes (exact, local) and the responder's ("peer",
/// columns) noised bucket sizes. Bucket labels are the agreed public values (for several
/// columns per side, the composite value of the cross product, in the agreed order).
///
/// Shapes: `cells` is row-major `mine.len() × peer.len()`; `my_sizes.len() == mine.len()`;
/// `peer_sizes.len() == peer.len()`. Every count is in persons.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// My bucket labels (rows).
    pub mine: Vec<String>,
    /// The peer's bucket labels (columns).
    pub peer: Vec<String>,
    /// `|A_r ∩ B_c| + E`, row-major.
    pub cells: Vec<NoisyCount>,
    /// `|A_r|`, exact.
    pub my_sizes: Vec<u64>,
    /// `|B_c| + J_B[c]`, noised by the peer.
    pub peer_sizes: Vec<NoisyCount>,
}

impl Grid {
    /// A grid after checking the shapes.
    ///
    /// Errors: [`AnalyticsError::Shape`] when a length does not match, a side has no bucket,
    /// or a label repeats on a side.
    pub fn new(
        mine: Vec<String>,
        peer: Vec<String>,
        cells: Vec<NoisyCount>,
        my_sizes: Vec<u64>,
        peer_sizes: Vec<NoisyCount>,
    ) -> Result<Grid, AnalyticsError> {
        let grid = Grid {
            mine,
            peer,
            cells,
            my_sizes,
            peer_sizes,
        };
        grid.validate()?;
        Ok(grid)
    }

    /// Checks the shapes (see [`Grid::new`]); analyses call it on grids built by hand or read
    /// back from JSON.
    pub fn validate(&self) -> Result<(), AnalyticsError> {
        let (r, c) = (self.mine.len(), self.peer.len());
        if r == 0 || c == 0 {
            return Err(AnalyticsError::Shape("a side has no bucket".into()));
        }
        if self.cells.len() != r.saturating_mul(c) {
            return Err(AnalyticsError::Shape(format!(
                "{} cells for {r} × {c} buckets",
                self.cells.len()
            )));
        }
        if self.my_sizes.len() != r || self.peer_sizes.len() != c {
            return Err(AnalyticsError::Shape(format!(
                "{} / {} sizes for {r} / {c} buckets",
                self.my_sizes.len(),
                self.peer_sizes.len()
            )));
        }
        for labels in [&self.mine, &self.peer] {
            for (i, l) in labels.iter().enumerate() {
                if labels[..i].contains(l) {
                    return Err(AnalyticsError::Shape(format!("bucket label {l:?} repeats")));
                }
            }
        }
        Ok(())
    }

    /// Index of the cell `(row, col)` in [`Grid::cells`].
    pub fn cell_index(&self, row: usize, col: usize) -> usize {
        row * self.peer.len() + col
    }

    /// The cell `(row, col)`.
    pub fn cell(&self, row: usize, col: usize) -> &NoisyCount {
        &self.cells[self.cell_index(row, col)]
    }

    /// Index of my bucket `label`. Errors: [`AnalyticsError::UnknownLabel`].
    pub fn row(&self, label: &str) -> Result<usize, AnalyticsError> {
        find(&self.mine, "my bucket", label)
    }

    /// Index of the peer's bucket `label`. Errors: [`AnalyticsError::UnknownLabel`].
    pub fn col(&self, label: &str) -> Result<usize, AnalyticsError> {
        find(&self.peer, "peer bucket", label)
    }

    /// The noise-share indicator over the released cells and peer sizes.
    pub fn noise_share(&self) -> NoiseShare {
        noise_share(&self.counts())
    }

    /// All noisy quantities in one list: the cells (row-major), then the peer sizes, then my
    /// sizes (exact). Index of peer size `c` is `cells.len() + c`.
    pub(crate) fn counts(&self) -> Vec<NoisyCount> {
        let mut v = self.cells.clone();
        v.extend_from_slice(&self.peer_sizes);
        v
    }

    pub(crate) fn peer_size_index(&self, col: usize) -> usize {
        self.cells.len() + col
    }

    /// Form summing the cells of `row` over every column.
    pub(crate) fn row_form(&self, row: usize) -> Form {
        Form::terms((0..self.peer.len()).map(|c| self.cell_index(row, c)))
    }

    /// Form summing the cells of `col` over every row.
    pub(crate) fn col_form(&self, col: usize) -> Form {
        Form::terms((0..self.mine.len()).map(|r| self.cell_index(r, col)))
    }

    /// Form summing every cell.
    pub(crate) fn total_form(&self) -> Form {
        Form::terms(0..self.cells.len())
    }

    /// Form summing every peer size (the peer's whole audience, when its buckets partition it).
    pub(crate) fn peer_total_form(&self) -> Form {
        Form::terms((0..self.peer.len()).map(|c| self.peer_size_index(c)))
    }
}

fn find(labels: &[String], what: &'static str, label: &str) -> Result<usize, AnalyticsError> {
    labels
        .iter()
        .position(|l| l == label)
        .ok_or_else(|| AnalyticsError::UnknownLabel {
            what,
            label: label.to_owned(),
        })
}

/// A consistent display view of a [`Grid`]: non-negative integer cells whose totals add up.
/// **Post-processing** of the signed estimates (which stay primary): it uses no data and spends
/// no budget, but it is biased upwards near zero.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistentView {
    /// Always `"post-processing"`: says what this view is wherever it is shown.
    pub label: String,
    /// Cells, row-major like [`Grid::cells`], each ≥ 0.
    pub cells: Vec<u64>,
    /// Row totals: `row_totals[r] = Σ_c cells[r][c]`, each ≤ `my_sizes[r]`.
    pub row_totals: Vec<u64>,
    /// Column totals: sums of the cells.
    pub col_totals: Vec<u64>,
    /// Sum of every cell.
    pub total: u64,
}

/// The consistent view of `grid`: every row keeps its noised total (the sum of its signed
/// cells, rounded and clamped to `[0, |A_r|]`, where a row total has lower relative error than
/// its cells), its cells are the least-squares projection of the signed cells onto
/// `{x ≥ 0, Σx = total}` (Held, Wolfe & Crowder 1974; Duchi et al. 2008, "Efficient Projections
/// onto the ℓ1-Ball"), rounded by largest remainder to integers with the same sum. Column and
/// grand totals are sums of the view's cells, so every margin adds up.
///
/// Errors: [`AnalyticsError::Shape`] from [`Grid::validate`].
pub fn consistent_view(grid: &Grid) -> Result<ConsistentView, AnalyticsError> {
    grid.validate()?;
    let nc = grid.peer.len();
    let mut cells = Vec::with_capacity(grid.cells.len());
    let mut row_totals = Vec::with_capacity(grid.mine.len());
    for (r, &size) in grid.my_sizes.iter().enumerate() {
        let row: Vec<f64> = (0..nc).map(|c| grid.cell(r, c).estimate as f64).collect();
        let total = row.iter().sum::<f64>().round().clamp(0.0, size as f64);
        let projected = project_to_simplex(&row, total);
        let rounded = round_preserving_sum(&projected, total as u64);
        row_totals.push(total as u64);
        cells.extend(rounded);
    }
    let col_totals: Vec<u64> = (0..nc)
        .map(|c| (0..grid.mine.len()).map(|r| cells[r * nc + c]).sum())
        .collect();
    Ok(ConsistentView {
        label: "post-processing".into(),
        total: row_totals.iter().sum(),
        cells,
        row_totals,
        col_totals,
    })
}

/// Euclidean projection of `v` onto `{x ≥ 0, Σx = total}` (`total ≥ 0`): `xᵢ = max(vᵢ − θ, 0)`
/// with `θ` found by sorting (Duchi et al. 2008, Fig. 1).
pub fn project_to_simplex(v: &[f64], total: f64) -> Vec<f64> {
    if v.is_empty() {
        return Vec::new();
    }
    let mut u = v.to_vec();
    u.sort_by(|a, b| b.total_cmp(a));
    let mut cum = 0.0;
    let mut theta = u[0] - total;
    for (j, &uj) in u.iter().enumerate() {
        cum += uj;
        let t = (cum - total) / (j + 1) as f64;
        if uj - t > 0.0 {
            theta = t;
        }
    }
    v.iter().map(|&x| (x - theta).max(0.0)).collect()
}

/// Integers `⌊xᵢ⌋` plus one for the largest remainders, so that they sum to `total` (Hamilton's
/// method); `x` must be non-negative with `Σx = total` up to rounding.
fn round_preserving_sum(x: &[f64], total: u64) -> Vec<u64> {
    let mut out: Vec<u64> = x.iter().map(|v| v.floor().max(0.0) as u64).collect();
    let mut missing = total.saturating_sub(out.iter().sum());
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| (x[b] - x[b].floor()).total_cmp(&(x[a] - x[a].floor())));
    for &i in order.iter().cycle().take(x.len() * 2) {
        if missing == 0 {
            break;
        }
        out[i] += 1;
        missing -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::Noise;

    fn grid(cells: &[i64], rows: usize, sizes: &[u64]) -> Grid {
        let n = Noise::clamped_laplace(2.0, 50).unwrap();
        let cols = cells.len() / rows;
        Grid::new(
            (0..rows).map(|r| format!("r{r}")).collect(),
            (0..cols).map(|c| format!("c{c}")).collect(),
            cells.iter().map(|&e| NoisyCount::new(e, n)).collect(),
            sizes.to_vec(),
            (0..cols).map(|_| NoisyCount::new(100, n)).collect(),
        )
        .unwrap()
    }

    #[test]
    fn consistent_view_is_non_negative_and_adds_up() {
        let g = grid(&[10, -3, 4, -2, -1, 1, 50, 20, 7], 3, &[100, 100, 60]);
        let v = consistent_view(&g).unwrap();
        assert_eq!(v.label, "post-processing");
        // Row total 11; θ = 1.5 gives 8.5, 0, 2.5; the tie of remainders goes to the first cell.
        assert_eq!(&v.cells[0..3], &[9, 0, 2]);
        assert_eq!(v.row_totals, vec![11, 0, 60]);
        for r in 0..3 {
            assert_eq!(
                v.cells[r * 3..r * 3 + 3].iter().sum::<u64>(),
                v.row_totals[r]
            );
        }
        assert_eq!(v.col_totals.iter().sum::<u64>(), v.total);
        assert!(v.row_totals[2] <= 60);
    }

    #[test]
    fn projection_is_identity_on_the_simplex_and_sums_to_total() {
        assert_eq!(
            project_to_simplex(&[1.0, 2.0, 3.0], 6.0),
            vec![1.0, 2.0, 3.0]
        );
        let p = project_to_simplex(&[5.0, -4.0, 1.0, 0.5], 3.0);
        assert!((p.iter().sum::<f64>() - 3.0).abs() < 1e-12);
        assert!(p.iter().all(|&x| x >= 0.0));
    }

    #[test]
    fn shapes_are_checked() {
        let n = NoisyCount::exact(1);
        let e = Grid::new(
            vec!["a".into()],
            vec!["x".into()],
            vec![n, n],
            vec![1],
            vec![n],
        );
        assert!(matches!(e, Err(AnalyticsError::Shape(_))));
        let e = Grid::new(
            vec!["a".into(), "a".into()],
            vec!["x".into()],
            vec![n, n],
            vec![1, 1],
            vec![n],
        );
        assert!(matches!(e, Err(AnalyticsError::Shape(_))));
        let g = grid(&[1, 2], 1, &[5]);
        assert!(matches!(
            g.row("zz"),
            Err(AnalyticsError::UnknownLabel { .. })
        ));
    }
}
