//! Binary message framing (spec §5): the binding header, bounded readers and bucket tables.
//!
//! All integers are little-endian. Every count is declared before the data it describes and
//! checked against both [`crate::Limits`] and the bytes actually present before anything is
//! allocated for it.

use serde::{Deserialize, Serialize};
use tandem_dp::ShiftedLaplace;

use crate::{PsiError, RunParams};

/// First four bytes of every `psi-ca-v1` message.
pub const MAGIC: [u8; 4] = *b"TPSI";
/// Protocol version byte.
pub const VERSION: u8 = 1;

/// Kind of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageType {
    /// Querier → responder: blinded querier points and the dummy commitment `Q`.
    Query,
    /// Responder → querier: re-blinded, truncated querier values and blinded responder points.
    Reply,
}

impl MessageType {
    fn byte(self) -> u8 {
        match self {
            MessageType::Query => 1,
            MessageType::Reply => 2,
        }
    }

    fn from_byte(b: u8) -> Result<Self, PsiError> {
        match b {
            1 => Ok(MessageType::Query),
            2 => Ok(MessageType::Reply),
            other => Err(PsiError::UnknownMessageType(other)),
        }
    }
}

/// The header every message starts with; it binds the message to one agreement, run and
/// parameter set.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageHeader {
    /// Query or reply.
    pub message_type: MessageType,
    /// Agreement the run belongs to.
    pub agreement_id: [u8; 32],
    /// The run.
    pub run_id: [u8; 16],
    /// `nA`.
    pub querier_buckets: u32,
    /// `nB`.
    pub responder_buckets: u32,
    /// Join-key name.
    pub join_key: String,
    /// Querier bucket-size noise.
    pub querier_bucket_noise: ShiftedLaplace,
    /// Responder bucket-size noise.
    pub responder_bucket_noise: ShiftedLaplace,
    /// Cell noise.
    pub cell_noise: ShiftedLaplace,
}

impl MessageHeader {
    /// The run parameters this header declares (still to be checked against the agreement
    /// by the caller).
    pub fn params(&self) -> RunParams {
        RunParams {
            agreement_id: self.agreement_id,
            join_key: self.join_key.clone(),
            run_id: self.run_id,
            querier_buckets: self.querier_buckets,
            responder_buckets: self.responder_buckets,
            querier_bucket_noise: self.querier_bucket_noise,
            responder_bucket_noise: self.responder_bucket_noise,
            cell_noise: self.cell_noise,
        }
    }

    /// Appends the header of a `message_type` message for `params` (already validated).
    pub(crate) fn encode(params: &RunParams, message_type: MessageType, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(message_type.byte());
        out.extend_from_slice(&params.agreement_id);
        out.extend_from_slice(&params.run_id);
        out.extend_from_slice(&params.querier_buckets.to_le_bytes());
        out.extend_from_slice(&params.responder_buckets.to_le_bytes());
        // validate() guarantees the length fits a byte.
        out.push(params.join_key.len() as u8);
        out.extend_from_slice(params.join_key.as_bytes());
        for dist in [
            &params.querier_bucket_noise,
            &params.responder_bucket_noise,
            &params.cell_noise,
        ] {
            out.extend_from_slice(&dist.scale.to_bits().to_le_bytes());
            out.extend_from_slice(&dist.offset.to_le_bytes());
        }
    }

    /// Reads a header.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<MessageHeader, PsiError> {
        if r.array::<4>()? != MAGIC {
            return Err(PsiError::BadMagic);
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(PsiError::UnsupportedVersion(version));
        }
        let message_type = MessageType::from_byte(r.u8()?)?;
        let agreement_id = r.array::<32>()?;
        let run_id = r.array::<16>()?;
        let querier_buckets = r.u32()?;
        let responder_buckets = r.u32()?;
        let len = usize::from(r.u8()?);
        let join_key = std::str::from_utf8(r.take(len)?)
            .map_err(|_| PsiError::MalformedHeader("join key is not UTF-8"))?
            .to_owned();
        let mut noise = [ShiftedLaplace {
            scale: 0.0,
            offset: 0,
        }; 3];
        for dist in &mut noise {
            dist.scale = f64::from_bits(u64::from_le_bytes(r.array::<8>()?));
            dist.offset = r.u32()?;
        }
        let [querier_bucket_noise, responder_bucket_noise, cell_noise] = noise;
        Ok(MessageHeader {
            message_type,
            agreement_id,
            run_id,
            querier_buckets,
            responder_buckets,
            join_key,
            querier_bucket_noise,
            responder_bucket_noise,
            cell_noise,
        })
    }

    /// Checks the header is a `expected` message of the session `params`.
    pub(crate) fn check(&self, params: &RunParams, expected: MessageType) -> Result<(), PsiError> {
        if self.message_type != expected {
            return Err(PsiError::WrongMessageType {
                expected,
                found: self.message_type,
            });
        }
        let same = |a: &ShiftedLaplace, b: &ShiftedLaplace| {
            a.scale.to_bits() == b.scale.to_bits() && a.offset == b.offset
        };
        let field = if self.agreement_id != params.agreement_id {
            "agreement_id"
        } else if self.run_id != params.run_id {
            "run_id"
        } else if self.querier_buckets != params.querier_buckets {
            "querier_buckets"
        } else if self.responder_buckets != params.responder_buckets {
            "responder_buckets"
        } else if self.join_key != params.join_key {
            "join_key"
        } else if !same(&self.querier_bucket_noise, &params.querier_bucket_noise) {
            "querier_bucket_noise"
        } else if !same(&self.responder_bucket_noise, &params.responder_bucket_noise) {
            "responder_bucket_noise"
        } else if !same(&self.cell_noise, &params.cell_noise) {
            "cell_noise"
        } else {
            return Ok(());
        };
        Err(PsiError::WrongBinding { field })
    }
}

/// Reads the header of a message without any session, so a node can find the agreement and
/// run a message belongs to before it loads their parameters.
pub fn peek_header(msg: &[u8]) -> Result<MessageHeader, PsiError> {
    MessageHeader::decode(&mut Reader::new(msg))
}

/// A bounds-checked cursor over a received message.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], PsiError> {
        if n > self.buf.len() {
            return Err(PsiError::Truncated {
                needed: n as u64,
                available: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], PsiError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, PsiError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, PsiError> {
        Ok(u32::from_le_bytes(self.array::<4>()?))
    }

    /// Reads a bucket table of `n` entries `(label u32, count u32)`; labels must be `0..n` in
    /// order. Checks the table fits in the message before allocating it.
    pub(crate) fn table(&mut self, n: u32) -> Result<Vec<u64>, PsiError> {
        let bytes = u64::from(n) * 8;
        if bytes > self.buf.len() as u64 {
            return Err(PsiError::Truncated {
                needed: bytes,
                available: self.buf.len(),
            });
        }
        let mut counts = Vec::with_capacity(n as usize);
        for position in 0..n {
            let found = self.u32()?;
            if found != position {
                return Err(PsiError::WrongBucketLabel { position, found });
            }
            counts.push(u64::from(self.u32()?));
        }
        Ok(counts)
    }

    /// Checks that the rest of the message is exactly `units` records declared by the tables
    /// (`units[i] = (count, record size)`), within `max_points` records in total.
    pub(crate) fn expect_body(
        &self,
        units: &[(u64, u64)],
        max_points: usize,
    ) -> Result<(), PsiError> {
        let declared: u64 = units.iter().map(|&(count, _)| count).sum();
        if declared > max_points as u64 {
            return Err(PsiError::TooLarge {
                declared,
                limit: max_points,
            });
        }
        let needed = units.iter().fold(0u64, |acc, &(count, size)| {
            acc.saturating_add(count.saturating_mul(size))
        });
        let available = self.buf.len();
        if needed > available as u64 {
            return Err(PsiError::Truncated { needed, available });
        }
        if needed < available as u64 {
            return Err(PsiError::TrailingBytes {
                extra: available - needed as usize,
            });
        }
        Ok(())
    }
}

/// Appends a bucket table for `counts` (fails if a bucket exceeds `u32::MAX` entries).
pub(crate) fn write_table(counts: &[u64], out: &mut Vec<u8>) -> Result<(), PsiError> {
    for (label, &count) in counts.iter().enumerate() {
        let count = u32::try_from(count)
            .map_err(|_| PsiError::InvalidParams("more than 2^32-1 entries in a bucket".into()))?;
        out.extend_from_slice(&(label as u32).to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
    }
    Ok(())
}

/// Start offsets of consecutive buckets in a flat array, to turn flat indices into
/// `(bucket, index)` pairs for error reports.
pub(crate) struct Offsets(Vec<usize>);

impl Offsets {
    /// Offsets of buckets of the given sizes (sizes already bounded by the message length).
    pub(crate) fn new(counts: &[u64]) -> Offsets {
        let mut acc = 0usize;
        let mut starts = Vec::with_capacity(counts.len() + 1);
        starts.push(0);
        for &c in counts {
            acc += c as usize;
            starts.push(acc);
        }
        Offsets(starts)
    }

    /// Range of bucket `g`.
    pub(crate) fn range(&self, g: usize) -> std::ops::Range<usize> {
        self.0[g]..self.0[g + 1]
    }

    /// `(bucket, index in bucket)` of flat index `i < total()`.
    pub(crate) fn locate(&self, i: usize) -> (u32, usize) {
        let g = self
            .0
            .partition_point(|&start| start <= i)
            .saturating_sub(1);
        (g as u32, i - self.0[g])
    }
}
