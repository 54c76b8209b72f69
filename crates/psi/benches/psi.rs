//! Criterion benchmarks of the per-item operations and of a full run.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand::Rng;
use sha2::Sha512;
use tandem_dp::{DpError, NoiseSource, ShiftedLaplace};
use tandem_psi::{Limits, Querier, RunParams, respond};

/// Every draw is the offset: the work of a run does not depend on the draws.
struct Midpoint;

impl NoiseSource for Midpoint {
    fn shifted(&mut self, dist: &ShiftedLaplace, count: usize) -> Result<Vec<u32>, DpError> {
        Ok(vec![dist.offset; count])
    }
}

/// Parameters of a typical run (T = 30 per cell); fixed ids.
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

fn digests(n: usize) -> Vec<[u8; 32]> {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| {
            let mut d = [0u8; 32];
            rng.fill_bytes(&mut d);
            d
        })
        .collect()
}

fn primitives(c: &mut Criterion) {
    let mut rng = rand::rng();
    let digest = digests(1)[0];
    c.bench_function("hash_to_curve", |b| {
        b.iter(|| RistrettoPoint::hash_from_bytes::<Sha512>(black_box(&digest)));
    });
    let p = RistrettoPoint::random(&mut rng);
    let k = Scalar::random(&mut rng);
    c.bench_function("scalar_mul", |b| b.iter(|| black_box(k) * black_box(p)));
    c.bench_function("compress", |b| b.iter(|| black_box(p).compress()));
    let points: Vec<RistrettoPoint> = (0..256).map(|_| RistrettoPoint::random(&mut rng)).collect();
    c.bench_function("double_and_compress_batch_256", |b| {
        b.iter(|| RistrettoPoint::double_and_compress_batch(black_box(&points)));
    });
}

fn full_run(c: &mut Criterion) {
    let n = 10_000;
    let all = digests(2 * n);
    let a: Vec<Vec<[u8; 32]>> = all[..n].chunks(n / 4).map(<[_]>::to_vec).collect();
    let b: Vec<Vec<[u8; 32]>> = all[3 * n / 4..7 * n / 4]
        .chunks(n / 3 + 1)
        .map(<[_]>::to_vec)
        .collect();
    let params = typical_params(a.len() as u32, b.len() as u32);
    let limits = Limits::default();
    let mut group = c.benchmark_group("full_run");
    group.sample_size(10);
    group.bench_function("10k_x_10k", |bench| {
        bench.iter_batched(
            || params.clone(),
            |params| {
                let mut rng = rand::rng();
                let (querier, query) =
                    Querier::start(params.clone(), &a, &mut Midpoint, &mut rng).expect("query");
                let reply =
                    respond(&params, &b, &query, &limits, &mut Midpoint, &mut rng).expect("reply");
                querier.finish(&reply, &limits).expect("finish")
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, primitives, full_run);
criterion_main!(benches);
