//! The test vectors of `protocols/psi-ca-v1.md` §8, read from the spec itself.

use std::collections::HashMap;

use chacha20::ChaCha20Rng;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha256, Sha512};

use super::*;
use crate::ec::SecretScalar;
use crate::hash::{DUMMY_LABEL, DUMMY_TAG, Domain, ITEM_TAG, dst};

const SPEC: &str = include_str!("../../../../protocols/psi-ca-v1.md");
const FENCE: &str = "```psi-ca-v1-vectors";
const SEEDED_FENCE: &str = "```psi-ca-v1-seeded-vectors";

/// The `name = value` lines of the vectors block.
fn vectors() -> HashMap<&'static str, &'static str> {
    block(FENCE)
}

/// The `name = value` lines of the block opened by `fence`.
fn block(fence: &str) -> HashMap<&'static str, &'static str> {
    let start = SPEC.find(fence).expect("vectors block in the spec") + fence.len();
    let end = start + SPEC[start..].find("```").expect("end of the vectors block");
    SPEC[start..end]
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn hex_of(v: &HashMap<&str, &str>, key: &str) -> Vec<u8> {
    hex::decode(v.get(key).unwrap_or_else(|| panic!("vector {key} missing"))).expect("hex")
}

fn array<const N: usize>(v: &HashMap<&str, &str>, key: &str) -> [u8; N] {
    hex_of(v, key)
        .try_into()
        .unwrap_or_else(|_| panic!("{key}: wrong length"))
}

fn scalar(v: &HashMap<&str, &str>, key: &str) -> Scalar {
    Option::from(Scalar::from_canonical_bytes(array(v, key))).expect("canonical scalar")
}

fn check(v: &HashMap<&str, &str>, key: &str, got: &[u8]) {
    assert_eq!(hex::encode(got), v[key], "vector {key}");
}

#[test]
fn spec_test_vectors() {
    let v = vectors();
    let p = RunParams {
        agreement_id: array(&v, "agreement_id"),
        join_key: v["join_key"].to_owned(),
        run_id: array(&v, "run_id"),
        querier_buckets: 2,
        responder_buckets: 2,
        querier_bucket_noise: ShiftedLaplace {
            scale: 1.0,
            offset: 0,
        },
        responder_bucket_noise: ShiftedLaplace {
            scale: 1.0,
            offset: 0,
        },
        cell_noise: ShiftedLaplace {
            scale: 1.0,
            offset: 0,
        },
    };
    let (alpha, beta) = (scalar(&v, "alpha"), scalar(&v, "beta"));
    let emails = ["alice@example.com", "bob@example.com", "carol@example.com"];
    let [a0, a1, b1]: [[u8; 32]; 3] = emails.map(|e| Sha256::digest(e).into());
    check(&v, "a0", &a0);
    check(&v, "a1", &a1);
    check(&v, "b0", &a1);
    check(&v, "b1", &b1);

    let dst = dst(&p.agreement_id, &p.join_key).unwrap();
    check(&v, "dst", &dst);
    let domain = Domain::new(&p).unwrap();
    let h = |x: &[u8; 32]| {
        let p = RistrettoPoint::hash_from_bytes::<Sha512>(&[&dst[..], &[ITEM_TAG], x].concat());
        assert_eq!(p, domain.item(x));
        p
    };
    let d = RistrettoPoint::hash_from_bytes::<Sha512>(
        &[&dst[..], &[DUMMY_TAG], DUMMY_LABEL, &p.run_id].concat(),
    );
    assert_eq!(d, domain.dummy_base(&p.run_id));
    check(&v, "H_a0", h(&a0).compress().as_bytes());
    check(&v, "H_a1", h(&a1).compress().as_bytes());
    check(&v, "H_b1", h(&b1).compress().as_bytes());
    check(&v, "D", d.compress().as_bytes());
    check(&v, "Q", (alpha * d).compress().as_bytes());
    check(&v, "alpha_H_a0", (alpha * h(&a0)).compress().as_bytes());
    check(&v, "alpha_H_a1", (alpha * h(&a1)).compress().as_bytes());
    check(
        &v,
        "beta_alpha_H_a0_trunc",
        &(beta * alpha * h(&a0)).compress().as_bytes()[..12],
    );
    check(
        &v,
        "beta_alpha_H_a1_trunc",
        &(beta * alpha * h(&a1)).compress().as_bytes()[..12],
    );
    check(&v, "beta_H_b0", (beta * h(&a1)).compress().as_bytes());
    check(&v, "beta_H_b1", (beta * h(&b1)).compress().as_bytes());
    // The lowest bit of an encoding is always 0: 95 bits of entropy in a 12-byte truncation.
    assert_eq!(
        CompressedRistretto::from_slice(&hex_of(&v, "D"))
            .unwrap()
            .as_bytes()[0]
            & 1,
        0
    );

    let a = vec![vec![a0], vec![a1]];
    let b = vec![vec![a1], vec![b1]];
    // No junk and no injected slots: the messages do not depend on the generator.
    let (querier, query) = Querier::start_with_scalar(
        p.clone(),
        &a,
        &mut NoNoise,
        SecretScalar::new(alpha),
        &mut rng(),
    )
    .unwrap();
    check(&v, "query", &query);
    let parsed = crate::ParsedQuery::parse_with_scalar(
        &p,
        &query,
        &Limits::default(),
        SecretScalar::new(beta),
    )
    .unwrap();
    let reply = crate::respond_parsed(
        parsed,
        &b,
        crate::ResponderNoise::draw(&p, &mut NoNoise).unwrap(),
        &Limits::default(),
        &mut rng(),
    )
    .unwrap()
    .0;
    check(&v, "reply", &reply);
    let counts = querier.finish(&reply, &Limits::default()).unwrap();
    let cells: Vec<String> = counts.noised.iter().map(i64::to_string).collect();
    assert_eq!(cells.join(" "), v["cells"]);
}

/// Noise draws given in the spec, handed out in the order they are asked for.
struct GivenDraws(Vec<Vec<u32>>);

impl NoiseSource for GivenDraws {
    fn shifted(&mut self, _: &ShiftedLaplace, count: usize) -> Result<Vec<u32>, DpError> {
        let draws = self.0.remove(0);
        assert_eq!(draws.len(), count, "draws asked for in another order");
        Ok(draws)
    }
}

fn numbers<T: std::str::FromStr>(v: &HashMap<&str, &str>, key: &str) -> Vec<T> {
    v[key]
        .split_whitespace()
        .map(|x| x.parse().ok().expect("number"))
        .collect()
}

fn dist(v: &HashMap<&str, &str>, key: &str) -> ShiftedLaplace {
    let [scale, offset]: [&str; 2] = v[key]
        .split_whitespace()
        .collect::<Vec<_>>()
        .try_into()
        .expect("scale offset");
    ShiftedLaplace {
        scale: scale.parse().expect("scale"),
        offset: offset.parse().expect("offset"),
    }
}

/// The seeded run of §9: junk and injected slots, every random choice from ChaCha20 seeded
/// with the given 32 bytes (one generator per party), noise draws as given. Reports every
/// value that differs, as `name = value` lines ready for the spec.
#[test]
fn spec_seeded_test_vectors() {
    let v = block(SEEDED_FENCE);
    let base = vectors();
    let p = RunParams {
        agreement_id: array(&base, "agreement_id"),
        join_key: base["join_key"].to_owned(),
        run_id: array(&base, "run_id"),
        querier_buckets: 2,
        responder_buckets: 2,
        querier_bucket_noise: dist(&v, "querier_bucket_noise"),
        responder_bucket_noise: dist(&v, "responder_bucket_noise"),
        cell_noise: dist(&v, "cell_noise"),
    };
    let emails = ["alice@example.com", "bob@example.com", "carol@example.com"];
    let [a0, a1, b1]: [[u8; 32]; 3] = emails.map(|e| Sha256::digest(e).into());
    let a = vec![vec![a0], vec![a1]];
    let b = vec![vec![a1], vec![b1]];

    let mut querier_rng = ChaCha20Rng::from_seed(array(&v, "querier_seed"));
    let mut responder_rng = ChaCha20Rng::from_seed(array(&v, "responder_seed"));
    let mut querier_noise = GivenDraws(vec![numbers(&v, "J_A")]);
    let mut responder_noise = GivenDraws(vec![numbers(&v, "J_B"), numbers(&v, "K")]);
    let (querier, query) =
        Querier::start(p.clone(), &a, &mut querier_noise, &mut querier_rng).expect("query");
    let reply = respond(
        &p,
        &b,
        &query,
        &Limits::default(),
        &mut responder_noise,
        &mut responder_rng,
    )
    .expect("reply");
    let counts = querier.finish(&reply, &Limits::default()).expect("finish");
    let join = |xs: &[i64]| xs.iter().map(i64::to_string).collect::<Vec<_>>().join(" ");
    let sizes: Vec<i64> = counts
        .responder_bucket_sizes_noised
        .iter()
        .map(|&n| n as i64)
        .collect();

    let got = [
        ("query", hex::encode(&query)),
        ("reply", hex::encode(&reply)),
        ("cells", join(&counts.noised)),
        ("responder_bucket_sizes", join(&sizes)),
    ];
    let wrong: Vec<String> = got
        .iter()
        .filter(|(key, value)| v.get(key) != Some(&value.as_str()))
        .map(|(key, value)| format!("{key} = {value}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "seeded vectors differ:\n{}",
        wrong.join("\n")
    );
    // The cells are the true intersections (0 0 1 0) plus K − T.
    let t = i64::from(p.cell_noise.offset);
    let k: Vec<i64> = numbers(&v, "K");
    let expected: Vec<i64> = [0, 0, 1, 0]
        .iter()
        .zip(&k)
        .map(|(x, k)| x + k - t)
        .collect();
    assert_eq!(counts.noised, expected);
}
