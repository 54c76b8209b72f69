//! Exact counts through the no-noise path, and round trips of every message.

use proptest::prelude::*;
use tandem_dp::test_noise::NoNoise;

use super::*;
use crate::PsiV2Error;

/// Thousands of items in 3 × 2 buckets: the estimates are the true cell counts and the bucket
/// sizes are B's items plus its junk (`T = 3` with no noise).
#[test]
fn exact_counts_without_noise() {
    let p = params(3, 2, 2);
    let (a, b, truth) = data(&p, 2000, 1500, 700);
    let (mut q, r, msg2) = setup(&p, &a, &b, 1);
    let msg3 = q
        .evaluate(&msg2, &Limits::default(), &mut rng(4))
        .expect("msg3");
    let msg4 = r.finish(&msg3, &mut rng(5), &mut NoNoise).expect("msg4");
    let counts = q.finish(&msg4).expect("counts");
    assert_eq!(counts.estimates, truth);
    assert_eq!(truth.iter().sum::<i64>(), 700);
    let sizes: Vec<u64> = b.iter().map(|x| x.len() as u64 + 3).collect();
    assert_eq!(counts.responder_bucket_sizes, sizes);
    assert_eq!(counts.get(2, 1), Some(truth[5]));
    assert_eq!(counts.get(3, 0), None);
}

/// An empty responder bucket with no seed slots (`T_QC = 0`, no junk) needs no proof.
#[test]
fn empty_bucket_without_seeds() {
    let mut p = params(1, 2, 0);
    p.responder_bucket_noise.offset = 0;
    let a = vec![vec![id(1), id(2)]];
    let b = vec![vec![id(2)], vec![]];
    let (mut q, r, msg2) = setup(&p, &a, &b, 3);
    let msg3 = q
        .evaluate(&msg2, &Limits::default(), &mut rng(4))
        .expect("msg3");
    let msg4 = r.finish(&msg3, &mut rng(5), &mut NoNoise).expect("msg4");
    assert_eq!(q.finish(&msg4).expect("counts").estimates, vec![1, 0]);
}

/// A Msg1 from another run or agreement is refused before B reads anything.
#[test]
fn msg1_of_another_session_is_refused() {
    let p = params(2, 2, 1);
    let (a, _, _) = data(&p, 20, 10, 5);
    let (_, msg1) = Querier::start(p.clone(), &a, &mut rng(1), &mut NoNoise).expect("msg1");
    let mut other = p.clone();
    other.run_id = [1; 16];
    let e = Responder::receive_query(other, &msg1, &Limits::default(), &mut rng(2));
    assert!(matches!(
        e,
        Err(PsiV2Error::WrongBinding { field: "run_id" })
    ));
    let small = Limits { max_points: 10 };
    let e = Responder::receive_query(p, &msg1, &small, &mut rng(2));
    assert!(
        matches!(e, Err(PsiV2Error::TooLarge { .. })),
        "{:?}",
        e.err()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Any bucket shape and overlap: Msg1–Msg4 round trip and give the exact counts.
    #[test]
    fn messages_round_trip(
        n_a in 1u32..4, n_b in 1u32..4, t in 0u32..3,
        na in 1u64..60, nb in 0u64..60, overlap_frac in 0.0f64..1.0, seed in 0u64..1000,
    ) {
        let p = params(n_a, n_b, t);
        let overlap = ((na.min(nb)) as f64 * overlap_frac) as u64;
        let (a, b, truth) = data(&p, na, nb, overlap);
        let (mut q, r, msg2) = setup(&p, &a, &b, seed);
        let msg3 = q.evaluate(&msg2, &Limits::default(), &mut rng(seed + 3)).expect("msg3");
        let msg4 = r.finish(&msg3, &mut rng(seed + 4), &mut NoNoise).expect("msg4");
        prop_assert_eq!(q.finish(&msg4).expect("counts").estimates, truth);
    }

    /// Every header field is bound: a header of other parameters is refused with the field.
    #[test]
    fn header_binds_every_field(which in 0usize..9) {
        let p = params(2, 3, 1);
        let mut other = p.clone();
        match which {
            0 => other.agreement_id[0] ^= 1,
            1 => other.run_id[0] ^= 1,
            2 => other.querier_buckets += 1,
            3 => other.responder_buckets += 1,
            4 => other.join_key.push('x'),
            5 => other.querier_bucket_noise.offset += 1,
            6 => other.querier_cell_noise.scale *= 2.0,
            7 => other.responder_bucket_noise.offset += 1,
            _ => other.cell_scale *= 2.0,
        }
        let mut msg = Vec::new();
        crate::wire::encode_header(&other, crate::MSG1, &mut msg);
        let e = crate::wire::check_header(&mut crate::wire::Reader::new(&msg), &p, crate::MSG1);
        prop_assert!(matches!(e, Err(PsiV2Error::WrongBinding { .. })), "{:?}", e);
        let mut same = Vec::new();
        crate::wire::encode_header(&p, crate::MSG1, &mut same);
        prop_assert!(crate::wire::check_header(&mut crate::wire::Reader::new(&same), &p, crate::MSG1).is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every parser refuses (never panics on) a valid message with one byte changed or cut
    /// short, and arbitrary bytes.
    #[test]
    fn parsers_refuse_mangled_messages(
        which in 0usize..3, position in any::<prop::sample::Index>(), byte in any::<u8>(),
        cut in any::<bool>(), junk in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let p = params(1, 2, 1);
        let a = vec![vec![id(1), id(2)]];
        let b = vec![vec![id(2)], vec![id(3)]];
        let (mut q, r, msg2) = setup(&p, &a, &b, 7);
        let msg3 = q.evaluate(&msg2, &Limits::default(), &mut rng(8)).expect("msg3");
        let msg4 = r.finish(&msg3, &mut rng(9), &mut NoNoise).expect("msg4");
        let (_, msg1) = Querier::start(p.clone(), &a, &mut rng(7), &mut NoNoise).expect("msg1");
        let mut msg = [msg1, msg2, msg4][which].clone();
        let at = position.index(msg.len());
        if cut {
            msg.truncate(at);
        } else if msg[at] == byte {
            msg.push(byte);
        } else {
            msg[at] = byte;
        }
        let limits = Limits::default();
        let mut header = Vec::new();
        crate::wire::encode_header(&p, crate::MSG1, &mut header);
        // Where the points start: after the header, the digest of the previous message and
        // the bucket table. A changed point byte may still decode; everything before must not.
        let points_at = [header.len() + 8, header.len() + 32 + 16, usize::MAX][which];
        let changed_point = !cut && at >= points_at;
        for m in [&msg, &junk] {
            let changed_point = changed_point && m.len() == msg.len();
            match which {
                0 => {
                    let e = Responder::receive_query(p.clone(), m, &limits, &mut rng(1));
                    prop_assert!(e.is_err() || changed_point);
                }
                1 => {
                    let (mut q, _, _) = setup(&p, &a, &b, 7);
                    let e = q.evaluate(m, &limits, &mut rng(8));
                    prop_assert!(e.is_err() || changed_point);
                }
                _ => {
                    let (mut q, _, msg2) = setup(&p, &a, &b, 7);
                    q.evaluate(&msg2, &limits, &mut rng(8)).expect("msg3");
                    let e = q.finish(m);
                    // The counts themselves are not authenticated (no output integrity): a changed
                    // count byte may be accepted, nothing else.
                    let count_at = header.len() + 32;
                    prop_assert!(e.is_err() || (!cut && at >= count_at && m.len() == msg.len()));
                }
            }
        }
    }
}
