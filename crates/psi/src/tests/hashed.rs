//! Runs from precomputed points (`Items::hashed`, spec §3.1) are the runs from digests byte
//! for byte, and a corrupt precomputed point is a typed error.

use chacha20::ChaCha20Rng;
use proptest::prelude::*;
use rand::SeedableRng;

use super::*;
use crate::stream::{ChunkFrame, StreamQuerier, StreamResponder};
use crate::{Items, ResponderNoise, hash_domain_id, hash_to_points, respond_with_owners};

/// `hash_to_points` of every bucket.
fn hashed(p: &RunParams, buckets: &[Vec<[u8; 32]>]) -> Vec<Vec<[u8; 32]>> {
    buckets
        .iter()
        .map(|b| hash_to_points(p, b).unwrap())
        .collect()
}

/// A whole run with seeded generators and noise: the query, the reply with its owners, and
/// the counts.
fn whole(
    p: &RunParams,
    a: Items<'_>,
    b: Items<'_>,
    seeds: (u64, u64),
) -> (Vec<u8>, Vec<u8>, crate::Owners, CellCounts) {
    let limits = Limits::default();
    let (mut rq, mut rr) = (ChaCha20Rng::seed_from_u64(1), ChaCha20Rng::seed_from_u64(2));
    let (mut nq, mut nr) = (SeededLaplace::new(seeds.0), SeededLaplace::new(seeds.1));
    let (querier, query) = Querier::start(p.clone(), a, &mut nq, &mut rq).unwrap();
    let (reply, owners) = respond_with_owners(p, b, &query, &limits, &mut nr, &mut rr).unwrap();
    let counts = querier.finish(&reply, &limits).unwrap();
    (query, reply, owners, counts)
}

/// The same run streamed in chunks of `c` records: the query and reply put together.
fn streamed(
    p: &RunParams,
    a: Items<'static>,
    b: Items<'static>,
    seeds: (u64, u64),
    c: u32,
) -> (Vec<u8>, Vec<u8>) {
    let limits = Limits::default();
    let (mut rq, mut rr) = (ChaCha20Rng::seed_from_u64(1), ChaCha20Rng::seed_from_u64(2));
    let (mut nq, mut nr) = (SeededLaplace::new(seeds.0), SeededLaplace::new(seeds.1));
    let drawn = ResponderNoise::draw(p, &mut nr).unwrap();
    let mut querier = StreamQuerier::start(p.clone(), a, c, limits, &mut nq, &mut rq).unwrap();
    let mut responder = StreamResponder::start(p.clone(), drawn, c, limits, &mut rr).unwrap();
    let (mut query, mut reply) = (Vec::new(), Vec::new());
    for k in 0..querier.query_chunks() as u32 {
        let frame = querier.query_chunk(k).unwrap();
        query.extend_from_slice(ChunkFrame::parse(&frame).unwrap().payload);
        responder.accept_query_chunk(&frame).unwrap();
    }
    responder.finish_query(b, &mut rr).unwrap();
    for k in 0..responder.reply_chunks().unwrap() as u32 {
        let frame = responder.reply_chunk(k).unwrap();
        reply.extend_from_slice(ChunkFrame::parse(&frame).unwrap().payload);
        querier.accept_reply_chunk(&frame).unwrap();
    }
    (query, reply)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Under the same seeded generators and noise, a run from precomputed points sends the
    /// bytes of the run from digests (whole and streamed, on either side), with the same
    /// owners and counts.
    #[test]
    fn hashed_items_give_the_digest_run_byte_for_byte(
        n_a in 0usize..300,
        n_b in 0usize..300,
        na in 1u32..4,
        nb in 1u32..4,
        t in 0u32..4,
        c in 1u32..200,
        seed in any::<u64>(),
        noise_seeds in any::<(u64, u64)>(),
    ) {
        let all = digests(seed, 500);
        let p = params(na, nb, t, t + 1, t);
        let a = split(&all[..n_a], na, |i| (i as u32 * 5) % na);
        let b = split(&all[500 - n_b..], nb, |i| (i as u32 * 3) % nb);
        let (ha, hb) = (hashed(&p, &a), hashed(&p, &b));
        let expected = whole(&p, Items::digests(&a[..]), Items::digests(&b[..]), noise_seeds);
        let got = whole(&p, Items::hashed(&ha[..]), Items::hashed(&hb[..]), noise_seeds);
        prop_assert!(got.0 == expected.0, "query differs");
        prop_assert!(got.1 == expected.1, "reply differs");
        prop_assert_eq!(&got.2, &expected.2);
        prop_assert_eq!(&got.3, &expected.3);
        let mixed = whole(&p, Items::hashed(&ha[..]), Items::digests(&b[..]), noise_seeds);
        prop_assert!(mixed.1 == expected.1, "mixed reply differs");
        let s = streamed(&p, Items::hashed(ha), Items::hashed(hb), noise_seeds, c);
        prop_assert!(s.0 == expected.0, "streamed query differs");
        prop_assert!(s.1 == expected.1, "streamed reply differs");
    }
}

#[test]
fn hash_to_points_is_h_of_spec_section_3() {
    let p = params(1, 1, 0, 0, 0);
    let d = digests(3, 5);
    let dst = crate::hash::dst(&p.agreement_id, &p.join_key).unwrap();
    for (x, got) in d.iter().zip(hash_to_points(&p, &d).unwrap()) {
        let input = [&dst[..], &[0x01], &x[..]].concat();
        let h =
            curve25519_dalek::ristretto::RistrettoPoint::hash_from_bytes::<sha2::Sha512>(&input);
        assert_eq!(got, h.compress().to_bytes());
    }
    use sha2::Digest;
    assert_eq!(
        hash_domain_id(&p).unwrap(),
        <[u8; 32]>::from(sha2::Sha256::digest(&dst))
    );
    let mut other = p.clone();
    other.join_key = "phone_sha256_v1".into();
    assert_ne!(hash_domain_id(&other).unwrap(), hash_domain_id(&p).unwrap());
    other = p.clone();
    other.run_id = [0x33; 16];
    assert_eq!(hash_domain_id(&other).unwrap(), hash_domain_id(&p).unwrap());
}

/// An encoding that is not a point: `2^255 - 1` is not canonical.
const NOT_A_POINT: [u8; 32] = [0xff; 32];

#[test]
fn a_corrupt_precomputed_point_is_a_typed_error() {
    let p = params(2, 2, 1, 1, 1);
    let all = digests(9, 40);
    let a = split(&all[..20], 2, |i| (i % 2) as u32);
    let b = split(&all[20..], 2, |i| (i % 2) as u32);
    let mut ha = hashed(&p, &a);
    let mut hb = hashed(&p, &b);
    ha[1][3] = NOT_A_POINT;
    hb[0][4] = NOT_A_POINT;
    let limits = Limits::default();
    let err = Querier::start(p.clone(), Items::hashed(&ha[..]), &mut NoNoise, &mut rng());
    assert!(
        matches!(
            err,
            Err(PsiError::CorruptHashedItem {
                bucket: 1,
                index: 3
            })
        ),
        "{err:?}"
    );
    let (_, query) = Querier::start(p.clone(), &a, &mut NoNoise, &mut rng()).unwrap();
    let err = respond(
        &p,
        Items::hashed(&hb[..]),
        &query,
        &limits,
        &mut NoNoise,
        &mut rng(),
    );
    assert!(
        matches!(
            err,
            Err(PsiError::CorruptHashedItem {
                bucket: 0,
                index: 4
            })
        ),
        "{err:?}"
    );
    let mut sq = StreamQuerier::start(
        p.clone(),
        Items::hashed(ha),
        1000,
        limits,
        &mut NoNoise,
        &mut rng(),
    )
    .unwrap();
    assert!(sq.query_chunk(0).is_ok());
    assert!(matches!(
        sq.query_chunk(1),
        Err(PsiError::CorruptHashedItem {
            bucket: 1,
            index: 3
        })
    ));
}
