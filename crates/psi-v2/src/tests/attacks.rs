//! The attacks of spec §8, each failing as the spec says, and tampering with Msg3.

use curve25519_dalek::scalar::Scalar;
use proptest::prelude::*;
use tandem_dp::test_noise::NoNoise;

use super::*;
use crate::PsiV2Error;

/// A small run shared by the attacks: 2 × 2 buckets, 40 common customers.
fn small() -> (RunParams, Buckets, Buckets, Vec<i64>) {
    let p = params(2, 2, 1);
    let (a, b, truth) = data(&p, 80, 60, 40);
    (p, a, b, truth)
}

fn is_bad_proof(e: Result<Vec<u8>, PsiV2Error>) -> bool {
    matches!(e, Err(PsiV2Error::BadProof { .. }))
}

/// A false key: the querier evaluates B's list under `α' ≠ α` with a valid proof for `α'`.
/// B accepts, and every match is destroyed — the querier's own items and its seeds alike —
/// so B's count is 0 everywhere: a false key only hurts the querier.
#[test]
fn false_key_destroys_only_the_queriers_matches() {
    let (p, a, b, truth) = small();
    assert!(truth.iter().sum::<i64>() > 0);
    let (q, r, msg2) = setup(&p, &a, &b, 10);
    let msg3 = forged_msg3(
        &p,
        &msg2,
        q.msg1_digest,
        &lists_of(&p, &msg2),
        Scalar::from(5u8),
        11,
    );
    let msg4 = r
        .finish(&msg3, &mut rng(12), &mut NoNoise)
        .expect("a proof for α' holds");
    let n = msg4.len();
    let raw = &msg4[n - 8 * p.cells()..];
    assert!(
        raw.iter().all(|&x| x == 0),
        "no cell may match under a false key"
    );
}

/// Twins: one entry of a bucket replaced by `c·P_j`, a scaled twin of another entry, so that a
/// customer matching `P_j` would show up twice. The proof is for another list: refused.
#[test]
fn twins_are_refused() {
    let (p, a, b, _) = small();
    let (q, r, msg2) = setup(&p, &a, &b, 20);
    let mut lists = lists_of(&p, &msg2);
    lists[0][1] = Scalar::from(3u8) * lists[0][0];
    let msg3 = forged_msg3(&p, &msg2, q.msg1_digest, &lists, q.alpha.0, 21);
    assert!(is_bad_proof(r.finish(&msg3, &mut rng(22), &mut NoNoise)));
}

/// A duplicated image: `V` holds `α·P_0` twice (and not `α·P_1`). Refused.
#[test]
fn duplicated_image_is_refused() {
    let (p, a, b, _) = small();
    let (q, r, msg2) = setup(&p, &a, &b, 30);
    let mut lists = lists_of(&p, &msg2);
    lists[1][1] = lists[1][0];
    let msg3 = forged_msg3(&p, &msg2, q.msg1_digest, &lists, q.alpha.0, 31);
    assert!(is_bad_proof(r.finish(&msg3, &mut rng(32), &mut NoNoise)));
}

/// Points moved between buckets: `P_0[0]` and `P_1[0]` swapped before proving. Refused.
#[test]
fn points_moved_between_buckets_are_refused() {
    let (p, a, b, _) = small();
    let (q, r, msg2) = setup(&p, &a, &b, 40);
    let mut lists = lists_of(&p, &msg2);
    let x = lists[0][0];
    lists[0][0] = lists[1][0];
    lists[1][0] = x;
    let msg3 = forged_msg3(&p, &msg2, q.msg1_digest, &lists, q.alpha.0, 41);
    assert!(is_bad_proof(r.finish(&msg3, &mut rng(42), &mut NoNoise)));
}

/// An honest evaluation whose proofs are bound to another transcript (another Msg1) is
/// refused; so is a whole Msg3 of another run (its digest of Msg2 differs).
#[test]
fn proof_for_another_transcript_is_refused() {
    let (p, a, b, _) = small();
    let (q, r, msg2) = setup(&p, &a, &b, 50);
    let lists = lists_of(&p, &msg2);
    let msg3 = forged_msg3(&p, &msg2, [0xAA; 32], &lists, q.alpha.0, 51);
    assert!(is_bad_proof(r.finish(&msg3, &mut rng(52), &mut NoNoise)));

    let (mut q2, _, msg2_other) = setup(&p, &a, &b, 60);
    let other = q2
        .evaluate(&msg2_other, &Limits::default(), &mut rng(61))
        .expect("msg3");
    let (_, r, _) = setup(&p, &a, &b, 50);
    let e = r.finish(&other, &mut rng(62), &mut NoNoise);
    assert!(
        matches!(
            e,
            Err(PsiV2Error::WrongBinding {
                field: "msg2_digest"
            })
        ),
        "{e:?}"
    );
}

/// A truncated Msg3 (one byte short, or cut inside a proof) is refused; so is an extra byte.
#[test]
fn truncated_proof_is_refused() {
    let (p, a, b, _) = small();
    for cut in [1usize, 100, 5000] {
        let (mut q, r, msg2) = setup(&p, &a, &b, 70);
        let msg3 = q
            .evaluate(&msg2, &Limits::default(), &mut rng(71))
            .expect("msg3");
        let e = r.finish(&msg3[..msg3.len() - cut], &mut rng(72), &mut NoNoise);
        assert!(matches!(e, Err(PsiV2Error::Truncated { .. })), "{e:?}");
    }
    let (mut q, r, msg2) = setup(&p, &a, &b, 70);
    let mut msg3 = q
        .evaluate(&msg2, &Limits::default(), &mut rng(71))
        .expect("msg3");
    msg3.push(0);
    let e = r.finish(&msg3, &mut rng(72), &mut NoNoise);
    assert!(
        matches!(e, Err(PsiV2Error::TrailingBytes { extra: 1 })),
        "{e:?}"
    );
}

/// A repeated point in Msg1 (the same `α·H(a)` in two buckets) is refused before β is drawn.
#[test]
fn repeated_query_point_is_refused() {
    let p = params(2, 1, 0);
    let (_, mut msg1) = Querier::start(
        p.clone(),
        &[vec![id(1)], vec![id(2)]],
        &mut rng(1),
        &mut NoNoise,
    )
    .expect("msg1");
    let n = msg1.len();
    let first: Vec<u8> = msg1[n - 32 * 8..n - 32 * 7].to_vec();
    msg1[n - 32..].copy_from_slice(&first);
    let e = Responder::receive_query(p, &msg1, &Limits::default(), &mut rng(2));
    assert!(
        matches!(e, Err(PsiV2Error::DuplicatePoint { .. })),
        "{:?}",
        e.err()
    );
}

/// Setup for the tampering property: a tiny run whose Msg3 is made once.
fn tiny() -> (RunParams, Buckets, Buckets, Vec<u8>) {
    let p = params(1, 2, 1);
    let a = vec![vec![id(1), id(2), id(3)]];
    let b = vec![vec![id(2)], vec![id(3), id(4)]];
    let (mut q, _, msg2) = setup(&p, &a, &b, 80);
    let msg3 = q
        .evaluate(&msg2, &Limits::default(), &mut rng(81))
        .expect("msg3");
    (p, a, b, msg3)
}

#[test]
fn untampered_tiny_run_is_accepted() {
    let (p, a, b, msg3) = tiny();
    let (_, r, _) = setup(&p, &a, &b, 80);
    assert!(r.finish(&msg3, &mut rng(82), &mut NoNoise).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Flipping any bit of any byte of Msg3 (header, digest, `K_A`, `V`, proof) is rejected.
    #[test]
    fn tampered_msg3_byte_is_always_rejected(position in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (p, a, b, mut msg3) = tiny();
        let at = position.index(msg3.len());
        msg3[at] ^= 1 << bit;
        let (_, r, _) = setup(&p, &a, &b, 80);
        prop_assert!(r.finish(&msg3, &mut rng(82), &mut NoNoise).is_err(), "byte {} bit {}", at, bit);
    }
}
