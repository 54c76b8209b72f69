//! Unit tests: round trips, noise statistics, malformed messages, the discrete logarithm,
//! accounting and the spec's test vectors.

mod accounting;
mod dlog;
mod malformed;
mod noise;
mod roundtrip;
mod vectors;

use chacha20::ChaCha20Rng;
use rand::{Rng, RngExt, SeedableRng};
use tandem_dp::{DpError, NoiseSource, ShiftedLaplace};

pub(crate) use tandem_dp::test_noise::{NoNoise, SeededLaplace};

use crate::{CellSums, DiscreteLog, Limits, SumError, SumParams, SumQuerier, ValueHolder};

/// Parameters with `cells` cells, bound `U`, sum offset `t` and, if `square_t` is given,
/// squares with that offset (scales are arbitrary for [`NoNoise`]).
pub(crate) fn params(cells: u32, u: u32, t: u32, square_t: Option<u32>) -> SumParams {
    SumParams {
        agreement_id: [0x11; 32],
        run_id: [0x22; 16],
        psi_reply_digest: [0x33; 32],
        column: "revenue_cents".into(),
        cells,
        value_bound: u,
        sum_noise: ShiftedLaplace {
            scale: f64::from(u),
            offset: t,
        },
        square_noise: square_t.map(|offset| ShiftedLaplace {
            scale: f64::from(u) * f64::from(u),
            offset,
        }),
    }
}

/// A seeded RNG for the protocol's own randomness.
pub(crate) fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Pseudo-random values in `[0, u]`.
pub(crate) fn values(seed: u64, n: usize, u: u32) -> Vec<u32> {
    let mut r = rng(seed);
    (0..n).map(|_| r.random_range(0..=u)).collect()
}

/// Pseudo-random cell lists: each index goes to a uniform cell or (one time in `cells + 1`)
/// to none.
pub(crate) fn cells_of(seed: u64, n: usize, cells: u32) -> Vec<Vec<usize>> {
    let mut r = rng(seed);
    let mut out = vec![Vec::new(); cells as usize];
    for i in 0..n {
        let c = r.random_range(0..=cells) as usize;
        if c < cells as usize {
            out[c].push(i);
        }
    }
    out
}

/// One full run in-process.
pub(crate) fn run(
    params: &SumParams,
    values: &[u32],
    cells: &[Vec<usize>],
    noise: &mut dyn NoiseSource,
    seed: u64,
) -> Result<CellSums, SumError> {
    let limits = Limits::default();
    let mut r = rng(seed);
    let (holder, msg) = ValueHolder::start(params.clone(), values, &limits, &mut r)?;
    let (querier, request) =
        SumQuerier::request(params.clone(), &msg, values.len(), cells, &limits, &mut r)?;
    let reply = holder.decrypt(&request, noise)?;
    querier.finish(&reply, &dlog_table())
}

/// The shared 16-bit table.
pub(crate) fn dlog_table() -> std::sync::Arc<DiscreteLog> {
    DiscreteLog::cached(DiscreteLog::DEFAULT_BABY_BITS).expect("table")
}

/// The plain per-cell sums of `values` and of their squares.
pub(crate) fn plain(values: &[u32], cells: &[Vec<usize>]) -> (Vec<i64>, Vec<i64>) {
    cells
        .iter()
        .map(|list| {
            list.iter().fold((0i64, 0i64), |(s, q), &i| {
                let v = i64::from(values[i]);
                (s + v, q + v * v)
            })
        })
        .unzip()
}

/// Header length for `params`.
pub(crate) fn header_len(params: &SumParams) -> usize {
    120 + params.column.len()
}

/// Fills `buf` with seeded bytes.
pub(crate) fn fill(seed: u64, buf: &mut [u8]) {
    rng(seed).fill_bytes(buf);
}
