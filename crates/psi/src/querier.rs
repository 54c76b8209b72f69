//! The querier (party A): builds the query, then counts matches in the reply (spec §4.1, §4.3).

use std::collections::HashMap;
use std::fmt;

use curve25519_dalek::ristretto::RistrettoPoint;
use rand::CryptoRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tandem_dp::NoiseSource;

use crate::ec::{self, CHUNK, SecretScalar, StreamKey};
use crate::hash::Domain;
use crate::input::{check_items, draw};
use crate::items::{Hasher, Items};
use crate::message::{MessageHeader, MessageType, Offsets, Reader, write_table};
use crate::{Limits, PsiError, RunParams};

/// Bytes of a returned (truncated) value.
pub const TRUNCATED_LEN: usize = 12;

/// The querier's state between its query and the responder's reply. Holds the secret `α`
/// (as `α/2`); dropping it ends the run.
pub struct Querier {
    params: RunParams,
    /// α/2, the run's secret exponent (halved for batch compression); wiped on drop.
    alpha_half: SecretScalar,
    sent: Vec<u64>,
    query_digest: [u8; 32],
}

impl fmt::Debug for Querier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Querier")
            .field("params", &self.params)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// One slot of a querier bucket in the query.
#[derive(Clone, Copy)]
enum Slot {
    /// `items[bucket][index]`.
    Item(u32, usize),
    /// The junk slot with this index (counted over all buckets in order, before shuffling).
    Junk(u64),
}

/// Per cell (row-major), the flat indices of the responder points that matched it, ascending.
pub type MatchLists = Vec<Vec<usize>>;

/// The querier's output: a noised intersection count for every cell `(gA, gB)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellCounts {
    /// `nA`.
    pub querier_buckets: u32,
    /// `nB`.
    pub responder_buckets: u32,
    /// Row-major `[gA · nB + gB]`: matches − `T`, an unbiased DP estimate of
    /// `|A_gA ∩ B_gB|` (may be negative).
    pub noised: Vec<i64>,
    /// What the querier saw of the responder's bucket sizes, `n_B[gB] + J_B[gB]` (DP).
    pub responder_bucket_sizes_noised: Vec<u64>,
}

impl CellCounts {
    /// The noised count of cell `(ga, gb)`.
    ///
    /// # Panics
    /// If `ga >= querier_buckets` or `gb >= responder_buckets`.
    pub fn get(&self, ga: u32, gb: u32) -> i64 {
        assert!(
            ga < self.querier_buckets && gb < self.responder_buckets,
            "cell out of range"
        );
        self.noised[ga as usize * self.responder_buckets as usize + gb as usize]
    }
}

impl Querier {
    /// Starts a run: `items[g]` are the querier's digests in bucket `g`, or their precomputed
    /// points ([`Items`]; `items.len() == querier_buckets`, no entry twice). Draws the junk counts from
    /// `noise`, and the secret `α`, the shuffles and the junk from `rng` (a CSPRNG: the node
    /// passes one seeded from the OS; a seeded one makes the query reproducible byte for byte,
    /// spec §4.4). Returns the state to keep and the encoded query.
    pub fn start<'a, R: CryptoRng + ?Sized>(
        params: RunParams,
        items: impl Into<Items<'a>>,
        noise: &mut dyn NoiseSource,
        rng: &mut R,
    ) -> Result<(Querier, Vec<u8>), PsiError> {
        let alpha = SecretScalar::random(rng);
        Self::start_with_scalar(params, items, noise, alpha, rng)
    }

    /// [`Querier::start`] with a given `α` (test vectors).
    pub(crate) fn start_with_scalar<'a, R: CryptoRng + ?Sized>(
        params: RunParams,
        items: impl Into<Items<'a>>,
        noise: &mut dyn NoiseSource,
        alpha: SecretScalar,
        rng: &mut R,
    ) -> Result<(Querier, Vec<u8>), PsiError> {
        let input = items.into();
        let items = input.buckets();
        params.validate()?;
        check_items(params.querier_buckets, items)?;
        let domain = Domain::new(&params)?;
        let junk = draw(noise, &params.querier_bucket_noise, items.len())?;

        let total: usize = items.iter().map(Vec::len).sum::<usize>()
            + junk.iter().map(|&j| j as usize).sum::<usize>();
        let mut slots = Vec::with_capacity(total);
        let mut sent = Vec::with_capacity(items.len());
        let mut junk_index = 0u64;
        for (g, (bucket, &j)) in (0u32..).zip(items.iter().zip(junk.iter())) {
            let start = slots.len();
            slots.extend((0..bucket.len()).map(|i| Slot::Item(g, i)));
            slots.extend((junk_index..junk_index + u64::from(j)).map(Slot::Junk));
            junk_index += u64::from(j);
            slots[start..].shuffle(rng);
            sent.push((slots.len() - start) as u64);
        }
        let junk_key = StreamKey::draw(rng);
        let max_junk = 2 * u64::from(params.querier_bucket_noise.offset) * junk.len() as u64;
        let hasher = Hasher::new(domain, &input, &junk_key, max_junk);

        let q = alpha
            .mul(&hasher.domain().dummy_base(&params.run_id))
            .compress();
        let alpha_half = alpha.half();
        drop(alpha);

        let mut msg = Vec::with_capacity(160 + 8 * items.len() + 32 * total);
        MessageHeader::encode(&params, MessageType::Query, &mut msg);
        msg.extend_from_slice(q.as_bytes());
        write_table(&sent, &mut msg)?;
        let body = msg.len();
        msg.resize(body + 32 * total, 0);
        msg[body..]
            .par_chunks_mut(32 * CHUNK)
            .zip(slots.par_chunks(CHUNK))
            .try_for_each(|(out, slots)| {
                let points = slots
                    .iter()
                    .map(|slot| match *slot {
                        Slot::Item(g, i) => hasher
                            .item(&items[g as usize][i], (g, i))
                            .map(|p| alpha_half.mul(&p)),
                        // Junk costs what an item costs: α·H(r) for a fresh random r.
                        Slot::Junk(j) => Ok(alpha_half.mul(&hasher.junk(&junk_key, j))),
                    })
                    .collect::<Result<Vec<RistrettoPoint>, PsiError>>()?;
                ec::write_doubled::<32>(&points, out);
                Ok::<_, PsiError>(())
            })?;

        let mut query_digest = [0u8; 32];
        query_digest.copy_from_slice(&Sha256::digest(&msg));
        Ok((
            Querier {
                params,
                alpha_half,
                sent,
                query_digest,
            },
            msg,
        ))
    }

    /// Checks the responder's `reply` and counts the matches of every cell. Rejects replies
    /// of another session or query, wrong counts, invalid, identity or repeated points and
    /// repeated returned values.
    pub fn finish(self, reply: &[u8], limits: &Limits) -> Result<CellCounts, PsiError> {
        self.finish_inner(reply, limits, false)
            .map(|(counts, _)| counts)
    }

    /// [`Querier::finish`], also returning for every cell (row-major) the flat indices of the
    /// responder points that matched it (bucket 0 first, the flat order of spec §5.3),
    /// ascending: the lists `L_c` of `protocols/psi-sum-v1.md` §4.2 step 3. Each index is in at
    /// most one list; injected matches are included (the querier cannot tell them apart).
    pub fn finish_with_matches(
        self,
        reply: &[u8],
        limits: &Limits,
    ) -> Result<(CellCounts, MatchLists), PsiError> {
        let (counts, lists) = self.finish_inner(reply, limits, true)?;
        Ok((counts, lists.unwrap_or_default()))
    }

    fn finish_inner(
        self,
        reply: &[u8],
        limits: &Limits,
        keep_lists: bool,
    ) -> Result<(CellCounts, Option<MatchLists>), PsiError> {
        let params = &self.params;
        let (na, nb) = (params.querier_buckets, params.responder_buckets);
        let slots = params.slots_per_cell();

        let mut r = Reader::new(reply);
        MessageHeader::decode(&mut r)?.check(params, MessageType::Reply)?;
        if r.array::<32>()? != self.query_digest {
            return Err(PsiError::WrongBinding {
                field: "query_digest",
            });
        }
        let a_counts = r.table(na)?;
        for (bucket, (&found, &sent)) in (0u32..).zip(a_counts.iter().zip(&self.sent)) {
            let expected = sent.saturating_add(slots * u64::from(nb));
            if found != expected {
                return Err(PsiError::WrongCount {
                    bucket,
                    expected,
                    found,
                });
            }
        }
        let minimum = slots * u64::from(na);
        let b_counts = r.table(nb)?;
        for (bucket, &found) in (0u32..).zip(&b_counts) {
            if found < minimum {
                return Err(PsiError::TooFewPoints {
                    bucket,
                    minimum,
                    found,
                });
            }
        }
        let (a_total, b_total) = (a_counts.iter().sum::<u64>(), b_counts.iter().sum::<u64>());
        r.expect_body(
            &[(a_total, TRUNCATED_LEN as u64), (b_total, 32)],
            limits.max_points,
        )?;
        let (returned, _) = r
            .take(a_total as usize * TRUNCATED_LEN)?
            .as_chunks::<TRUNCATED_LEN>();
        let (b_points, _) = r.take(b_total as usize * 32)?.as_chunks::<32>();

        let a_off = Offsets::new(&a_counts);
        let mut owner: HashMap<[u8; TRUNCATED_LEN], u32> = HashMap::with_capacity(returned.len());
        for ga in 0..na {
            for (index, value) in returned[a_off.range(ga as usize)].iter().enumerate() {
                if owner.insert(*value, ga).is_some() {
                    return Err(PsiError::DuplicateValue { bucket: ga, index });
                }
            }
        }

        let b_off = Offsets::new(&b_counts);
        if let Some(i) = ec::find_duplicate(b_points, None) {
            let (bucket, index) = b_off.locate(i);
            return Err(PsiError::DuplicatePoint { bucket, index });
        }

        let cells = params.cells();
        let (matches, matched) = b_points
            .par_chunks(CHUNK)
            .enumerate()
            .try_fold(
                || (vec![0u64; cells], Vec::new()),
                |(mut acc, mut matched), (c, chunk)| {
                    let base = c * CHUNK;
                    let mut points = Vec::with_capacity(chunk.len());
                    for (j, bytes) in chunk.iter().enumerate() {
                        let p =
                            ec::decode_point(bytes).map_err(|f| f.at(b_off.locate(base + j)))?;
                        points.push(self.alpha_half.mul(&p));
                    }
                    let compressed = RistrettoPoint::double_and_compress_batch(&points);
                    for (j, c) in compressed.iter().enumerate() {
                        let mut key = [0u8; TRUNCATED_LEN];
                        key.copy_from_slice(&c.as_bytes()[..TRUNCATED_LEN]);
                        if let Some(&ga) = owner.get(&key) {
                            let gb = b_off.locate(base + j).0;
                            let cell = ga as usize * nb as usize + gb as usize;
                            acc[cell] += 1;
                            if keep_lists {
                                matched.push((cell, base + j));
                            }
                        }
                    }
                    Ok::<_, PsiError>((acc, matched))
                },
            )
            .try_reduce(
                || (vec![0u64; cells], Vec::new()),
                |(mut a, mut ma), (b, mb)| {
                    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    ma.extend(mb);
                    Ok((a, ma))
                },
            )?;
        let lists = keep_lists.then(|| {
            let mut lists = vec![Vec::new(); cells];
            for (cell, i) in matched {
                lists[cell].push(i);
            }
            lists.iter_mut().for_each(|l| l.sort_unstable());
            lists
        });

        let t = i64::from(params.cell_noise.offset);
        let counts = CellCounts {
            querier_buckets: na,
            responder_buckets: nb,
            noised: matches.iter().map(|&m| m as i64 - t).collect(),
            responder_bucket_sizes_noised: b_counts.iter().map(|&n| n - minimum).collect(),
        };
        Ok((counts, lists))
    }
}
