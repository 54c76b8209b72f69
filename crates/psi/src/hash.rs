//! Domain-separated hashing of digests to Ristretto255 (spec §3).
//!
//! `dst = "tandem/psi-ca/v1" ‖ 0x00 ‖ agreement_id[32] ‖ u8(len(join_key)) ‖ join_key`,
//! `H(x) = hash_from_bytes::<Sha512>(dst ‖ 0x01 ‖ x[32])`,
//! `D = hash_from_bytes::<Sha512>(dst ‖ 0x02 ‖ "dummy" ‖ run_id[16])`.
//! The tag byte after `dst` differs, so an item input never equals the dummy input.

use curve25519_dalek::ristretto::RistrettoPoint;
use sha2::{Digest, Sha512};

use crate::{PsiError, RunParams};

/// Protocol label at the start of every hash input.
pub(crate) const LABEL: &[u8] = b"tandem/psi-ca/v1";
/// Tag byte after `dst` for item hashes.
pub(crate) const ITEM_TAG: u8 = 0x01;
/// Tag byte after `dst` for the dummy base.
pub(crate) const DUMMY_TAG: u8 = 0x02;
/// Label of the dummy base, after its tag byte.
pub(crate) const DUMMY_LABEL: &[u8] = b"dummy";

/// The hash domain of one agreement and join key: a SHA-512 state that has absorbed `dst`,
/// cloned for every item so `dst` is hashed once.
#[derive(Clone)]
pub(crate) struct Domain {
    prefix: Sha512,
}

impl Domain {
    /// The domain of `params` (fails if the join key is longer than 255 bytes).
    pub(crate) fn new(params: &RunParams) -> Result<Domain, PsiError> {
        let dst = dst(&params.agreement_id, &params.join_key)?;
        Ok(Domain {
            prefix: Sha512::new_with_prefix(&dst),
        })
    }

    /// `H(x)`, the group element of item digest `x`.
    pub(crate) fn item(&self, digest: &[u8; 32]) -> RistrettoPoint {
        let mut h = self.prefix.clone();
        h.update([ITEM_TAG]);
        h.update(digest);
        RistrettoPoint::from_hash(h)
    }

    /// `D`, the run's dummy base.
    pub(crate) fn dummy_base(&self, run_id: &[u8; 16]) -> RistrettoPoint {
        let mut h = self.prefix.clone();
        h.update([DUMMY_TAG]);
        h.update(DUMMY_LABEL);
        h.update(run_id);
        RistrettoPoint::from_hash(h)
    }
}

/// The domain-separation prefix `dst` as bytes.
pub(crate) fn dst(agreement_id: &[u8; 32], join_key: &str) -> Result<Vec<u8>, PsiError> {
    let len = u8::try_from(join_key.len())
        .map_err(|_| PsiError::InvalidParams("join key longer than 255 bytes".into()))?;
    let mut out = Vec::with_capacity(LABEL.len() + 34 + join_key.len());
    out.extend_from_slice(LABEL);
    out.push(0x00);
    out.extend_from_slice(agreement_id);
    out.push(len);
    out.extend_from_slice(join_key.as_bytes());
    Ok(out)
}
