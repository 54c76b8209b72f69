//! Group operations shared by both roles, on flat buffers and in batches.

use std::sync::LazyLock;

use chacha20::ChaCha20Rng;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoBasepointTable, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand::{CryptoRng, Rng, SeedableRng};
use rayon::prelude::*;
use zeroize::{Zeroize, Zeroizing};

use crate::PsiError;

/// Points handled per batch: one batched inversion per chunk, and the unit of parallel work.
pub(crate) const CHUNK: usize = 256;

/// A secret scalar: `α`, `β`, their halves, an injected slot's `r`. Neither `Copy` nor `Clone`,
/// wiped on drop, and it multiplies by reference, so no copy of it travels into rayon closures
/// (spec §8.6). dalek's own temporaries inside a multiplication are out of its reach.
pub(crate) struct SecretScalar(Scalar);

#[expect(
    clippy::op_ref,
    reason = "operands by reference: no copy of a secret scalar by value"
)]
impl SecretScalar {
    /// A uniformly random non-zero scalar: `Scalar::random` (64 bytes from `rng`, reduced mod
    /// `ℓ`), drawn again if zero.
    pub(crate) fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> SecretScalar {
        let mut k = SecretScalar(Scalar::random(rng));
        while k.0 == Scalar::ZERO {
            k.0 = Scalar::random(rng);
        }
        k
    }

    /// Takes ownership of a given scalar (test vectors).
    #[cfg(test)]
    pub(crate) fn new(k: Scalar) -> SecretScalar {
        SecretScalar(k)
    }

    /// `k / 2 (mod ℓ)`: multiplying by it and then doubling (inside
    /// [`RistrettoPoint::double_and_compress_batch`]) gives exactly `k·P`.
    pub(crate) fn half(&self) -> SecretScalar {
        SecretScalar(&self.0 * &*INV2)
    }

    /// `k·P`.
    pub(crate) fn mul(&self, p: &RistrettoPoint) -> RistrettoPoint {
        &self.0 * p
    }

    /// `k·B` for the base point of `table`.
    pub(crate) fn mul_table(&self, table: &RistrettoBasepointTable) -> RistrettoPoint {
        table * &self.0
    }
}

impl Drop for SecretScalar {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The halved scalars `(r1/2, r_A/2)` of one injected slot (spec §4.2 step 5), drawn from
/// `rng` (`r1`, then `r2`): `r_A = r1` if `matching`, else `r2`. The choice is arithmetic,
/// `r2 + m·(r1 − r2)` with `m ∈ {0, 1}`, so the work does not depend on `K_c`; every
/// intermediate that encodes the choice is wiped.
#[expect(
    clippy::op_ref,
    reason = "operands by reference: no copy of a secret scalar by value"
)]
pub(crate) fn injected_halves<R: CryptoRng + ?Sized>(
    rng: &mut R,
    matching: bool,
) -> (SecretScalar, SecretScalar) {
    let r1 = SecretScalar::random(rng);
    let r2 = SecretScalar::random(rng);
    let m = Zeroizing::new(Scalar::from(u64::from(matching)));
    let difference = Zeroizing::new(&r1.0 - &r2.0);
    let product = Zeroizing::new(&*m * &*difference);
    let chosen = SecretScalar(&r2.0 + &*product);
    (r1.half(), chosen.half())
}

/// A key for independent ChaCha20 generators, drawn once from the caller's RNG, so that work
/// split over rayon threads draws the same values whatever the thread count or schedule.
/// `stream(i)` is ChaCha20 under this key with stream number `i` (RFC 7539's cipher with a
/// 64-bit nonce, as `ChaCha20Rng` of `chacha20` 0.10): one generator per slot index (spec §4.4).
/// The key and the generators' states are wiped on drop.
pub(crate) struct StreamKey(Zeroizing<[u8; 32]>);

impl StreamKey {
    /// Draws a key: 32 bytes from `rng`.
    pub(crate) fn draw<R: CryptoRng + ?Sized>(rng: &mut R) -> StreamKey {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *key);
        StreamKey(key)
    }

    /// The junk input `r` of junk slot `index`: the first 32 bytes of its stream.
    pub(crate) fn junk_input(&self, index: u64) -> Zeroizing<[u8; 32]> {
        let mut r = Zeroizing::new([0u8; 32]);
        self.stream(index).fill_bytes(&mut *r);
        r
    }

    /// The generator of slot `index`.
    pub(crate) fn stream(&self, index: u64) -> ChaCha20Rng {
        let mut rng = ChaCha20Rng::from_seed(*self.0);
        rng.set_stream(index);
        rng
    }
}

/// `2⁻¹ mod ℓ`, computed once (a scalar inversion costs as much as a hundred multiplications).
static INV2: LazyLock<Scalar> = LazyLock::new(|| Scalar::from(2u8).invert());

/// Writes the first `W` bytes of `compress(2·P)` for every point into consecutive `W`-byte
/// records of `out`.
pub(crate) fn write_doubled<const W: usize>(points: &[RistrettoPoint], out: &mut [u8]) {
    let compressed = RistrettoPoint::double_and_compress_batch(points);
    for (c, dst) in compressed.iter().zip(out.chunks_exact_mut(W)) {
        dst.copy_from_slice(&c.as_bytes()[..W]);
    }
}

/// Why a received point was refused.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PointFault {
    /// Not a canonical encoding of a group element.
    Invalid,
    /// The identity element.
    Identity,
}

impl PointFault {
    /// The typed error for a point at `(bucket, index)`.
    pub(crate) fn at(self, (bucket, index): (u32, usize)) -> PsiError {
        match self {
            PointFault::Invalid => PsiError::InvalidPoint { bucket, index },
            PointFault::Identity => PsiError::IdentityPoint { bucket, index },
        }
    }
}

/// Decodes a received point: canonical encoding, not the identity.
pub(crate) fn decode_point(bytes: &[u8; 32]) -> Result<RistrettoPoint, PointFault> {
    let p = CompressedRistretto(*bytes)
        .decompress()
        .ok_or(PointFault::Invalid)?;
    if p.is_identity() {
        return Err(PointFault::Identity);
    }
    Ok(p)
}

/// Flat index of an entry of `flat` that repeats an earlier entry (or equals `extra`), if any.
/// Sorts a copy, so the work is `O(n log n)` whatever the input (no hash flooding).
pub(crate) fn find_duplicate<const W: usize>(
    flat: &[[u8; W]],
    extra: Option<&[u8; W]>,
) -> Option<usize> {
    let mut sorted: Vec<[u8; W]> = Vec::with_capacity(flat.len() + 1);
    sorted.extend_from_slice(flat);
    sorted.extend(extra.copied());
    sorted.par_sort_unstable();
    let dup = sorted.par_windows(2).find_first(|w| w[0] == w[1])?[0];
    let mut seen = extra == Some(&dup);
    for (i, v) in flat.iter().enumerate() {
        if *v == dup {
            if seen {
                return Some(i);
            }
            seen = true;
        }
    }
    None
}
