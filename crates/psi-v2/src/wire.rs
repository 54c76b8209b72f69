//! Message framing (spec §4): the binding header and a bounded reader. Integers little-endian.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::traits::IsIdentity;
use sha2::{Digest, Sha256};
use tandem_dp::ShiftedLaplace;

use crate::{PsiV2Error, RunParams};

/// First four bytes of every `psi-ca-v2` message.
pub const MAGIC: [u8; 4] = *b"TPS2";
/// Protocol version byte.
pub const VERSION: u8 = 2;

/// Type byte of Msg1 (query, A → B).
pub const MSG1: u8 = 1;
/// Type byte of Msg2 (list, B → A).
pub const MSG2: u8 = 2;
/// Type byte of Msg3 (evaluation and proofs, A → B).
pub const MSG3: u8 = 3;
/// Type byte of Msg4 (noised counts, B → A).
pub const MSG4: u8 = 4;

/// `SHA-256` of a whole message, as the next message carries it.
pub(crate) fn digest(msg: &[u8]) -> [u8; 32] {
    Sha256::digest(msg).into()
}

/// Appends the header of a message of type `t` for `params` (validated).
pub(crate) fn encode_header(params: &RunParams, t: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(t);
    out.extend_from_slice(&params.agreement_id);
    out.extend_from_slice(&params.run_id);
    out.extend_from_slice(&params.querier_buckets.to_le_bytes());
    out.extend_from_slice(&params.responder_buckets.to_le_bytes());
    // validate() guarantees the length fits a byte.
    out.push(params.join_key.len() as u8);
    out.extend_from_slice(params.join_key.as_bytes());
    for dist in [
        &params.querier_bucket_noise,
        &params.querier_cell_noise,
        &params.responder_bucket_noise,
    ] {
        out.extend_from_slice(&dist.scale.to_bits().to_le_bytes());
        out.extend_from_slice(&dist.offset.to_le_bytes());
    }
    out.extend_from_slice(&params.cell_scale.to_bits().to_le_bytes());
}

/// Reads a header and checks it is a type-`t` message of the session `params`.
pub(crate) fn check_header(
    r: &mut Reader<'_>,
    params: &RunParams,
    t: u8,
) -> Result<(), PsiV2Error> {
    if r.array::<4>()? != MAGIC || r.u8()? != VERSION {
        return Err(PsiV2Error::BadMagic);
    }
    let found = r.u8()?;
    if found != t {
        return Err(PsiV2Error::WrongMessageType { expected: t, found });
    }
    let wrong = |field| Err(PsiV2Error::WrongBinding { field });
    if r.array::<32>()? != params.agreement_id {
        return wrong("agreement_id");
    }
    if r.array::<16>()? != params.run_id {
        return wrong("run_id");
    }
    if r.u32()? != params.querier_buckets {
        return wrong("querier_buckets");
    }
    if r.u32()? != params.responder_buckets {
        return wrong("responder_buckets");
    }
    let len = usize::from(r.u8()?);
    let key = r.take(len)?;
    if std::str::from_utf8(key).is_err() {
        return Err(PsiV2Error::MalformedHeader("join key is not UTF-8"));
    }
    if key != params.join_key.as_bytes() {
        return wrong("join_key");
    }
    let same = |r: &mut Reader<'_>, d: &ShiftedLaplace| -> Result<bool, PsiV2Error> {
        Ok(r.u64()? == d.scale.to_bits() && r.u32()? == d.offset)
    };
    if !same(r, &params.querier_bucket_noise)? {
        return wrong("querier_bucket_noise");
    }
    if !same(r, &params.querier_cell_noise)? {
        return wrong("querier_cell_noise");
    }
    if !same(r, &params.responder_bucket_noise)? {
        return wrong("responder_bucket_noise");
    }
    if r.u64()? != params.cell_scale.to_bits() {
        return wrong("cell_scale");
    }
    Ok(())
}

/// A bounded reader over a received message.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], PsiV2Error> {
        if n > self.buf.len() {
            return Err(PsiV2Error::Truncated {
                needed: n as u64,
                available: self.buf.len(),
            });
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], PsiV2Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, PsiV2Error> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, PsiV2Error> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, PsiV2Error> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A table of `n` u64 counts whose total is checked against `max_points` and, at
    /// `record` bytes per counted entry, against the bytes left, before the caller allocates
    /// anything sized by it.
    pub(crate) fn table(
        &mut self,
        n: u32,
        record: u64,
        max_points: usize,
    ) -> Result<Vec<u64>, PsiV2Error> {
        let raw = self.take(n as usize * 8)?;
        let counts: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0xff; 8])))
            .collect();
        let total = counts
            .iter()
            .try_fold(0u64, |acc, &c| acc.checked_add(c))
            .unwrap_or(u64::MAX);
        if total > max_points as u64 {
            return Err(PsiV2Error::TooLarge {
                declared: total,
                limit: max_points,
            });
        }
        let needed = total.saturating_mul(record);
        if needed > self.buf.len() as u64 {
            return Err(PsiV2Error::Truncated {
                needed,
                available: self.buf.len(),
            });
        }
        Ok(counts)
    }

    /// The next `n` 32-byte records.
    pub(crate) fn records(&mut self, n: usize) -> Result<&'a [[u8; 32]], PsiV2Error> {
        let bytes = self.take(n.checked_mul(32).ok_or(PsiV2Error::TooLarge {
            declared: n as u64,
            limit: usize::MAX / 32,
        })?)?;
        Ok(bytes.as_chunks::<32>().0)
    }

    /// Number of bytes left.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Fails if bytes are left.
    pub(crate) fn finish(&self) -> Result<(), PsiV2Error> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(PsiV2Error::TrailingBytes {
                extra: self.buf.len(),
            })
        }
    }
}

/// Decodes a received point: canonical encoding, not the identity.
pub(crate) fn decode_point(
    bytes: &[u8; 32],
    bucket: u32,
    index: usize,
) -> Result<RistrettoPoint, PsiV2Error> {
    let p = CompressedRistretto(*bytes)
        .decompress()
        .ok_or(PsiV2Error::InvalidPoint { bucket, index })?;
    if p.is_identity() {
        return Err(PsiV2Error::IdentityPoint { bucket, index });
    }
    Ok(p)
}
