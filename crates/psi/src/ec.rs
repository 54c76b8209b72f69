//! Group operations shared by both roles, on flat buffers and in batches.

use std::sync::LazyLock;

use chacha20::ChaCha20Rng;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand::{CryptoRng, SeedableRng};
use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::PsiError;

/// Points handled per batch: one batched inversion per chunk, and the unit of parallel work.
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

    /// The generator of slot `index`.
    pub(crate) fn stream(&self, index: u64) -> ChaCha20Rng {
        let mut rng = ChaCha20Rng::from_seed(*self.0);
        rng.set_stream(index);
        rng
    }
}

/// `k / 2 (mod ℓ)`: multiplying by it and then doubling (inside
/// [`RistrettoPoint::double_and_compress_batch`]) gives exactly `k·P`.
pub(crate) fn half(k: &Scalar) -> Scalar {
    k * *INV2
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
