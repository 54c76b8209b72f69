//! The Terelius–Wikström proof of a shuffle (spec §5), with its re-encryption relation replaced
//! by the exponentiation relation `Σ e'_i·V_i = α·Σ e_j·P_j` and the key relation `K_A = α·G`.
//!
//! Follows Wikström, "How to Implement a Stand-alone Verifier for the Verificatum Mix-Net"
//! (v3.1, §8.3, Algorithm 19 "Proof of a Shuffle"): permutation commitment
//! `u_j = r_j·G + h_{π(j)}`, challenge vector `e` from the transcript, the chained commitments
//! `B_i`, and the verifier's five equations, of which the fifth (re-encryption) is replaced by
//! the linear relation above and a sixth (`K_A`) is added, sharing the responses `k_{E,i}` and
//! `k_α` (spec §5.3 argues soundness and zero knowledge of the adapted relation). Additive
//! notation; `G` is the Ristretto base point, `h_0 … h_N` are [`crate::hash::generators`].

use chacha20::ChaCha20Rng;
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT as G;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoBasepointTable, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, MultiscalarMul, VartimeMultiscalarMul};
use rand::seq::SliceRandom;
use rand::{CryptoRng, Rng, SeedableRng};
use rayon::prelude::*;
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

use crate::PsiV2Error;

/// Label of the seed hash (the challenge vector `e`).
const SEED_LABEL: &[u8] = b"tandem/psi-ca-v2/shuffle/seed";
/// Label of the challenge hash (`v`).
const CHALLENGE_LABEL: &[u8] = b"tandem/psi-ca-v2/shuffle/challenge";
/// Label of the derivation of `e_j` from the seed.
const E_LABEL: &[u8] = b"e";
/// Bits of every `e_j` (Wikström's `n_e`).
pub(crate) const E_BITS: usize = 128;
/// Terms per parallel multi-scalar multiplication in the verifier.
const MSM_CHUNK: usize = 4096;

/// Bytes of the proof of a bucket of `n` points: `u, B, B'` (`3n` points), `A', C', D', F', K'`,
/// `k_A, k_C, k_D, k_α` and `k_B, k_E` (`2n` scalars), i.e. `160·n + 288`.
pub fn proof_len(n: usize) -> usize {
    160 * n + 288
}

/// A secret scalar (`α`, `β`): not `Copy`, wiped on drop.
pub(crate) struct SecretScalar(pub(crate) Scalar);

impl SecretScalar {
    /// A uniformly random non-zero scalar.
    pub(crate) fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> SecretScalar {
        let mut k = SecretScalar(Scalar::random(rng));
        while k.0 == Scalar::ZERO {
            k.0 = Scalar::random(rng);
        }
        k
    }
}

#[expect(
    clippy::op_ref,
    reason = "operands by reference: no copy of a secret scalar by value"
)]
impl SecretScalar {
    /// `k·P`, the scalar taken by reference (no copy of it travels into rayon closures).
    pub(crate) fn mul(&self, p: &RistrettoPoint) -> RistrettoPoint {
        &self.0 * p
    }
}

impl Drop for SecretScalar {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// What the Fiat–Shamir transcript binds besides the bucket's own points: both earlier
/// messages (whole, so both headers, `X` and `P`) and `K_A` (spec §5.2).
pub(crate) struct Context {
    /// `SHA-256(Msg1)`.
    pub(crate) msg1: [u8; 32],
    /// `SHA-256(Msg2)`.
    pub(crate) msg2: [u8; 32],
    /// `K_A = α·G`, compressed.
    pub(crate) key: [u8; 32],
}

/// `seed = SHA-512(SEED_LABEL ‖ SHA-256(Msg1) ‖ SHA-256(Msg2) ‖ K_A ‖ u32(h) ‖ u64(N) ‖ u ‖ V)`.
fn seed(ctx: &Context, bucket: u32, u: &[[u8; 32]], v: &[[u8; 32]]) -> [u8; 64] {
    let mut d = Sha512::new();
    d.update(SEED_LABEL);
    d.update(ctx.msg1);
    d.update(ctx.msg2);
    d.update(ctx.key);
    d.update(bucket.to_le_bytes());
    d.update((u.len() as u64).to_le_bytes());
    for x in u.iter().chain(v) {
        d.update(x);
    }
    d.finalize().into()
}

/// `e_j = LE(first 16 bytes of SHA-512(seed ‖ "e" ‖ u64(j)))`, a 128-bit integer, `j = 0…N−1`.
fn challenges(seed: &[u8; 64], n: usize) -> Vec<Scalar> {
    (0..n as u64)
        .into_par_iter()
        .map(|j| {
            let mut d = Sha512::new();
            d.update(seed);
            d.update(E_LABEL);
            d.update(j.to_le_bytes());
            let out = d.finalize();
            let mut b = [0u8; 32];
            b[..E_BITS / 8].copy_from_slice(&out[..E_BITS / 8]);
            Scalar::from_bytes_mod_order(b)
        })
        .collect()
}

/// The commitments of the second move, as they are hashed into `v` and sent.
struct Commitments<'a> {
    b: &'a [[u8; 32]],
    a_prime: [u8; 32],
    b_prime: &'a [[u8; 32]],
    c_prime: [u8; 32],
    d_prime: [u8; 32],
    f_prime: [u8; 32],
    k_prime: [u8; 32],
}

/// `v = SHA-512(CHALLENGE_LABEL ‖ seed ‖ B ‖ A' ‖ B' ‖ C' ‖ D' ‖ F' ‖ K')` reduced mod ℓ.
fn challenge(seed: &[u8; 64], c: &Commitments<'_>) -> Scalar {
    let mut d = Sha512::new();
    d.update(CHALLENGE_LABEL);
    d.update(seed);
    for x in c.b {
        d.update(x);
    }
    d.update(c.a_prime);
    for x in c.b_prime {
        d.update(x);
    }
    for x in [c.c_prime, c.d_prime, c.f_prime, c.k_prime] {
        d.update(x);
    }
    Scalar::from_hash(d)
}

fn compress_all(points: &[RistrettoPoint]) -> Vec<[u8; 32]> {
    points.par_iter().map(|p| p.compress().to_bytes()).collect()
}

fn random_scalars<R: CryptoRng + ?Sized>(rng: &mut R, n: usize) -> Zeroizing<Vec<Scalar>> {
    Zeroizing::new((0..n).map(|_| Scalar::random(rng)).collect())
}

/// Proves that `V` is a permutation of `α·P` for the `α` behind `K_A`: draws `π`, returns
/// `V` (compressed, `V_{π(j)} = α·P_j`) and the proof bytes (layout of spec §4.3). `gens` holds
/// at least `h_0 … h_N`. `P` must be non-empty.
pub(crate) fn prove<R: CryptoRng + ?Sized>(
    ctx: &Context,
    bucket: u32,
    p: &[RistrettoPoint],
    alpha: &SecretScalar,
    gens: &[RistrettoPoint],
    rng: &mut R,
) -> (Vec<[u8; 32]>, Vec<u8>) {
    let n = p.len();
    // π as the array pi[j] = π(j); V_{π(j)} = α·P_j.
    let mut pi: Zeroizing<Vec<usize>> = Zeroizing::new((0..n).collect());
    pi.shuffle(rng);
    let mut pi_inv: Zeroizing<Vec<usize>> = Zeroizing::new(vec![0; n]);
    for (j, &i) in pi.iter().enumerate() {
        pi_inv[i] = j;
    }
    let v_points: Vec<RistrettoPoint> = pi_inv.par_iter().map(|&j| alpha.mul(&p[j])).collect();
    let v = compress_all(&v_points);

    // Permutation commitment u_j = r_j·G + h_{π(j)}.
    let r = random_scalars(rng, n);
    let u_points: Vec<RistrettoPoint> = (0..n)
        .into_par_iter()
        .map(|j| RistrettoPoint::mul_base(&r[j]) + gens[1 + pi[j]])
        .collect();
    let u = compress_all(&u_points);

    let seed = seed(ctx, bucket, &u, &v);
    let e = challenges(&seed, n);
    // e'_i = e_{π⁻¹(i)}.
    let e_prime: Zeroizing<Vec<Scalar>> = Zeroizing::new(pi_inv.iter().map(|&j| e[j]).collect());

    // B_i = b_i·G + (∏_{k≤i} e'_k)·h_0, the closed form of B_i = b̂_i·G + e'_i·B_{i−1}.
    let b = random_scalars(rng, n);
    let mut prefix: Zeroizing<Vec<Scalar>> = Zeroizing::new(Vec::with_capacity(n));
    let mut acc = Scalar::ONE;
    for x in e_prime.iter() {
        acc *= x;
        prefix.push(acc);
    }
    acc.zeroize();
    let h0_table = RistrettoBasepointTable::create(&gens[0]);
    let b_points: Vec<RistrettoPoint> = (0..n)
        .into_par_iter()
        .map(|i| RistrettoPoint::mul_base(&b[i]) + &h0_table * &prefix[i])
        .collect();
    let b_bytes = compress_all(&b_points);
    // b̂_i = b_i − e'_i·b_{i−1}, b_0 = 0.
    let b_hat: Zeroizing<Vec<Scalar>> = Zeroizing::new(
        (0..n)
            .map(|i| {
                if i == 0 {
                    b[0]
                } else {
                    b[i] - e_prime[i] * b[i - 1]
                }
            })
            .collect(),
    );

    // Second move.
    let beta = random_scalars(rng, n);
    let eps = random_scalars(rng, n);
    let omega = random_scalars(rng, 4); // ω_A, ω_C, ω_D, ω_α
    let b_prime_points: Vec<RistrettoPoint> = (0..n)
        .into_par_iter()
        .map(|i| {
            let prev = if i == 0 { gens[0] } else { b_points[i - 1] };
            RistrettoPoint::mul_base(&beta[i]) + eps[i] * prev
        })
        .collect();
    let b_prime = compress_all(&b_prime_points);
    let a_prime = RistrettoPoint::mul_base(&omega[0]) + par_msm_ct(&eps, &gens[1..=n]);
    let c_prime = RistrettoPoint::mul_base(&omega[1]);
    let d_prime = RistrettoPoint::mul_base(&omega[2]);
    let f = par_msm_vartime(&e, p);
    let f_prime = par_msm_ct(&eps, &v_points) - omega[3] * f;
    let k_prime = RistrettoPoint::mul_base(&omega[3]);
    let commitments = Commitments {
        b: &b_bytes,
        a_prime: a_prime.compress().to_bytes(),
        b_prime: &b_prime,
        c_prime: c_prime.compress().to_bytes(),
        d_prime: d_prime.compress().to_bytes(),
        f_prime: f_prime.compress().to_bytes(),
        k_prime: k_prime.compress().to_bytes(),
    };
    let ch = challenge(&seed, &commitments);

    // Replies.
    let er = Zeroizing::new(e.iter().zip(r.iter()).map(|(x, y)| x * y).sum::<Scalar>());
    let r_sum = Zeroizing::new(r.iter().sum::<Scalar>());
    let k_a = ch * *er + omega[0];
    let k_c = ch * *r_sum + omega[1];
    let k_d = ch * b[n - 1] + omega[2];
    let k_alpha = ch * alpha.0 + omega[3];
    let mut proof = Vec::with_capacity(proof_len(n));
    for x in u.iter().chain(&b_bytes) {
        proof.extend_from_slice(x);
    }
    proof.extend_from_slice(&commitments.a_prime);
    for x in &b_prime {
        proof.extend_from_slice(x);
    }
    for x in [
        commitments.c_prime,
        commitments.d_prime,
        commitments.f_prime,
        commitments.k_prime,
    ] {
        proof.extend_from_slice(&x);
    }
    proof.extend_from_slice(k_a.as_bytes());
    for i in 0..n {
        proof.extend_from_slice((ch * b_hat[i] + beta[i]).as_bytes());
    }
    proof.extend_from_slice(k_c.as_bytes());
    proof.extend_from_slice(k_d.as_bytes());
    for i in 0..n {
        proof.extend_from_slice((ch * e_prime[i] + eps[i]).as_bytes());
    }
    proof.extend_from_slice(k_alpha.as_bytes());
    (v, proof)
}

/// Constant-time `Σ s_i·P_i` (secret scalars), split over rayon.
fn par_msm_ct(s: &[Scalar], p: &[RistrettoPoint]) -> RistrettoPoint {
    s.par_chunks(MSM_CHUNK)
        .zip(p.par_chunks(MSM_CHUNK))
        .map(|(s, p)| RistrettoPoint::multiscalar_mul(s, p))
        .sum()
}

/// Variable-time `Σ s_i·P_i` (public scalars), split over rayon.
fn par_msm_vartime(s: &[Scalar], p: &[RistrettoPoint]) -> RistrettoPoint {
    s.par_chunks(MSM_CHUNK)
        .zip(p.par_chunks(MSM_CHUNK))
        .map(|(s, p)| RistrettoPoint::vartime_multiscalar_mul(s, p))
        .sum()
}

/// A parsed proof.
struct Proof<'a> {
    u: &'a [[u8; 32]],
    b: &'a [[u8; 32]],
    a_prime: [u8; 32],
    b_prime: &'a [[u8; 32]],
    c_prime: [u8; 32],
    d_prime: [u8; 32],
    f_prime: [u8; 32],
    k_prime: [u8; 32],
    k_a: [u8; 32],
    k_b: &'a [[u8; 32]],
    k_c: [u8; 32],
    k_d: [u8; 32],
    k_e: &'a [[u8; 32]],
    k_alpha: [u8; 32],
}

fn parse(proof: &[u8], n: usize) -> Option<Proof<'_>> {
    if proof.len() != proof_len(n) {
        return None;
    }
    let (records, _) = proof.as_chunks::<32>();
    let (u, rest) = records.split_at(n);
    let (b, rest) = rest.split_at(n);
    let (a_prime, rest) = rest.split_first()?;
    let (b_prime, rest) = rest.split_at(n);
    let [c_prime, d_prime, f_prime, k_prime, k_a, rest @ ..] = rest else {
        return None;
    };
    let (k_b, rest) = rest.split_at(n);
    let [k_c, k_d, rest @ ..] = rest else {
        return None;
    };
    let (k_e, rest) = rest.split_at(n);
    let [k_alpha] = rest else {
        return None;
    };
    Some(Proof {
        u,
        b,
        a_prime: *a_prime,
        b_prime,
        c_prime: *c_prime,
        d_prime: *d_prime,
        f_prime: *f_prime,
        k_prime: *k_prime,
        k_a: *k_a,
        k_b,
        k_c: *k_c,
        k_d: *k_d,
        k_e,
        k_alpha: *k_alpha,
    })
}

fn point(bytes: &[u8; 32], bucket: u32) -> Result<RistrettoPoint, PsiV2Error> {
    CompressedRistretto(*bytes)
        .decompress()
        .ok_or(PsiV2Error::BadProof { bucket })
}

fn points(bytes: &[[u8; 32]], bucket: u32) -> Result<Vec<RistrettoPoint>, PsiV2Error> {
    bytes.par_iter().map(|b| point(b, bucket)).collect()
}

fn scalar(bytes: &[u8; 32], bucket: u32) -> Result<Scalar, PsiV2Error> {
    Option::from(Scalar::from_canonical_bytes(*bytes)).ok_or(PsiV2Error::InvalidScalar { bucket })
}

fn scalars(bytes: &[[u8; 32]], bucket: u32) -> Result<Vec<Scalar>, PsiV2Error> {
    bytes.par_iter().map(|b| scalar(b, bucket)).collect()
}

/// Verifies the proof of bucket `bucket`: `V` (received, decoded to `v_points`, bytes `v`) is a
/// permutation of `α·P` for the `α` of `K_A` (`key`). All equations of spec §5.4 are checked at
/// once as one random linear combination with 128-bit weights drawn from `rng` (the
/// small-exponent batch test of Bellare–Garay–Rabin 1998); a false equation passes with
/// probability at most `2⁻¹²⁸`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn verify<R: CryptoRng + ?Sized>(
    ctx: &Context,
    bucket: u32,
    p: &[RistrettoPoint],
    v: &[[u8; 32]],
    v_points: &[RistrettoPoint],
    key: &RistrettoPoint,
    proof: &[u8],
    gens: &[RistrettoPoint],
    rng: &mut R,
) -> Result<(), PsiV2Error> {
    let n = p.len();
    let bad = PsiV2Error::BadProof { bucket };
    let pr = parse(proof, n).ok_or(PsiV2Error::BadProof { bucket })?;
    let u = points(pr.u, bucket)?;
    let b = points(pr.b, bucket)?;
    let b_prime = points(pr.b_prime, bucket)?;
    let [a_prime, c_prime, d_prime, f_prime, k_prime] =
        [pr.a_prime, pr.c_prime, pr.d_prime, pr.f_prime, pr.k_prime].map(|x| point(&x, bucket));
    let (a_prime, c_prime, d_prime, f_prime, k_prime) =
        (a_prime?, c_prime?, d_prime?, f_prime?, k_prime?);
    let k_b = scalars(pr.k_b, bucket)?;
    let k_e = scalars(pr.k_e, bucket)?;
    let [k_a, k_c, k_d, k_alpha] = [pr.k_a, pr.k_c, pr.k_d, pr.k_alpha].map(|x| scalar(&x, bucket));
    let (k_a, k_c, k_d, k_alpha) = (k_a?, k_c?, k_d?, k_alpha?);

    let seed = seed(ctx, bucket, pr.u, v);
    let e = challenges(&seed, n);
    let ch = challenge(
        &seed,
        &Commitments {
            b: pr.b,
            a_prime: pr.a_prime,
            b_prime: pr.b_prime,
            c_prime: pr.c_prime,
            d_prime: pr.d_prime,
            f_prime: pr.f_prime,
            k_prime: pr.k_prime,
        },
    );
    let e_product: Scalar = e.iter().product();

    // Batch weights: λ1 (A), λ2_i (B_i chain), λ3 (C), λ4 (D), λ5 (F), λ6 (K_A).
    let mut seed_bytes = [0u8; 32];
    rng.fill_bytes(&mut seed_bytes);
    let mut wrng = ChaCha20Rng::from_seed(seed_bytes);
    let mut weight = || {
        let mut w = [0u8; 32];
        wrng.fill_bytes(&mut w[..16]);
        Scalar::from_bytes_mod_order(w)
    };
    let [l1, l3, l4, l5, l6] = [weight(), weight(), weight(), weight(), weight()];
    let l2: Vec<Scalar> = (0..n).map(|_| weight()).collect();

    let mut sc: Vec<Scalar> = Vec::with_capacity(6 * n + 8);
    let mut pt: Vec<RistrettoPoint> = Vec::with_capacity(6 * n + 8);
    // u_j: λ1·v·e_j + λ3·v.
    let l1v = l1 * ch;
    let l3v = l3 * ch;
    sc.par_extend(e.par_iter().map(|ej| l1v * ej + l3v));
    pt.extend_from_slice(&u);
    // h_i (i = 1…N): −λ1·k_{E,i} − λ3·v.
    sc.par_extend(k_e.par_iter().map(|k| -(l1 * k) - l3v));
    pt.extend_from_slice(&gens[1..=n]);
    // B_i: λ2_i·v − λ2_{i+1}·k_{E,i+1}; B_N also + λ4·v.
    sc.par_extend((0..n).into_par_iter().map(|i| {
        if i + 1 < n {
            l2[i] * ch - l2[i + 1] * k_e[i + 1]
        } else {
            l2[i] * ch + l4 * ch
        }
    }));
    pt.extend_from_slice(&b);
    // B'_i: λ2_i.
    sc.extend_from_slice(&l2);
    pt.extend_from_slice(&b_prime);
    // V_i: λ5·k_{E,i}.
    sc.par_extend(k_e.par_iter().map(|k| l5 * k));
    pt.extend_from_slice(v_points);
    // P_j: −λ5·k_α·e_j.
    let l5ka = l5 * k_alpha;
    sc.par_extend(e.par_iter().map(|ej| -(l5ka * ej)));
    pt.extend_from_slice(p);
    // h_0: −λ2_1·k_{E,1} − λ4·v·∏e.
    sc.push(-(l2[0] * k_e[0]) - l4 * ch * e_product);
    pt.push(gens[0]);
    // G: −(λ1·k_A + Σ λ2_i·k_{B,i} + λ3·k_C + λ4·k_D + λ6·k_α).
    let l2kb: Scalar = l2.par_iter().zip(k_b.par_iter()).map(|(l, k)| l * k).sum();
    sc.push(-(l1 * k_a + l2kb + l3 * k_c + l4 * k_d + l6 * k_alpha));
    pt.push(G);
    for (s, q) in [
        (l1, a_prime),
        (l3, c_prime),
        (l4, d_prime),
        (-l5, f_prime),
        (l6, k_prime),
        (l6 * ch, *key),
    ] {
        sc.push(s);
        pt.push(q);
    }
    if par_msm_vartime(&sc, &pt).is_identity() {
        Ok(())
    } else {
        Err(bad)
    }
}
