//! The local inputs of a run: item digests, or their hashes to the group computed ahead
//! (spec §3.1).

use std::borrow::Cow;

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::ec::{CHUNK, StreamKey};
use crate::hash::{Domain, dst};
use crate::{PsiError, RunParams};

/// A party's items for one run, bucket by bucket: either the 32-byte item digests `x`, hashed
/// to the group during the run, or the compressed `enc(H(x))` of the same digests made ahead by
/// [`hash_to_points`] for the run's hash domain (a node's cache). Both give the same messages
/// byte for byte; the second replaces each item's `hash_from_bytes` (SHA-512, two Elligator
/// maps, an addition) by one decompression. A `Vec`, a `&Vec`, an array or a slice of buckets
/// converts into digests.
#[derive(Clone, Debug)]
pub struct Items<'a> {
    buckets: Cow<'a, [Vec<[u8; 32]>]>,
    hashed: bool,
}

impl<'a> Items<'a> {
    /// Item digests `x` per bucket, hashed to the group during the run.
    pub fn digests(buckets: impl Into<Cow<'a, [Vec<[u8; 32]>]>>) -> Items<'a> {
        Items {
            buckets: buckets.into(),
            hashed: false,
        }
    }

    /// Compressed `enc(H(x))` per bucket, from [`hash_to_points`] with the run's agreement id
    /// and join key. An entry that does not decompress fails the run with
    /// [`PsiError::CorruptHashedItem`]; an entry of another domain does not match (the run's
    /// counts are wrong, not its privacy: the points are public functions of the digests).
    pub fn hashed(buckets: impl Into<Cow<'a, [Vec<[u8; 32]>]>>) -> Items<'a> {
        Items {
            buckets: buckets.into(),
            hashed: true,
        }
    }

    /// The entries per bucket (digests or compressed points).
    pub fn buckets(&self) -> &[Vec<[u8; 32]>] {
        &self.buckets
    }

    /// True if the entries are precomputed points ([`Items::hashed`]).
    pub fn is_hashed(&self) -> bool {
        self.hashed
    }

    /// An owned copy (no copy if already owned).
    pub fn into_owned(self) -> Items<'static> {
        Items {
            buckets: Cow::Owned(self.buckets.into_owned()),
            hashed: self.hashed,
        }
    }
}

impl<'a> From<&'a [Vec<[u8; 32]>]> for Items<'a> {
    fn from(buckets: &'a [Vec<[u8; 32]>]) -> Items<'a> {
        Items::digests(buckets)
    }
}

impl<'a> From<&'a Vec<Vec<[u8; 32]>>> for Items<'a> {
    fn from(buckets: &'a Vec<Vec<[u8; 32]>>) -> Items<'a> {
        Items::digests(buckets.as_slice())
    }
}

impl<'a, const N: usize> From<&'a [Vec<[u8; 32]>; N]> for Items<'a> {
    fn from(buckets: &'a [Vec<[u8; 32]>; N]) -> Items<'a> {
        Items::digests(buckets.as_slice())
    }
}

impl From<Vec<Vec<[u8; 32]>>> for Items<'static> {
    fn from(buckets: Vec<Vec<[u8; 32]>>) -> Items<'static> {
        Items::digests(buckets)
    }
}

/// The compressed `enc(H(x))` of every digest in `digests`, in order, for the hash domain of
/// `params` (its agreement id and join key; the run id and noise are not used): the entries of
/// [`Items::hashed`]. Runs in parallel chunks. Errors: [`PsiError::InvalidParams`] for a join
/// key longer than 255 bytes.
pub fn hash_to_points(params: &RunParams, digests: &[[u8; 32]]) -> Result<Vec<[u8; 32]>, PsiError> {
    let domain = Domain::new(params)?;
    let mut out = vec![[0u8; 32]; digests.len()];
    out.par_chunks_mut(CHUNK)
        .zip(digests.par_chunks(CHUNK))
        .for_each(|(out, digests)| {
            for (o, d) in out.iter_mut().zip(digests) {
                *o = domain.item(d).compress().to_bytes();
            }
        });
    Ok(out)
}

/// `SHA-256(dst)` of `params` (spec §3): names the hash domain of [`hash_to_points`]' entries,
/// so a cache of them can be keyed by it (two runs with the same agreement and join key share
/// it). Errors: [`PsiError::InvalidParams`] for a join key longer than 255 bytes.
pub fn hash_domain_id(params: &RunParams) -> Result<[u8; 32], PsiError> {
    Ok(Sha256::digest(dst(&params.agreement_id, &params.join_key)?).into())
}

/// The group elements of one run's items and junk slots.
///
/// With precomputed points, an item costs one decompression, so junk must too: the junk points
/// `H(r_j)` of every junk index the noise can reach (`2T` per bucket, spec §4.4) are hashed and
/// compressed up front, whatever was drawn, and each junk slot then decompresses its entry like
/// an item. The run's time depends on the draws no more than with digests.
pub(crate) struct Hasher {
    domain: Domain,
    hashed: bool,
    junk: Vec<[u8; 32]>,
}

impl Hasher {
    /// The hasher for `items` of a run in `domain`, with junk from `junk_key`; `max_junk` is the
    /// largest total junk count the noise can give (`2T · buckets`).
    pub(crate) fn new(
        domain: Domain,
        items: &Items<'_>,
        junk_key: &StreamKey,
        max_junk: u64,
    ) -> Hasher {
        let junk = if items.hashed {
            (0..max_junk)
                .into_par_iter()
                .map(|j| domain.item(&junk_key.junk_input(j)).compress().to_bytes())
                .collect()
        } else {
            Vec::new()
        };
        Hasher {
            domain,
            hashed: items.hashed,
            junk,
        }
    }

    /// The run's hash domain.
    pub(crate) fn domain(&self) -> &Domain {
        &self.domain
    }

    /// `H(x)` of the item with entry `entry` at `(bucket, index)`.
    pub(crate) fn item(
        &self,
        entry: &[u8; 32],
        (bucket, index): (u32, usize),
    ) -> Result<RistrettoPoint, PsiError> {
        if self.hashed {
            CompressedRistretto(*entry)
                .decompress()
                .ok_or(PsiError::CorruptHashedItem { bucket, index })
        } else {
            Ok(self.domain.item(entry))
        }
    }

    /// `H(r_j)` of junk slot `j`.
    pub(crate) fn junk(&self, junk_key: &StreamKey, j: u64) -> RistrettoPoint {
        let precomputed = usize::try_from(j)
            .ok()
            .and_then(|j| self.junk.get(j))
            .and_then(|c| CompressedRistretto(*c).decompress());
        match precomputed {
            Some(p) => p,
            None => self.domain.item(&junk_key.junk_input(j)),
        }
    }
}
