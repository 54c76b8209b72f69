//! `psi-ca-v1` messages in numbered, acknowledged chunks (spec §10): the same run as
//! [`crate::Querier`] and [`crate::respond`], with neither side holding a whole message, and a
//! chunk repeated after a dropped connection answered identically.
//!
//! The querier makes its query chunk by chunk ([`StreamQuerier::query_chunk`]); the responder
//! takes them in order ([`StreamResponder::accept_query_chunk`], which acknowledges each), fixes
//! its reply once the query is complete ([`StreamResponder::finish_query`]) and makes the reply
//! chunk by chunk on request ([`StreamResponder::reply_chunk`]); the querier counts matches as
//! the reply chunks arrive ([`StreamQuerier::accept_reply_chunk`]) and releases at the end
//! ([`StreamQuerier::finish`]). Put together, the chunks' payloads are the messages of spec §5
//! byte for byte, and with the same seeded generators the run is the unchunked run.

use curve25519_dalek::ristretto::{RistrettoBasepointTable, RistrettoPoint};
use rand::CryptoRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tandem_dp::NoiseSource;

use crate::ec::{self, CHUNK, SecretScalar, StreamKey};
use crate::hash::Domain;
use crate::input::{check_items, draw};
use crate::items::{Hasher, Items};
use crate::message::{MessageHeader, MessageType, Offsets, Reader, write_table};
use crate::querier::TRUNCATED_LEN;
use crate::{CellCounts, Limits, PsiError, ResponderNoise, RunParams};

/// First four bytes of every chunk frame.
pub const CHUNK_MAGIC: [u8; 4] = *b"TPSC";
/// Bytes of a chunk frame before its payload (spec §10.1).
pub const FRAME_HEADER_LEN: usize = 30;
/// Largest `chunk_records` (`C`) a frame may declare.
pub const MAX_CHUNK_RECORDS: u32 = 1 << 16;

/// One chunk frame, parsed (spec §10.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkFrame<'a> {
    /// Query or reply.
    pub message_type: MessageType,
    /// The run.
    pub run_id: [u8; 16],
    /// Chunk number, 0 = the message's head.
    pub index: u32,
    /// `C`, records per chunk (the last may hold fewer).
    pub chunk_records: u32,
    /// The chunk's bytes of the message.
    pub payload: &'a [u8],
}

impl<'a> ChunkFrame<'a> {
    /// Parses a frame: magic, version, type, `C` in `1..=MAX_CHUNK_RECORDS`. The payload is
    /// checked by the receiving state machine. Errors: [`PsiError::MalformedChunk`],
    /// [`PsiError::UnknownMessageType`], [`PsiError::UnsupportedVersion`].
    pub fn parse(bytes: &'a [u8]) -> Result<ChunkFrame<'a>, PsiError> {
        if bytes.len() < FRAME_HEADER_LEN {
            return Err(PsiError::MalformedChunk("shorter than a frame header"));
        }
        if bytes[..4] != CHUNK_MAGIC {
            return Err(PsiError::MalformedChunk("bad magic"));
        }
        if bytes[4] != crate::VERSION {
            return Err(PsiError::UnsupportedVersion(bytes[4]));
        }
        let message_type = match bytes[5] {
            1 => MessageType::Query,
            2 => MessageType::Reply,
            other => return Err(PsiError::UnknownMessageType(other)),
        };
        let mut run_id = [0u8; 16];
        run_id.copy_from_slice(&bytes[6..22]);
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[at..at + 4]);
            u32::from_le_bytes(b)
        };
        let (index, chunk_records) = (u32_at(22), u32_at(26));
        if chunk_records == 0 || chunk_records > MAX_CHUNK_RECORDS {
            return Err(PsiError::MalformedChunk("chunk_records out of range"));
        }
        Ok(ChunkFrame {
            message_type,
            run_id,
            index,
            chunk_records,
            payload: &bytes[FRAME_HEADER_LEN..],
        })
    }

    /// The frame's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FRAME_HEADER_LEN + self.payload.len());
        out.extend_from_slice(&CHUNK_MAGIC);
        out.push(crate::VERSION);
        out.push(match self.message_type {
            MessageType::Query => 1,
            MessageType::Reply => 2,
        });
        out.extend_from_slice(&self.run_id);
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&self.chunk_records.to_le_bytes());
        out.extend_from_slice(self.payload);
        out
    }
}

/// The acknowledgement of an accepted chunk: its index and the SHA-256 of its frame. A retry of
/// the same frame gets the same acknowledgement (spec §10.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkAck {
    /// Index of the chunk.
    pub index: u32,
    /// SHA-256 of the frame as received.
    pub frame_digest: [u8; 32],
}

/// Number of chunks of a message with `records` records in chunks of `c` (head included).
pub fn chunk_count(records: u64, c: u32) -> u64 {
    1 + records.div_ceil(u64::from(c))
}

/// Which frames a receiver has accepted: the next index and the digest of every accepted frame.
#[derive(Debug, Default)]
struct Accepted {
    digests: Vec<[u8; 32]>,
}

/// What to do with an incoming frame.
enum Admit {
    /// The next chunk: process it.
    New([u8; 32]),
    /// The same bytes as an accepted chunk: acknowledge again, do nothing.
    Repeat([u8; 32]),
}

impl Accepted {
    fn admit(&self, index: u32, frame: &[u8]) -> Result<Admit, PsiError> {
        let digest: [u8; 32] = Sha256::digest(frame).into();
        let next = self.digests.len() as u64;
        match u64::from(index) {
            i if i < next => {
                if self.digests[i as usize] == digest {
                    Ok(Admit::Repeat(digest))
                } else {
                    Err(PsiError::ChunkConflict { index })
                }
            }
            i if i == next => Ok(Admit::New(digest)),
            _ => Err(PsiError::ChunkOutOfOrder {
                expected: next as u32,
                found: index,
            }),
        }
    }
}

/// Checks a frame belongs to the session and declares the session's `C` (once fixed).
fn check_frame(
    frame: &ChunkFrame<'_>,
    params: &RunParams,
    expected: MessageType,
    c: Option<u32>,
) -> Result<(), PsiError> {
    if frame.message_type != expected {
        return Err(PsiError::WrongMessageType {
            expected,
            found: frame.message_type,
        });
    }
    if frame.run_id != params.run_id {
        return Err(PsiError::WrongBinding { field: "run_id" });
    }
    if c.is_some_and(|c| c != frame.chunk_records) {
        return Err(PsiError::MalformedChunk(
            "chunk_records differs from the head's",
        ));
    }
    Ok(())
}

/// Records `[start, end)` of a sequence of `first` records of one kind (returned values)
/// followed by records of another (points), as `(indices among the first, among the second)`.
fn split_records(start: u64, end: u64, first: u64) -> (std::ops::Range<u64>, std::ops::Range<u64>) {
    (
        start.min(first)..end.min(first),
        start.max(first) - first..end.max(first) - first,
    )
}

/// Refuses (without failing the run) a chunk index past the last of a message of `chunks`.
fn past_the_end(index: u32, chunks: u64) -> Result<(), PsiError> {
    if u64::from(index) >= chunks {
        return Err(PsiError::ChunkOutOfOrder {
            expected: (chunks - 1) as u32,
            found: index,
        });
    }
    Ok(())
}

/// Records `[start, end)` of chunk `index ≥ 1` among `total` records in chunks of `c`.
fn chunk_range(index: u32, c: u32, total: u64) -> Result<(u64, u64), PsiError> {
    let chunks = chunk_count(total, c);
    if index == 0 || u64::from(index) >= chunks {
        return Err(PsiError::ChunkOutOfOrder {
            expected: (chunks - 1) as u32,
            found: index,
        });
    }
    let start = u64::from(index - 1) * u64::from(c);
    Ok((start, (start + u64::from(c)).min(total)))
}

/// One slot of a querier bucket in the query.
#[derive(Clone, Copy)]
enum QuerySlot {
    /// `items[bucket][index]`.
    Item(u32, u32),
    /// The junk slot with this index.
    Junk(u32),
}

/// The query's order, four bytes a point: the shuffled slots as an item's flat index, or
/// `item_total + j` for junk slot `j`.
struct QueryOrder {
    slots: Vec<u32>,
    items: Offsets,
    item_total: u32,
}

impl QueryOrder {
    fn slot(&self, i: usize) -> QuerySlot {
        match self.slots[i] {
            item if item < self.item_total => {
                let (g, index) = self.items.locate(item as usize);
                QuerySlot::Item(g, index as u32)
            }
            junk => QuerySlot::Junk(junk - self.item_total),
        }
    }
}

/// The querier's side of a streamed run (spec §10): makes the query chunk by chunk, counts the
/// matches as the reply's chunks arrive, and holds `α` (as `α/2`, wiped on drop) throughout.
pub struct StreamQuerier {
    params: RunParams,
    limits: Limits,
    chunk_records: u32,
    items: Items<'static>,
    item_points: Hasher,
    alpha_half: SecretScalar,
    junk_key: StreamKey,
    /// The query's order; emptied, with `items`, once the reply's head binds the whole query.
    order: QueryOrder,
    points: u64,
    answered: bool,
    head: Vec<u8>,
    sent: Vec<u64>,
    /// Running SHA-256 of the query over the chunks made so far (in order), then its value.
    hasher: Option<Sha256>,
    hashed: u32,
    query_digest: Option<[u8; 32]>,
    accepted: Accepted,
    reply: Option<ReplyProgress>,
    failed: bool,
}

impl std::fmt::Debug for StreamQuerier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamQuerier")
            .field("params", &self.params)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// What the querier has read of the reply so far.
struct ReplyProgress {
    c: u32,
    a_off: Offsets,
    b_off: Offsets,
    a_total: u64,
    b_total: u64,
    b_counts: Vec<u64>,
    /// Returned values with their flat index, sorted by value once all are in.
    values: Vec<([u8; TRUNCATED_LEN], u32)>,
    /// `trunc(enc(α·P))` of every B point so far (the duplicate check at the end).
    seen: Vec<[u8; TRUNCATED_LEN]>,
    matches: Vec<u64>,
    records: u64,
    sorted: bool,
}

impl StreamQuerier {
    /// Starts a streamed run, exactly as [`crate::Querier::start`] (same checks, same draws
    /// from `noise` and `rng` in the same order, so the same seeds give the same query):
    /// `items[g]` are the digests of bucket `g` or their precomputed points ([`Items`]),
    /// `chunk_records` is `C` (`1..=2^16`). Errors: those of [`crate::Querier::start`];
    /// [`PsiError::MalformedChunk`] for a bad `C`.
    pub fn start<R: CryptoRng + ?Sized>(
        params: RunParams,
        items: impl Into<Items<'static>>,
        chunk_records: u32,
        limits: Limits,
        noise: &mut dyn NoiseSource,
        rng: &mut R,
    ) -> Result<StreamQuerier, PsiError> {
        let alpha = SecretScalar::random(rng);
        Self::start_with_scalar(params, items, chunk_records, limits, noise, alpha, rng)
    }

    fn start_with_scalar<R: CryptoRng + ?Sized>(
        params: RunParams,
        items: impl Into<Items<'static>>,
        chunk_records: u32,
        limits: Limits,
        noise: &mut dyn NoiseSource,
        alpha: SecretScalar,
        rng: &mut R,
    ) -> Result<StreamQuerier, PsiError> {
        let input = items.into();
        let items = input.buckets();
        if chunk_records == 0 || chunk_records > MAX_CHUNK_RECORDS {
            return Err(PsiError::MalformedChunk("chunk_records out of range"));
        }
        params.validate()?;
        check_items(params.querier_buckets, items)?;
        if items.iter().any(|b| b.len() > u32::MAX as usize) {
            return Err(PsiError::InvalidParams(
                "more than 2^32-1 entries in a bucket".into(),
            ));
        }
        let domain = Domain::new(&params)?;
        let junk = draw(noise, &params.querier_bucket_noise, items.len())?;
        let item_counts: Vec<u64> = items.iter().map(|b| b.len() as u64).collect();
        let item_total = item_counts.iter().sum::<u64>();
        let total = item_total + junk.iter().map(|&j| u64::from(j)).sum::<u64>();
        if total > u64::from(u32::MAX) {
            return Err(PsiError::InvalidParams(
                "more than 2^32-1 query points".into(),
            ));
        }
        let (item_total, items_off) = (item_total as u32, Offsets::new(&item_counts));
        let mut slots: Vec<u32> = Vec::with_capacity(total as usize);
        let mut sent = Vec::with_capacity(items.len());
        let mut junk_index = item_total;
        for (g, &j) in junk.iter().enumerate() {
            let start = slots.len();
            slots.extend(items_off.range(g).map(|i| i as u32));
            slots.extend(junk_index..junk_index + j);
            junk_index += j;
            slots[start..].shuffle(rng);
            sent.push((slots.len() - start) as u64);
        }
        let junk_key = StreamKey::draw(rng);
        let max_junk = 2 * u64::from(params.querier_bucket_noise.offset) * junk.len() as u64;
        let q = alpha.mul(&domain.dummy_base(&params.run_id)).compress();
        let hasher = Hasher::new(domain, &input, &junk_key, max_junk);
        let alpha_half = alpha.half();
        drop(alpha);
        let mut head = Vec::with_capacity(160 + 8 * items.len());
        MessageHeader::encode(&params, MessageType::Query, &mut head);
        head.extend_from_slice(q.as_bytes());
        write_table(&sent, &mut head)?;
        Ok(StreamQuerier {
            params,
            limits,
            chunk_records,
            items: input,
            item_points: hasher,
            alpha_half,
            junk_key,
            order: QueryOrder {
                slots,
                items: items_off,
                item_total,
            },
            points: total,
            answered: false,
            head,
            sent,
            hasher: Some(Sha256::new()),
            hashed: 0,
            query_digest: None,
            accepted: Accepted::default(),
            reply: None,
            failed: false,
        })
    }

    /// Number of chunks of the query (head included).
    pub fn query_chunks(&self) -> u64 {
        chunk_count(self.points, self.chunk_records)
    }

    /// Number of query points (items and junk).
    pub fn query_points(&self) -> u64 {
        self.points
    }

    /// The frame of query chunk `index`. Chunks must first be made in order (the query's
    /// digest is computed over them); any chunk already made can be made again, with the same
    /// bytes (a retry) until the reply's head arrives: it binds the whole query, so the query's
    /// items are let go then. Errors: [`PsiError::ChunkOutOfOrder`] for an index past the next
    /// one or the last, [`PsiError::QueryAnswered`] after the reply's head.
    pub fn query_chunk(&mut self, index: u32) -> Result<Vec<u8>, PsiError> {
        if self.answered {
            return Err(PsiError::QueryAnswered);
        }
        if index > self.hashed {
            return Err(PsiError::ChunkOutOfOrder {
                expected: self.hashed,
                found: index,
            });
        }
        let payload = if index == 0 {
            self.head.clone()
        } else {
            let (start, end) = chunk_range(index, self.chunk_records, self.points)?;
            let mut out = vec![0u8; 32 * (end - start) as usize];
            let (items, order, hasher, alpha_half, junk_key) = (
                self.items.buckets(),
                &self.order,
                &self.item_points,
                &self.alpha_half,
                &self.junk_key,
            );
            out.par_chunks_mut(32 * CHUNK)
                .zip((start as usize..end as usize).into_par_iter().chunks(CHUNK))
                .try_for_each(|(out, indices)| {
                    let points = indices
                        .iter()
                        .map(|&i| match order.slot(i) {
                            QuerySlot::Item(g, i) => hasher
                                .item(&items[g as usize][i as usize], (g, i as usize))
                                .map(|p| alpha_half.mul(&p)),
                            QuerySlot::Junk(j) => {
                                Ok(alpha_half.mul(&hasher.junk(junk_key, u64::from(j))))
                            }
                        })
                        .collect::<Result<Vec<RistrettoPoint>, PsiError>>()?;
                    ec::write_doubled::<32>(&points, out);
                    Ok::<_, PsiError>(())
                })?;
            out
        };
        if index == self.hashed
            && let Some(hasher) = self.hasher.as_mut()
        {
            hasher.update(&payload);
            self.hashed += 1;
            if u64::from(self.hashed) == self.query_chunks()
                && let Some(hasher) = self.hasher.take()
            {
                self.query_digest = Some(hasher.finalize().into());
            }
        }
        Ok(ChunkFrame {
            message_type: MessageType::Query,
            run_id: self.params.run_id,
            index,
            chunk_records: self.chunk_records,
            payload: &payload,
        }
        .encode())
    }

    /// Takes reply chunk frame `frame` (spec §10.2): the next chunk is checked and counted, a
    /// repeated identical one is acknowledged again, a changed one refused. Errors: every
    /// framing, binding, count and point error of [`crate::Querier::finish`];
    /// [`PsiError::ChunkOutOfOrder`], [`PsiError::ChunkConflict`] (the state is unchanged);
    /// [`PsiError::StreamFailed`] after an earlier error in a chunk's contents.
    pub fn accept_reply_chunk(&mut self, frame: &[u8]) -> Result<ChunkAck, PsiError> {
        if self.failed {
            return Err(PsiError::StreamFailed);
        }
        let parsed = ChunkFrame::parse(frame)?;
        check_frame(
            &parsed,
            &self.params,
            MessageType::Reply,
            self.reply.as_ref().map(|r| r.c),
        )?;
        let frame_digest = match self.accepted.admit(parsed.index, frame)? {
            Admit::Repeat(d) => {
                return Ok(ChunkAck {
                    index: parsed.index,
                    frame_digest: d,
                });
            }
            Admit::New(d) => d,
        };
        if let Some(r) = &self.reply {
            past_the_end(parsed.index, chunk_count(r.a_total + r.b_total, r.c))?;
        }
        let result = if parsed.index == 0 {
            self.reply_head(parsed.payload, parsed.chunk_records)
        } else {
            self.reply_records(parsed.index, parsed.payload)
        };
        if let Err(e) = result {
            self.failed = true;
            return Err(e);
        }
        self.accepted.digests.push(frame_digest);
        Ok(ChunkAck {
            index: parsed.index,
            frame_digest,
        })
    }

    fn reply_head(&mut self, payload: &[u8], c: u32) -> Result<(), PsiError> {
        let query_digest = self.query_digest.ok_or(PsiError::StreamIncomplete)?;
        let params = &self.params;
        let (na, nb) = (params.querier_buckets, params.responder_buckets);
        let slots = params.slots_per_cell();
        let mut r = Reader::new(payload);
        MessageHeader::decode(&mut r)?.check(params, MessageType::Reply)?;
        if r.array::<32>()? != query_digest {
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
        r.expect_body(&[], 0)?;
        let (a_total, b_total) = (a_counts.iter().sum::<u64>(), b_counts.iter().sum::<u64>());
        let declared = a_total.saturating_add(b_total);
        if declared > self.limits.max_points as u64 {
            return Err(PsiError::TooLarge {
                declared,
                limit: self.limits.max_points,
            });
        }
        // The head binds the whole query (its digest, checked above), so the query's items and
        // order are not needed again: the reply's records take their place in memory.
        self.items = Items::digests(Vec::new());
        self.order.slots = Vec::new();
        self.answered = true;
        self.reply = Some(ReplyProgress {
            c,
            a_off: Offsets::new(&a_counts),
            b_off: Offsets::new(&b_counts),
            a_total,
            b_total,
            b_counts,
            values: Vec::with_capacity(a_total as usize),
            seen: Vec::with_capacity(b_total as usize),
            matches: vec![0; params.cells()],
            records: 0,
            sorted: false,
        });
        Ok(())
    }

    fn reply_records(&mut self, index: u32, payload: &[u8]) -> Result<(), PsiError> {
        let nb = self.params.responder_buckets as usize;
        let alpha_half = &self.alpha_half;
        let reply = self.reply.as_mut().ok_or(PsiError::StreamIncomplete)?;
        let total = reply.a_total + reply.b_total;
        let (start, end) = chunk_range(index, reply.c, total)?;
        let (vals, points) = split_records(start, end, reply.a_total);
        let needed =
            (vals.end - vals.start) * TRUNCATED_LEN as u64 + (points.end - points.start) * 32;
        if needed != payload.len() as u64 {
            return Err(PsiError::MalformedChunk(
                "payload length differs from the chunk's records",
            ));
        }
        let (val_bytes, point_bytes) =
            payload.split_at((vals.end - vals.start) as usize * TRUNCATED_LEN);
        let (val_recs, _) = val_bytes.as_chunks::<TRUNCATED_LEN>();
        for (value, flat) in val_recs.iter().zip(vals.clone()) {
            reply.values.push((*value, flat as u32));
        }
        if !reply.sorted && reply.values.len() as u64 == reply.a_total {
            reply.sorted = true;
            reply.values.par_sort_unstable();
            if let Some(w) = reply.values.windows(2).find(|w| w[0].0 == w[1].0) {
                let later = w[0].1.max(w[1].1) as usize;
                let (bucket, index) = reply.a_off.locate(later);
                return Err(PsiError::DuplicateValue { bucket, index });
            }
        }
        let (point_recs, _) = point_bytes.as_chunks::<32>();
        let base = points.start as usize;
        let b_off = &reply.b_off;
        let keys: Vec<Vec<[u8; TRUNCATED_LEN]>> = point_recs
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(c, chunk)| {
                let mut pts = Vec::with_capacity(chunk.len());
                for (j, bytes) in chunk.iter().enumerate() {
                    let p = ec::decode_point(bytes)
                        .map_err(|f| f.at(b_off.locate(base + c * CHUNK + j)))?;
                    pts.push(alpha_half.mul(&p));
                }
                let mut out = vec![[0u8; TRUNCATED_LEN]; pts.len()];
                ec::write_doubled::<TRUNCATED_LEN>(&pts, out.as_flattened_mut());
                Ok::<_, PsiError>(out)
            })
            .collect::<Result<_, _>>()?;
        for (j, key) in keys.into_iter().flatten().enumerate() {
            if let Ok(at) = reply.values.binary_search_by(|(v, _)| v.cmp(&key)) {
                let ga = reply.a_off.locate(reply.values[at].1 as usize).0 as usize;
                let gb = b_off.locate(base + j).0 as usize;
                reply.matches[ga * nb + gb] += 1;
            }
            reply.seen.push(key);
        }
        reply.records = end;
        if end == total
            && let Some(i) = ec::find_duplicate(&reply.seen, None)
        {
            let (bucket, index) = reply.b_off.locate(i);
            return Err(PsiError::DuplicatePoint { bucket, index });
        }
        Ok(())
    }

    /// Records of the reply (returned values and B points) read so far, and in all (0 before
    /// the reply's head).
    pub fn reply_progress(&self) -> (u64, u64) {
        self.reply
            .as_ref()
            .map_or((0, 0), |r| (r.records, r.a_total + r.b_total))
    }

    /// Whether every chunk of the reply has been accepted.
    pub fn reply_complete(&self) -> bool {
        !self.failed
            && self.reply.as_ref().is_some_and(|r| {
                r.records == r.a_total + r.b_total
                    && self.accepted.digests.len() as u64 == chunk_count(r.a_total + r.b_total, r.c)
            })
    }

    /// The cell counts, once the whole reply is in: the same as [`crate::Querier::finish`] on
    /// the whole reply. Errors: [`PsiError::StreamIncomplete`] before the last chunk,
    /// [`PsiError::StreamFailed`] after an error.
    pub fn finish(self) -> Result<CellCounts, PsiError> {
        if self.failed {
            return Err(PsiError::StreamFailed);
        }
        if !self.reply_complete() {
            return Err(PsiError::StreamIncomplete);
        }
        let reply = self.reply.ok_or(PsiError::StreamIncomplete)?;
        let params = &self.params;
        let minimum = params.slots_per_cell() * u64::from(params.querier_buckets);
        let t = i64::from(params.cell_noise.offset);
        Ok(CellCounts {
            querier_buckets: params.querier_buckets,
            responder_buckets: params.responder_buckets,
            noised: reply.matches.iter().map(|&m| m as i64 - t).collect(),
            responder_bucket_sizes_noised: reply.b_counts.iter().map(|&n| n - minimum).collect(),
        })
    }
}

/// One returned value of the reply.
#[derive(Clone, Copy)]
enum Returned {
    /// `trunc(enc(β·X))` of the query point at this flat index (kept since the query).
    Query(u32),
    /// `trunc(enc(r_A·Q))` of the injected slot at this index.
    Dummy(u32),
}

/// One of the responder's own points in the reply.
#[derive(Clone, Copy)]
enum Own {
    /// `items[bucket][index]`.
    Item(u32, u32),
    /// The junk slot with this index.
    Junk(u32),
    /// `r1·D` of the injected slot at this index.
    Dummy(u32),
}

/// The reply's order, four bytes a record (a responder at ten million items holds it whole):
/// the shuffled returned values as `i < a_total` for query point `i`, else injected slot
/// `i − a_total`; the shuffled own points as item flat index, then junk, then injected slot.
struct ReplyOrder {
    returned: Vec<u32>,
    own: Vec<u32>,
    a_total: u32,
    items: Offsets,
    item_total: u32,
    junk_total: u32,
}

impl ReplyOrder {
    /// Records of the reply: returned values and own points.
    fn records(&self) -> u64 {
        (self.returned.len() + self.own.len()) as u64
    }

    fn returned(&self, i: usize) -> Returned {
        match self.returned[i] {
            q if q < self.a_total => Returned::Query(q),
            d => Returned::Dummy(d - self.a_total),
        }
    }

    fn own(&self, i: usize) -> Own {
        match self.own[i] {
            item if item < self.item_total => {
                let (g, index) = self.items.locate(item as usize);
                Own::Item(g, index as u32)
            }
            junk if junk - self.item_total < self.junk_total => Own::Junk(junk - self.item_total),
            d => Own::Dummy(d - self.item_total - self.junk_total),
        }
    }
}

/// What the responder reads of the query as it arrives.
struct QueryProgress {
    c: u32,
    q: RistrettoPoint,
    q_trunc: [u8; TRUNCATED_LEN],
    a_counts: Vec<u64>,
    a_off: Offsets,
    a_total: u64,
    /// `trunc(enc(β·X))` of every query point so far, in message order.
    values: Vec<[u8; TRUNCATED_LEN]>,
    hasher: Option<Sha256>,
    digest: Option<[u8; 32]>,
}

/// The reply, fixed once the query is complete: every random choice made, nothing left to draw.
struct ReplyPlan {
    head: Vec<u8>,
    order: ReplyOrder,
    items: Items<'static>,
    hasher: Hasher,
    /// `(r1/2, r_A/2)` of every injected slot; wiped on drop.
    dummy: Vec<(SecretScalar, SecretScalar)>,
    junk_key: StreamKey,
    d_table: RistrettoBasepointTable,
    q_table: RistrettoBasepointTable,
}

/// The responder's side of a streamed run (spec §10): takes the query chunk by chunk, then
/// makes the reply chunk by chunk on request. Holds `β` (as `β/2`, wiped on drop).
pub struct StreamResponder {
    params: RunParams,
    limits: Limits,
    noise: Option<ResponderNoise>,
    beta_half: SecretScalar,
    domain: Domain,
    accepted: Accepted,
    query: Option<QueryProgress>,
    plan: Option<ReplyPlan>,
    reply_c: u32,
    failed: bool,
}

impl std::fmt::Debug for StreamResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResponder")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl StreamResponder {
    /// Starts the responder's side of a streamed run with its `noise` drawn for `params`
    /// ([`ResponderNoise::draw`], before any query chunk is read) and draws `β` from `rng`
    /// (the first draw of [`crate::respond_parsed`]). `chunk_records` is the `C` of the reply.
    /// Errors: [`PsiError::InvalidParams`], [`PsiError::MalformedChunk`] for a bad `C`.
    pub fn start<R: CryptoRng + ?Sized>(
        params: RunParams,
        noise: ResponderNoise,
        chunk_records: u32,
        limits: Limits,
        rng: &mut R,
    ) -> Result<StreamResponder, PsiError> {
        if chunk_records == 0 || chunk_records > MAX_CHUNK_RECORDS {
            return Err(PsiError::MalformedChunk("chunk_records out of range"));
        }
        params.validate()?;
        let (na, nb) = (
            params.querier_buckets as usize,
            params.responder_buckets as usize,
        );
        if noise.junk.len() != nb || noise.kept.len() != na * nb {
            return Err(PsiError::InvalidParams(
                "the responder's noise was drawn for other parameters".into(),
            ));
        }
        let beta = SecretScalar::random(rng);
        let beta_half = beta.half();
        drop(beta);
        let domain = Domain::new(&params)?;
        Ok(StreamResponder {
            params,
            limits,
            noise: Some(noise),
            beta_half,
            domain,
            accepted: Accepted::default(),
            query: None,
            plan: None,
            reply_c: chunk_records,
            failed: false,
        })
    }

    /// Takes query chunk frame `frame` (spec §10.2) and acknowledges it: the next chunk is
    /// checked (the head as [`crate::ParsedQuery::parse`] does, with the same public size
    /// bound; each point canonical and not the identity; after the last chunk, no point twice
    /// nor equal to `Q`), a repeated identical one is acknowledged again, a changed one refused.
    /// Errors: those of [`crate::ParsedQuery::parse`]; [`PsiError::ChunkOutOfOrder`],
    /// [`PsiError::ChunkConflict`] (the state is unchanged); [`PsiError::StreamFailed`] after
    /// an earlier error in a chunk's contents.
    pub fn accept_query_chunk(&mut self, frame: &[u8]) -> Result<ChunkAck, PsiError> {
        if self.failed {
            return Err(PsiError::StreamFailed);
        }
        let parsed = ChunkFrame::parse(frame)?;
        check_frame(
            &parsed,
            &self.params,
            MessageType::Query,
            self.query.as_ref().map(|q| q.c),
        )?;
        let frame_digest = match self.accepted.admit(parsed.index, frame)? {
            Admit::Repeat(d) => {
                return Ok(ChunkAck {
                    index: parsed.index,
                    frame_digest: d,
                });
            }
            Admit::New(d) => d,
        };
        if let Some(q) = &self.query {
            past_the_end(parsed.index, chunk_count(q.a_total, q.c))?;
        }
        let result = if parsed.index == 0 {
            self.query_head(parsed.payload, parsed.chunk_records)
        } else {
            self.query_records(parsed.index, parsed.payload)
        };
        if let Err(e) = result {
            self.failed = true;
            return Err(e);
        }
        self.accepted.digests.push(frame_digest);
        Ok(ChunkAck {
            index: parsed.index,
            frame_digest,
        })
    }

    fn query_head(&mut self, payload: &[u8], c: u32) -> Result<(), PsiError> {
        let params = &self.params;
        let mut r = Reader::new(payload);
        MessageHeader::decode(&mut r)?.check(params, MessageType::Query)?;
        let q_bytes = r.array::<32>()?;
        let a_counts = r.table(params.querier_buckets)?;
        r.expect_body(&[], 0)?;
        let a_total = a_counts.iter().sum::<u64>();
        let injected = params.injected_total().unwrap_or(u64::MAX);
        let max_junk = 2
            * u64::from(params.responder_bucket_noise.offset)
            * u64::from(params.responder_buckets);
        let bound = a_total
            .saturating_add(injected.saturating_mul(2))
            .saturating_add(max_junk);
        if bound > self.limits.max_points as u64 {
            return Err(PsiError::TooLarge {
                declared: bound,
                limit: self.limits.max_points,
            });
        }
        let q = ec::decode_point(&q_bytes).map_err(|_| PsiError::InvalidDummyCommitment)?;
        let mut q_trunc = [0u8; TRUNCATED_LEN];
        ec::write_doubled::<TRUNCATED_LEN>(&[self.beta_half.mul(&q)], &mut q_trunc);
        let mut hasher = Sha256::new();
        hasher.update(payload);
        let mut progress = QueryProgress {
            c,
            q,
            q_trunc,
            a_off: Offsets::new(&a_counts),
            a_counts,
            a_total,
            values: Vec::with_capacity(a_total as usize),
            hasher: Some(hasher),
            digest: None,
        };
        if a_total == 0 {
            progress.complete()?;
        }
        self.query = Some(progress);
        Ok(())
    }

    fn query_records(&mut self, index: u32, payload: &[u8]) -> Result<(), PsiError> {
        let beta_half = &self.beta_half;
        let query = self.query.as_mut().ok_or(PsiError::StreamIncomplete)?;
        let (start, end) = chunk_range(index, query.c, query.a_total)?;
        if (end - start) * 32 != payload.len() as u64 {
            return Err(PsiError::MalformedChunk(
                "payload length differs from the chunk's records",
            ));
        }
        let (points, _) = payload.as_chunks::<32>();
        let base = start as usize;
        let a_off = &query.a_off;
        let values: Vec<Vec<[u8; TRUNCATED_LEN]>> = points
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(c, chunk)| {
                let mut pts = Vec::with_capacity(chunk.len());
                for (j, bytes) in chunk.iter().enumerate() {
                    let p = ec::decode_point(bytes)
                        .map_err(|f| f.at(a_off.locate(base + c * CHUNK + j)))?;
                    pts.push(beta_half.mul(&p));
                }
                let mut out = vec![[0u8; TRUNCATED_LEN]; pts.len()];
                ec::write_doubled::<TRUNCATED_LEN>(&pts, out.as_flattened_mut());
                Ok::<_, PsiError>(out)
            })
            .collect::<Result<_, _>>()?;
        query.values.extend(values.into_iter().flatten());
        if let Some(h) = query.hasher.as_mut() {
            h.update(payload);
        }
        if end == query.a_total {
            query.complete()?;
        }
        Ok(())
    }

    /// Query points received so far, and in all (0 before the query's head).
    pub fn query_progress(&self) -> (u64, u64) {
        self.query
            .as_ref()
            .map_or((0, 0), |q| (q.values.len() as u64, q.a_total))
    }

    /// The querier's noised bucket sizes `|A_g| + J_A[g]`, once the query's head is in.
    pub fn query_bucket_sizes(&self) -> Option<&[u64]> {
        self.query.as_ref().map(|q| q.a_counts.as_slice())
    }

    /// Whether the whole query is in and checked (then, and only then, the responder reads its
    /// audience and calls [`StreamResponder::finish_query`]).
    pub fn query_complete(&self) -> bool {
        !self.failed && self.query.as_ref().is_some_and(|q| q.digest.is_some())
    }

    /// Fixes the reply once the whole query is in: checks `items` (`items[g]` = digests of
    /// responder bucket `g` or their precomputed points, [`Items`]; no entry twice) and makes
    /// every random choice of the reply from `rng`, in the order of [`crate::respond_parsed`]
    /// after `β` (spec §4.4). Errors:
    /// [`PsiError::StreamIncomplete`], [`PsiError::WrongBucketCount`],
    /// [`PsiError::DuplicateItem`], [`PsiError::ReplyTooLarge`] (no number: the reply's size
    /// depends on the responder's data).
    pub fn finish_query<R: CryptoRng + ?Sized>(
        &mut self,
        items: impl Into<Items<'static>>,
        rng: &mut R,
    ) -> Result<(), PsiError> {
        if !self.query_complete() || self.plan.is_some() {
            return Err(PsiError::StreamIncomplete);
        }
        let input = items.into();
        let items = input.buckets();
        let params = &self.params;
        let item_counts = check_items(params.responder_buckets, items)?;
        let query = self.query.as_ref().ok_or(PsiError::StreamIncomplete)?;
        let noise = self.noise.take().ok_or(PsiError::StreamIncomplete)?;
        let (na, nb) = (
            params.querier_buckets as usize,
            params.responder_buckets as usize,
        );
        let (junk, kept) = (&noise.junk, &noise.kept);
        let slots = params.slots_per_cell() as usize;
        let injected = slots * na * nb;
        let b_total = item_counts.iter().sum::<u64>()
            + junk.iter().map(|&j| u64::from(j)).sum::<u64>()
            + injected as u64;
        if query.a_total + injected as u64 + b_total > self.limits.max_points as u64
            || b_total > u64::from(u32::MAX)
        {
            return Err(PsiError::ReplyTooLarge);
        }

        // Every index below fits in a u32: a_total + injected and b_total are bounded above.
        let a_total = query.a_total as u32;
        let mut returned: Vec<u32> = Vec::with_capacity(query.a_total as usize + injected);
        let mut returned_counts = Vec::with_capacity(na);
        for ga in 0..na {
            let start = returned.len();
            returned.extend(query.a_off.range(ga).map(|i| i as u32));
            returned.extend((ga * nb * slots..(ga + 1) * nb * slots).map(|i| a_total + i as u32));
            returned[start..].shuffle(rng);
            returned_counts.push((returned.len() - start) as u64);
        }
        let item_total = item_counts.iter().sum::<u64>() as u32;
        let junk_total = junk.iter().map(|&j| u64::from(j)).sum::<u64>() as u32;
        let items_off = Offsets::new(&item_counts);
        let mut own: Vec<u32> = Vec::with_capacity(b_total as usize);
        let mut own_counts = Vec::with_capacity(nb);
        let mut junk_index = item_total;
        for (gb, &j) in junk.iter().enumerate() {
            let start = own.len();
            own.extend(items_off.range(gb).map(|i| i as u32));
            own.extend(junk_index..junk_index + j);
            junk_index += j;
            for ga in 0..na {
                let cell = ga * nb + gb;
                own.extend(
                    (cell * slots..(cell + 1) * slots).map(|i| item_total + junk_total + i as u32),
                );
            }
            own[start..].shuffle(rng);
            own_counts.push((own.len() - start) as u64);
        }
        let injected_key = StreamKey::draw(rng);
        let junk_key = StreamKey::draw(rng);
        let dummy: Vec<(SecretScalar, SecretScalar)> = (0..injected)
            .into_par_iter()
            .map(|i| {
                let matching = (i % slots) < kept[i / slots] as usize;
                ec::injected_halves(&mut injected_key.stream(i as u64), matching)
            })
            .collect();
        drop(noise);
        let max_junk = 2 * u64::from(params.responder_bucket_noise.offset) * nb as u64;
        let hasher = Hasher::new(self.domain.clone(), &input, &junk_key, max_junk);
        let d_table = RistrettoBasepointTable::create(&self.domain.dummy_base(&params.run_id));
        let q_table = RistrettoBasepointTable::create(&query.q);
        let mut head = Vec::with_capacity(200 + 8 * (na + nb));
        MessageHeader::encode(params, MessageType::Reply, &mut head);
        head.extend_from_slice(&query.digest.ok_or(PsiError::StreamIncomplete)?);
        write_table(&returned_counts, &mut head)?;
        write_table(&own_counts, &mut head)?;
        self.plan = Some(ReplyPlan {
            head,
            order: ReplyOrder {
                returned,
                own,
                a_total,
                items: items_off,
                item_total,
                junk_total,
            },
            items: input,
            hasher,
            dummy,
            junk_key,
            d_table,
            q_table,
        });
        Ok(())
    }

    /// Number of chunks of the reply (head included), once it is fixed.
    pub fn reply_chunks(&self) -> Option<u64> {
        self.plan
            .as_ref()
            .map(|p| chunk_count(p.order.records(), self.reply_c))
    }

    /// Records of the reply (returned values and own points), once it is fixed.
    pub fn reply_records(&self) -> Option<u64> {
        self.plan.as_ref().map(|p| p.order.records())
    }

    /// Who each of the responder's own points in the reply is, locally and never on the wire,
    /// in message order: `Some((g, i))` for `items[g][i]`, `None` for junk and injected points
    /// (as [`crate::respond_with_owners`]; `psi-sum-v1` attaches values in this order).
    pub fn owners(&self) -> Option<crate::Owners> {
        self.plan.as_ref().map(|p| {
            (0..p.order.own.len())
                .map(|i| match p.order.own(i) {
                    Own::Item(g, i) => Some((g, i as usize)),
                    Own::Junk(_) | Own::Dummy(_) => None,
                })
                .collect()
        })
    }

    /// The frame of reply chunk `index`, in any order and as often as asked: the bytes are a
    /// function of the state fixed by [`StreamResponder::finish_query`], so a repeat is
    /// identical and draws nothing (spec §10.2). Errors: [`PsiError::StreamIncomplete`] before
    /// the reply is fixed, [`PsiError::ChunkOutOfOrder`] past the last chunk.
    pub fn reply_chunk(&self, index: u32) -> Result<Vec<u8>, PsiError> {
        let plan = self.plan.as_ref().ok_or(PsiError::StreamIncomplete)?;
        let query = self.query.as_ref().ok_or(PsiError::StreamIncomplete)?;
        let payload = if index == 0 {
            plan.head.clone()
        } else {
            let a_total = plan.order.returned.len() as u64;
            let total = plan.order.records();
            let (start, end) = chunk_range(index, self.reply_c, total)?;
            let (vals, points) = split_records(start, end, a_total);
            let n_vals = (vals.end - vals.start) as usize;
            let mut out =
                vec![0u8; n_vals * TRUNCATED_LEN + (points.end - points.start) as usize * 32];
            let (val_out, point_out) = out.split_at_mut(n_vals * TRUNCATED_LEN);
            val_out
                .par_chunks_mut(TRUNCATED_LEN * CHUNK)
                .zip(
                    (vals.start as usize..vals.end as usize)
                        .into_par_iter()
                        .chunks(CHUNK),
                )
                .for_each(|(out, indices)| {
                    let slots: Vec<Returned> =
                        indices.iter().map(|&i| plan.order.returned(i)).collect();
                    let dummies: Vec<RistrettoPoint> = slots
                        .iter()
                        .filter_map(|s| match *s {
                            Returned::Dummy(i) => {
                                Some(plan.dummy[i as usize].1.mul_table(&plan.q_table))
                            }
                            Returned::Query(_) => None,
                        })
                        .collect();
                    let mut dummy_out = vec![[0u8; TRUNCATED_LEN]; dummies.len()];
                    ec::write_doubled::<TRUNCATED_LEN>(&dummies, dummy_out.as_flattened_mut());
                    let mut next_dummy = dummy_out.iter();
                    for (slot, dst) in slots.iter().zip(out.chunks_exact_mut(TRUNCATED_LEN)) {
                        match *slot {
                            Returned::Query(i) => dst.copy_from_slice(&query.values[i as usize]),
                            Returned::Dummy(_) => {
                                if let Some(v) = next_dummy.next() {
                                    dst.copy_from_slice(v);
                                }
                            }
                        }
                    }
                });
            let (items, hasher, beta_half) = (plan.items.buckets(), &plan.hasher, &self.beta_half);
            point_out
                .par_chunks_mut(32 * CHUNK)
                .zip(
                    (points.start as usize..points.end as usize)
                        .into_par_iter()
                        .chunks(CHUNK),
                )
                .try_for_each(|(out, indices)| {
                    let pts = indices
                        .iter()
                        .map(|&i| match plan.order.own(i) {
                            Own::Item(gb, i) => hasher
                                .item(&items[gb as usize][i as usize], (gb, i as usize))
                                .map(|p| beta_half.mul(&p)),
                            Own::Junk(j) => {
                                Ok(beta_half.mul(&hasher.junk(&plan.junk_key, u64::from(j))))
                            }
                            Own::Dummy(i) => Ok(plan.dummy[i as usize].0.mul_table(&plan.d_table)),
                        })
                        .collect::<Result<Vec<RistrettoPoint>, PsiError>>()?;
                    ec::write_doubled::<32>(&pts, out);
                    Ok::<_, PsiError>(())
                })?;
            out
        };
        Ok(ChunkFrame {
            message_type: MessageType::Reply,
            run_id: self.params.run_id,
            index,
            chunk_records: self.reply_c,
            payload: &payload,
        }
        .encode())
    }
}

impl QueryProgress {
    /// After the last query chunk: no point twice nor equal to `Q` (compared as
    /// `trunc(enc(β·X))`), and the query's digest.
    fn complete(&mut self) -> Result<(), PsiError> {
        if let Some(i) = ec::find_duplicate(&self.values, Some(&self.q_trunc)) {
            let (bucket, index) = self.a_off.locate(i);
            return Err(PsiError::DuplicatePoint { bucket, index });
        }
        if let Some(h) = self.hasher.take() {
            self.digest = Some(h.finalize().into());
        }
        Ok(())
    }
}
