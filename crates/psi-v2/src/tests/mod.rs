//! Tests of `psi-ca-v2`: exact counts, the attacks of spec §8, tampering, noise, round trips and
//! the spec's vectors.

mod attacks;
mod noise;
mod roundtrip;
mod vectors;

use chacha20::ChaCha20Rng;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand::SeedableRng;
use sha2::{Digest, Sha256};
use tandem_dp::ShiftedLaplace;
use tandem_dp::test_noise::NoNoise;

use crate::shuffle::{Context, SecretScalar, prove};
use crate::wire::{self, MSG2, MSG3, encode_header};
use crate::{Limits, Querier, Responder, RunParams};

/// Digests per bucket, as both roles take them.
pub(crate) type Buckets = Vec<Vec<[u8; 32]>>;

pub(crate) fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Small test parameters: `T_QC = t` seed slots per cell (half of `2T`), junk offsets 3.
pub(crate) fn params(n_a: u32, n_b: u32, t: u32) -> RunParams {
    RunParams {
        agreement_id: [7; 32],
        join_key: "email/tandem-id-v1".into(),
        run_id: [9; 16],
        querier_buckets: n_a,
        responder_buckets: n_b,
        querier_bucket_noise: ShiftedLaplace {
            scale: 1.0,
            offset: 3,
        },
        querier_cell_noise: ShiftedLaplace {
            scale: 1.0,
            offset: t,
        },
        responder_bucket_noise: ShiftedLaplace {
            scale: 1.0,
            offset: 3,
        },
        cell_scale: 2.0,
    }
}

pub(crate) fn id(i: u64) -> [u8; 32] {
    Sha256::digest(i.to_le_bytes()).into()
}

/// A holds ids `0..na` (bucket `i mod nA`), B ids `na − overlap ..` (bucket `(i / 7) mod nB`);
/// returns both sides and the true cell counts, row-major.
pub(crate) fn data(p: &RunParams, na: u64, nb: u64, overlap: u64) -> (Buckets, Buckets, Vec<i64>) {
    let (n_a, n_b) = (u64::from(p.querier_buckets), u64::from(p.responder_buckets));
    let mut a = vec![Vec::new(); n_a as usize];
    let mut b = vec![Vec::new(); n_b as usize];
    let mut truth = vec![0i64; (n_a * n_b) as usize];
    for i in 0..na {
        a[(i % n_a) as usize].push(id(i));
    }
    for i in na - overlap..na - overlap + nb {
        b[((i / 7) % n_b) as usize].push(id(i));
        if i < na {
            truth[((i % n_a) * n_b + (i / 7) % n_b) as usize] += 1;
        }
    }
    (a, b, truth)
}

/// A run up to Msg2: the querier, the responder and Msg2.
pub(crate) fn setup(
    p: &RunParams,
    a: &[Vec<[u8; 32]>],
    b: &[Vec<[u8; 32]>],
    seed: u64,
) -> (Querier, Responder, Vec<u8>) {
    let (q, msg1) = Querier::start(p.clone(), a, &mut rng(seed), &mut NoNoise).expect("msg1");
    let mut r = Responder::receive_query(p.clone(), &msg1, &Limits::default(), &mut rng(seed + 1))
        .expect("valid msg1");
    let msg2 = r.list(b, &mut rng(seed + 2), &mut NoNoise).expect("msg2");
    (q, r, msg2)
}

/// The lists `P_h` of Msg2, decoded.
pub(crate) fn lists_of(p: &RunParams, msg2: &[u8]) -> Vec<Vec<RistrettoPoint>> {
    let mut head = Vec::new();
    encode_header(p, MSG2, &mut head);
    let mut at = head.len() + 32;
    let n_b = p.responder_buckets as usize;
    let counts: Vec<usize> = (0..n_b)
        .map(|h| {
            let c = &msg2[at + 8 * h..at + 8 * h + 8];
            u64::from_le_bytes(c.try_into().expect("8 bytes")) as usize
        })
        .collect();
    at += 8 * n_b;
    counts
        .iter()
        .map(|&c| {
            let l = (0..c)
                .map(|i| {
                    let s = at + 32 * i;
                    CompressedRistretto::from_slice(&msg2[s..s + 32])
                        .expect("32 bytes")
                        .decompress()
                        .expect("point")
                })
                .collect();
            at += 32 * c;
            l
        })
        .collect()
}

/// A Msg3 made by a deviating querier: it proves, for every bucket, a shuffle of
/// `alpha·lists[h]` (instead of B's own lists), under the transcript context `ctx`.
pub(crate) fn forged_msg3(
    p: &RunParams,
    msg2: &[u8],
    ctx_msg1: [u8; 32],
    lists: &[Vec<RistrettoPoint>],
    alpha: Scalar,
    seed: u64,
) -> Vec<u8> {
    let alpha = SecretScalar(alpha);
    let max_n = lists.iter().map(Vec::len).max().unwrap_or(0);
    let gens = crate::hash::generators(max_n);
    let key = RistrettoPoint::mul_base(&alpha.0).compress().to_bytes();
    let ctx = Context {
        msg1: ctx_msg1,
        msg2: wire::digest(msg2),
        key,
    };
    let mut msg = Vec::new();
    encode_header(p, MSG3, &mut msg);
    msg.extend_from_slice(&ctx.msg2);
    msg.extend_from_slice(&key);
    let mut r = rng(seed);
    for (h, l) in lists.iter().enumerate() {
        let (v, proof) = prove(&ctx, h as u32, l, &alpha, &gens, &mut r);
        for x in &v {
            msg.extend_from_slice(x);
        }
        msg.extend_from_slice(&proof);
    }
    msg
}
