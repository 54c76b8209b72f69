//! Streamed runs (spec §10): the chunks put together are the messages of §5 byte for byte,
//! the counts are the unchunked run's, retries are answered identically and foreign or
//! changed chunks are refused with typed errors.

use chacha20::ChaCha20Rng;
use proptest::prelude::*;
use rand::SeedableRng;

use super::*;
use crate::ResponderNoise;
use crate::stream::{ChunkFrame, StreamQuerier, StreamResponder};

/// The payload of a frame.
fn payload(frame: &[u8]) -> Vec<u8> {
    ChunkFrame::parse(frame).unwrap().payload.to_vec()
}

/// A streamed run with querier chunks of `cq` records and reply chunks of `cr`; returns the
/// counts and the two messages put together from the chunks' payloads.
fn streamed(
    p: &RunParams,
    a: &[Vec<[u8; 32]>],
    b: &[Vec<[u8; 32]>],
    (cq, cr): (u32, u32),
    noise_seeds: (u64, u64),
) -> (CellCounts, Vec<u8>, Vec<u8>) {
    let limits = Limits::default();
    let (mut rq, mut rr) = (ChaCha20Rng::seed_from_u64(1), ChaCha20Rng::seed_from_u64(2));
    let mut nq = SeededLaplace::new(noise_seeds.0);
    let mut nr = SeededLaplace::new(noise_seeds.1);
    let mut querier =
        StreamQuerier::start(p.clone(), a.to_vec(), cq, limits, &mut nq, &mut rq).unwrap();
    let drawn = ResponderNoise::draw(p, &mut nr).unwrap();
    let mut responder = StreamResponder::start(p.clone(), drawn, cr, limits, &mut rr).unwrap();
    let mut query = Vec::new();
    for k in 0..querier.query_chunks() as u32 {
        let frame = querier.query_chunk(k).unwrap();
        query.extend(payload(&frame));
        let ack = responder.accept_query_chunk(&frame).unwrap();
        assert_eq!(ack.index, k);
    }
    assert!(responder.query_complete());
    // A chunk past the last is refused and the run goes on.
    let mut extra = querier.query_chunk(1).unwrap();
    extra[22..26].copy_from_slice(&(querier.query_chunks() as u32).to_le_bytes());
    assert!(matches!(
        responder.accept_query_chunk(&extra),
        Err(PsiError::ChunkOutOfOrder { .. })
    ));
    responder.finish_query(b.to_vec(), &mut rr).unwrap();
    let mut reply = Vec::new();
    let owners = responder.owners().unwrap();
    assert_eq!(
        owners.iter().flatten().count(),
        b.iter().map(Vec::len).sum::<usize>()
    );
    for k in 0..responder.reply_chunks().unwrap() as u32 {
        let frame = responder.reply_chunk(k).unwrap();
        reply.extend(payload(&frame));
        querier.accept_reply_chunk(&frame).unwrap();
        // The reply's head binds the whole query: the querier has let its items go.
        assert!(matches!(
            querier.query_chunk(1),
            Err(PsiError::QueryAnswered)
        ));
    }
    (querier.finish().unwrap(), query, reply)
}

/// The same run unchunked, with the same generators and noise seeds.
fn whole(
    p: &RunParams,
    a: &[Vec<[u8; 32]>],
    b: &[Vec<[u8; 32]>],
    noise_seeds: (u64, u64),
) -> (CellCounts, Vec<u8>, Vec<u8>) {
    let limits = Limits::default();
    let (mut rq, mut rr) = (ChaCha20Rng::seed_from_u64(1), ChaCha20Rng::seed_from_u64(2));
    let mut nq = SeededLaplace::new(noise_seeds.0);
    let mut nr = SeededLaplace::new(noise_seeds.1);
    let (querier, query) = Querier::start(p.clone(), a, &mut nq, &mut rq).unwrap();
    let reply = respond(p, b, &query, &limits, &mut nr, &mut rr).unwrap();
    (querier.finish(&reply, &limits).unwrap(), query, reply)
}

#[test]
fn chunked_run_is_the_whole_run_byte_for_byte() {
    let all = digests(40, 3000);
    let p = params(3, 2, 3, 2, 2);
    let a = split(&all[..2000], 3, |i| (i % 3) as u32);
    let b = split(&all[1000..], 2, |i| (i / 7 % 2) as u32);
    let expected = whole(&p, &a, &b, (5, 6));
    for chunks in [(1, 1), (7, 300), (256, 256), (1000, 4096), (65_536, 3)] {
        let got = streamed(&p, &a, &b, chunks, (5, 6));
        assert!(got.1 == expected.1, "query differs at C = {chunks:?}");
        assert!(got.2 == expected.2, "reply differs at C = {chunks:?}");
        assert_eq!(got.0, expected.0, "counts differ at C = {chunks:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Without noise the streamed counts are the exact intersections, whatever the chunk sizes
    /// and bucket shapes (empty buckets and empty sides included).
    #[test]
    fn chunked_counts_are_exact(
        n_a in 0usize..400,
        n_b in 0usize..400,
        na in 1u32..4,
        nb in 1u32..4,
        t in 0u32..3,
        cq in 1u32..300,
        cr in 1u32..300,
        seed in any::<u64>(),
    ) {
        let all = digests(seed, 600);
        let p = params(na, nb, 1, 1, t);
        let a = split(&all[..n_a], na, |i| (i as u32 * 5) % na);
        let b = split(&all[600 - n_b..], nb, |i| (i as u32 * 3) % nb);
        let limits = Limits::default();
        let mut rng = rng();
        let mut querier = StreamQuerier::start(p.clone(), a.clone(), cq, limits, &mut NoNoise, &mut rng).unwrap();
        let drawn = ResponderNoise::draw(&p, &mut NoNoise).unwrap();
        let mut responder = StreamResponder::start(p.clone(), drawn, cr, limits, &mut rng).unwrap();
        for k in 0..querier.query_chunks() as u32 {
            responder.accept_query_chunk(&querier.query_chunk(k).unwrap()).unwrap();
        }
        responder.finish_query(b.clone(), &mut rng).unwrap();
        for k in 0..responder.reply_chunks().unwrap() as u32 {
            querier.accept_reply_chunk(&responder.reply_chunk(k).unwrap()).unwrap();
        }
        let counts = querier.finish().unwrap();
        prop_assert_eq!(counts.noised, plain(&a, &b));
    }
}

/// A started pair on a small run: the querier, the responder, the query's frames.
fn pair(c: u32) -> (StreamQuerier, StreamResponder, Vec<[u8; 32]>, RunParams) {
    let all = digests(41, 300);
    let p = params(2, 2, 1, 1, 1);
    let a = split(&all[..200], 2, |i| (i % 2) as u32);
    let limits = Limits::default();
    let mut rng = rng();
    let querier = StreamQuerier::start(p.clone(), a, c, limits, &mut NoNoise, &mut rng).unwrap();
    let drawn = ResponderNoise::draw(&p, &mut NoNoise).unwrap();
    let responder = StreamResponder::start(p.clone(), drawn, c, limits, &mut rng).unwrap();
    (querier, responder, all[100..].to_vec(), p)
}

#[test]
fn repeated_chunks_get_identical_answers_and_change_nothing() {
    let (mut querier, mut responder, b_items, _) = pair(50);
    let mut rng = rng();
    for k in 0..querier.query_chunks() as u32 {
        let frame = querier.query_chunk(k).unwrap();
        let ack = responder.accept_query_chunk(&frame).unwrap();
        // A lost acknowledgement: the same frame again, made again by the querier.
        let again = querier.query_chunk(k).unwrap();
        assert_eq!(again, frame);
        assert_eq!(responder.accept_query_chunk(&again).unwrap(), ack);
    }
    responder
        .finish_query(split(&b_items, 2, |i| (i % 2) as u32), &mut rng)
        .unwrap();
    for k in 0..responder.reply_chunks().unwrap() as u32 {
        let frame = responder.reply_chunk(k).unwrap();
        assert_eq!(responder.reply_chunk(k).unwrap(), frame, "reply chunk {k}");
        let ack = querier.accept_reply_chunk(&frame).unwrap();
        assert_eq!(querier.accept_reply_chunk(&frame).unwrap(), ack);
    }
    // 100 of A's items are B's, split as i % 2 on both sides: no noise (T = 1 exactly).
    assert_eq!(querier.finish().unwrap().noised, vec![50, 0, 0, 50]);
}

#[test]
fn changed_out_of_order_and_foreign_chunks_are_refused() {
    let (mut querier, mut responder, _, p) = pair(40);
    let head = querier.query_chunk(0).unwrap();
    let first = querier.query_chunk(1).unwrap();
    assert!(matches!(
        querier.query_chunk(3),
        Err(PsiError::ChunkOutOfOrder {
            expected: 2,
            found: 3
        })
    ));
    assert!(matches!(
        responder.accept_query_chunk(&first),
        Err(PsiError::ChunkOutOfOrder {
            expected: 0,
            found: 1
        })
    ));
    responder.accept_query_chunk(&head).unwrap();
    // Another run's frame, a reply frame, a changed head: refused, the state unchanged.
    let mut foreign = first.clone();
    foreign[6] ^= 1;
    assert!(matches!(
        responder.accept_query_chunk(&foreign),
        Err(PsiError::WrongBinding { field: "run_id" })
    ));
    let mut wrong_type = first.clone();
    wrong_type[5] = 2;
    assert!(matches!(
        responder.accept_query_chunk(&wrong_type),
        Err(PsiError::WrongMessageType { .. })
    ));
    let mut changed = head.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    assert!(matches!(
        responder.accept_query_chunk(&changed),
        Err(PsiError::ChunkConflict { index: 0 })
    ));
    let mut other_c = first.clone();
    other_c[26] = 41;
    assert!(matches!(
        responder.accept_query_chunk(&other_c),
        Err(PsiError::MalformedChunk(_))
    ));
    assert!(matches!(
        ChunkFrame::parse(&first[..20]),
        Err(PsiError::MalformedChunk(_))
    ));
    // The real next chunk is still accepted.
    responder.accept_query_chunk(&first).unwrap();
    // A chunk with a point that is not a canonical encoding fails the run.
    let mut bad = querier.query_chunk(2).unwrap();
    let at = bad.len() - 32;
    bad[at..].fill(0xff);
    assert!(matches!(
        responder.accept_query_chunk(&bad),
        Err(PsiError::InvalidPoint { .. })
    ));
    let next = querier.query_chunk(2).unwrap();
    assert!(matches!(
        responder.accept_query_chunk(&next),
        Err(PsiError::StreamFailed)
    ));
    // The reply cannot be fixed, nor asked for, before the query is complete.
    assert!(matches!(
        responder.finish_query(vec![Vec::new(), Vec::new()], &mut rng()),
        Err(PsiError::StreamIncomplete)
    ));
    assert!(matches!(
        responder.reply_chunk(0),
        Err(PsiError::StreamIncomplete)
    ));
    let _ = p;
}

#[test]
fn a_truncated_or_extended_chunk_is_malformed() {
    let (mut querier, mut responder, _, _) = pair(40);
    responder
        .accept_query_chunk(&querier.query_chunk(0).unwrap())
        .unwrap();
    let mut long = querier.query_chunk(1).unwrap();
    long.extend_from_slice(&[0; 32]);
    assert!(matches!(
        responder.accept_query_chunk(&long),
        Err(PsiError::MalformedChunk(_))
    ));
}

#[test]
fn the_querier_refuses_a_changed_reply_chunk_and_an_early_finish() {
    let (mut querier, mut responder, b_items, _) = pair(30);
    for k in 0..querier.query_chunks() as u32 {
        responder
            .accept_query_chunk(&querier.query_chunk(k).unwrap())
            .unwrap();
    }
    responder
        .finish_query(split(&b_items, 2, |i| (i % 2) as u32), &mut rng())
        .unwrap();
    querier
        .accept_reply_chunk(&responder.reply_chunk(0).unwrap())
        .unwrap();
    let frame = responder.reply_chunk(1).unwrap();
    querier.accept_reply_chunk(&frame).unwrap();
    let mut changed = frame.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    assert!(matches!(
        querier.accept_reply_chunk(&changed),
        Err(PsiError::ChunkConflict { index: 1 })
    ));
    assert!(matches!(
        querier.accept_reply_chunk(&responder.reply_chunk(3).unwrap()),
        Err(PsiError::ChunkOutOfOrder {
            expected: 2,
            found: 3
        })
    ));
    assert!(matches!(
        responder.reply_chunk(10_000),
        Err(PsiError::ChunkOutOfOrder { .. })
    ));
    assert!(matches!(querier.finish(), Err(PsiError::StreamIncomplete)));
}
