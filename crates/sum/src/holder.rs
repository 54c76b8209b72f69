//! The value holder (the `psi-ca-v1` responder B): encrypts its values, then answers one
//! decryption request with noise (spec §4.1, §4.3).

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand::CryptoRng;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tandem_dp::{NoiseSource, ShiftedLaplace};
use zeroize::Zeroizing;

use crate::elgamal::{self, SecretKeys};
use crate::error::PointRole;
use crate::message::{MessageHeader, MessageType};
use crate::{Limits, SumError, SumParams};

/// The holder's state between its values message and the querier's decryption request: the
/// per-run secret key(s) (zeroized on drop) and the digest of the values message.
///
/// [`ValueHolder::decrypt`] consumes it, so one run answers at most one request.
pub struct ValueHolder {
    params: SumParams,
    keys: SecretKeys,
    values_digest: [u8; 32],
}

impl std::fmt::Debug for ValueHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueHolder")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl ValueHolder {
    /// Starts a run: draws a fresh key (two with squares) and encrypts `values` (spec §4.1).
    ///
    /// `values[i]` is the clamped value ([`crate::accounting::clamp_value`]) of the `i`-th
    /// responder point of the `psi-ca-v1` reply (flat, bucket 0 first), `0` for junk and
    /// injected points. Fails with `ValueAboveBound` if a value exceeds `U`, `TooLarge` above
    /// `limits.max_points` (or `u32::MAX`) values. Returns the state and the values message of
    /// `124 + len(column) + 32·(1 + s) + 32·(2 + s)·n` bytes (`s = 1` with squares).
    pub fn start<R: CryptoRng + ?Sized>(
        params: SumParams,
        values: &[u32],
        limits: &Limits,
        rng: &mut R,
    ) -> Result<(ValueHolder, Vec<u8>), SumError> {
        params.validate()?;
        if let Some((index, &value)) = values
            .iter()
            .enumerate()
            .find(|&(_, &v)| v > params.value_bound)
        {
            return Err(SumError::ValueAboveBound {
                index,
                value,
                bound: params.value_bound,
            });
        }
        let count = u32::try_from(values.len())
            .ok()
            .filter(|&n| n as usize <= limits.max_points)
            .ok_or(SumError::TooLarge {
                declared: values.len() as u64,
                limit: limits.max_points.min(u32::MAX as usize),
            })?;
        let keys = SecretKeys::random(params.components(), rng);
        let msg = values_message(&params, &keys, values, count, rng);
        let values_digest = Sha256::digest(&msg).into();
        Ok((
            ValueHolder {
                params,
                keys,
                values_digest,
            },
            msg,
        ))
    }

    /// The run parameters.
    pub fn params(&self) -> &SumParams {
        &self.params
    }

    /// Answers the querier's decryption request (spec §4.3): checks the header and the digest
    /// of the values message, rejects malformed and identity points, draws one noise value per
    /// cell (and per cell square) from `noise`, and returns one point per cell:
    /// `W_c = V_c − k·R_c + d_c·G`, with `d_c = clamp(T + Z, 0, 2T)`.
    ///
    /// The caller MUST charge [`crate::accounting::holder_loss`] to its budget before calling.
    pub fn decrypt(self, request: &[u8], noise: &mut dyn NoiseSource) -> Result<Vec<u8>, SumError> {
        let p = &self.params;
        let mut r = MessageHeader::expect(request, p, MessageType::DecryptRequest)?;
        if r.array::<32>()? != self.values_digest {
            return Err(SumError::WrongBinding {
                field: "values_digest",
            });
        }
        let width = 32 * (1 + p.components());
        let body = r.records(u64::from(p.cells), width)?;
        let cells: Vec<Vec<RistrettoPoint>> = body
            .par_chunks_exact(width)
            .enumerate()
            .map(|(c, rec)| {
                rec.chunks_exact(32)
                    .map(|b| elgamal::decode_point(b, PointRole::Request(c)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()?;

        let mut draws = vec![draw(noise, &p.sum_noise, cells.len())?];
        if let Some(dist) = &p.square_noise {
            draws.push(draw(noise, dist, cells.len())?);
        }

        let keys = &self.keys.keys;
        let out: Vec<[u8; 32]> = cells
            .par_iter()
            .enumerate()
            .flat_map_iter(|(c, points)| {
                let draws = &draws;
                (0..keys.len()).map(move |j| {
                    let w = points[1 + j] - keys[j] * points[0]
                        + RistrettoPoint::mul_base(&Scalar::from(draws[j][c]));
                    w.compress().to_bytes()
                })
            })
            .collect();

        let mut msg = Vec::with_capacity(160 + p.column.len() + 32 * out.len());
        MessageHeader::encode(p, MessageType::DecryptReply, &mut msg);
        msg.extend_from_slice(&Sha256::digest(request));
        for w in &out {
            msg.extend_from_slice(w);
        }
        Ok(msg)
    }
}

/// Encodes the values message: header ‖ `K` [‖ `K₂`] ‖ count ‖ ciphertexts. Draws the
/// randomness `r_i` from `rng` in order; does not check the values against `U` (tests use it
/// to play a deviating holder).
pub(crate) fn values_message<R: CryptoRng + ?Sized>(
    params: &SumParams,
    keys: &SecretKeys,
    values: &[u32],
    count: u32,
    rng: &mut R,
) -> Vec<u8> {
    let r: Zeroizing<Vec<Scalar>> = Zeroizing::new(
        values
            .iter()
            .map(|_| elgamal::random_nonzero_scalar(rng))
            .collect(),
    );
    let width = 32 * (1 + params.components());
    let mut msg = Vec::with_capacity(160 + params.column.len() + width * values.len());
    MessageHeader::encode(params, MessageType::Values, &mut msg);
    for k in keys.public() {
        msg.extend_from_slice(&k);
    }
    msg.extend_from_slice(&count.to_le_bytes());
    let body = msg.len();
    msg.resize(body + width * values.len(), 0);
    elgamal::encrypt_into(keys, values, &r, &mut msg[body..]);
    msg
}

/// `count` draws from `dist`, checked against the noise contract (`count` draws, each ≤ 2T).
fn draw(
    noise: &mut dyn NoiseSource,
    dist: &ShiftedLaplace,
    count: usize,
) -> Result<Vec<u32>, SumError> {
    let draws = noise.shifted(dist, count)?;
    let max = 2 * u64::from(dist.offset);
    if draws.len() != count || draws.iter().any(|&d| u64::from(d) > max) {
        return Err(SumError::BadNoiseDraws {
            wanted: count,
            found: draws.len(),
            max,
        });
    }
    Ok(draws)
}
