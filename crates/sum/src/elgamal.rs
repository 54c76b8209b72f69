//! Exponential ElGamal on Ristretto255, composed from curve25519-dalek (spec §3).
//!
//! `Enc_K(v; r) = (r·G, v·G + r·K)`. The holder knows `k` (`K = k·G`), so it encrypts with two
//! fixed-base multiplications on dalek's basepoint table: `R = r·G`, `V = (v + k·r)·G`. With
//! squares a second key `K₂ = k₂·G` shares `R`: `V₂ = (v² + k₂·r)·G` (randomness re-use across
//! two keys, secure for ElGamal: Bellare, Boldyreva, Kurosawa and Staddon, "Multirecipient
//! encryption schemes", IEEE Trans. IT 53(11), 2007, §5).

use std::sync::LazyLock;

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand::CryptoRng;
use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::SumError;
use crate::error::PointRole;

/// Items handled per batch: one batched inversion per chunk, and the unit of parallel work.
pub(crate) const CHUNK: usize = 256;

/// A uniformly random non-zero scalar.
pub(crate) fn random_nonzero_scalar<R: CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
    loop {
        let k = Scalar::random(rng);
        if k != Scalar::ZERO {
            return k;
        }
    }
}

/// Decodes a received point: canonical encoding, not the identity.
pub(crate) fn decode_point(bytes: &[u8], role: PointRole) -> Result<RistrettoPoint, SumError> {
    let p = CompressedRistretto::from_slice(bytes)
        .ok()
        .and_then(|c| c.decompress())
        .ok_or(SumError::InvalidPoint { role })?;
    if p.is_identity() {
        return Err(SumError::IdentityPoint { role });
    }
    Ok(p)
}

/// The holder's per-run secret keys `k` (and `k₂` with squares); zeroized on drop.
pub(crate) struct SecretKeys {
    pub(crate) keys: Zeroizing<Vec<Scalar>>,
}

impl SecretKeys {
    /// `components` fresh uniform non-zero keys.
    pub(crate) fn random<R: CryptoRng + ?Sized>(components: usize, rng: &mut R) -> SecretKeys {
        SecretKeys {
            keys: Zeroizing::new(
                (0..components)
                    .map(|_| random_nonzero_scalar(rng))
                    .collect(),
            ),
        }
    }

    /// The public keys `K = k·G` (and `K₂`), encoded.
    pub(crate) fn public(&self) -> Vec<[u8; 32]> {
        self.keys
            .iter()
            .map(|k| RistrettoPoint::mul_base(k).compress().to_bytes())
            .collect()
    }
}

/// Writes one ciphertext record `R ‖ V [‖ V₂]` per value into `out` (records of
/// `32·(1 + components)` bytes): `values[i]` under `keys` with randomness `r[i]`.
///
/// Work is the same for every value (constant-time scalar arithmetic and fixed-base
/// multiplications); the parallel split depends only on the number of values.
pub(crate) fn encrypt_into(keys: &SecretKeys, values: &[u32], r: &[Scalar], out: &mut [u8]) {
    let width = 32 * (1 + keys.keys.len());
    out.par_chunks_mut(width * CHUNK)
        .zip(values.par_chunks(CHUNK).zip(r.par_chunks(CHUNK)))
        .for_each(|(out, (values, r))| {
            let mut points = Vec::with_capacity(values.len() * (1 + keys.keys.len()));
            for (&v, r) in values.iter().zip(r) {
                let v = Scalar::from(v);
                // The doubling inside double_and_compress_batch undoes the halving.
                points.push(RistrettoPoint::mul_base(&half(r)));
                for (j, k) in keys.keys.iter().enumerate() {
                    let m = if j == 0 { v } else { v * v };
                    let exponent = Zeroizing::new(half(&(m + k * r)));
                    points.push(RistrettoPoint::mul_base(&exponent));
                }
            }
            let compressed = RistrettoPoint::double_and_compress_batch(&points);
            for (c, dst) in compressed.iter().zip(out.chunks_exact_mut(32)) {
                dst.copy_from_slice(c.as_bytes());
            }
            debug_assert_eq!(out.len(), width * values.len());
        });
}

/// `k / 2 (mod ℓ)`: multiplying by it and then doubling gives exactly `k·P`.
pub(crate) fn half(k: &Scalar) -> Scalar {
    k * *INV2
}

/// `2⁻¹ mod ℓ`, computed once (a scalar inversion costs as much as a hundred multiplications).
static INV2: LazyLock<Scalar> = LazyLock::new(|| Scalar::from(2u8).invert());
