//! The querier (the `psi-ca-v1` querier A): sums the matched ciphertexts per cell, masks and
//! re-randomises them, then unmasks the holder's noised decryptions (spec §4.2, §4.4).

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use rand::CryptoRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::elgamal::{self, CHUNK};
use crate::error::PointRole;
use crate::message::{MessageHeader, MessageType};
use crate::{DiscreteLog, Limits, SumError, SumParams};

/// What the querier releases: per cell (row-major, as the `psi-ca-v1` cells), the noised sum
/// `Σ v + clamp(Z, −T, T)` and, with squares, the noised sum of squares. Estimates may be
/// negative; they are unbiased.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellSums {
    /// Noised sum of the values per cell, in the column's unit.
    pub sums: Vec<i64>,
    /// Noised sum of the squared values per cell (unit²), if the run releases squares.
    pub squares: Option<Vec<i64>>,
}

/// The querier's state between its decryption request and the holder's reply: the masks
/// `m_c` (zeroized on drop), the per-cell plaintext bounds and the request's digest.
pub struct SumQuerier {
    params: SumParams,
    masks: Zeroizing<Vec<Scalar>>,
    bounds: Vec<u64>,
    request_digest: [u8; 32],
}

impl std::fmt::Debug for SumQuerier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SumQuerier")
            .field("params", &self.params)
            .field("bounds", &self.bounds)
            .finish_non_exhaustive()
    }
}

/// The checked part of a values message.
struct Values<'a> {
    keys: Vec<RistrettoPoint>,
    records: &'a [u8],
}

/// Parses and bounds a values message before any allocation sized by it.
fn parse_values<'a>(
    params: &SumParams,
    msg: &'a [u8],
    expected_points: u64,
    limits: &Limits,
) -> Result<Values<'a>, SumError> {
    let mut r = MessageHeader::expect(msg, params, MessageType::Values)?;
    let keys = (0..params.components())
        .map(|_| elgamal::decode_point(&r.array::<32>()?, PointRole::Key))
        .collect::<Result<Vec<_>, _>>()?;
    let declared = u64::from(r.u32()?);
    if declared > limits.max_points as u64 {
        return Err(SumError::TooLarge {
            declared,
            limit: limits.max_points,
        });
    }
    if declared != expected_points {
        return Err(SumError::WrongCount {
            expected: expected_points,
            found: declared,
        });
    }
    let records = r.records(declared, 32 * (1 + params.components()))?;
    Ok(Values { keys, records })
}

/// Checks the cell lists and marks the ciphertexts they use.
fn check_cells(params: &SumParams, cells: &[Vec<usize>], n: usize) -> Result<Vec<bool>, SumError> {
    if cells.len() != params.cells as usize {
        return Err(SumError::InvalidCells(format!(
            "{} cell lists for {} cells",
            cells.len(),
            params.cells
        )));
    }
    let mut used = vec![false; n];
    for (c, list) in cells.iter().enumerate() {
        for &i in list {
            match used.get_mut(i) {
                None => {
                    return Err(SumError::InvalidCells(format!(
                        "cell {c}: index {i} beyond the {n} ciphertexts"
                    )));
                }
                Some(true) => {
                    return Err(SumError::InvalidCells(format!(
                        "cell {c}: index {i} used twice"
                    )));
                }
                Some(slot) => *slot = true,
            }
        }
    }
    Ok(used)
}

impl SumQuerier {
    /// Builds the decryption request (spec §4.2) from the holder's `values` message.
    ///
    /// `expected_points` is the number of responder points in the `psi-ca-v1` reply;
    /// `cells[c]` lists the flat indices (bucket 0 first) of the responder points that matched
    /// cell `c` (`cells.len()` must equal `params.cells`; no index twice). Checks every point of
    /// the message (canonical, not the identity), keeps each cell's plaintext bound
    /// `min(n_c·U + 2T, max_plaintext)` (and `min(n_c·U² + 2T₂, max_plaintext)`), then for every cell
    /// draws `r'_c`, `m_c` (and `m₂_c`) from `rng` in that order and sends
    /// `(ΣR + r'·G, ΣV + r'·K + m·G [, ΣV₂ + r'·K₂ + m₂·G])`.
    pub fn request<R: CryptoRng + ?Sized>(
        params: SumParams,
        values: &[u8],
        expected_points: usize,
        cells: &[Vec<usize>],
        limits: &Limits,
        rng: &mut R,
    ) -> Result<(SumQuerier, Vec<u8>), SumError> {
        params.validate()?;
        let Values { keys, records } =
            parse_values(&params, values, expected_points as u64, limits)?;
        let width = 32 * (1 + keys.len());
        let n = records.len() / width;
        let used = check_cells(&params, cells, n)?;

        // Capped, never refused: refusing here would tell the holder something about the
        // matches (spec §4.2). A capped cell that overflows fails in `finish`, after the last
        // message.
        let mut bounds = Vec::with_capacity(cells.len() * keys.len());
        for list in cells {
            let n_c = list.len() as u64;
            let offset = params.sum_noise.offset;
            bounds.push(plaintext_bound(n_c, u64::from(params.value_bound), offset));
            if let Some(dist) = &params.square_noise {
                bounds.push(plaintext_bound(n_c, params.squared_bound(), dist.offset));
            }
        }
        for b in &mut bounds {
            *b = (*b).min(limits.max_plaintext);
        }

        // Ciphertexts no cell uses: checked, then dropped.
        records
            .par_chunks(width * CHUNK)
            .enumerate()
            .try_for_each(|(chunk, recs)| {
                for (k, rec) in recs.chunks_exact(width).enumerate() {
                    let i = chunk * CHUNK + k;
                    if !used[i] {
                        for b in rec.chunks_exact(32) {
                            elgamal::decode_point(b, PointRole::Ciphertext(i))?;
                        }
                    }
                }
                Ok::<_, SumError>(())
            })?;
        // Used ciphertexts: decoded once each, summed per cell (R, V [, V₂]).
        let sums: Vec<Vec<RistrettoPoint>> = cells
            .par_iter()
            .map(|list| {
                let mut acc = vec![RistrettoPoint::identity(); width / 32];
                for &i in list {
                    let rec = &records[i * width..(i + 1) * width];
                    for (a, b) in acc.iter_mut().zip(rec.chunks_exact(32)) {
                        *a += elgamal::decode_point(b, PointRole::Ciphertext(i))?;
                    }
                }
                Ok(acc)
            })
            .collect::<Result<_, SumError>>()?;

        // Per cell: r', then one mask per component.
        let mut rerandomisers = Zeroizing::new(Vec::with_capacity(cells.len()));
        let mut masks = Zeroizing::new(Vec::with_capacity(cells.len() * keys.len()));
        for _ in 0..cells.len() {
            rerandomisers.push(elgamal::random_nonzero_scalar(rng));
            for _ in 0..keys.len() {
                masks.push(elgamal::random_nonzero_scalar(rng));
            }
        }
        let records_out: Vec<Vec<[u8; 32]>> = sums
            .par_iter()
            .enumerate()
            .map(|(c, acc)| {
                let r = &rerandomisers[c];
                let mut rec = vec![(acc[0] + RistrettoPoint::mul_base(r)).compress().to_bytes()];
                for (j, k) in keys.iter().enumerate() {
                    let m = &masks[c * keys.len() + j];
                    let v = acc[1 + j] + r * k + RistrettoPoint::mul_base(m);
                    rec.push(v.compress().to_bytes());
                }
                rec
            })
            .collect();

        let mut msg = Vec::with_capacity(160 + params.column.len() + width * cells.len());
        MessageHeader::encode(&params, MessageType::DecryptRequest, &mut msg);
        msg.extend_from_slice(&Sha256::digest(values));
        for p in records_out.iter().flatten() {
            msg.extend_from_slice(p);
        }
        let request_digest = Sha256::digest(&msg).into();
        Ok((
            SumQuerier {
                params,
                masks,
                bounds,
                request_digest,
            },
            msg,
        ))
    }

    /// The run parameters.
    pub fn params(&self) -> &SumParams {
        &self.params
    }

    /// Turns the holder's decryption reply into the released [`CellSums`] (spec §4.4): checks
    /// header, request digest and points, removes each mask, and solves the discrete logarithm
    /// in `[0, bound_c]` with `dlog` (at most `bound_c / 2^baby_bits + 1` giant steps per
    /// value). A value outside its range fails with `OutOfRange` (a deviating holder) and the
    /// run releases nothing.
    pub fn finish(self, reply: &[u8], dlog: &DiscreteLog) -> Result<CellSums, SumError> {
        let p = &self.params;
        let mut r = MessageHeader::expect(reply, p, MessageType::DecryptReply)?;
        if r.array::<32>()? != self.request_digest {
            return Err(SumError::WrongBinding {
                field: "request_digest",
            });
        }
        let per_cell = p.components();
        let body = r.records(self.bounds.len() as u64, 32)?;
        let offsets = std::iter::once(p.sum_noise.offset)
            .chain(p.square_noise.map(|d| d.offset))
            .collect::<Vec<_>>();
        let released: Vec<i64> = body
            .par_chunks_exact(32)
            .enumerate()
            .map(|(i, b)| {
                let cell = i / per_cell;
                let w = elgamal::decode_point(b, PointRole::Reply(cell))?;
                let unmasked = w - RistrettoPoint::mul_base(&self.masks[i]);
                let bound = self.bounds[i];
                let x = dlog
                    .solve(&unmasked, bound)
                    .ok_or(SumError::OutOfRange { cell, bound })?;
                // x ≤ bound ≤ max_plaintext < 2^63 in practice; saturate rather than wrap.
                let x = i64::try_from(x).unwrap_or(i64::MAX);
                Ok(x - i64::from(offsets[i % per_cell]))
            })
            .collect::<Result<_, SumError>>()?;
        let sums = released.iter().step_by(per_cell).copied().collect();
        let squares = p
            .squares()
            .then(|| released.iter().skip(1).step_by(per_cell).copied().collect());
        Ok(CellSums { sums, squares })
    }
}

/// `n_c·bound + 2T`, saturating: the largest plaintext an honest cell can decrypt to.
fn plaintext_bound(n_c: u64, bound: u64, offset: u32) -> u64 {
    n_c.saturating_mul(bound)
        .saturating_add(2 * u64::from(offset))
}
