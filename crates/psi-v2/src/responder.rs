//! The responder B (spec §4.2, §4.4): validates Msg1 from public quantities before touching its
//! data, lists its items, verifies every proof, counts and adds central noise.

use curve25519_dalek::ristretto::RistrettoPoint;
use rand::CryptoRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use tandem_dp::{CentralNoise, NoiseSource};
use zeroize::Zeroizing;

use crate::hash::{Domain, generators};
use crate::querier::{check_items, random_input, shifted};
use crate::shuffle::{Context, SecretScalar, proof_len, verify};
use crate::wire::{
    self, MSG1, MSG2, MSG3, MSG4, Reader, check_header, decode_point, encode_header,
};
use crate::{Limits, PsiV2Error, RunParams};

/// Bytes of `β·X` the responder keeps per querier entry (`L1`).
pub const TRUNCATED_LEN: usize = 16;

/// Msg1 parsed and bounded, points not yet decoded.
struct Query<'a> {
    counts: Vec<u64>,
    points: &'a [[u8; 32]],
}

fn parse_query<'a>(
    params: &RunParams,
    msg1: &'a [u8],
    limits: &Limits,
) -> Result<Query<'a>, PsiV2Error> {
    params.validate()?;
    let mut r = Reader::new(msg1);
    check_header(&mut r, params, MSG1)?;
    let counts = r.table(params.querier_buckets, 32, limits.max_points)?;
    let minimum = params.seed_slots_per_querier_bucket().unwrap_or(u64::MAX);
    for (g, &c) in counts.iter().enumerate() {
        if c < minimum {
            return Err(PsiV2Error::TooFewPoints {
                bucket: g as u32,
                minimum,
                found: c,
            });
        }
    }
    let total: u64 = counts.iter().sum();
    let points = r.records(total as usize)?;
    r.finish()?;
    Ok(Query { counts, points })
}

/// The querier's declared bucket sizes `m_A[g]` after checking the header and framing of Msg1
/// (all B learns about A's data, spec §6): a node may refuse runs below its minimum with them.
pub fn query_bucket_sizes(
    params: &RunParams,
    msg1: &[u8],
    limits: &Limits,
) -> Result<Vec<u64>, PsiV2Error> {
    Ok(parse_query(params, msg1, limits)?.counts)
}

/// The responder's state of one run: `β` and `L1` (wiped on drop), then its list `P`.
pub struct Responder {
    params: RunParams,
    beta: SecretScalar,
    /// `trunc16(β·X) ‖ u32(g)`, sorted: `L1` with the row of every entry (wiped on drop).
    l1: Zeroizing<Vec<[u8; L1_RECORD]>>,
    msg1_digest: [u8; 32],
    /// After Msg2: `SHA-256(Msg2)` and the list `P_h` of every bucket.
    listed: Option<([u8; 32], Vec<Vec<RistrettoPoint>>)>,
}

/// Bytes of one `L1` record: the truncated value and its row.
const L1_RECORD: usize = TRUNCATED_LEN + 4;

/// The row of `value` in the sorted `l1`, if any.
fn row_of(l1: &[[u8; L1_RECORD]], value: &[u8; 32]) -> Option<u32> {
    let i = l1
        .binary_search_by(|r| r[..TRUNCATED_LEN].cmp(&value[..TRUNCATED_LEN]))
        .ok()?;
    let mut row = [0u8; 4];
    row.copy_from_slice(&l1[i][TRUNCATED_LEN..]);
    Some(u32::from_le_bytes(row))
}

impl Responder {
    /// Validates Msg1 from public quantities only (header, sizes against `limits` and the
    /// public minimum `2·T_QC·nB`, every point canonical and not the identity, no point twice
    /// across all buckets), then draws a fresh `β` and computes `L1 = {trunc16(β·X)}`. Reads no
    /// data of B's. The caller charges `responder_loss` before sending anything back.
    pub fn receive_query<R: CryptoRng + ?Sized>(
        params: RunParams,
        msg1: &[u8],
        limits: &Limits,
        rng: &mut R,
    ) -> Result<Responder, PsiV2Error> {
        let q = parse_query(&params, msg1, limits)?;
        let mut at = Vec::with_capacity(q.points.len());
        for (g, &c) in q.counts.iter().enumerate() {
            at.extend((0..c as usize).map(|i| (g as u32, i)));
        }
        let decoded: Result<Vec<RistrettoPoint>, PsiV2Error> = q
            .points
            .par_iter()
            .zip(at.par_iter())
            .map(|(b, &(g, i))| decode_point(b, g, i))
            .collect();
        let decoded = decoded?;
        let mut sorted: Vec<(&[u8; 32], usize)> =
            q.points.iter().enumerate().map(|(i, p)| (p, i)).collect();
        sorted.par_sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
            let (g, i) = at[w[0].1.max(w[1].1)];
            return Err(PsiV2Error::DuplicatePoint {
                bucket: g,
                index: i,
            });
        }
        let beta = SecretScalar::random(rng);
        let mut l1: Zeroizing<Vec<[u8; L1_RECORD]>> = Zeroizing::new(
            decoded
                .par_iter()
                .zip(at.par_iter())
                .map(|(x, &(g, _))| {
                    let c = beta.mul(x).compress();
                    let mut t = [0u8; L1_RECORD];
                    t[..TRUNCATED_LEN].copy_from_slice(&c.as_bytes()[..TRUNCATED_LEN]);
                    t[TRUNCATED_LEN..].copy_from_slice(&g.to_le_bytes());
                    t
                })
                .collect(),
        );
        l1.par_sort_unstable();
        // Two entries of L1 that agree on their 16 bytes are refused, so that one V entry can
        // never match two cells (spec §4.2 step 6).
        if l1
            .par_windows(2)
            .any(|w| w[0][..TRUNCATED_LEN] == w[1][..TRUNCATED_LEN])
        {
            return Err(PsiV2Error::DuplicatePoint {
                bucket: u32::MAX,
                index: 0,
            });
        }
        Ok(Responder {
            msg1_digest: wire::digest(msg1),
            params,
            beta,
            l1,
            listed: None,
        })
    }

    /// Reads B's items (`items[h]` = digests of responder bucket `h`, no digest twice), draws
    /// the junk counts `J_B` from `noise`, and returns Msg2: per bucket, shuffled,
    /// `β·H(b)` for every item, `J_B[h]` junk points and the seed images `β·W_{g,h,s}`.
    pub fn list<R: CryptoRng + ?Sized, N: NoiseSource + ?Sized>(
        &mut self,
        items: &[Vec<[u8; 32]>],
        rng: &mut R,
        noise: &mut N,
    ) -> Result<Vec<u8>, PsiV2Error> {
        if self.listed.is_some() {
            return Err(PsiV2Error::WrongMessageType {
                expected: MSG3,
                found: MSG1,
            });
        }
        let p = &self.params;
        check_items(items, p.responder_buckets)?;
        let domain = Domain::new(p)?;
        let junk = shifted(
            noise,
            &p.responder_bucket_noise,
            p.responder_buckets as usize,
        )?;
        let slots = p.slots_per_cell() as u32;
        let mut lists = Vec::with_capacity(items.len());
        for (h, bucket) in items.iter().enumerate() {
            let mut bases: Vec<RistrettoPoint> =
                bucket.par_iter().map(|d| domain.item(d)).collect();
            for _ in 0..junk[h] {
                bases.push(domain.item(&random_input(rng)));
            }
            for g in 0..p.querier_buckets {
                bases.extend(
                    (0..slots)
                        .into_par_iter()
                        .map(|s| domain.seed(g, h as u32, s))
                        .collect::<Vec<_>>(),
                );
            }
            let mut points: Vec<RistrettoPoint> =
                bases.par_iter().map(|b| self.beta.mul(b)).collect();
            points.shuffle(rng);
            lists.push(points);
        }
        let mut msg = Vec::new();
        encode_header(p, MSG2, &mut msg);
        msg.extend_from_slice(&self.msg1_digest);
        for l in &lists {
            msg.extend_from_slice(&(l.len() as u64).to_le_bytes());
        }
        for l in &lists {
            let bytes: Vec<[u8; 32]> = l.par_iter().map(|x| x.compress().to_bytes()).collect();
            for b in bytes {
                msg.extend_from_slice(&b);
            }
        }
        self.listed = Some((wire::digest(&msg), lists));
        Ok(msg)
    }

    /// Reads Msg3: checks its framing, verifies **every** proof before counting anything,
    /// draws the `nA·nB` cell noises from `noise`, counts `m_{g,h}`, and returns Msg4 with
    /// `R = m + N`. Consumes the state: `β` and `L1` are wiped whatever the outcome.
    pub fn finish<R: CryptoRng + ?Sized, N: CentralNoise + ?Sized>(
        self,
        msg3: &[u8],
        rng: &mut R,
        noise: &mut N,
    ) -> Result<Vec<u8>, PsiV2Error> {
        let Some((msg2_digest, lists)) = &self.listed else {
            return Err(PsiV2Error::WrongMessageType {
                expected: MSG1,
                found: MSG3,
            });
        };
        let p = &self.params;
        let mut r = Reader::new(msg3);
        check_header(&mut r, p, MSG3)?;
        if r.array::<32>()? != *msg2_digest {
            return Err(PsiV2Error::WrongBinding {
                field: "msg2_digest",
            });
        }
        let key_bytes = r.array::<32>()?;
        let key = decode_point(&key_bytes, u32::MAX, 0)?;
        // Framing first: the sizes are B's own public Msg2 sizes.
        let mut parts = Vec::with_capacity(lists.len());
        for list in lists {
            let n = list.len();
            if n == 0 {
                parts.push((&[][..], &[][..]));
                continue;
            }
            let v = r.records(n)?;
            let proof = r.take(proof_len(n))?;
            parts.push((v, proof));
        }
        r.finish()?;
        let max_n = lists.iter().map(Vec::len).max().unwrap_or(0);
        let gens = generators(max_n);
        let ctx = Context {
            msg1: self.msg1_digest,
            msg2: *msg2_digest,
            key: key_bytes,
        };
        let mut images = Vec::with_capacity(lists.len());
        for (h, (list, (v, proof))) in lists.iter().zip(&parts).enumerate() {
            if list.is_empty() {
                images.push(Vec::new());
                continue;
            }
            let v_points: Result<Vec<RistrettoPoint>, PsiV2Error> = v
                .par_iter()
                .enumerate()
                .map(|(i, b)| decode_point(b, h as u32, i))
                .collect();
            let v_points = v_points?;
            verify(&ctx, h as u32, list, v, &v_points, &key, proof, &gens, rng)?;
            images.push(v.to_vec());
        }
        // Every proof holds. The noise is drawn before counting (spec §4.4).
        let draws = noise.laplace(p.cell_scale, p.cells())?;
        if draws.len() != p.cells() {
            return Err(PsiV2Error::BadNoiseDraws);
        }
        let n_b = p.responder_buckets as usize;
        let mut counts = vec![0i64; p.cells()];
        for (h, v) in images.iter().enumerate() {
            for x in v {
                if let Some(g) = row_of(&self.l1, x) {
                    counts[g as usize * n_b + h] += 1;
                }
            }
        }
        let mut msg = Vec::new();
        encode_header(p, MSG4, &mut msg);
        msg.extend_from_slice(&wire::digest(msg3));
        for (m, z) in counts.iter().zip(&draws) {
            msg.extend_from_slice(&m.saturating_add(*z).to_le_bytes());
        }
        Ok(msg)
    }
}
