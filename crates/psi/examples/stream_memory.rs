//! Peak memory of a psi-ca-v1 run in one process, whole messages against chunks (spec §10).
//!
//! `cargo run -p tandem-psi --example stream_memory -- N MODE [C]`: both parties hold `N`
//! synthetic digests, half of them shared, in one bucket each; MODE `whole` runs
//! `Querier::start` / `respond` / `Querier::finish` on whole messages, `stream` the chunked
//! state machines with chunks of `C` records (default 16,384), the frames passed one at a time
//! and dropped. Prints the wall time, the peak resident set (`VmHWM` of `/proc/self/status`)
//! above the resident set after the inputs were made, and that per item of both sides. Both
//! parties share the process, so the figure is the sum of their peaks' worth of state.
//! No noise (T = 0) and a seeded generator: this measures memory, not privacy.

use std::time::Instant;

use chacha20::ChaCha20Rng;
use rand::SeedableRng;
use sha2::{Digest, Sha256};
use tandem_dp::ShiftedLaplace;
use tandem_dp::test_noise::NoNoise;
use tandem_psi::stream::{StreamQuerier, StreamResponder};
use tandem_psi::{Limits, Querier, ResponderNoise, RunParams, respond};

fn kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn digest(i: u64) -> [u8; 32] {
    Sha256::digest(i.to_le_bytes()).into()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).map_or(Ok(100_000), |s| s.parse())?;
    let mode = args.get(2).map_or("stream", String::as_str).to_owned();
    let c: u32 = args.get(3).map_or(Ok(16_384), |s| s.parse())?;
    let none = ShiftedLaplace {
        scale: 1.0,
        offset: 0,
    };
    let params = RunParams {
        agreement_id: [7; 32],
        join_key: "email/tandem-id-v1".into(),
        run_id: [9; 16],
        querier_buckets: 1,
        responder_buckets: 1,
        querier_bucket_noise: none,
        responder_bucket_noise: none,
        cell_noise: none,
    };
    let a = vec![(0..n).map(digest).collect::<Vec<_>>()];
    let b = vec![(n / 2..n + n / 2).map(digest).collect::<Vec<_>>()];
    let base = kib("VmRSS:");
    let limits = Limits {
        max_points: 4 * n as usize + 16,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let started = Instant::now();
    let counts = if mode == "whole" {
        let (querier, query) = Querier::start(params.clone(), &a, &mut NoNoise, &mut rng)?;
        let reply = respond(&params, &b, &query, &limits, &mut NoNoise, &mut rng)?;
        drop(query);
        querier.finish(&reply, &limits)?
    } else {
        let mut querier =
            StreamQuerier::start(params.clone(), a, c, limits, &mut NoNoise, &mut rng)?;
        let drawn = ResponderNoise::draw(&params, &mut NoNoise)?;
        let mut responder = StreamResponder::start(params, drawn, c, limits, &mut rng)?;
        for k in 0..querier.query_chunks() as u32 {
            responder.accept_query_chunk(&querier.query_chunk(k)?)?;
        }
        responder.finish_query(b, &mut rng)?;
        for k in 0..responder.reply_chunks().unwrap_or(0) as u32 {
            querier.accept_reply_chunk(&responder.reply_chunk(k)?)?;
        }
        querier.finish()?
    };
    let wall = started.elapsed().as_secs_f64();
    let peak = kib("VmHWM:").saturating_sub(base) * 1024;
    println!(
        "mode={mode} n={n} C={c} matches={} wall={wall:.1}s items/s={:.0} peak_above_inputs={:.1}MB bytes_per_item={:.1}",
        counts.noised[0],
        2.0 * n as f64 / wall,
        peak as f64 / 1e6,
        peak as f64 / (2 * n) as f64
    );
    Ok(())
}
