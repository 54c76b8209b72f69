//! `tandem-bench`: in-process speed measurement of a full `psi-ca-v1` run against the per-item
//! floor (`protocols/psi-ca-v1.md` §7), for `tandem bench psi`. Kept out of the protocol
//! library so that `tandem-psi` holds the protocol only.

#![deny(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand::Rng;
use serde::Serialize;
use sha2::Sha512;
use tandem_dp::{DpError, NoiseSource, ShiftedLaplace};

use tandem_psi::{Limits, PsiError, Querier, RunParams, respond};

/// Querier and responder bucket counts of the benchmark.
const BUCKETS: (u32, u32) = (4, 3);
/// Sample size of the single-threaded micro-measurements.
const SAMPLE: usize = 256;

/// Result of [`run`], printed as one JSON line by `tandem bench psi`.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Items per side.
    pub n: usize,
    /// Rayon worker threads.
    pub threads: usize,
    /// Protocol time (query + reply + finish), seconds.
    pub wall_s: f64,
    /// `2n / wall_s`.
    pub items_per_s: f64,
    /// One variable-base scalar multiplication, single-threaded, µs.
    pub t_mul_us: f64,
    /// One `hash_from_bytes::<Sha512>` of a digest, single-threaded, µs.
    pub t_hash_us: f64,
    /// One point compression, single-threaded, µs.
    pub t_compress_us: f64,
    /// `(nA + nB)(t_hash + 2·t_mul) / threads`, seconds.
    pub floor_s: f64,
    /// `wall_s / floor_s`.
    pub floor_ratio: f64,
    /// True overlap (`n / 4`).
    pub overlap_true: u64,
    /// Sum of the released cell estimates.
    pub overlap_estimate: i64,
    /// Querier's `start`, seconds.
    pub querier_s: f64,
    /// Responder's `respond`, seconds.
    pub responder_s: f64,
    /// Querier's `finish`, seconds.
    pub finish_s: f64,
}

/// Benchmark noise: every draw is the offset `T` (no noise — the work of a run does not depend
/// on the draws beyond the junk counts). Never use it for a real release.
struct Midpoint;

impl NoiseSource for Midpoint {
    fn shifted(&mut self, dist: &ShiftedLaplace, count: usize) -> Result<Vec<u32>, DpError> {
        Ok(vec![dist.offset; count])
    }
}

/// Runs both roles in-process on `n × n` random digests with overlap `n / 4` in 4 × 3 buckets,
/// with noise parameters of a typical run (T = 30 per cell), and measures the floor.
pub fn run(n: usize) -> Result<BenchReport, PsiError> {
    run_with_noise(n, &mut Midpoint)
}

/// Parameters of a typical run (ε = 1 for the responder, ε = 1 for the querier's bucket sizes,
/// δ ≈ 1e-9: T = 30 per cell) for benchmarks; fixed ids, never for a real release.
fn typical_params(querier_buckets: u32, responder_buckets: u32) -> RunParams {
    RunParams {
        agreement_id: [7; 32],
        join_key: "email/tandem-id-v1".into(),
        run_id: [9; 16],
        querier_buckets,
        responder_buckets,
        querier_bucket_noise: ShiftedLaplace {
            scale: 1.0,
            offset: 25,
        },
        responder_bucket_noise: ShiftedLaplace {
            scale: 4.0,
            offset: 90,
        },
        cell_noise: ShiftedLaplace {
            scale: 4.0 / 3.0,
            offset: 30,
        },
    }
}

/// [`run`] with the given noise source (e.g. `OpenDpNoise`).
pub fn run_with_noise(n: usize, noise: &mut dyn NoiseSource) -> Result<BenchReport, PsiError> {
    let (na, nb) = BUCKETS;
    let params = typical_params(na, nb);
    let mut rng = rand::rng();
    let overlap = n / 4;
    let mut digest = || {
        let mut d = [0u8; 32];
        rng.fill_bytes(&mut d);
        d
    };
    let a: Vec<[u8; 32]> = (0..n).map(|_| digest()).collect();
    let b: Vec<[u8; 32]> = a[..overlap]
        .iter()
        .copied()
        .chain((overlap..n).map(|_| digest()))
        .collect();
    let a_items = bucketise(&a, na, 1);
    let b_items = bucketise(&b, nb, 7);
    let limits = Limits::default();

    let t0 = Instant::now();
    let (querier, query) = Querier::start(params.clone(), &a_items, noise, &mut rng)?;
    let t1 = Instant::now();
    let reply = respond(&params, &b_items, &query, &limits, noise, &mut rng)?;
    let t2 = Instant::now();
    let counts = querier.finish(&reply, &limits)?;
    let t3 = Instant::now();

    let (t_hash, t_mul, t_compress) = micro();
    let threads = rayon::current_num_threads();
    let wall_s = (t3 - t0).as_secs_f64();
    let floor_s = (2 * n) as f64 * (t_hash + 2.0 * t_mul) / threads as f64;
    Ok(BenchReport {
        n,
        threads,
        wall_s,
        items_per_s: (2 * n) as f64 / wall_s,
        t_mul_us: t_mul * 1e6,
        t_hash_us: t_hash * 1e6,
        t_compress_us: t_compress * 1e6,
        floor_s,
        floor_ratio: wall_s / floor_s,
        overlap_true: overlap as u64,
        overlap_estimate: counts.noised.iter().sum(),
        querier_s: (t1 - t0).as_secs_f64(),
        responder_s: (t2 - t1).as_secs_f64(),
        finish_s: (t3 - t2).as_secs_f64(),
    })
}

/// Spreads `items` over `buckets` buckets in runs of `stride`.
fn bucketise(items: &[[u8; 32]], buckets: u32, stride: usize) -> Vec<Vec<[u8; 32]>> {
    let mut out = vec![Vec::new(); buckets as usize];
    for (i, d) in items.iter().enumerate() {
        out[(i / stride) % buckets as usize].push(*d);
    }
    out
}

/// Single-threaded seconds per hash-to-curve, variable-base multiplication and compression.
fn micro() -> (f64, f64, f64) {
    let mut rng = rand::rng();
    let mut digests = vec![[0u8; 32]; SAMPLE];
    digests.iter_mut().for_each(|d| rng.fill_bytes(d));
    let start = Instant::now();
    let points: Vec<RistrettoPoint> = digests
        .iter()
        .map(|d| black_box(RistrettoPoint::hash_from_bytes::<Sha512>(d)))
        .collect();
    let t_hash = start.elapsed().as_secs_f64() / SAMPLE as f64;

    let scalars: Vec<Scalar> = (0..SAMPLE).map(|_| Scalar::random(&mut rng)).collect();
    let start = Instant::now();
    let products: Vec<RistrettoPoint> = points
        .iter()
        .zip(&scalars)
        .map(|(p, k)| black_box(k * p))
        .collect();
    let t_mul = start.elapsed().as_secs_f64() / SAMPLE as f64;

    let start = Instant::now();
    for p in &products {
        black_box(p.compress());
    }
    let t_compress = start.elapsed().as_secs_f64() / SAMPLE as f64;
    (t_hash, t_mul, t_compress)
}
