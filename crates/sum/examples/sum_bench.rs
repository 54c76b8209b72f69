//! Speed and size of `psi-sum-v1`, printed as one JSON object:
//! `cargo run --release -p tandem-sum --example sum_bench -- [items] [cells]`.
//!
//! Reports the holder's extra cost per item over the count-only protocol (one encryption per
//! point, against the count protocol's per-point hash and multiplications measured in the same
//! process), the querier's cost per item, the decryption and baby-step giant-step time per cell
//! and the bytes per item. Noise is off (every draw is `T`): the work does not depend on it.
//! Every time is the fastest of a few repetitions.

use std::hint::black_box;
use std::time::Instant;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand::RngExt;
use sha2::Sha512;
use tandem_dp::{DpError, NoiseSource, ShiftedLaplace};
use tandem_sum::{DiscreteLog, Limits, SumError, SumParams, SumQuerier, ValueHolder};

/// Every draw is `T`.
struct Midpoint;

impl NoiseSource for Midpoint {
    fn shifted(&mut self, dist: &ShiftedLaplace, count: usize) -> Result<Vec<u32>, DpError> {
        Ok(vec![dist.offset; count])
    }
}

/// Repetitions of every measurement; the fastest is reported (on a shared machine the others
/// measure the other tenants).
const REPEATS: usize = 5;

/// Seconds per call of `f`: the fastest of [`REPEATS`] means over `n` calls.
fn per_call(n: usize, mut f: impl FnMut(usize)) -> f64 {
    (0..REPEATS)
        .map(|_| {
            let start = Instant::now();
            for i in 0..n {
                f(i);
            }
            start.elapsed().as_secs_f64() / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn us(s: f64) -> f64 {
    (s * 1e7).round() / 10.0
}

/// One run with `items` holder points (values uniform in `[0, 1000]`, `U = 1000`) in `cells`
/// cells, half of them matched; returns the JSON fields.
fn run(items: usize, cells: u32, squares: bool) -> Result<serde_json::Value, SumError> {
    let mut rng = rand::rng();
    let params = SumParams::for_epsilon(
        [1; 32],
        [2; 16],
        [3; 32],
        "revenue_cents",
        cells,
        1_000,
        squares,
        1.0,
        1e-9,
    )?;
    let values: Vec<u32> = (0..items).map(|_| rng.random_range(0..=1_000)).collect();
    // Half the points match, spread over the cells.
    let mut lists = vec![Vec::new(); cells as usize];
    for i in (0..items).step_by(2) {
        lists[i / 2 % cells as usize].push(i);
    }
    let limits = Limits {
        max_plaintext: u64::MAX,
        ..Limits::default()
    };
    let dlog = DiscreteLog::cached(DiscreteLog::DEFAULT_BABY_BITS)?;

    let mut best = [f64::INFINITY; 4];
    let mut sizes = (0, 0, 0);
    for _ in 0..REPEATS {
        let t = Instant::now();
        let (holder, values_msg) = ValueHolder::start(params.clone(), &values, &limits, &mut rng)?;
        let encrypt_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (querier, request) = SumQuerier::request(
            params.clone(),
            &values_msg,
            items,
            &lists,
            &limits,
            &mut rng,
        )?;
        let request_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let reply = holder.decrypt(&request, &mut Midpoint)?;
        let decrypt_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        black_box(querier.finish(&reply, &dlog)?);
        let finish_s = t.elapsed().as_secs_f64();
        for (b, x) in best
            .iter_mut()
            .zip([encrypt_s, request_s, decrypt_s, finish_s])
        {
            *b = b.min(x);
        }
        sizes = (values_msg.len(), request.len(), reply.len());
    }
    let [encrypt_s, request_s, decrypt_s, finish_s] = best;
    let (values_len, request_len, reply_len) = sizes;
    let per_cell = f64::from(cells) * if squares { 2.0 } else { 1.0 };
    Ok(serde_json::json!({
        "squares": squares,
        "items": items,
        "cells": cells,
        "values_message_bytes": values_len,
        "bytes_per_item": (values_len as f64 / items as f64).round(),
        "request_bytes": request_len,
        "reply_bytes": reply_len,
        "holder_encrypt_us_per_item": us(encrypt_s / items as f64),
        "querier_request_us_per_item": us(request_s / items as f64),
        "holder_decrypt_us_per_cell_value": us(decrypt_s / per_cell),
        "querier_finish_us_per_cell_value": us(finish_s / per_cell),
    }))
}

fn main() -> Result<(), SumError> {
    let mut args = std::env::args().skip(1);
    let items = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let cells = args.next().and_then(|a| a.parse().ok()).unwrap_or(12);
    let mut rng = rand::rng();

    // Single-threaded primitives, for the per-item comparison with the count protocol, whose
    // holder (responder) floor per own point is one hash to the group and one variable-base
    // multiplication (psi-ca-v1 §7), plus one multiplication per querier point.
    const SAMPLE: usize = 512;
    let scalars: Vec<Scalar> = (0..SAMPLE).map(|_| Scalar::random(&mut rng)).collect();
    let points: Vec<RistrettoPoint> = (0..SAMPLE)
        .map(|_| RistrettoPoint::random(&mut rng))
        .collect();
    let t_mul = per_call(SAMPLE, |i| {
        black_box(scalars[i] * points[(i + 1) % SAMPLE]);
    });
    let t_mul_base = per_call(SAMPLE, |i| {
        black_box(RistrettoPoint::mul_base(&scalars[i]));
    });
    let t_hash = per_call(SAMPLE, |i| {
        black_box(RistrettoPoint::hash_from_bytes::<Sha512>(
            scalars[i].as_bytes(),
        ));
    });
    let t_compress = per_call(SAMPLE, |i| {
        black_box(points[i].compress());
    });
    let encodings: Vec<_> = points.iter().map(|p| p.compress()).collect();
    let t_decompress = per_call(SAMPLE, |i| {
        black_box(encodings[i].decompress());
    });

    let t = Instant::now();
    let table = DiscreteLog::new(DiscreteLog::DEFAULT_BABY_BITS)?;
    let table_s = t.elapsed().as_secs_f64();
    // BSGS over [0, 2^32): a miss walks all 2^16 giant steps (the worst case); hits take half
    // on average.
    let bound = u64::from(u32::MAX);
    let miss = -RistrettoPoint::mul_base(&Scalar::ONE);
    let bsgs_worst = per_call(2, |_| assert!(table.solve(&miss, bound).is_none()));
    let bsgs_random = per_call(8, |_| {
        let x = u64::from(rng.random::<u32>());
        assert_eq!(
            table.solve(&RistrettoPoint::mul_base(&Scalar::from(x)), bound),
            Some(x)
        );
    });

    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| SumError::InvalidParams(e.to_string()))?;
    let one_thread = single.install(|| run(items, cells, false))?;
    let one_thread_squares = single.install(|| run(items, cells, true))?;
    let parallel = run(items, cells, true)?;

    let report = serde_json::json!({
        "threads": rayon::current_num_threads(),
        "t_mul_us": us(t_mul),
        "t_mul_base_us": us(t_mul_base),
        "t_hash_us": us(t_hash),
        "t_compress_us": us(t_compress),
        "t_decompress_us": us(t_decompress),
        "count_protocol_holder_floor_us_per_item": us(t_hash + t_mul),
        "dlog_table_build_ms": (table_s * 1e4).round() / 10.0,
        "bsgs_2e32_worst_ms": (bsgs_worst * 1e4).round() / 10.0,
        "bsgs_2e32_random_ms": (bsgs_random * 1e4).round() / 10.0,
        "single_thread": one_thread,
        "single_thread_squares": one_thread_squares,
        "parallel_squares": parallel,
    });
    println!("{report}");
    Ok(())
}
