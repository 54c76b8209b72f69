//! Malformed, hostile and mis-bound messages and inputs: each gives its typed error.

use super::*;
use crate::MessageHeader;

/// A 2×2 session with a valid query and reply (no noise, T = 1 per cell).
struct Fixture {
    p: RunParams,
    b: Vec<Vec<[u8; 32]>>,
    query: Vec<u8>,
    reply: Vec<u8>,
    a_sizes: [usize; 2],
}

fn fixture() -> (Querier, Fixture) {
    fixture_with(&mut rng())
}

/// [`fixture`] with the protocol's randomness from `rng`.
fn fixture_with(rng: &mut ChaCha20Rng) -> (Querier, Fixture) {
    let all = digests(10, 40);
    let p = params(2, 2, 1, 1, 1);
    let a = split(&all[..20], 2, |i| (i % 2) as u32);
    let b = split(&all[10..], 2, |i| (i % 2) as u32);
    let (querier, query) = Querier::start(p.clone(), &a, &mut NoNoise, rng).unwrap();
    let reply = respond(&p, &b, &query, &Limits::default(), &mut NoNoise, rng).unwrap();
    (
        querier,
        Fixture {
            p,
            b,
            query,
            reply,
            a_sizes: [11, 11],
        },
    )
}

impl Fixture {
    fn respond(&self, query: &[u8]) -> Result<Vec<u8>, PsiError> {
        respond(
            &self.p,
            &self.b,
            query,
            &Limits::default(),
            &mut NoNoise,
            &mut rng(),
        )
    }
    /// Offset of the dummy commitment Q in the query.
    fn q_at(&self) -> usize {
        header_len(&self.p)
    }
    /// Offset of querier point `(bucket, index)` in the query.
    fn point_at(&self, bucket: usize, index: usize) -> usize {
        let before: usize = self.a_sizes[..bucket].iter().sum();
        header_len(&self.p) + 32 + 16 + 32 * (before + index)
    }
    /// Offset of the reply's querier table.
    fn reply_tables_at(&self) -> usize {
        header_len(&self.p) + 32
    }
    /// Offsets of returned values and of responder points in the reply.
    fn reply_bodies_at(&self) -> (usize, usize) {
        let values = self.reply_tables_at() + 32;
        let returned: usize = self.a_sizes.iter().map(|s| s + 4).sum();
        (values, values + 12 * returned)
    }
}

#[test]
fn query_point_faults() {
    let (_, f) = fixture();
    let mut bad = f.query.clone();
    let at = f.point_at(1, 2);
    bad[at..at + 32].fill(0xff);
    assert!(matches!(
        f.respond(&bad),
        Err(PsiError::InvalidPoint {
            bucket: 1,
            index: 2
        })
    ));

    let mut bad = f.query.clone();
    bad[at..at + 32].fill(0);
    assert!(matches!(
        f.respond(&bad),
        Err(PsiError::IdentityPoint {
            bucket: 1,
            index: 2
        })
    ));

    let mut bad = f.query.clone();
    let src = f.point_at(0, 0);
    bad.copy_within(src..src + 32, at);
    assert!(matches!(
        f.respond(&bad),
        Err(PsiError::DuplicatePoint {
            bucket: 1,
            index: 2
        })
    ));

    let mut bad = f.query.clone();
    let q = f.q_at();
    bad.copy_within(q..q + 32, at);
    assert!(matches!(
        f.respond(&bad),
        Err(PsiError::DuplicatePoint {
            bucket: 1,
            index: 2
        })
    ));

    for fill in [0x00, 0xff] {
        let mut bad = f.query.clone();
        bad[q..q + 32].fill(fill);
        assert!(matches!(
            f.respond(&bad),
            Err(PsiError::InvalidDummyCommitment)
        ));
    }
}

/// The responder re-blinds query points in parallel chunks that stop at their first bad point;
/// the error still names the first bad point in message order, whichever chunk fails first.
#[test]
fn the_first_bad_query_point_is_named_across_chunks() {
    let p = params(1, 1, 1, 1, 1);
    let a = vec![digests(3, 3 * crate::ec::CHUNK)];
    let (_, query) = Querier::start(p.clone(), &a, &mut NoNoise, &mut rng()).unwrap();
    let first = header_len(&p) + 32 + 8;
    let n = (query.len() - first) / 32;
    for (early, late) in [
        (n - 2, n - 1),
        (300, n - 2),
        (5, 2 * crate::ec::CHUNK + 1),
        (0, n - 1),
    ] {
        let mut bad = query.clone();
        bad[first + 32 * late..][..32].fill(0xff);
        bad[first + 32 * early..][..32].fill(0);
        let err = crate::ParsedQuery::parse(&p, &bad, &Limits::default(), &mut rng());
        assert!(
            matches!(err, Err(PsiError::IdentityPoint { bucket: 0, index }) if index == early),
            "{early} {late}: {err:?}"
        );
    }
}

#[test]
fn query_length_faults() {
    let (_, f) = fixture();
    for cut in [1, 31, f.query.len() - 10] {
        let short = &f.query[..f.query.len() - cut];
        assert!(
            matches!(f.respond(short), Err(PsiError::Truncated { .. })),
            "cut {cut}"
        );
    }
    let mut long = f.query.clone();
    long.push(0);
    assert!(matches!(
        f.respond(&long),
        Err(PsiError::TrailingBytes { extra: 1 })
    ));
}

/// A tiny query declaring a huge bucket: refused before any allocation for it.
#[test]
fn huge_declared_count_in_tiny_message() {
    let (_, f) = fixture();
    let mut tiny = Vec::new();
    MessageHeader::encode(&f.p, crate::MessageType::Query, &mut tiny);
    tiny.extend_from_slice(&f.query[f.q_at()..f.q_at() + 32]);
    for (label, count) in [(0u32, u32::MAX), (1, u32::MAX)] {
        tiny.extend_from_slice(&label.to_le_bytes());
        tiny.extend_from_slice(&count.to_le_bytes());
    }
    let err = f.respond(&tiny);
    assert!(
        matches!(err, Err(PsiError::TooLarge { declared, limit: 50_000_000 }) if declared == 2 * u64::from(u32::MAX)),
        "{err:?}"
    );
    // Under the limit but absent: truncated, still without allocating.
    let limits = Limits {
        max_points: usize::MAX,
    };
    let err = respond(&f.p, &f.b, &tiny, &limits, &mut NoNoise, &mut rng());
    assert!(matches!(err, Err(PsiError::Truncated { .. })), "{err:?}");
    // A lower limit applies to a valid query too.
    let err = respond(
        &f.p,
        &f.b,
        &f.query,
        &Limits { max_points: 10 },
        &mut NoNoise,
        &mut rng(),
    );
    assert!(
        matches!(
            err,
            Err(PsiError::TooLarge {
                declared: 22,
                limit: 10
            })
        ),
        "{err:?}"
    );
}

#[test]
fn wrong_labels_type_and_framing() {
    let (_, f) = fixture();
    let mut bad = f.query.clone();
    let table = f.q_at() + 32;
    bad[table + 8..table + 12].copy_from_slice(&7u32.to_le_bytes());
    assert!(matches!(
        f.respond(&bad),
        Err(PsiError::WrongBucketLabel {
            position: 1,
            found: 7
        })
    ));

    let mut bad = f.query.clone();
    bad[0] = b'X';
    assert!(matches!(f.respond(&bad), Err(PsiError::BadMagic)));
    let mut bad = f.query.clone();
    bad[4] = 2;
    assert!(matches!(
        f.respond(&bad),
        Err(PsiError::UnsupportedVersion(2))
    ));
    let mut bad = f.query.clone();
    bad[5] = 9;
    assert!(matches!(
        f.respond(&bad),
        Err(PsiError::UnknownMessageType(9))
    ));
    assert!(matches!(
        f.respond(&f.reply),
        Err(PsiError::WrongMessageType {
            expected: crate::MessageType::Query,
            ..
        })
    ));
}

#[test]
fn wrong_binding() {
    let (_, f) = fixture();
    type Change = fn(&mut RunParams);
    let cases: [(&str, Change); 6] = [
        ("agreement_id", |p| p.agreement_id[0] ^= 1),
        ("run_id", |p| p.run_id[15] ^= 1),
        ("join_key", |p| p.join_key.push('x')),
        ("querier_buckets", |p| p.querier_buckets = 3),
        ("cell_noise", |p| p.cell_noise.scale = 2.5),
        ("responder_bucket_noise", |p| {
            p.responder_bucket_noise.offset = 2;
        }),
    ];
    for (field, change) in cases {
        let mut other = f.p.clone();
        change(&mut other);
        let err = respond(
            &other,
            &f.b,
            &f.query,
            &Limits::default(),
            &mut NoNoise,
            &mut rng(),
        );
        assert!(
            matches!(err, Err(PsiError::WrongBinding { field: got }) if got == field),
            "{field}: {err:?}"
        );
    }
}

/// Applies `change` to a fresh fixture's reply and returns the querier's verdict.
fn finish_modified(change: impl FnOnce(&Fixture, &mut Vec<u8>)) -> Result<CellCounts, PsiError> {
    let (querier, f) = fixture();
    let mut reply = f.reply.clone();
    change(&f, &mut reply);
    querier.finish(&reply, &Limits::default())
}

#[test]
fn reply_count_faults() {
    let err = finish_modified(|f, r| {
        let t = f.reply_tables_at();
        r[t + 4..t + 8].copy_from_slice(&14u32.to_le_bytes());
    });
    assert!(
        matches!(
            err,
            Err(PsiError::WrongCount {
                bucket: 0,
                expected: 15,
                found: 14
            })
        ),
        "{err:?}"
    );

    let err = finish_modified(|f, r| {
        let t = f.reply_tables_at() + 16;
        r[t + 12..t + 16].copy_from_slice(&3u32.to_le_bytes());
    });
    assert!(
        matches!(
            err,
            Err(PsiError::TooFewPoints {
                bucket: 1,
                minimum: 4,
                found: 3
            })
        ),
        "{err:?}"
    );

    let err = finish_modified(|f, r| {
        let t = f.reply_tables_at() + 16;
        r[t..t + 4].copy_from_slice(&1u32.to_le_bytes());
    });
    assert!(
        matches!(
            err,
            Err(PsiError::WrongBucketLabel {
                position: 0,
                found: 1
            })
        ),
        "{err:?}"
    );

    let err = finish_modified(|_, r| {
        r.pop();
    });
    assert!(matches!(err, Err(PsiError::Truncated { .. })), "{err:?}");

    let err = finish_modified(|_, r| r.extend_from_slice(&[0; 12]));
    assert!(
        matches!(err, Err(PsiError::TrailingBytes { extra: 12 })),
        "{err:?}"
    );

    let (querier, f) = fixture();
    let err = querier.finish(&f.reply, &Limits { max_points: 50 });
    assert!(
        matches!(
            err,
            Err(PsiError::TooLarge {
                declared: 70,
                limit: 50
            })
        ),
        "{err:?}"
    );
}

#[test]
fn reply_point_faults() {
    // Responder bucket sizes: 15 + 1 junk + 4 injected = 20 each.
    let at = |f: &Fixture, bucket: usize, index: usize| {
        f.reply_bodies_at().1 + 32 * (20 * bucket + index)
    };
    let err = finish_modified(|f, r| {
        let i = at(f, 1, 3);
        r[i..i + 32].fill(0xff);
    });
    assert!(
        matches!(
            err,
            Err(PsiError::InvalidPoint {
                bucket: 1,
                index: 3
            })
        ),
        "{err:?}"
    );

    let err = finish_modified(|f, r| {
        let i = at(f, 0, 19);
        r[i..i + 32].fill(0);
    });
    assert!(
        matches!(
            err,
            Err(PsiError::IdentityPoint {
                bucket: 0,
                index: 19
            })
        ),
        "{err:?}"
    );

    let err = finish_modified(|f, r| {
        let (src, dst) = (at(f, 0, 0), at(f, 1, 5));
        r.copy_within(src..src + 32, dst);
    });
    assert!(
        matches!(
            err,
            Err(PsiError::DuplicatePoint {
                bucket: 1,
                index: 5
            })
        ),
        "{err:?}"
    );

    // Returned values: 11 + 4 per querier bucket.
    let err = finish_modified(|f, r| {
        let base = f.reply_bodies_at().0;
        let (src, dst) = (base + 12 * 2, base + 12 * (15 + 7));
        r.copy_within(src..src + 12, dst);
    });
    assert!(
        matches!(
            err,
            Err(PsiError::DuplicateValue {
                bucket: 1,
                index: 7
            })
        ),
        "{err:?}"
    );
}

#[test]
fn reply_binding_faults() {
    // A reply to another query of the same session.
    let (querier, f) = fixture();
    let (_, other) = fixture_with(&mut ChaCha20Rng::seed_from_u64(2));
    assert_ne!(f.query, other.query);
    let err = querier.finish(&other.reply, &Limits::default());
    assert!(
        matches!(
            err,
            Err(PsiError::WrongBinding {
                field: "query_digest"
            })
        ),
        "{err:?}"
    );

    // The query itself where a reply is expected.
    let (querier, f) = fixture();
    let err = querier.finish(&f.query, &Limits::default());
    assert!(
        matches!(err, Err(PsiError::WrongMessageType { .. })),
        "{err:?}"
    );

    // A reply of another run.
    let err = finish_modified(|f, r| {
        let run_at = 4 + 1 + 1 + 32;
        r[run_at] ^= 1;
        let _ = f;
    });
    assert!(
        matches!(err, Err(PsiError::WrongBinding { field: "run_id" })),
        "{err:?}"
    );
}

#[test]
fn local_input_faults() {
    let all = digests(11, 10);
    let p = params(2, 2, 1, 1, 1);
    let one = vec![all.clone()];
    let err = Querier::start(p.clone(), &one, &mut NoNoise, &mut rng());
    assert!(
        matches!(
            err,
            Err(PsiError::WrongBucketCount {
                expected: 2,
                found: 1
            })
        ),
        "{err:?}"
    );

    let dup = vec![all[..5].to_vec(), vec![all[6], all[3]]];
    let err = Querier::start(p.clone(), &dup, &mut NoNoise, &mut rng());
    assert!(
        matches!(
            err,
            Err(PsiError::DuplicateItem {
                bucket: 1,
                index: 1
            })
        ),
        "{err:?}"
    );
    let (_, query) =
        Querier::start(p.clone(), &[vec![], vec![]], &mut NoNoise, &mut rng()).unwrap();
    let err = respond(
        &p,
        &dup,
        &query,
        &Limits::default(),
        &mut NoNoise,
        &mut rng(),
    );
    assert!(
        matches!(
            err,
            Err(PsiError::DuplicateItem {
                bucket: 1,
                index: 1
            })
        ),
        "{err:?}"
    );

    let mut long = p.clone();
    long.join_key = "k".repeat(256);
    assert!(matches!(
        Querier::start(long, &[vec![], vec![]], &mut NoNoise, &mut rng()),
        Err(PsiError::InvalidParams(_))
    ));
    let mut zero = p.clone();
    zero.responder_buckets = 0;
    assert!(matches!(
        Querier::start(zero, &[vec![], vec![]], &mut NoNoise, &mut rng()),
        Err(PsiError::InvalidParams(_))
    ));
    let mut wide = p.clone();
    (wide.querier_buckets, wide.responder_buckets) = (1 << 11, 1 << 10);
    assert!(matches!(
        respond(
            &wide,
            &[],
            &[],
            &Limits::default(),
            &mut NoNoise,
            &mut rng()
        ),
        Err(PsiError::InvalidParams(_))
    ));
    let mut nan = p.clone();
    nan.cell_noise.scale = f64::NAN;
    assert!(matches!(
        Querier::start(nan, &[vec![], vec![]], &mut NoNoise, &mut rng()),
        Err(PsiError::InvalidParams(_))
    ));

    /// Breaks the noise contract with a draw above 2T.
    struct TooBig;
    impl NoiseSource for TooBig {
        fn shifted(&mut self, d: &ShiftedLaplace, n: usize) -> Result<Vec<u32>, DpError> {
            Ok(vec![2 * d.offset + 1; n])
        }
    }
    let err = Querier::start(p, &[vec![], vec![]], &mut TooBig, &mut rng());
    assert!(
        matches!(
            err,
            Err(PsiError::BadNoiseDraws {
                wanted: 2,
                found: 2,
                max: 2
            })
        ),
        "{err:?}"
    );
}

/// Issue 9 item 5b: the responder draws all its noise from the run's public parameters before it
/// reads the query, so even a query that fails to parse finds the draws already made (junk
/// counts, then `K_c`), and the time of the draw cannot depend on the query.
#[test]
fn responder_noise_is_drawn_before_the_query_is_read() {
    struct Counting(Vec<usize>);
    impl NoiseSource for Counting {
        fn shifted(&mut self, d: &ShiftedLaplace, n: usize) -> Result<Vec<u32>, DpError> {
            self.0.push(n);
            Ok(vec![d.offset; n])
        }
    }
    let (_, f) = fixture();
    let mut noise = Counting(Vec::new());
    let err = respond(
        &f.p,
        &f.b,
        b"not a query",
        &Limits::default(),
        &mut noise,
        &mut rng(),
    );
    assert!(matches!(err, Err(PsiError::BadMagic)), "{err:?}");
    let (na, nb) = (f.p.querier_buckets as usize, f.p.responder_buckets as usize);
    assert_eq!(noise.0, [nb, na * nb]);
    // The split API: the noise alone, then the parse, which reads nothing of the responder.
    let drawn = crate::ResponderNoise::draw(&f.p, &mut Counting(Vec::new())).unwrap();
    let parsed = crate::ParsedQuery::parse(&f.p, &f.query, &Limits::default(), &mut rng()).unwrap();
    assert_eq!(parsed.bucket_sizes().len(), na);
    let reply = crate::respond_parsed(parsed, &f.b, drawn, &Limits::default(), &mut rng());
    assert!(reply.is_ok(), "{reply:?}");
}

/// Issue 9 item 1: a reply too large because of the responder's own items is refused with an
/// error that carries no number; a query over the public bound names only public numbers.
#[test]
fn a_reply_too_large_for_the_responder_carries_no_number() {
    let (_, f) = fixture();
    let parsed = crate::ParsedQuery::parse(&f.p, &f.query, &Limits::default(), &mut rng()).unwrap();
    let a_total: u64 = parsed.bucket_sizes().iter().sum();
    let injected = 2
        * u64::from(f.p.cell_noise.offset)
        * u64::from(f.p.querier_buckets)
        * u64::from(f.p.responder_buckets);
    let max_junk =
        2 * u64::from(f.p.responder_bucket_noise.offset) * u64::from(f.p.responder_buckets);
    let bound = (a_total + 2 * injected + max_junk) as usize;
    let tight = Limits { max_points: bound };
    let parsed = crate::ParsedQuery::parse(&f.p, &f.query, &tight, &mut rng()).unwrap();
    let drawn = crate::ResponderNoise::draw(&f.p, &mut NoNoise).unwrap();
    let err = crate::respond_parsed(parsed, &f.b, drawn, &tight, &mut rng());
    assert!(matches!(err, Err(PsiError::ReplyTooLarge)), "{err:?}");
    let text = err.unwrap_err().to_string();
    assert!(!text.contains(|c: char| c.is_ascii_digit()), "{text}");
    let err = crate::ParsedQuery::parse(
        &f.p,
        &f.query,
        &Limits {
            max_points: bound - 1,
        },
        &mut rng(),
    );
    assert!(
        matches!(err, Err(PsiError::TooLarge { declared, .. }) if declared == bound as u64),
        "{err:?}"
    );
}
