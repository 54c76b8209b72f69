//! The test vectors of `protocols/psi-sum-v1.md` §9, read from the spec itself: the inputs are
//! parsed from the block, every output is recomputed and compared line by line.

use std::collections::BTreeMap;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;

use super::*;
use crate::elgamal::random_nonzero_scalar;

const SPEC: &str = include_str!("../../../../protocols/psi-sum-v1.md");
const FENCE: &str = "```psi-sum-v1-vectors";

/// The `name = value` lines of the vectors block, in order.
fn vectors() -> Vec<(&'static str, &'static str)> {
    let start = SPEC.find(FENCE).expect("vectors block in the spec") + FENCE.len();
    let end = start + SPEC[start..].find("```").expect("end of the vectors block");
    SPEC[start..end]
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// Fixed noise draws, in order of the requests (sums first, then squares).
struct Draws(Vec<Vec<u32>>);

impl NoiseSource for Draws {
    fn shifted(&mut self, _: &ShiftedLaplace, count: usize) -> Result<Vec<u32>, DpError> {
        let d = self.0.remove(0);
        assert_eq!(d.len(), count);
        Ok(d)
    }
}

fn numbers<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split_whitespace()
        .map(|x| x.parse().ok().expect("number"))
        .collect()
}

fn array<const N: usize>(v: &BTreeMap<&str, &str>, key: &str) -> [u8; N] {
    hex::decode(v[key])
        .expect("hex")
        .try_into()
        .unwrap_or_else(|_| panic!("{key}: wrong length"))
}

fn hex_scalar(s: &Scalar) -> String {
    hex::encode(s.as_bytes())
}

fn hex_point(p: &RistrettoPoint) -> String {
    hex::encode(p.compress().as_bytes())
}

/// The inputs of the block; everything else is output.
const INPUTS: [&str; 16] = [
    "holder_seed",
    "querier_seed",
    "agreement_id",
    "run_id",
    "psi_reply_digest",
    "column",
    "cells",
    "value_bound",
    "sum_noise",
    "square_noise",
    "values",
    "cell_0",
    "cell_1",
    "sum_draws",
    "square_draws",
    "dlog_baby_bits",
];

#[test]
fn spec_test_vectors() {
    let block = vectors();
    let v: BTreeMap<&str, &str> = block.iter().copied().collect();
    let dist = |key: &str| {
        let [scale, offset] = v[key].split_whitespace().collect::<Vec<_>>()[..] else {
            panic!("{key}: scale offset");
        };
        ShiftedLaplace {
            scale: scale.parse().unwrap(),
            offset: offset.parse().unwrap(),
        }
    };
    let p = SumParams {
        agreement_id: array(&v, "agreement_id"),
        run_id: array(&v, "run_id"),
        psi_reply_digest: array(&v, "psi_reply_digest"),
        column: v["column"].to_owned(),
        cells: v["cells"].parse().unwrap(),
        value_bound: v["value_bound"].parse().unwrap(),
        sum_noise: dist("sum_noise"),
        square_noise: Some(dist("square_noise")),
    };
    let values: Vec<u32> = numbers(v["values"]);
    let cells: Vec<Vec<usize>> = vec![numbers(v["cell_0"]), numbers(v["cell_1"])];
    let holder_seed: [u8; 32] = array(&v, "holder_seed");
    let querier_seed: [u8; 32] = array(&v, "querier_seed");
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, val: String| out.push((k.to_owned(), val));

    // The scalars, drawn as the implementation draws them.
    let mut hr = ChaCha20Rng::from_seed(holder_seed);
    let (k, k2) = (
        random_nonzero_scalar(&mut hr),
        random_nonzero_scalar(&mut hr),
    );
    put("k", hex_scalar(&k));
    put("k2", hex_scalar(&k2));
    put("K", hex_point(&RistrettoPoint::mul_base(&k)));
    put("K2", hex_point(&RistrettoPoint::mul_base(&k2)));
    for (i, &x) in values.iter().enumerate() {
        let r = random_nonzero_scalar(&mut hr);
        let x = Scalar::from(x);
        put(&format!("r_{i}"), hex_scalar(&r));
        // Enc(v) = (r·G, v·G + r·K), and the square under K₂ with the same r.
        let big_r = RistrettoPoint::mul_base(&r);
        let vv = RistrettoPoint::mul_base(&x) + r * RistrettoPoint::mul_base(&k);
        let v2 = RistrettoPoint::mul_base(&(x * x)) + r * RistrettoPoint::mul_base(&k2);
        put(
            &format!("ciphertext_{i}"),
            [big_r, vv, v2]
                .iter()
                .map(hex_point)
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    let mut qr = ChaCha20Rng::from_seed(querier_seed);
    for c in 0..cells.len() {
        put(
            &format!("r'_{c}"),
            hex_scalar(&random_nonzero_scalar(&mut qr)),
        );
        put(
            &format!("m_{c}"),
            hex_scalar(&random_nonzero_scalar(&mut qr)),
        );
        put(
            &format!("m2_{c}"),
            hex_scalar(&random_nonzero_scalar(&mut qr)),
        );
    }

    // The protocol itself.
    let limits = Limits::default();
    let mut hr = ChaCha20Rng::from_seed(holder_seed);
    let (holder, msg) = ValueHolder::start(p.clone(), &values, &limits, &mut hr).unwrap();
    put("values_message", hex::encode(&msg));
    let mut qr = ChaCha20Rng::from_seed(querier_seed);
    let (querier, request) =
        SumQuerier::request(p.clone(), &msg, values.len(), &cells, &limits, &mut qr).unwrap();
    put("request", hex::encode(&request));
    let mut draws = Draws(vec![numbers(v["sum_draws"]), numbers(v["square_draws"])]);
    let reply = holder.decrypt(&request, &mut draws).unwrap();
    put("reply", hex::encode(&reply));
    let table = DiscreteLog::cached(v["dlog_baby_bits"].parse().unwrap()).unwrap();
    let sums = querier.finish(&reply, &table).unwrap();
    let join = |x: &[i64]| x.iter().map(i64::to_string).collect::<Vec<_>>().join(" ");
    put("sums", join(&sums.sums));
    put("squares", join(sums.squares.as_deref().unwrap()));

    let rendered: String = out.iter().map(|(k, x)| format!("{k} = {x}\n")).collect();
    let outputs: Vec<(&str, &str)> = block
        .iter()
        .filter(|(k, _)| !INPUTS.contains(k))
        .copied()
        .collect();
    assert_eq!(
        outputs.len(),
        out.len(),
        "outputs in the spec; computed:\n{rendered}"
    );
    for ((key, want), (name, got)) in outputs.iter().zip(&out) {
        assert_eq!(
            (*key, *want),
            (name.as_str(), got.as_str()),
            "computed:\n{rendered}"
        );
    }
}
