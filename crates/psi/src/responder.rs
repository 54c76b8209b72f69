//! The responder (party B): validates the query, re-blinds it, blinds its own items and
//! injects the noised dummy matches (spec §4.2).

use curve25519_dalek::ristretto::{RistrettoBasepointTable, RistrettoPoint};
use rand::CryptoRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tandem_dp::NoiseSource;
use zeroize::Zeroizing;

use crate::ec::{self, CHUNK, SecretScalar, StreamKey};
use crate::hash::Domain;
use crate::input::{check_items, draw};
use crate::items::{Hasher, Items};
use crate::message::{MessageHeader, MessageType, Offsets, Reader, write_table};
use crate::querier::TRUNCATED_LEN;
use crate::{Limits, PsiError, RunParams};

/// One slot of a querier bucket in the reply.
#[derive(Clone, Copy)]
enum Returned {
    /// The querier's point at this flat index, times `β`.
    Query(usize),
    /// `r·Q` for the injected slot at this index.
    Dummy(usize),
}

/// Who each of the responder's points in its reply is, in message order: `Some((g, i))` for
/// `items[g][i]`, `None` for junk and injected points (local only, never on the wire).
pub type Owners = Vec<Option<(u32, usize)>>;

/// One slot of a responder bucket in the reply.
#[derive(Clone, Copy)]
enum Own {
    /// `items[bucket][index]`.
    Item(usize, usize),
    /// The junk slot with this index (counted over all buckets in order, before shuffling).
    Junk(u64),
    /// `r·D` for the injected slot at this index.
    Dummy(usize),
}

/// A query, parsed and bounded but not yet validated point by point.
struct Query<'a> {
    q_bytes: [u8; 32],
    a_counts: Vec<u64>,
    a_points: &'a [[u8; 32]],
}

/// Parses and bounds a query of the session `params` before any allocation sized by it.
fn parse_query<'a>(
    params: &RunParams,
    query: &'a [u8],
    limits: &Limits,
) -> Result<Query<'a>, PsiError> {
    let mut r = Reader::new(query);
    MessageHeader::decode(&mut r)?.check(params, MessageType::Query)?;
    let q_bytes = r.array::<32>()?;
    let a_counts = r.table(params.querier_buckets)?;
    let a_total = a_counts.iter().sum::<u64>();
    r.expect_body(&[(a_total, 32)], limits.max_points)?;
    let (a_points, _) = r.take(a_total as usize * 32)?.as_chunks::<32>();
    Ok(Query {
        q_bytes,
        a_counts,
        a_points,
    })
}

/// The querier's noised bucket sizes `|A_g| + J_A[g]` declared by `query` — all the responder
/// learns about the querier's data — after checking the header and framing. A node can log
/// them and refuse a run whose buckets are below the agreement's minimum size before calling
/// [`respond`].
pub fn query_bucket_sizes(
    params: &RunParams,
    query: &[u8],
    limits: &Limits,
) -> Result<Vec<u64>, PsiError> {
    params.validate()?;
    Ok(parse_query(params, query, limits)?.a_counts)
}

/// The responder's noise for one run (spec §4.2 step 3): the junk counts `J_B[g]` of its
/// `nB` buckets and the injected matches `K_c` of its `nA·nB` cells, drawn from the run's
/// public parameters alone — before the query is read, so neither the time nor the outcome of
/// the draw depends on the query or on the responder's data. Wiped when dropped.
pub struct ResponderNoise {
    pub(crate) junk: Zeroizing<Vec<u32>>,
    pub(crate) kept: Zeroizing<Vec<u32>>,
}

impl ResponderNoise {
    /// Draws the noise of a run with `params` from `noise` (junk counts first, then `K_c`).
    /// Errors: [`PsiError::InvalidParams`], [`PsiError::Noise`], [`PsiError::BadNoiseDraws`].
    pub fn draw(params: &RunParams, noise: &mut dyn NoiseSource) -> Result<Self, PsiError> {
        params.validate()?;
        let junk = draw(
            noise,
            &params.responder_bucket_noise,
            params.responder_buckets as usize,
        )?;
        let kept = draw(noise, &params.cell_noise, params.cells())?;
        Ok(ResponderNoise { junk, kept })
    }
}

impl std::fmt::Debug for ResponderNoise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponderNoise(..)")
    }
}

/// A query parsed, fully validated against the run's public parameters and the receiver's
/// [`Limits`] (spec §4.2 steps 1–2: header and binding, bucket table, declared sizes, every
/// point a canonical non-identity encoding, no point twice and none equal to `Q`) and already
/// re-blinded: it holds the run's secret `β` (as `β/2`, wiped on drop) and the returned value
/// `trunc(enc(β·X))` of every query point `X` (step 6, 12 bytes a point), so each point is
/// decompressed once, while it is validated. Nothing in it depends on the responder's data, so
/// a node parses before it reads its audience. [`respond_parsed`] consumes it: one `β`, one
/// reply.
pub struct ParsedQuery {
    params: RunParams,
    q: RistrettoPoint,
    a_counts: Vec<u64>,
    /// `trunc(enc(β·X))` of the query's points, in message order.
    reblinded: Vec<[u8; TRUNCATED_LEN]>,
    beta_half: SecretScalar,
    digest: [u8; 32],
}

impl std::fmt::Debug for ParsedQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedQuery")
            .field("params", &self.params)
            .field("a_counts", &self.a_counts)
            .finish_non_exhaustive()
    }
}

impl ParsedQuery {
    /// Parses and validates `query` for the session `params`, draws the run's secret `β` from
    /// `rng` (its first draw, as in [`respond`]) and re-blinds every query point. The size
    /// limit is decided from public quantities only: the query's declared points plus the
    /// reply's injected slots (`2·2T·nA·nB`) and its largest possible junk (`2T_B·nB`) must fit
    /// `limits.max_points`. The work depends on the query alone. Errors: every framing, binding
    /// and point error of [`PsiError`] (a point fault names the first bad point in message
    /// order); [`PsiError::TooLarge`] with that public bound.
    pub fn parse<R: CryptoRng + ?Sized>(
        params: &RunParams,
        query: &[u8],
        limits: &Limits,
        rng: &mut R,
    ) -> Result<ParsedQuery, PsiError> {
        let beta = SecretScalar::random(rng);
        Self::parse_with_scalar(params, query, limits, beta)
    }

    /// [`ParsedQuery::parse`] with a given `β` (test vectors).
    pub(crate) fn parse_with_scalar(
        params: &RunParams,
        query: &[u8],
        limits: &Limits,
        beta: SecretScalar,
    ) -> Result<ParsedQuery, PsiError> {
        params.validate()?;
        let Query {
            q_bytes,
            a_counts,
            a_points,
        } = parse_query(params, query, limits)?;
        let a_total = a_counts.iter().sum::<u64>();
        let injected = params.injected_total().unwrap_or(u64::MAX);
        let max_junk = 2
            * u64::from(params.responder_bucket_noise.offset)
            * u64::from(params.responder_buckets);
        let bound = a_total
            .saturating_add(injected.saturating_mul(2))
            .saturating_add(max_junk);
        if bound > limits.max_points as u64 {
            return Err(PsiError::TooLarge {
                declared: bound,
                limit: limits.max_points,
            });
        }
        let q = ec::decode_point(&q_bytes).map_err(|_| PsiError::InvalidDummyCommitment)?;
        let a_off = Offsets::new(&a_counts);
        if let Some(i) = ec::find_duplicate(a_points, Some(&q_bytes)) {
            let (bucket, index) = a_off.locate(i);
            return Err(PsiError::DuplicatePoint { bucket, index });
        }
        let beta_half = beta.half();
        drop(beta);
        // Every point decoded once, in parallel chunks, and multiplied by β/2 as it is decoded;
        // a chunk stops at its first bad point.
        let mut reblinded = vec![[0u8; TRUNCATED_LEN]; a_points.len()];
        let done = reblinded
            .par_chunks_mut(CHUNK)
            .zip(a_points.par_chunks(CHUNK))
            .enumerate()
            .try_for_each(|(c, (out, chunk))| {
                let mut points = Vec::with_capacity(chunk.len());
                for (j, bytes) in chunk.iter().enumerate() {
                    let p = ec::decode_point(bytes).map_err(|f| (c * CHUNK + j, f))?;
                    points.push(beta_half.mul(&p));
                }
                ec::write_doubled::<TRUNCATED_LEN>(&points, out.as_flattened_mut());
                Ok(())
            });
        if let Err((i, f)) = done {
            // Chunks fail in any order: the first fault in message order is at or before `i`.
            let (i, f) = a_points[..i]
                .par_iter()
                .enumerate()
                .filter_map(|(j, p)| ec::decode_point(p).err().map(|f| (j, f)))
                .min_by_key(|&(j, _)| j)
                .unwrap_or((i, f));
            return Err(f.at(a_off.locate(i)));
        }
        Ok(ParsedQuery {
            params: params.clone(),
            q,
            a_counts,
            reblinded,
            beta_half,
            digest: Sha256::digest(query).into(),
        })
    }

    /// The querier's noised bucket sizes `|A_g| + J_A[g]`.
    pub fn bucket_sizes(&self) -> &[u64] {
        &self.a_counts
    }
}

/// Answers an encoded `query` for the session `params` with the responder's `items`
/// (`items[g]` = digests of responder bucket `g` or their precomputed points, [`Items`]; no
/// entry twice): [`ResponderNoise::draw`]
/// from `noise`, [`ParsedQuery::parse`] (which draws the secret `β` from `rng`), then
/// [`respond_parsed`] with the injected slots' scalars, the shuffles and the junk from `rng` (a
/// CSPRNG: the node passes one seeded from the OS; a seeded one makes the reply reproducible
/// byte for byte, spec §4.4). Returns the encoded reply.
pub fn respond<'a, R: CryptoRng + ?Sized>(
    params: &RunParams,
    items: impl Into<Items<'a>>,
    query: &[u8],
    limits: &Limits,
    noise: &mut dyn NoiseSource,
    rng: &mut R,
) -> Result<Vec<u8>, PsiError> {
    let drawn = ResponderNoise::draw(params, noise)?;
    let parsed = ParsedQuery::parse(params, query, limits, rng)?;
    respond_parsed(parsed, items, drawn, limits, rng).map(|(msg, _)| msg)
}

/// [`respond`], also returning who each of the responder's own points is, locally and never
/// on the wire: in message order (bucket 0 first, the flat order of spec §5.3), `Some((g, i))`
/// for `items[g][i]`, `None` for junk and injected points. `psi-sum-v1` attaches a value to
/// each point in this order (`protocols/psi-sum-v1.md` §4.1 step 2). Consumes `noise` and `rng`
/// exactly as [`respond`] does.
pub fn respond_with_owners<'a, R: CryptoRng + ?Sized>(
    params: &RunParams,
    items: impl Into<Items<'a>>,
    query: &[u8],
    limits: &Limits,
    noise: &mut dyn NoiseSource,
    rng: &mut R,
) -> Result<(Vec<u8>, Owners), PsiError> {
    let drawn = ResponderNoise::draw(params, noise)?;
    let parsed = ParsedQuery::parse(params, query, limits, rng)?;
    respond_parsed(parsed, items, drawn, limits, rng)
}

/// Answers a validated and re-blinded `query` (its `β`) with the responder's `items` and its
/// `noise` drawn for the same run; the shuffles, the injected slots' scalars and the junk come
/// from `rng` in the order of spec §4.4 (after `β`, which [`ParsedQuery::parse`] drew). Errors:
/// [`PsiError::WrongBucketCount`] / [`PsiError::DuplicateItem`] for bad local items,
/// [`PsiError::CorruptHashedItem`] for a precomputed point that does not decompress,
/// [`PsiError::InvalidParams`] for noise of another shape, and [`PsiError::ReplyTooLarge`] (no
/// numbers: the reply's size depends on the responder's data) when the reply would exceed
/// `limits`. Returns the encoded reply and who each of the responder's points in it is
/// ([`Owners`], local only; see [`respond_with_owners`]).
pub fn respond_parsed<'a, R: CryptoRng + ?Sized>(
    query: ParsedQuery,
    items: impl Into<Items<'a>>,
    noise: ResponderNoise,
    limits: &Limits,
    rng: &mut R,
) -> Result<(Vec<u8>, Owners), PsiError> {
    let input = items.into();
    let items = input.buckets();
    let params = &query.params;
    let item_counts = check_items(params.responder_buckets, items)?;
    let (na, nb) = (
        params.querier_buckets as usize,
        params.responder_buckets as usize,
    );
    let ResponderNoise { junk, kept } = noise;
    if junk.len() != nb || kept.len() != na * nb {
        return Err(PsiError::InvalidParams(
            "the responder's noise was drawn for other parameters".into(),
        ));
    }
    let (q, a_counts) = (query.q, &query.a_counts);
    let a_total = a_counts.iter().sum::<u64>();
    let a_off = Offsets::new(a_counts);

    let slots = params.slots_per_cell() as usize;
    let injected = slots * na * nb;
    let b_total = item_counts.iter().sum::<u64>()
        + junk.iter().map(|&j| u64::from(j)).sum::<u64>()
        + injected as u64;
    let reply_points = a_total + injected as u64 + b_total;
    if reply_points > limits.max_points as u64 {
        return Err(PsiError::ReplyTooLarge);
    }

    let mut returned = Vec::with_capacity(a_total as usize + injected);
    let mut returned_counts = Vec::with_capacity(na);
    for ga in 0..na {
        let start = returned.len();
        returned.extend(a_off.range(ga).map(Returned::Query));
        returned.extend((ga * nb * slots..(ga + 1) * nb * slots).map(Returned::Dummy));
        returned[start..].shuffle(rng);
        returned_counts.push((returned.len() - start) as u64);
    }
    let mut own = Vec::with_capacity(b_total as usize);
    let mut own_counts = Vec::with_capacity(nb);
    let mut junk_index = 0u64;
    for (gb, (bucket, &j)) in items.iter().zip(junk.iter()).enumerate() {
        let start = own.len();
        own.extend((0..bucket.len()).map(|i| Own::Item(gb, i)));
        own.extend((junk_index..junk_index + u64::from(j)).map(Own::Junk));
        junk_index += u64::from(j);
        for ga in 0..na {
            let cell = ga * nb + gb;
            own.extend((cell * slots..(cell + 1) * slots).map(Own::Dummy));
        }
        own[start..].shuffle(rng);
        own_counts.push((own.len() - start) as u64);
    }
    let injected_key = StreamKey::draw(rng);
    let junk_key = StreamKey::draw(rng);

    // Injected slot i of cell c = i / 2T: (r1/2, r_A/2) where r_A = r1 for the first K_c slots
    // and an independent r2 otherwise (ec::injected_halves: the work does not depend on K_c).
    let dummy: Vec<(SecretScalar, SecretScalar)> = (0..injected)
        .into_par_iter()
        .map(|i| {
            let matching = (i % slots) < kept[i / slots] as usize;
            ec::injected_halves(&mut injected_key.stream(i as u64), matching)
        })
        .collect();

    let max_junk = 2 * u64::from(params.responder_bucket_noise.offset) * nb as u64;
    let hasher = Hasher::new(Domain::new(params)?, &input, &junk_key, max_junk);
    let d_table = RistrettoBasepointTable::create(&hasher.domain().dummy_base(&params.run_id));
    let q_table = RistrettoBasepointTable::create(&q);
    let beta_half = &query.beta_half;

    let mut msg =
        Vec::with_capacity(200 + 8 * (na + nb) + TRUNCATED_LEN * returned.len() + 32 * own.len());
    MessageHeader::encode(params, MessageType::Reply, &mut msg);
    msg.extend_from_slice(&query.digest);
    write_table(&returned_counts, &mut msg)?;
    write_table(&own_counts, &mut msg)?;
    let body = msg.len();
    let own_start = body + TRUNCATED_LEN * returned.len();
    msg.resize(own_start + 32 * own.len(), 0);
    let (ret_out, own_out) = msg[body..].split_at_mut(own_start - body);

    // Query slots copy the values re-blinded while parsing; injected slots are computed here.
    ret_out
        .par_chunks_mut(TRUNCATED_LEN * CHUNK)
        .zip(returned.par_chunks(CHUNK))
        .for_each(|(out, slots)| {
            let injected: Vec<RistrettoPoint> = slots
                .iter()
                .filter_map(|slot| match *slot {
                    Returned::Query(_) => None,
                    Returned::Dummy(i) => Some(dummy[i].1.mul_table(&q_table)),
                })
                .collect();
            let compressed = RistrettoPoint::double_and_compress_batch(&injected);
            let mut injected = compressed.iter();
            for (slot, dst) in slots.iter().zip(out.chunks_exact_mut(TRUNCATED_LEN)) {
                let value = match *slot {
                    Returned::Query(i) => Some(&query.reblinded[i][..]),
                    Returned::Dummy(_) => injected.next().map(|c| &c.as_bytes()[..TRUNCATED_LEN]),
                };
                if let Some(value) = value {
                    dst.copy_from_slice(value);
                }
            }
        });

    own_out
        .par_chunks_mut(32 * CHUNK)
        .zip(own.par_chunks(CHUNK))
        .try_for_each(|(out, slots)| {
            let points = slots
                .iter()
                .map(|slot| match *slot {
                    Own::Item(gb, i) => hasher
                        .item(&items[gb][i], (gb as u32, i))
                        .map(|p| beta_half.mul(&p)),
                    // Junk costs what an item costs: β·H(r) for a fresh random r.
                    Own::Junk(j) => Ok(beta_half.mul(&hasher.junk(&junk_key, j))),
                    Own::Dummy(i) => Ok(dummy[i].0.mul_table(&d_table)),
                })
                .collect::<Result<Vec<RistrettoPoint>, PsiError>>()?;
            ec::write_doubled::<32>(&points, out);
            Ok::<_, PsiError>(())
        })?;
    let owners = own
        .iter()
        .map(|slot| match *slot {
            Own::Item(gb, i) => Some((gb as u32, i)),
            Own::Junk(_) | Own::Dummy(_) => None,
        })
        .collect();
    Ok((msg, owners))
}
