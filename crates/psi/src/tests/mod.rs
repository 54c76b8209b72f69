//! Unit tests: round trips, noise statistics, malformed messages, spec test vectors.

mod accounting;
mod hashed;
mod malformed;
mod noise;
mod roundtrip;
mod stream;
mod vectors;

use std::collections::HashSet;

use chacha20::ChaCha20Rng;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tandem_dp::{DpError, NoiseSource, ShiftedLaplace};

pub(crate) use tandem_dp::test_noise::{NoNoise, SeededLaplace};

use crate::{CellCounts, Limits, PsiError, Querier, RunParams, respond};

/// The protocol's randomness for tests: ChaCha20 from a fixed seed.
pub(crate) fn rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(0x7a6e_6465_6d21)
}

/// Parameters with the given shape and noise offsets (scales are arbitrary for [`NoNoise`]).
pub(crate) fn params(na: u32, nb: u32, t_qb: u32, t_rb: u32, t_cell: u32) -> RunParams {
    RunParams {
        agreement_id: [0x11; 32],
        join_key: "email_sha256_v1".into(),
        run_id: [0x22; 16],
        querier_buckets: na,
        responder_buckets: nb,
        querier_bucket_noise: ShiftedLaplace {
            scale: 2.0,
            offset: t_qb,
        },
        responder_bucket_noise: ShiftedLaplace {
            scale: 2.0,
            offset: t_rb,
        },
        cell_noise: ShiftedLaplace {
            scale: 2.0,
            offset: t_cell,
        },
    }
}

/// Distinct pseudo-random digests from a seed.
pub(crate) fn digests(seed: u64, n: usize) -> Vec<[u8; 32]> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut d = [0u8; 32];
            rng.fill_bytes(&mut d);
            d
        })
        .collect()
}

/// Splits `items` into `buckets` buckets by `assign(i)`.
pub(crate) fn split(
    items: &[[u8; 32]],
    buckets: u32,
    assign: impl Fn(usize) -> u32,
) -> Vec<Vec<[u8; 32]>> {
    let mut out = vec![Vec::new(); buckets as usize];
    for (i, d) in items.iter().enumerate() {
        out[assign(i) as usize].push(*d);
    }
    out
}

/// One full run in-process.
pub(crate) fn run(
    params: &RunParams,
    a: &[Vec<[u8; 32]>],
    b: &[Vec<[u8; 32]>],
    noise: &mut dyn NoiseSource,
) -> Result<CellCounts, PsiError> {
    let limits = Limits::default();
    let mut rng = rng();
    let (querier, query) = Querier::start(params.clone(), a, noise, &mut rng)?;
    let reply = respond(params, b, &query, &limits, noise, &mut rng)?;
    querier.finish(&reply, &limits)
}

/// The plain intersection sizes, row-major.
pub(crate) fn plain(a: &[Vec<[u8; 32]>], b: &[Vec<[u8; 32]>]) -> Vec<i64> {
    let mut out = Vec::new();
    for ba in a {
        let set: HashSet<&[u8; 32]> = ba.iter().collect();
        for bb in b {
            out.push(bb.iter().filter(|d| set.contains(d)).count() as i64);
        }
    }
    out
}

/// Header length for `params`.
pub(crate) fn header_len(params: &RunParams) -> usize {
    4 + 1 + 1 + 32 + 16 + 4 + 4 + 1 + params.join_key.len() + 3 * 12
}
