//! Bounded discrete logarithm in Ristretto255 by baby-step giant-step (Shanks, 1971), with the
//! baby-step table built once per size and cached (spec §4.4).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rayon::prelude::*;

use crate::SumError;
use crate::elgamal::CHUNK;

/// The table key of a point `P`: the first 8 bytes of `enc(2·P)` (what
/// [`RistrettoPoint::double_and_compress_batch`] gives). Candidates are verified with a full
/// point comparison, so a key collision can cost time, never a wrong answer.
fn key(encoding: &[u8; 32]) -> u64 {
    let mut k = [0u8; 8];
    k.copy_from_slice(&encoding[..8]);
    u64::from_le_bytes(k)
}

/// Baby-step giant-step solver for `x` with `x·G = P`, `0 ≤ x ≤ bound`.
///
/// The table holds the `M = 2^baby_bits` baby steps `i·G`; a search takes at most
/// `⌊bound / M⌋ + 1` giant steps (one point addition and an amortised batched compression
/// each), whether or not it succeeds. Memory is about 20 bytes per baby step (≈ 1.3 MB at the
/// default 16 bits, the 16/16 split Solana's zk-sdk uses for 32-bit values).
pub struct DiscreteLog {
    baby_bits: u32,
    table: HashMap<u64, u32>,
    /// `M·G`.
    giant: RistrettoPoint,
}

impl std::fmt::Debug for DiscreteLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscreteLog")
            .field("baby_bits", &self.baby_bits)
            .finish_non_exhaustive()
    }
}

impl DiscreteLog {
    /// The default table size: `2^16` baby steps.
    pub const DEFAULT_BABY_BITS: u32 = 16;
    /// Smallest supported table size, in bits.
    pub const MIN_BABY_BITS: u32 = 4;
    /// Largest supported table size, in bits (`2^24` steps, ≈ 340 MB).
    pub const MAX_BABY_BITS: u32 = 24;

    /// Builds the table of `2^baby_bits` baby steps (`InvalidParams` outside
    /// [`Self::MIN_BABY_BITS`]`..=`[`Self::MAX_BABY_BITS`]). Prefer [`Self::cached`].
    pub fn new(baby_bits: u32) -> Result<DiscreteLog, SumError> {
        if !(Self::MIN_BABY_BITS..=Self::MAX_BABY_BITS).contains(&baby_bits) {
            return Err(SumError::InvalidParams(format!(
                "baby-step table of 2^{baby_bits} entries (supported: 2^{}..=2^{})",
                Self::MIN_BABY_BITS,
                Self::MAX_BABY_BITS
            )));
        }
        let m = 1u32 << baby_bits;
        let g = RISTRETTO_BASEPOINT_POINT;
        let keys: Vec<u64> = (0..m)
            .into_par_iter()
            .step_by(CHUNK)
            .flat_map_iter(|start| {
                let end = (start + CHUNK as u32).min(m);
                let mut p = RistrettoPoint::mul_base(&Scalar::from(start));
                let mut points = Vec::with_capacity((end - start) as usize);
                for _ in start..end {
                    points.push(p);
                    p += g;
                }
                RistrettoPoint::double_and_compress_batch(&points)
                    .into_iter()
                    .map(|c| key(c.as_bytes()))
            })
            .collect();
        let mut table = HashMap::with_capacity(keys.len());
        for (i, k) in keys.into_iter().enumerate() {
            // A repeated key keeps the first index; the lost one is found by no search
            // (a failure, never a wrong answer), with probability about 2^(2·bits − 64).
            table.entry(k).or_insert(i as u32);
        }
        Ok(DiscreteLog {
            baby_bits,
            table,
            giant: RistrettoPoint::mul_base(&Scalar::from(m)),
        })
    }

    /// The shared table of `2^baby_bits` baby steps, built on first use and kept for the life
    /// of the process.
    pub fn cached(baby_bits: u32) -> Result<Arc<DiscreteLog>, SumError> {
        static CACHE: LazyLock<Mutex<HashMap<u32, Arc<DiscreteLog>>>> =
            LazyLock::new(Mutex::default);
        if let Some(t) = CACHE.lock().ok().and_then(|c| c.get(&baby_bits).cloned()) {
            return Ok(t);
        }
        let table = Arc::new(DiscreteLog::new(baby_bits)?);
        // Two threads may build the table at once; both hand out the one that went in first.
        match CACHE.lock() {
            Ok(mut cache) => Ok(Arc::clone(cache.entry(baby_bits).or_insert(table))),
            Err(_) => Ok(table),
        }
    }

    /// Table size in bits.
    pub fn baby_bits(&self) -> u32 {
        self.baby_bits
    }

    /// Giant steps a search up to `bound` takes at most: `⌊bound / 2^baby_bits⌋ + 1`.
    pub fn giant_steps(&self, bound: u64) -> u64 {
        (bound >> self.baby_bits) + 1
    }

    /// The `x` in `[0, bound]` with `x·G = p`, or `None` if there is none, after at most
    /// [`Self::giant_steps`]`(bound)` giant steps.
    pub fn solve(&self, p: &RistrettoPoint, bound: u64) -> Option<u64> {
        let m = 1u64 << self.baby_bits;
        let steps = self.giant_steps(bound);
        let mut current = *p;
        let mut j = 0u64;
        let mut points = Vec::with_capacity(CHUNK);
        while j < steps {
            let batch = (steps - j).min(CHUNK as u64);
            points.clear();
            for _ in 0..batch {
                points.push(current);
                current -= self.giant;
            }
            let compressed = RistrettoPoint::double_and_compress_batch(&points);
            for (offset, c) in compressed.iter().enumerate() {
                let Some(&i) = self.table.get(&key(c.as_bytes())) else {
                    continue;
                };
                let x = (j + offset as u64) * m + u64::from(i);
                if x <= bound && RistrettoPoint::mul_base(&Scalar::from(x)) == *p {
                    return Some(x);
                }
            }
            j += batch;
        }
        None
    }
}
