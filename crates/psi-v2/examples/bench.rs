//! Per-item cost of psi-ca-v2 against psi-ca-v1 at `n` items per side (default 100 000), as
//! JSON on stdout. Run once, in release: `cargo run --release -p tandem-psi-v2 --example bench
//! [n]`. No noise (every clamped draw is `T`, the central draw 0): the work does not depend on
//! the draws. Wall-clock times on the machine's cores (rayon), `n` items per side split over
//! 2 × 2 buckets, half of them in common; realistic offsets from `for_epsilon(1, 1, 1e-9)`.

use std::time::Instant;

use chacha20::ChaCha20Rng;
use rand::SeedableRng;
use sha2::{Digest, Sha256};
use tandem_dp::test_noise::NoNoise;
use tandem_psi_v2::{Limits, Querier, Responder, RunParams, proof_len};

fn id(i: u64) -> [u8; 32] {
    Sha256::digest(i.to_le_bytes()).into()
}

fn buckets(range: std::ops::Range<u64>, n: u64) -> Vec<Vec<[u8; 32]>> {
    let mut b = vec![Vec::new(); n as usize];
    for i in range {
        b[(i % n) as usize].push(id(i));
    }
    b
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let a = buckets(0..n, 2);
    let b = buckets(n / 2..n / 2 + n, 2);
    let limits = Limits::default();
    let mut rng = ChaCha20Rng::seed_from_u64(1);

    // psi-ca-v2.
    let p2 = RunParams::for_epsilon([7; 32], "email/tandem-id-v1", [9; 16], 2, 2, 1.0, 1.0, 1e-9)
        .expect("params");
    let t = Instant::now();
    let (mut q, msg1) = Querier::start(p2.clone(), &a, &mut rng, &mut NoNoise).expect("msg1");
    let a_query = secs(t);
    let t = Instant::now();
    let mut r = Responder::receive_query(p2.clone(), &msg1, &limits, &mut rng).expect("valid");
    let b_reblind = secs(t);
    let t = Instant::now();
    let msg2 = r.list(&b, &mut rng, &mut NoNoise).expect("msg2");
    let b_list = secs(t);
    let t = Instant::now();
    let msg3 = q.evaluate(&msg2, &limits, &mut rng).expect("msg3");
    let a_prove = secs(t);
    let t = Instant::now();
    let msg4 = r.finish(&msg3, &mut rng, &mut NoNoise).expect("msg4");
    let b_verify = secs(t);
    let counts = q.finish(&msg4).expect("counts");
    assert_eq!(counts.estimates.iter().sum::<i64>(), (n / 2) as i64);
    let listed: u64 = counts.responder_bucket_sizes.iter().sum::<u64>()
        + 2 * u64::from(p2.querier_cell_noise.offset) * 2 * 2;
    let proof_bytes: usize = counts
        .responder_bucket_sizes
        .iter()
        .map(|&s| proof_len((s + 2 * u64::from(p2.querier_cell_noise.offset) * 2) as usize))
        .sum();

    // psi-ca-v1 on the same items.
    let p1 = tandem_psi::RunParams::for_epsilon(
        [7; 32],
        "email/tandem-id-v1",
        [9; 16],
        2,
        2,
        1.0,
        1.0,
        1e-9,
    )
    .expect("v1 params");
    let l1 = tandem_psi::Limits::default();
    let t = Instant::now();
    let (q1, query) =
        tandem_psi::Querier::start(p1.clone(), &a, &mut NoNoise, &mut rng).expect("q");
    let v1_a_query = secs(t);
    let t = Instant::now();
    let reply = tandem_psi::respond(&p1, &b, &query, &l1, &mut NoNoise, &mut rng).expect("reply");
    let v1_b_respond = secs(t);
    let t = Instant::now();
    let _ = q1.finish(&reply, &l1).expect("counts");
    let v1_a_finish = secs(t);

    let per = |x: f64| x / n as f64 * 1e6;
    println!(
        "{{\"n_per_side\":{n},\"buckets\":[2,2],\"backend\":\"{}\",\"threads\":{},\
         \"v2\":{{\"a_query_us\":{:.2},\"b_reblind_us\":{:.2},\"b_list_us\":{:.2},\
         \"a_prove_us_per_b_entry\":{:.2},\"b_verify_us_per_b_entry\":{:.2},\
         \"b_entries\":{listed},\"proof_bytes_per_b_entry\":{:.1},\
         \"msg_bytes\":[{},{},{},{}],\"seed_slots_per_cell\":{}}},\
         \"v1\":{{\"a_query_us\":{:.2},\"b_respond_us\":{:.2},\"a_finish_us\":{:.2},\
         \"msg_bytes\":[{},{}],\"slots_per_cell\":{}}}}}",
        tandem_bench::dalek_backend(),
        rayon::current_num_threads(),
        per(a_query),
        per(b_reblind),
        per(b_list),
        a_prove / listed as f64 * 1e6,
        b_verify / listed as f64 * 1e6,
        proof_bytes as f64 / listed as f64,
        msg1.len(),
        msg2.len(),
        msg3.len(),
        msg4.len(),
        2 * p2.querier_cell_noise.offset,
        per(v1_a_query),
        per(v1_b_respond),
        per(v1_a_finish),
        query.len(),
        reply.len(),
        2 * p1.cell_noise.offset,
    );
}
