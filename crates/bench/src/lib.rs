//! `tandem-bench`: in-process speed measurement of a full `psi-ca-v1` run against the per-item
//! floor (`protocols/psi-ca-v1.md` §7), for `tandem bench psi`. Kept out of the protocol
//! library so that `tandem-psi` holds the protocol only.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand::Rng;
use serde::Serialize;
use sha2::Sha512;
use tandem_dp::{DpError, NoiseSource, ShiftedLaplace};

use tandem_psi::{Items, Limits, PsiError, Querier, RunParams, hash_to_points, respond};

/// Querier and responder bucket counts of the benchmark.
const BUCKETS: (u32, u32) = (4, 3);
/// Items per single-threaded micro-measurement (after a warm-up of [`WARM_UP`] items), enough
/// that the floor does not move with the cache or the clock between runs.
const SAMPLE: usize = 20_000;
/// Items run through each micro-measurement before it is timed.
const WARM_UP: usize = 2_000;

/// Result of [`run`], printed as one JSON line by `tandem bench psi`.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Items per side.
    pub n: usize,
    /// Rayon worker threads.
    pub threads: usize,
    /// The curve25519-dalek backend that ran the multiplications ([`dalek_backend`]).
    pub backend: &'static str,
    /// Protocol time (query + reply + finish), seconds: the faster of two runs, alternated with
    /// the two runs of `wall_cached_s`.
    pub wall_s: f64,
    /// `2n / wall_s`.
    pub items_per_s: f64,
    /// One variable-base scalar multiplication, single-threaded, µs.
    pub t_mul_us: f64,
    /// One `hash_from_bytes::<Sha512>` of a digest, single-threaded, µs.
    pub t_hash_us: f64,
    /// One point compression, single-threaded, µs.
    pub t_compress_us: f64,
    /// One point decompression (every received point is decompressed once), single-threaded, µs.
    pub t_decompress_us: f64,
    /// Items per micro-measurement (`t_hash`, `t_mul`, `t_compress`, `t_decompress`), timed warm.
    pub floor_sample: usize,
    /// `(nA + nB)(t_hash + 2·t_mul) / threads`, seconds: spec §7's floor, measured in this
    /// process, so with the same build and backend as the run.
    pub floor_s: f64,
    /// `wall_s / floor_s`.
    pub floor_ratio: f64,
    /// `(nA + nB)(t_hash + 2·t_mul + t_decompress) / threads`, seconds: the floor plus the
    /// decompression of every received point, which has no batch form in dalek.
    pub floor_with_decompress_s: f64,
    /// The same run (same items and noise parameters) from precomputed `enc(H(x))` (a node's
    /// hash cache, spec §3.1), seconds: the faster of two.
    pub wall_cached_s: f64,
    /// `2n / wall_cached_s`.
    pub items_per_s_cached: f64,
    /// `(nA + nB)(t_decompress + 2·t_mul + t_decompress) / threads`, seconds: the floor of a
    /// run from cached points (each item's hash becomes a decompression), plus the
    /// decompression of every received point.
    pub floor_cached_s: f64,
    /// `wall_cached_s / floor_cached_s`.
    pub floor_ratio_cached: f64,
    /// `1 − wall_cached_s / wall_s`: the share of the run the cache saves.
    pub cached_saving: f64,
    /// Filling the cache of both sides (`hash_to_points` of `2n` digests), seconds: paid once
    /// per member set and hash domain, not per run.
    pub fill_s: f64,
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
    /// Bytes of the query message.
    pub query_bytes: usize,
    /// Bytes of the reply message.
    pub reply_bytes: usize,
}

/// The curve25519-dalek backend that runs variable-base multiplications here, chosen as dalek
/// chooses it at run time: `"avx512ifma"` if it was compiled in (`--cfg
/// curve25519_dalek_backend="avx512"`, set in `.cargo/config.toml`) and the CPU has
/// `avx512ifma` and `avx512vl`, else `"avx2"` if the CPU has `avx2`, else `"serial"` (also when
/// a serial or fiat backend is forced at build time).
pub fn dalek_backend() -> &'static str {
    #[cfg(all(
        target_arch = "x86_64",
        not(curve25519_dalek_backend = "serial"),
        not(curve25519_dalek_backend = "fiat")
    ))]
    {
        if cfg!(curve25519_dalek_backend = "avx512")
            && std::is_x86_feature_detected!("avx512ifma")
            && std::is_x86_feature_detected!("avx512vl")
        {
            return "avx512ifma";
        }
        if std::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "serial"
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
/// with noise parameters of a typical run (T = 30 per cell), and measures the floor
/// single-threaded and warm, over [`SAMPLE`] items, in the same process (same build, same
/// backend).
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

    let hashed = |buckets: &[Vec<[u8; 32]>]| -> Result<Vec<Vec<[u8; 32]>>, PsiError> {
        buckets.iter().map(|b| hash_to_points(&params, b)).collect()
    };
    let f0 = Instant::now();
    let (a_cached, b_cached) = (hashed(&a_items)?, hashed(&b_items)?);
    let fill_s = f0.elapsed().as_secs_f64();

    // Runs from digests and from cached points alternate, twice each; each keeps its fastest,
    // so load from other processes on a shared machine weighs on neither more than the other.
    let mut fastest: Option<Timed> = None;
    let mut wall_cached_s = f64::INFINITY;
    for _ in 0..2 {
        let t0 = Instant::now();
        let (querier, query) = Querier::start(params.clone(), &a_items, noise, &mut rng)?;
        let t1 = Instant::now();
        let reply = respond(&params, &b_items, &query, &limits, noise, &mut rng)?;
        let t2 = Instant::now();
        let counts = querier.finish(&reply, &limits)?;
        let t3 = Instant::now();
        let times = (
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t3 - t2).as_secs_f64(),
        );
        if fastest
            .as_ref()
            .is_none_or(|f| times.0 + times.1 + times.2 < f.querier_s + f.responder_s + f.finish_s)
        {
            fastest = Some(Timed {
                querier_s: times.0,
                responder_s: times.1,
                finish_s: times.2,
                query_bytes: query.len(),
                reply_bytes: reply.len(),
                overlap_estimate: counts.noised.iter().sum(),
            });
        }

        let c0 = Instant::now();
        let (cached_querier, cached_query) =
            Querier::start(params.clone(), Items::hashed(&a_cached), noise, &mut rng)?;
        let cached_reply = respond(
            &params,
            Items::hashed(&b_cached),
            &cached_query,
            &limits,
            noise,
            &mut rng,
        )?;
        black_box(cached_querier.finish(&cached_reply, &limits)?);
        wall_cached_s = wall_cached_s.min(c0.elapsed().as_secs_f64());
    }
    let Some(Timed {
        querier_s,
        responder_s,
        finish_s,
        query_bytes,
        reply_bytes,
        overlap_estimate,
    }) = fastest
    else {
        return Err(PsiError::InvalidParams("no run".into()));
    };

    let Micro {
        t_hash,
        t_mul,
        t_compress,
        t_decompress,
    } = micro();
    let threads = rayon::current_num_threads();
    let wall_s = querier_s + responder_s + finish_s;
    let per_thread = (2 * n) as f64 / threads as f64;
    let floor_s = per_thread * (t_hash + 2.0 * t_mul);
    Ok(BenchReport {
        n,
        threads,
        backend: dalek_backend(),
        wall_s,
        items_per_s: (2 * n) as f64 / wall_s,
        t_mul_us: t_mul * 1e6,
        t_hash_us: t_hash * 1e6,
        t_compress_us: t_compress * 1e6,
        t_decompress_us: t_decompress * 1e6,
        floor_sample: SAMPLE,
        floor_s,
        floor_ratio: wall_s / floor_s,
        floor_with_decompress_s: per_thread * (t_hash + 2.0 * t_mul + t_decompress),
        wall_cached_s,
        items_per_s_cached: (2 * n) as f64 / wall_cached_s,
        floor_cached_s: per_thread * (2.0 * t_decompress + 2.0 * t_mul),
        floor_ratio_cached: wall_cached_s / (per_thread * (2.0 * t_decompress + 2.0 * t_mul)),
        cached_saving: 1.0 - wall_cached_s / wall_s,
        fill_s,
        overlap_true: overlap as u64,
        overlap_estimate,
        querier_s,
        responder_s,
        finish_s,
        query_bytes,
        reply_bytes,
    })
}

/// The fastest run from digests: its phases and outputs.
struct Timed {
    querier_s: f64,
    responder_s: f64,
    finish_s: f64,
    query_bytes: usize,
    reply_bytes: usize,
    overlap_estimate: i64,
}

/// Spreads `items` over `buckets` buckets in runs of `stride`.
fn bucketise(items: &[[u8; 32]], buckets: u32, stride: usize) -> Vec<Vec<[u8; 32]>> {
    let mut out = vec![Vec::new(); buckets as usize];
    for (i, d) in items.iter().enumerate() {
        out[(i / stride) % buckets as usize].push(*d);
    }
    out
}

/// Single-threaded seconds per operation of the floor.
struct Micro {
    t_hash: f64,
    t_mul: f64,
    t_compress: f64,
    t_decompress: f64,
}

/// Seconds per call of `op` over `inputs[WARM_UP..]`, timed after running it on
/// `inputs[..WARM_UP]`; returns the outputs for all inputs.
fn per_item<T, U>(inputs: &[T], mut op: impl FnMut(&T) -> U) -> (f64, Vec<U>) {
    let (warm, timed) = inputs.split_at(WARM_UP.min(inputs.len()));
    let mut out: Vec<U> = warm.iter().map(|x| black_box(op(x))).collect();
    let start = Instant::now();
    out.extend(timed.iter().map(|x| black_box(op(x))));
    (start.elapsed().as_secs_f64() / timed.len() as f64, out)
}

/// Measures the floor's operations single-threaded, warm, on [`SAMPLE`] fresh items each.
fn micro() -> Micro {
    let mut rng = rand::rng();
    let len = WARM_UP + SAMPLE;
    let mut digests = vec![[0u8; 32]; len];
    digests.iter_mut().for_each(|d| rng.fill_bytes(d));
    let (t_hash, points) = per_item(&digests, |d| RistrettoPoint::hash_from_bytes::<Sha512>(d));
    let k = Scalar::random(&mut rng);
    let (t_mul, products) = per_item(&points, |p| k * p);
    let (t_compress, compressed) = per_item(&products, RistrettoPoint::compress);
    let (t_decompress, _) = per_item(&compressed, CompressedRistretto::decompress);
    Micro {
        t_hash,
        t_mul,
        t_compress,
        t_decompress,
    }
}
