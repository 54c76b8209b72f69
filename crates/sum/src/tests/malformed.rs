//! Malformed, hostile and mis-bound messages are rejected with typed errors, before any
//! allocation sized by a declared count.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;

use super::*;
use crate::error::PointRole;
use crate::{MessageType, peek_header};

const IDENTITY: [u8; 32] = [0; 32];
const INVALID: [u8; 32] = [0xff; 32];

/// A run with squares over 10 points in 3 cells, stopped before the reply.
struct Fixture {
    p: SumParams,
    v: Vec<u32>,
    cells: Vec<Vec<usize>>,
    holder: ValueHolder,
    values: Vec<u8>,
    querier: SumQuerier,
    request: Vec<u8>,
}

fn fixture() -> Fixture {
    let p = params(3, 100, 20, Some(30));
    let v = values(7, 10, 100);
    let cells = vec![vec![0, 3], vec![], vec![5, 6, 9]];
    let mut r = rng(8);
    let (holder, values) = ValueHolder::start(p.clone(), &v, &Limits::default(), &mut r).unwrap();
    let (querier, request) = SumQuerier::request(
        p.clone(),
        &values,
        v.len(),
        &cells,
        &Limits::default(),
        &mut r,
    )
    .unwrap();
    Fixture {
        p,
        v,
        cells,
        holder,
        values,
        querier,
        request,
    }
}

fn request_of(f: &Fixture, values: &[u8]) -> Result<(SumQuerier, Vec<u8>), SumError> {
    SumQuerier::request(
        f.p.clone(),
        values,
        f.v.len(),
        &f.cells,
        &Limits::default(),
        &mut rng(9),
    )
}

fn patched(msg: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    m[at..at + bytes.len()].copy_from_slice(bytes);
    m
}

#[test]
fn headers_are_checked() {
    let f = fixture();
    let h = peek_header(&f.values).unwrap();
    assert_eq!(h.message_type, MessageType::Values);
    assert_eq!(h.params, f.p);
    assert_eq!(
        peek_header(&f.request).unwrap().message_type,
        MessageType::DecryptRequest
    );

    let e = |m: &[u8]| request_of(&f, m).unwrap_err();
    assert!(matches!(
        e(&patched(&f.values, 0, b"TPSI")),
        SumError::BadMagic
    ));
    assert!(matches!(
        e(&patched(&f.values, 4, &[2])),
        SumError::UnsupportedVersion(2)
    ));
    assert!(matches!(
        e(&patched(&f.values, 5, &[9])),
        SumError::UnknownMessageType(9)
    ));
    assert!(matches!(
        e(&f.request),
        SumError::WrongMessageType {
            expected: MessageType::Values,
            found: MessageType::DecryptRequest
        }
    ));
    assert!(matches!(e(&f.values[..50]), SumError::Truncated { .. }));
    // Flags other than "squares", and square noise without the flag.
    assert!(matches!(
        e(&patched(&f.values, 94, &[3])),
        SumError::MalformedHeader(_)
    ));
    let no_squares = params(3, 100, 20, None);
    let (_, plain_values) =
        ValueHolder::start(no_squares, &f.v, &Limits::default(), &mut rng(1)).unwrap();
    assert!(matches!(
        peek_header(&patched(&plain_values, 107, &[1])),
        Err(SumError::MalformedHeader(_))
    ));
    // A column name that is not UTF-8.
    assert!(matches!(
        e(&patched(&f.values, 120, &[0xff])),
        SumError::MalformedHeader(_)
    ));
}

#[test]
fn every_header_field_is_bound() {
    let f = fixture();
    let other = |change: &dyn Fn(&mut SumParams)| {
        let mut p = f.p.clone();
        change(&mut p);
        let (_, m) = ValueHolder::start(p, &f.v, &Limits::default(), &mut rng(1)).unwrap();
        match request_of(&f, &m).unwrap_err() {
            SumError::WrongBinding { field } => field,
            e => panic!("{e:?}"),
        }
    };
    assert_eq!(other(&|p| p.agreement_id[0] ^= 1), "agreement_id");
    assert_eq!(other(&|p| p.run_id[15] ^= 1), "run_id");
    assert_eq!(other(&|p| p.psi_reply_digest[3] ^= 1), "psi_reply_digest");
    assert_eq!(other(&|p| p.cells = 4), "cells");
    assert_eq!(other(&|p| p.value_bound = 101), "value_bound");
    assert_eq!(
        other(&|p| p.sum_noise.scale = p.sum_noise.scale.next_up()),
        "sum_noise"
    );
    assert_eq!(other(&|p| p.sum_noise.offset += 1), "sum_noise");
    assert_eq!(other(&|p| p.square_noise = None), "square_noise");
    assert_eq!(other(&|p| p.column = "orders".into()), "column");
}

#[test]
fn declared_counts_are_checked_before_allocating() {
    let f = fixture();
    let count_at = header_len(&f.p) + 64;
    // 2^32 − 1 ciphertexts declared in a message of a few hundred bytes.
    let huge = patched(&f.values, count_at, &u32::MAX.to_le_bytes());
    let small = Limits {
        max_points: 1000,
        ..Limits::default()
    };
    let err = SumQuerier::request(f.p.clone(), &huge, f.v.len(), &f.cells, &small, &mut rng(1));
    assert!(matches!(
        err,
        Err(SumError::TooLarge {
            declared: 4_294_967_295,
            limit: 1000
        })
    ));
    // Within the limit but not the expected count, or not present.
    let eleven = patched(&f.values, count_at, &11u32.to_le_bytes());
    assert!(matches!(
        request_of(&f, &eleven),
        Err(SumError::WrongCount {
            expected: 10,
            found: 11
        })
    ));
    let err = SumQuerier::request(
        f.p.clone(),
        &eleven,
        11,
        &f.cells,
        &Limits::default(),
        &mut rng(1),
    );
    assert!(matches!(
        err,
        Err(SumError::Truncated {
            needed: 1056,
            available: 960
        })
    ));
    let mut long = f.values.clone();
    long.push(0);
    assert!(matches!(
        request_of(&f, &long),
        Err(SumError::TrailingBytes { extra: 1 })
    ));
}

#[test]
fn bad_points_in_the_values_message_are_rejected() {
    let f = fixture();
    let keys = header_len(&f.p);
    let body = keys + 64 + 4;
    for (at, role) in [
        (keys, PointRole::Key),
        (keys + 32, PointRole::Key),
        (body, PointRole::Ciphertext(0)),
        // Index 1 is in no cell: checked all the same.
        (body + 96 + 64, PointRole::Ciphertext(1)),
        (body + 9 * 96 + 32, PointRole::Ciphertext(9)),
    ] {
        match request_of(&f, &patched(&f.values, at, &INVALID)) {
            Err(SumError::InvalidPoint { role: r }) => assert_eq!(r, role),
            other => panic!("{other:?}"),
        }
        match request_of(&f, &patched(&f.values, at, &IDENTITY)) {
            Err(SumError::IdentityPoint { role: r }) => assert_eq!(r, role),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn cell_lists_are_checked() {
    let f = fixture();
    let with = |cells: Vec<Vec<usize>>| {
        SumQuerier::request(
            f.p.clone(),
            &f.values,
            10,
            &cells,
            &Limits::default(),
            &mut rng(1),
        )
        .unwrap_err()
    };
    assert!(matches!(
        with(vec![vec![0], vec![1]]),
        SumError::InvalidCells(_)
    ));
    assert!(matches!(
        with(vec![vec![0], vec![10], vec![]]),
        SumError::InvalidCells(_)
    ));
    assert!(matches!(
        with(vec![vec![0, 1], vec![1], vec![]]),
        SumError::InvalidCells(_)
    ));
    // A cell bound above the querier's limit is refused before anything is sent.
    // A querier limit below an honest cell's value: the request goes out all the same (a
    // refusal would depend on the matches); the search fails after the last message.
    let tight = Limits {
        max_plaintext: 10,
        ..Limits::default()
    };
    let (querier, request) =
        SumQuerier::request(f.p.clone(), &f.values, 10, &f.cells, &tight, &mut rng(1)).unwrap();
    let reply = f.holder.decrypt(&request, &mut NoNoise).unwrap();
    assert!(matches!(
        querier.finish(&reply, &dlog_table()),
        Err(SumError::OutOfRange { cell: 0, bound: 10 })
    ));
}

#[test]
fn the_holder_checks_the_request() {
    let f = fixture();
    let body = header_len(&f.p) + 32;
    let decrypt = |m: &[u8]| fixture_holder().decrypt(m, &mut NoNoise).unwrap_err();
    assert!(matches!(
        decrypt(&patched(&f.request, body - 1, &[0])),
        SumError::WrongBinding {
            field: "values_digest"
        }
    ));
    assert!(matches!(
        decrypt(&f.values),
        SumError::WrongMessageType { .. }
    ));
    assert!(matches!(
        decrypt(&f.request[..f.request.len() - 1]),
        SumError::Truncated { .. }
    ));
    let mut long = f.request.clone();
    long.extend_from_slice(&[0; 96]);
    assert!(matches!(
        decrypt(&long),
        SumError::TrailingBytes { extra: 96 }
    ));
    for (at, cell) in [(body, 0), (body + 96 + 32, 1), (body + 2 * 96 + 64, 2)] {
        match decrypt(&patched(&f.request, at, &IDENTITY)) {
            SumError::IdentityPoint { role } => assert_eq!(role, PointRole::Request(cell)),
            e => panic!("{e:?}"),
        }
        match decrypt(&patched(&f.request, at, &INVALID)) {
            SumError::InvalidPoint { role } => assert_eq!(role, PointRole::Request(cell)),
            e => panic!("{e:?}"),
        }
    }
    // A noise source that breaks its contract.
    struct TooBig;
    impl NoiseSource for TooBig {
        fn shifted(&mut self, d: &ShiftedLaplace, n: usize) -> Result<Vec<u32>, DpError> {
            Ok(vec![2 * d.offset + 1; n])
        }
    }
    assert!(matches!(
        f.holder.decrypt(&f.request, &mut TooBig),
        Err(SumError::BadNoiseDraws {
            wanted: 3,
            found: 3,
            max: 40
        })
    ));
}

/// The holder of [`fixture`] again (same seed, so the same values message).
fn fixture_holder() -> ValueHolder {
    let f_p = params(3, 100, 20, Some(30));
    let v = values(7, 10, 100);
    ValueHolder::start(f_p, &v, &Limits::default(), &mut rng(8))
        .unwrap()
        .0
}

#[test]
fn the_querier_checks_the_reply() {
    let reply = |f: Fixture| f.holder.decrypt(&f.request, &mut NoNoise).unwrap();
    let f = fixture();
    let body = header_len(&f.p) + 32;
    let good = reply(fixture());
    let finish = |m: &[u8]| fixture().querier.finish(m, &dlog_table());
    assert!(finish(&good).is_ok());
    assert!(matches!(
        finish(&patched(&good, body - 1, &[0])),
        Err(SumError::WrongBinding {
            field: "request_digest"
        })
    ));
    assert!(matches!(
        finish(&f.request),
        Err(SumError::WrongMessageType { .. })
    ));
    assert!(matches!(
        finish(&good[..good.len() - 32]),
        Err(SumError::Truncated { .. })
    ));
    assert!(matches!(
        finish(&patched(&good, body + 32 * 3, &INVALID)),
        Err(SumError::InvalidPoint {
            role: PointRole::Reply(1)
        })
    ));
    assert!(matches!(
        finish(&patched(&good, body + 32 * 5, &IDENTITY)),
        Err(SumError::IdentityPoint {
            role: PointRole::Reply(2)
        })
    ));
}

/// A deviating holder returns `W + X·G`: the querier's search ends, after its bounded number of
/// giant steps, in `OutOfRange` whenever the plaintext leaves `[0, n_c·U + 2T]`.
#[test]
fn out_of_range_plaintexts_fail_cleanly() {
    let f = fixture();
    let good = reply_of(fixture());
    let body = header_len(&f.p) + 32;
    let shift = |cell_slot: usize, x: Scalar| {
        let at = body + 32 * cell_slot;
        let w = CompressedRistretto::from_slice(&good[at..at + 32])
            .unwrap()
            .decompress()
            .unwrap();
        patched(
            &good,
            at,
            (w + RistrettoPoint::mul_base(&x)).compress().as_bytes(),
        )
    };
    // Cell 2 (three values ≤ 100, T = 20): its bound is 340; push the sum past it.
    let (sums, _) = plain(&f.v, &f.cells);
    let past = 340 - (sums[2] as u64 + 20) + 1;
    assert!(matches!(
        fixture()
            .querier
            .finish(&shift(4, Scalar::from(past)), &dlog_table()),
        Err(SumError::OutOfRange {
            cell: 2,
            bound: 340
        })
    ));
    // "Negative" plaintexts (just below 0 mod ℓ) and huge ones fail too; exactly at the bound
    // succeeds.
    let at_bound = fixture()
        .querier
        .finish(&shift(4, Scalar::from(past - 1)), &dlog_table())
        .unwrap();
    assert_eq!(at_bound.sums[2], 340 - 20);
    assert!(matches!(
        fixture()
            .querier
            .finish(&shift(0, -Scalar::from(1000u64)), &dlog_table()),
        Err(SumError::OutOfRange { cell: 0, .. })
    ));
    assert!(matches!(
        fixture()
            .querier
            .finish(&shift(1, Scalar::from(1u64 << 50)), &dlog_table()),
        Err(SumError::OutOfRange { cell: 0, .. })
    ));
}

fn reply_of(f: Fixture) -> Vec<u8> {
    f.holder.decrypt(&f.request, &mut NoNoise).unwrap()
}

/// A deviating querier asks the holder to decrypt ciphertexts of its own choosing (here fresh
/// encryptions of chosen plaintexts under the holder's keys): every decryption comes back with
/// the holder's noise draw added (spec §8.3).
#[test]
fn any_request_is_answered_with_noise_added() {
    struct Fixed(Vec<Vec<u32>>);
    impl NoiseSource for Fixed {
        fn shifted(&mut self, _: &ShiftedLaplace, n: usize) -> Result<Vec<u32>, DpError> {
            let d = self.0.remove(0);
            assert_eq!(d.len(), n);
            Ok(d)
        }
    }
    let f = fixture();
    let at = header_len(&f.p);
    let key = |i: usize| {
        CompressedRistretto::from_slice(&f.values[at + 32 * i..at + 32 * (i + 1)])
            .unwrap()
            .decompress()
            .unwrap()
    };
    let (k1, k2) = (key(0), key(1));
    let chosen = [[7u64, 1 << 40], [0, 3], [123_456, 9]];
    let mut request = Vec::new();
    crate::message::MessageHeader::encode(&f.p, MessageType::DecryptRequest, &mut request);
    request.extend_from_slice(&<sha2::Sha256 as sha2::Digest>::digest(&f.values));
    let mut r = rng(77);
    for [x, y] in chosen {
        let s = Scalar::from(r.random::<u64>() | 1);
        for p in [
            RistrettoPoint::mul_base(&s),
            RistrettoPoint::mul_base(&Scalar::from(x)) + s * k1,
            RistrettoPoint::mul_base(&Scalar::from(y)) + s * k2,
        ] {
            request.extend_from_slice(p.compress().as_bytes());
        }
    }
    let draws = [vec![1, 2, 3], vec![4, 5, 6]];
    let reply = f
        .holder
        .decrypt(&request, &mut Fixed(draws.to_vec()))
        .unwrap();
    let body = at + 32;
    for (c, [x, y]) in chosen.iter().enumerate() {
        for (j, plain) in [x, y].into_iter().enumerate() {
            let w = &reply[body + 32 * (2 * c + j)..body + 32 * (2 * c + j + 1)];
            let expected = RistrettoPoint::mul_base(&Scalar::from(plain + u64::from(draws[j][c])));
            assert_eq!(w, expected.compress().as_bytes(), "cell {c}, component {j}");
        }
    }
}
