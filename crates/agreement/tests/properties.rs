//! Property tests: the canonical bytes and the id do not depend on how the terms were written.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::Value;
use tandem_agreement::{Budget, Party, Terms};

fn budget() -> impl Strategy<Value = Budget> {
    (1e-6f64..100.0, 0.0f64..1000.0, 0.0f64..1e-3, 0.0f64..1e-3).prop_map(|(eq, et, dq, dt)| {
        Budget {
            epsilon_per_query: eq,
            epsilon_total: eq + et,
            delta_per_query: dq,
            delta_total: dq + dt,
        }
    })
}

fn columns() -> impl Strategy<Value = BTreeMap<String, Vec<String>>> {
    prop::collection::btree_map(
        "[a-z_]{1,10}",
        prop::collection::btree_set("\\PC{1,8}", 1..6).prop_map(|set| set.into_iter().collect()),
        0..4,
    )
}

fn party(name: &'static str) -> impl Strategy<Value = Party> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        columns(),
        budget(),
        1u16..,
    )
        .prop_map(move |(key, cert, columns, budget, port)| Party {
            name: name.into(),
            url: format!("https://127.0.0.1:{port}"),
            signing_key: hex::encode(key),
            tls_cert_sha256: hex::encode(cert),
            region: "CN".into(),
            columns,
            values: Default::default(),
            budget,
        })
}

fn terms() -> impl Strategy<Value = Terms> {
    (
        "\\PC{1,30}",
        "\\PC{1,30}",
        prop::sample::subsequence(vec!["email", "phone", "device_id"], 1..=3),
        any::<u64>(),
        1u32..,
        prop::option::of("\\PC{1,20}"),
        prop::option::of("\\PC{1,20}"),
        prop::option::of(1u32..),
        party("acme"),
        party("shopx"),
    )
        .prop_map(
            |(
                purpose,
                legal_basis,
                keys,
                threshold,
                retention,
                transfer,
                assessment,
                refresh,
                a,
                b,
            )| {
                Terms {
                    version: 1,
                    purpose,
                    legal_basis,
                    expires_at: "2027-06-30T00:00:00Z".into(),
                    join_keys: keys.into_iter().map(String::from).collect(),
                    min_reporting_threshold: threshold,
                    retention_days: retention,
                    transfer_mechanism: transfer,
                    impact_assessment: assessment,
                    budget_refresh_days: refresh,
                    protocol: Default::default(),
                    parties: vec![a, b],
                }
            },
        )
}

/// Writes JSON with object keys in an order chosen by `seed` and some whitespace.
fn shuffled_json(value: &Value, seed: &mut u64, out: &mut String) {
    let mut next = || {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    };
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            for i in (1..entries.len()).rev() {
                let j = (next() as usize) % (i + 1);
                entries.swap(i, j);
            }
            out.push_str("{ ");
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(" ,\n ");
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(" : ");
                shuffled_json(v, seed, out);
            }
            out.push_str(" }");
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                shuffled_json(v, seed, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

proptest! {
    #[test]
    fn canonical_bytes_ignore_key_order_and_whitespace(t in terms(), mut seed in any::<u64>()) {
        let value = serde_json::to_value(&t).unwrap();
        let mut text = String::new();
        shuffled_json(&value, &mut seed, &mut text);
        let back: Terms = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &t);
        prop_assert_eq!(back.canonical_bytes(), t.canonical_bytes());
        prop_assert_eq!(back.id(), t.id());
    }

    #[test]
    fn canonical_bytes_survive_toml_and_json_round_trips(t in terms()) {
        let from_toml: Terms = toml::from_str(&toml::to_string(&t).unwrap()).unwrap();
        prop_assert_eq!(from_toml.id(), t.id());
        let from_json: Terms = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        prop_assert_eq!(from_json.id(), t.id());
        // The canonical bytes are themselves JSON of the same terms.
        let from_canonical: Terms = serde_json::from_slice(&t.canonical_bytes()).unwrap();
        prop_assert_eq!(from_canonical.canonical_bytes(), t.canonical_bytes());
    }

    #[test]
    fn any_finite_budget_float_round_trips_exactly(bits in any::<u64>()) {
        let x = f64::from_bits(bits);
        prop_assume!(x.is_finite());
        let mut t = common::terms();
        t.parties[0].budget.delta_total = x;
        let back: Terms = serde_json::from_slice(&t.canonical_bytes()).unwrap();
        prop_assert_eq!(back.parties[0].budget.delta_total.to_bits(), bits);
        prop_assert_eq!(back.id(), t.id());
    }
}
