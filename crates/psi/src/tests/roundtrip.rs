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
