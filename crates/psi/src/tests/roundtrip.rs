//! Exact round trips without noise.

use proptest::prelude::*;

use super::*;
use crate::{MessageType, peek_header};

#[test]
fn exact_counts_in_several_shapes() {
    let all = digests(1, 400);
    // (nA, nB, T per cell): includes T = 0 (no injected slots) and empty buckets.
    for &(na, nb, t) in &[(1u32, 1u32, 3u32), (3, 2, 2), (2, 5, 0), (4, 3, 1)] {
        let p = params(na, nb, 2, 4, t);
        // A: items 0..250 skipping bucket na-1 entirely for odd indices; B: items 150..400.
        let a = split(&all[..250], na, |i| {
            if na > 1 && i % 2 == 1 {
                0
            } else {
                (i as u32 / 3) % na
            }
        });
        let b = split(&all[150..], nb, |i| ((i as u32 * 7) % nb) & !1);
        let counts = run(&p, &a, &b, &mut NoNoise).unwrap();
        assert_eq!(counts.noised, plain(&a, &b), "shape {na}x{nb}, T={t}");
        let sizes: Vec<u64> = b.iter().map(|x| x.len() as u64 + 4).collect();
        assert_eq!(counts.responder_bucket_sizes_noised, sizes);
        assert_eq!(counts.noised.iter().sum::<i64>(), 100);
        for ga in 0..na {
            for gb in 0..nb {
                assert_eq!(counts.get(ga, gb), counts.noised[(ga * nb + gb) as usize]);
            }
        }
    }
}

#[test]
fn empty_sides_and_disjoint_sets() {
    let all = digests(2, 60);
    let p = params(2, 2, 1, 1, 2);
    let empty = vec![Vec::new(), Vec::new()];
    let a = split(&all[..30], 2, |i| (i % 2) as u32);
    let b = split(&all[30..], 2, |i| (i % 2) as u32);
    assert_eq!(
        run(&p, &empty, &b, &mut NoNoise).unwrap().noised,
        vec![0; 4]
    );
    assert_eq!(
        run(&p, &a, &empty, &mut NoNoise).unwrap().noised,
        vec![0; 4]
    );
    assert_eq!(
        run(&p, &empty, &empty, &mut NoNoise).unwrap().noised,
        vec![0; 4]
    );
    assert_eq!(run(&p, &a, &b, &mut NoNoise).unwrap().noised, vec![0; 4]);
}

#[test]
fn header_and_sizes() {
    let all = digests(3, 50);
    let p = params(2, 3, 2, 3, 1);
    let a = split(&all[..20], 2, |i| (i % 2) as u32);
    let b = split(&all[10..], 3, |i| (i % 3) as u32);
    let (querier, query) = Querier::start(p.clone(), &a, &mut NoNoise, &mut rng()).unwrap();
    let h = header_len(&p);
    // Query: header, Q, table, (20 items + 2·2 junk) points of 32 bytes.
    assert_eq!(query.len(), h + 32 + 8 * 2 + 32 * (20 + 4));
    let header = peek_header(&query).unwrap();
    assert_eq!(header.message_type, MessageType::Query);
    assert_eq!(header.params(), p);

    let reply = respond(&p, &b, &query, &Limits::default(), &mut NoNoise, &mut rng()).unwrap();
    assert_eq!(
        crate::query_bucket_sizes(&p, &query, &Limits::default()).unwrap(),
        vec![12, 12]
    );
    // Reply: header, query digest, two tables, returned values (24 sent + 2T·nA·nB = 12
    // injected) of 12 bytes, responder points (40 items + 3·3 junk + 12 injected) of 32 bytes.
    assert_eq!(
        reply.len(),
        h + 32 + 8 * 5 + 12 * (24 + 12) + 32 * (40 + 9 + 12)
    );
    assert_eq!(
        peek_header(&reply).unwrap().message_type,
        MessageType::Reply
    );
    assert_eq!(
        querier.finish(&reply, &Limits::default()).unwrap().noised,
        plain(&a, &b)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random subsets of a small universe with random bucket assignments match the plain
    /// computation exactly.
    #[test]
    fn matches_plain_set_computation(
        na in 1u32..4,
        nb in 1u32..4,
        t in 0u32..3,
        membership in proptest::collection::vec((0u8..4, 0u8..4, any::<bool>(), any::<bool>()), 0..40),
    ) {
        let universe = digests(4, membership.len());
        let mut a = vec![Vec::new(); na as usize];
        let mut b = vec![Vec::new(); nb as usize];
        for (d, &(ga, gb, in_a, in_b)) in universe.iter().zip(&membership) {
            if in_a { a[(u32::from(ga) % na) as usize].push(*d); }
            if in_b { b[(u32::from(gb) % nb) as usize].push(*d); }
        }
        let counts = run(&params(na, nb, 1, 1, t), &a, &b, &mut NoNoise).unwrap();
        prop_assert_eq!(counts.noised, plain(&a, &b));
    }
}

/// Issue 13 hooks: the querier's per-cell match lists and the responder's owner of every point
/// agree: each matched point owned by a real item is in the cell's responder bucket and in the
/// querier's bucket; the real matches per cell are the plain intersection; the rest are the `T`
/// injected matches (owner `None`); no index is in two lists. The reply is the one `respond`
/// makes (same randomness).
#[test]
fn match_lists_and_owners_line_up() {
    let (na, nb, t) = (2u32, 3u32, 4u32);
    let p = params(na, nb, 3, 5, t);
    let all = digests(7, 300);
    let a = split(&all[..200], na, |i| (i % 2) as u32);
    let b = split(&all[100..], nb, |i| (i % 3) as u32);
    let limits = Limits::default();
    let mut r = rng();
    let (querier, query) = Querier::start(p.clone(), &a, &mut NoNoise, &mut r).unwrap();
    let seeded = || <chacha20::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(9);
    let (reply, owners) =
        crate::respond_with_owners(&p, &b, &query, &limits, &mut NoNoise, &mut seeded()).unwrap();
    assert_eq!(
        reply,
        respond(&p, &b, &query, &limits, &mut NoNoise, &mut seeded()).unwrap()
    );
    let (counts, lists) = querier.finish_with_matches(&reply, &limits).unwrap();
    assert_eq!(lists.len(), (na * nb) as usize);
    let plain = plain(&a, &b);
    let mut seen = std::collections::HashSet::new();
    for (cell, list) in lists.iter().enumerate() {
        let (ga, gb) = (cell / nb as usize, cell % nb as usize);
        assert_eq!(list.len() as i64 - i64::from(t), counts.noised[cell]);
        let mut real = 0;
        for &i in list {
            assert!(seen.insert(i), "index {i} in two lists");
            if let Some((g, k)) = owners[i] {
                assert_eq!(g as usize, gb);
                assert!(a[ga].contains(&b[gb][k]));
                real += 1;
            }
        }
        assert_eq!(real, plain[cell]);
        assert_eq!(list.len() as i64 - real, i64::from(t));
    }
    let items: usize = b.iter().map(Vec::len).sum();
    assert_eq!(owners.iter().flatten().count(), items);
}
