//! Domain-separated hashing to Ristretto255 (spec §3).
//!
//! `dst = "tandem/psi-ca/v2" ‖ 0x00 ‖ agreement_id[32] ‖ u8(len(join_key)) ‖ join_key`;
//! items `H(x) = from_hash(SHA-512(dst ‖ 0x01 ‖ x[32]))`; seeds
//! `W_{g,h,s} = from_hash(SHA-512(dst ‖ 0x03 ‖ run_id[16] ‖ u32(g) ‖ u32(h) ‖ u32(s)))`;
//! the shuffle argument's independent generators
//! `h_i = from_hash(SHA-512("tandem/psi-ca-v2/generator" ‖ u64(i)))`, `i ≥ 0`, shared by every run.

use curve25519_dalek::ristretto::RistrettoPoint;
use rayon::prelude::*;
use sha2::{Digest, Sha512};

use crate::{PsiV2Error, RunParams};

/// Protocol label at the start of `dst`.
pub(crate) const LABEL: &[u8] = b"tandem/psi-ca/v2";
/// Tag byte of item hashes.
pub(crate) const ITEM_TAG: u8 = 0x01;
/// Tag byte of seed hashes.
pub(crate) const SEED_TAG: u8 = 0x03;
/// Prefix of the generators of the shuffle argument.
pub(crate) const GENERATOR_LABEL: &[u8] = b"tandem/psi-ca-v2/generator";

/// The hash domain of one agreement, join key and run.
#[derive(Clone)]
pub(crate) struct Domain {
    prefix: Sha512,
    run_id: [u8; 16],
}

impl Domain {
    /// The domain of `params` (validated: the join key fits a length byte).
    pub(crate) fn new(params: &RunParams) -> Result<Domain, PsiV2Error> {
        let len = u8::try_from(params.join_key.len())
            .map_err(|_| PsiV2Error::InvalidParams("join key longer than 255 bytes".into()))?;
        let mut prefix = Sha512::new();
        prefix.update(LABEL);
        prefix.update([0x00]);
        prefix.update(params.agreement_id);
        prefix.update([len]);
        prefix.update(params.join_key.as_bytes());
        Ok(Domain {
            prefix,
            run_id: params.run_id,
        })
    }

    /// `H(x)`.
    pub(crate) fn item(&self, digest: &[u8; 32]) -> RistrettoPoint {
        let mut h = self.prefix.clone();
        h.update([ITEM_TAG]);
        h.update(digest);
        RistrettoPoint::from_hash(h)
    }

    /// `W_{g,h,s}`.
    pub(crate) fn seed(&self, g: u32, h: u32, s: u32) -> RistrettoPoint {
        let mut d = self.prefix.clone();
        d.update([SEED_TAG]);
        d.update(self.run_id);
        d.update(g.to_le_bytes());
        d.update(h.to_le_bytes());
        d.update(s.to_le_bytes());
        RistrettoPoint::from_hash(d)
    }
}

/// `h_0, …, h_n` (n + 1 generators), in parallel.
pub(crate) fn generators(n: usize) -> Vec<RistrettoPoint> {
    (0..=n as u64)
        .into_par_iter()
        .map(|i| {
            let mut d = Sha512::new();
            d.update(GENERATOR_LABEL);
            d.update(i.to_le_bytes());
            RistrettoPoint::from_hash(d)
        })
        .collect()
}
