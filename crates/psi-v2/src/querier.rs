//! The querier A (spec §4.1, §4.3, §4.5).

use std::collections::HashSet;

use curve25519_dalek::ristretto::RistrettoPoint;
use rand::CryptoRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use subtle::{Choice, ConditionallySelectable};
use tandem_dp::NoiseSource;
use zeroize::Zeroizing;

use crate::hash::{Domain, generators};
use crate::shuffle::{Context, SecretScalar, proof_len, prove};
use crate::wire::{self, MSG1, MSG2, MSG3, MSG4, Reader, check_header, encode_header};
use crate::{Limits, PsiV2Error, RunParams};

/// What the querier learns (spec §6): per cell `(g, h)` the estimate `R_{g,h} − K^A_{g,h}`
/// (`c_{g,h}` plus B's unclamped discrete-Laplace noise), and B's noised bucket sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellCounts {
    /// `nA`.
    pub querier_buckets: u32,
    /// `nB`.
    pub responder_buckets: u32,
    /// Estimates in row-major order: index `g·nB + h`. May be negative.
    pub estimates: Vec<i64>,
    /// `n_B[h] − 2·T_QC·nA` = `|B_h| + J_B[h]`, B's bucket sizes plus its junk.
    pub responder_bucket_sizes: Vec<u64>,
}

impl CellCounts {
    /// The estimate of cell `(g, h)`.
    pub fn get(&self, g: u32, h: u32) -> Option<i64> {
        if g >= self.querier_buckets || h >= self.responder_buckets {
            return None;
        }
        self.estimates
            .get(g as usize * self.responder_buckets as usize + h as usize)
            .copied()
    }
}

/// The querier's state of one run. Holds `α` (wiped on drop) and its seed counts `K^A`.
pub struct Querier {
    params: RunParams,
    pub(crate) alpha: SecretScalar,
    /// `K^A_{g,h}`, row-major.
    pub(crate) seeds: Zeroizing<Vec<u32>>,
    pub(crate) msg1_digest: [u8; 32],
    /// After Msg3: `SHA-256(Msg3)` and B's declared bucket sizes.
    sent: Option<([u8; 32], Vec<u64>)>,
}

/// Checks the local buckets: `n` buckets, no digest twice.
pub(crate) fn check_items(items: &[Vec<[u8; 32]>], n: u32) -> Result<(), PsiV2Error> {
    if items.len() != n as usize {
        return Err(PsiV2Error::WrongBucketCount {
            expected: n,
            found: items.len(),
        });
    }
    let mut seen = HashSet::with_capacity(items.iter().map(Vec::len).sum());
    for (g, bucket) in items.iter().enumerate() {
        for (i, d) in bucket.iter().enumerate() {
            if !seen.insert(d) {
                return Err(PsiV2Error::DuplicateItem {
                    bucket: g as u32,
                    index: i,
                });
            }
        }
    }
    Ok(())
}

/// `count` draws from `noise`, checked against the contract (`count` values in `[0, 2T]`).
pub(crate) fn shifted<N: NoiseSource + ?Sized>(
    noise: &mut N,
    dist: &tandem_dp::ShiftedLaplace,
    count: usize,
) -> Result<Vec<u32>, PsiV2Error> {
    let draws = noise.shifted(dist, count)?;
    if draws.len() != count || draws.iter().any(|&d| d > 2 * dist.offset) {
        return Err(PsiV2Error::BadNoiseDraws);
    }
    Ok(draws)
}

/// 32 random bytes: the input of a junk slot, `H(random)`.
pub(crate) fn random_input<R: CryptoRng + ?Sized>(rng: &mut R) -> Zeroizing<[u8; 32]> {
    let mut r = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut *r);
    r
}

impl Querier {
    /// Starts a run: draws `α`, the junk counts `J_A` and the seed counts `K^A` from `noise`
    /// (the caller has charged `querier_loss` first), and returns the state and Msg1.
    /// `items[g]` are the digests of querier bucket `g`, no digest twice.
    pub fn start<R: CryptoRng + ?Sized, N: NoiseSource + ?Sized>(
        params: RunParams,
        items: &[Vec<[u8; 32]>],
        rng: &mut R,
        noise: &mut N,
    ) -> Result<(Querier, Vec<u8>), PsiV2Error> {
        params.validate()?;
        check_items(items, params.querier_buckets)?;
        let domain = Domain::new(&params)?;
        let n_a = params.querier_buckets as usize;
        let n_b = params.responder_buckets;
        let slots = params.slots_per_cell() as u32;
        let junk = Zeroizing::new(shifted(noise, &params.querier_bucket_noise, n_a)?);
        let seeds = Zeroizing::new(shifted(noise, &params.querier_cell_noise, params.cells())?);
        let alpha = SecretScalar::random(rng);

        let mut buckets: Vec<Vec<[u8; 32]>> = Vec::with_capacity(n_a);
        for (g, bucket) in items.iter().enumerate() {
            // Inputs of the slots, then one α-multiplication per slot whatever its kind.
            let mut bases: Vec<RistrettoPoint> =
                bucket.par_iter().map(|d| domain.item(d)).collect();
            for _ in 0..junk[g] {
                bases.push(domain.item(&random_input(rng)));
            }
            for h in 0..n_b {
                let k = seeds[g * n_b as usize + h as usize];
                for s in 0..slots {
                    let seed = domain.seed(g as u32, h, s);
                    let junk = domain.item(&random_input(rng));
                    let take = Choice::from(u8::from(s < k));
                    bases.push(RistrettoPoint::conditional_select(&junk, &seed, take));
                }
            }
            let mut points: Vec<[u8; 32]> = bases
                .par_iter()
                .map(|b| alpha.mul(b).compress().to_bytes())
                .collect();
            points.shuffle(rng);
            buckets.push(points);
        }

        let mut msg = Vec::new();
        encode_header(&params, MSG1, &mut msg);
        for b in &buckets {
            msg.extend_from_slice(&(b.len() as u64).to_le_bytes());
        }
        for b in &buckets {
            for p in b {
                msg.extend_from_slice(p);
            }
        }
        let msg1_digest = wire::digest(&msg);
        Ok((
            Querier {
                params,
                alpha,
                seeds,
                msg1_digest,
                sent: None,
            },
            msg,
        ))
    }

    /// Answers Msg2 with Msg3: for every responder bucket `h`, `V_h = α·π_h(P_h)` and its
    /// shuffle-exponentiation proof (spec §4.3, §5). Fails on a malformed or foreign Msg2, or
    /// if called twice.
    pub fn evaluate<R: CryptoRng + ?Sized>(
        &mut self,
        msg2: &[u8],
        limits: &Limits,
        rng: &mut R,
    ) -> Result<Vec<u8>, PsiV2Error> {
        if self.sent.is_some() {
            return Err(PsiV2Error::WrongMessageType {
                expected: MSG4,
                found: MSG2,
            });
        }
        let p = &self.params;
        let mut r = Reader::new(msg2);
        check_header(&mut r, p, MSG2)?;
        if r.array::<32>()? != self.msg1_digest {
            return Err(PsiV2Error::WrongBinding {
                field: "msg1_digest",
            });
        }
        let counts = r.table(p.responder_buckets, 32, limits.max_points)?;
        let minimum = p.seed_slots_per_responder_bucket().unwrap_or(u64::MAX);
        for (h, &c) in counts.iter().enumerate() {
            if c < minimum {
                return Err(PsiV2Error::TooFewPoints {
                    bucket: h as u32,
                    minimum,
                    found: c,
                });
            }
        }
        let total: u64 = counts.iter().sum();
        if r.remaining() as u64 != total * 32 {
            return Err(PsiV2Error::TrailingBytes {
                extra: r.remaining() - (total * 32) as usize,
            });
        }
        let mut lists = Vec::with_capacity(counts.len());
        for (h, &c) in counts.iter().enumerate() {
            let records = r.records(c as usize)?;
            let points: Result<Vec<RistrettoPoint>, PsiV2Error> = records
                .par_iter()
                .enumerate()
                .map(|(i, b)| wire::decode_point(b, h as u32, i))
                .collect();
            lists.push(points?);
        }
        r.finish()?;

        let max_n = counts.iter().copied().max().unwrap_or(0) as usize;
        let gens = generators(max_n);
        let key = RistrettoPoint::mul_base(&self.alpha.0)
            .compress()
            .to_bytes();
        let ctx = Context {
            msg1: self.msg1_digest,
            msg2: wire::digest(msg2),
            key,
        };
        let mut msg = Vec::new();
        encode_header(p, MSG3, &mut msg);
        msg.extend_from_slice(&ctx.msg2);
        msg.extend_from_slice(&key);
        for (h, list) in lists.iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            let (v, proof) = prove(&ctx, h as u32, list, &self.alpha, &gens, rng);
            debug_assert_eq!(proof.len(), proof_len(list.len()));
            for x in &v {
                msg.extend_from_slice(x);
            }
            msg.extend_from_slice(&proof);
        }
        self.sent = Some((wire::digest(&msg), counts));
        Ok(msg)
    }

    /// Reads Msg4 and returns the cell estimates `R − K^A` and B's bucket sizes.
    pub fn finish(self, msg4: &[u8]) -> Result<CellCounts, PsiV2Error> {
        let Some((msg3_digest, counts)) = &self.sent else {
            return Err(PsiV2Error::WrongMessageType {
                expected: MSG2,
                found: MSG4,
            });
        };
        let p = &self.params;
        let mut r = Reader::new(msg4);
        check_header(&mut r, p, MSG4)?;
        if r.array::<32>()? != *msg3_digest {
            return Err(PsiV2Error::WrongBinding {
                field: "msg3_digest",
            });
        }
        let raw = r.take(p.cells() * 8)?;
        r.finish()?;
        let estimates = raw
            .chunks_exact(8)
            .zip(self.seeds.iter())
            .map(|(c, &k)| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                i64::from_le_bytes(b).saturating_sub(i64::from(k))
            })
            .collect();
        let seeds_per_bucket = p.seed_slots_per_responder_bucket().unwrap_or(0);
        Ok(CellCounts {
            querier_buckets: p.querier_buckets,
            responder_buckets: p.responder_buckets,
            estimates,
            responder_bucket_sizes: counts.iter().map(|c| c - seeds_per_bucket).collect(),
        })
    }
}
