//! Binary message framing (spec §5): the binding header and a bounded reader.
//!
//! All integers are little-endian. Every count is declared before the data it describes and
//! checked against both [`crate::Limits`] and the bytes actually present before anything is
//! allocated for it.

use serde::{Deserialize, Serialize};
use tandem_dp::ShiftedLaplace;

use crate::{SumError, SumParams};

/// First four bytes of every `psi-sum-v1` message.
pub const MAGIC: [u8; 4] = *b"TSUM";
/// Protocol version byte.
pub const VERSION: u8 = 1;

/// Header flag: sums of squares are released.
const FLAG_SQUARES: u8 = 1;

/// Kind of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageType {
    /// Holder → querier: the public key(s) and one ciphertext per responder point.
    Values,
    /// Querier → holder: one re-randomised, masked ciphertext per cell.
    DecryptRequest,
    /// Holder → querier: one noised decryption per cell.
    DecryptReply,
}

impl MessageType {
    fn byte(self) -> u8 {
        match self {
            MessageType::Values => 1,
            MessageType::DecryptRequest => 2,
            MessageType::DecryptReply => 3,
        }
    }

    fn from_byte(b: u8) -> Result<Self, SumError> {
        match b {
            1 => Ok(MessageType::Values),
            2 => Ok(MessageType::DecryptRequest),
            3 => Ok(MessageType::DecryptReply),
            other => Err(SumError::UnknownMessageType(other)),
        }
    }
}

/// The header every message starts with; it binds the message to one agreement, run, PSI
/// reply and parameter set.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageHeader {
    /// Which message.
    pub message_type: MessageType,
    /// The run parameters the header declares (still to be checked against the agreement).
    pub params: SumParams,
}

/// Bit-exact equality of two noise distributions.
fn same(a: &ShiftedLaplace, b: &ShiftedLaplace) -> bool {
    a.scale.to_bits() == b.scale.to_bits() && a.offset == b.offset
}

fn write_dist(dist: Option<&ShiftedLaplace>, out: &mut Vec<u8>) {
    let (scale, offset) = dist.map_or((0, 0), |d| (d.scale.to_bits(), d.offset));
    out.extend_from_slice(&scale.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
}

impl MessageHeader {
    /// Appends the header of a `message_type` message for `params` (already validated).
    pub(crate) fn encode(params: &SumParams, message_type: MessageType, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(message_type.byte());
        out.extend_from_slice(&params.agreement_id);
        out.extend_from_slice(&params.run_id);
        out.extend_from_slice(&params.psi_reply_digest);
        out.extend_from_slice(&params.cells.to_le_bytes());
        out.extend_from_slice(&params.value_bound.to_le_bytes());
        out.push(if params.squares() { FLAG_SQUARES } else { 0 });
        write_dist(Some(&params.sum_noise), out);
        write_dist(params.square_noise.as_ref(), out);
        // validate() guarantees the length fits a byte.
        out.push(params.column.len() as u8);
        out.extend_from_slice(params.column.as_bytes());
    }

    /// Reads a header.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<MessageHeader, SumError> {
        if r.array::<4>()? != MAGIC {
            return Err(SumError::BadMagic);
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(SumError::UnsupportedVersion(version));
        }
        let message_type = MessageType::from_byte(r.u8()?)?;
        let agreement_id = r.array::<32>()?;
        let run_id = r.array::<16>()?;
        let psi_reply_digest = r.array::<32>()?;
        let cells = r.u32()?;
        let value_bound = r.u32()?;
        let flags = r.u8()?;
        if flags & !FLAG_SQUARES != 0 {
            return Err(SumError::MalformedHeader("unknown flag bits"));
        }
        let mut dists = [ShiftedLaplace {
            scale: 0.0,
            offset: 0,
        }; 2];
        for dist in &mut dists {
            dist.scale = f64::from_bits(u64::from_le_bytes(r.array::<8>()?));
            dist.offset = r.u32()?;
        }
        let [sum_noise, squares] = dists;
        let square_noise = if flags & FLAG_SQUARES != 0 {
            Some(squares)
        } else if squares.scale.to_bits() == 0 && squares.offset == 0 {
            None
        } else {
            return Err(SumError::MalformedHeader(
                "square noise present without the squares flag",
            ));
        };
        let len = usize::from(r.u8()?);
        let column = std::str::from_utf8(r.take(len)?)
            .map_err(|_| SumError::MalformedHeader("column name is not UTF-8"))?
            .to_owned();
        Ok(MessageHeader {
            message_type,
            params: SumParams {
                agreement_id,
                run_id,
                psi_reply_digest,
                column,
                cells,
                value_bound,
                sum_noise,
                square_noise,
            },
        })
    }

    /// Checks the header is an `expected` message of the session `params`.
    pub(crate) fn check(&self, params: &SumParams, expected: MessageType) -> Result<(), SumError> {
        if self.message_type != expected {
            return Err(SumError::WrongMessageType {
                expected,
                found: self.message_type,
            });
        }
        let p = &self.params;
        let field = if p.agreement_id != params.agreement_id {
            "agreement_id"
        } else if p.run_id != params.run_id {
            "run_id"
        } else if p.psi_reply_digest != params.psi_reply_digest {
            "psi_reply_digest"
        } else if p.cells != params.cells {
            "cells"
        } else if p.value_bound != params.value_bound {
            "value_bound"
        } else if !same(&p.sum_noise, &params.sum_noise) {
            "sum_noise"
        } else if !match (&p.square_noise, &params.square_noise) {
            (None, None) => true,
            (Some(a), Some(b)) => same(a, b),
            _ => false,
        } {
            "square_noise"
        } else if p.column != params.column {
            "column"
        } else {
            return Ok(());
        };
        Err(SumError::WrongBinding { field })
    }

    /// Reads and checks the header of an `expected` message of `params`; returns the reader
    /// positioned after it.
    pub(crate) fn expect<'a>(
        msg: &'a [u8],
        params: &SumParams,
        expected: MessageType,
    ) -> Result<Reader<'a>, SumError> {
        let mut r = Reader::new(msg);
        MessageHeader::decode(&mut r)?.check(params, expected)?;
        Ok(r)
    }
}

/// Reads the header of a message without any session, so a node can find the agreement and
/// run a message belongs to before it loads their parameters.
pub fn peek_header(msg: &[u8]) -> Result<MessageHeader, SumError> {
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

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], SumError> {
        if n > self.buf.len() {
            return Err(SumError::Truncated {
                needed: n as u64,
                available: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], SumError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, SumError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, SumError> {
        Ok(u32::from_le_bytes(self.array::<4>()?))
    }

    /// Takes the rest of the message, which must be exactly `count` records of `size` bytes.
    pub(crate) fn records(self, count: u64, size: usize) -> Result<&'a [u8], SumError> {
        let needed = count.saturating_mul(size as u64);
        let available = self.buf.len();
        if needed > available as u64 {
            return Err(SumError::Truncated { needed, available });
        }
        if needed < available as u64 {
            return Err(SumError::TrailingBytes {
                extra: available - needed as usize,
            });
        }
        Ok(self.buf)
    }
}
