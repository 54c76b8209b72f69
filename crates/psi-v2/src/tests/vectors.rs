//! The seeded test vectors of `protocols/psi-ca-v2.md` §10, read from the spec itself.

use std::collections::HashMap;

use tandem_dp::test_noise::NoNoise;

use super::*;
use crate::hash::{Domain, generators};

const SPEC: &str = include_str!("../../../../protocols/psi-ca-v2.md");
const FENCE: &str = "```psi-ca-v2-vectors";

fn vectors() -> HashMap<&'static str, &'static str> {
    let start = SPEC.find(FENCE).expect("vectors block in the spec") + FENCE.len();
    let end = start + SPEC[start..].find("```").expect("end of the vectors block");
    SPEC[start..end]
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn hex32(p: &RistrettoPoint) -> String {
    hex::encode(p.compress().as_bytes())
}

/// Computes every vector and compares it with the spec; a mismatch prints all of them.
#[test]
fn spec_test_vectors() {
    let p = params(2, 2, 1);
    let domain = Domain::new(&p).expect("domain");
    let a = vec![vec![id(1), id(2)], vec![id(3)]];
    let b = vec![vec![id(2), id(3)], vec![id(4)]];
    let (mut q, msg1) = Querier::start(p.clone(), &a, &mut rng(1), &mut NoNoise).expect("msg1");
    let mut r = Responder::receive_query(p.clone(), &msg1, &Limits::default(), &mut rng(2))
        .expect("msg1 valid");
    let msg2 = r.list(&b, &mut rng(3), &mut NoNoise).expect("msg2");
    let msg3 = q
        .evaluate(&msg2, &Limits::default(), &mut rng(4))
        .expect("msg3");
    let msg4 = r.finish(&msg3, &mut rng(5), &mut NoNoise).expect("msg4");
    let est = q.finish(&msg4).expect("counts").estimates;
    let gens = generators(1);
    let got: Vec<(&str, String)> = vec![
        ("H(id(1))", hex32(&domain.item(&id(1)))),
        ("W(0,1,0)", hex32(&domain.seed(0, 1, 0))),
        ("h_0", hex32(&gens[0])),
        ("h_1", hex32(&gens[1])),
        ("sha256(msg1)", hex::encode(wire::digest(&msg1))),
        ("sha256(msg2)", hex::encode(wire::digest(&msg2))),
        ("sha256(msg3)", hex::encode(wire::digest(&msg3))),
        ("sha256(msg4)", hex::encode(wire::digest(&msg4))),
        ("len(msg3)", msg3.len().to_string()),
        ("estimates", format!("{est:?}")),
    ];
    let v = vectors();
    let all: String = got.iter().map(|(k, x)| format!("{k} = {x}\n")).collect();
    for (k, x) in &got {
        assert_eq!(
            v.get(k).copied(),
            Some(x.as_str()),
            "vector {k}; computed:\n{all}"
        );
    }
}
