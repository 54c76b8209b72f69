//! `tandem-fuzzing`: one entry point per decoder of the library crates, shared by the
//! `cargo fuzz` targets in `fuzz/` and by `tests/corpus.rs`, which replays the checked-in corpus
//! (`fuzz/corpus/<target>/`) on stable in CI.
//!
//! Every entry accepts arbitrary bytes and must return without panicking; where the decoder
//! accepts the input, it also checks a property that must then hold (an honest PSI run
//! finishes, an import's counts add up, a failed import changes nothing, agreement ids survive
//! the canonical JSON round trip).

use std::cell::RefCell;

use tandem_agreement::{Agreement, Terms};
use tandem_dp::ShiftedLaplace;
use tandem_identity::IdKind;
use tandem_psi::{Limits, Querier, RunParams, peek_header, query_bucket_sizes, respond};
use tandem_store::{ImportOptions, Store};

/// An entry point: takes any bytes, panics only on a bug.
pub type Entry = fn(&[u8]);

/// Digests per bucket, as the PSI parties take them.
pub type Buckets = Vec<Vec<[u8; 32]>>;

/// The fuzz targets: `(name, entry point)`; `name` is the `fuzz/fuzz_targets/<name>.rs` target
/// and the `fuzz/corpus/<name>/` directory.
pub const TARGETS: &[(&str, Entry)] = &[
    ("psi_message", psi_message),
    ("psi_run", psi_run),
    ("agreement_toml", agreement_toml),
    ("agreement_json", agreement_json),
    ("csv_import", csv_import),
    ("audit_verify", audit_verify),
    ("node_envelope", node_envelope),
];

/// A small 2×2 session with `T = 1` everywhere.
pub fn psi_params() -> RunParams {
    let noise = ShiftedLaplace {
        scale: 2.0,
        offset: 1,
    };
    RunParams {
        agreement_id: [0x11; 32],
        join_key: "email/tandem-id-v1".into(),
        run_id: [0x22; 16],
        querier_buckets: 2,
        responder_buckets: 2,
        querier_bucket_noise: noise,
        responder_bucket_noise: noise,
        cell_noise: noise,
    }
}

/// `(querier items, responder items)`, two buckets each, three digests shared.
pub fn psi_items() -> (Buckets, Buckets) {
    let d = |i: u8| [i; 32];
    (
        vec![vec![d(1), d(2), d(3)], vec![d(4), d(5)]],
        vec![vec![d(2), d(6)], vec![d(4), d(5), d(7)]],
    )
}

/// Small enough that no input makes a decoder allocate much.
use tandem_dp::test_noise::NoNoise;

/// A fixed-seed generator: a fuzz input replays to the same run.
fn rng() -> chacha20::ChaCha20Rng {
    rand::SeedableRng::seed_from_u64(0x7a6e_6465_6d21)
}

fn limits() -> Limits {
    Limits { max_points: 4096 }
}

/// Any bytes as a PSI message: header peek, the responder's parsing and answer, and the
/// querier's reply check.
pub fn psi_message(data: &[u8]) {
    let _ = peek_header(data);
    let p = psi_params();
    let (a, b) = psi_items();
    let _ = query_bucket_sizes(&p, data, &limits());
    let _ = respond(&p, &b, data, &limits(), &mut NoNoise, &mut rng());
    if let Ok((querier, _)) = Querier::start(p, &a, &mut NoNoise, &mut rng()) {
        let _ = querier.finish(data, &limits());
    }
}

/// Applies edits to a message: each 3 bytes `(offset u16 LE, x)` XOR `x` into the byte at
/// `offset % len`, or truncate there when `x == 0`; 1–2 trailing bytes are appended.
fn patch(msg: &mut Vec<u8>, edits: &[u8]) {
    for e in edits.chunks(3) {
        match *e {
            [lo, hi, x] => {
                let at = usize::from(u16::from_le_bytes([lo, hi])) % msg.len().max(1);
                if x == 0 {
                    msg.truncate(at);
                } else if let Some(byte) = msg.get_mut(at) {
                    *byte ^= x;
                }
            }
            _ => msg.extend_from_slice(e),
        }
    }
}

/// An honest run whose query (first byte odd) or reply (even) is edited by the rest of the
/// input (see `patch`): reaches the point, duplicate and count checks that random bytes do
/// not. Without edits the run must finish.
pub fn psi_run(data: &[u8]) {
    let Some((&mode, edits)) = data.split_first() else {
        return;
    };
    let p = psi_params();
    let (a, b) = psi_items();
    let Ok((querier, mut query)) = Querier::start(p.clone(), &a, &mut NoNoise, &mut rng()) else {
        panic!("an honest query failed");
    };
    if mode & 1 == 1 {
        patch(&mut query, edits);
    }
    let Ok(mut reply) = respond(&p, &b, &query, &limits(), &mut NoNoise, &mut rng()) else {
        assert!(mode & 1 == 1, "the responder refused an honest query");
        return;
    };
    if mode & 1 == 0 {
        patch(&mut reply, edits);
    }
    let result = querier.finish(&reply, &limits());
    if edits.is_empty() {
        let counts = result.expect("an honest run finishes");
        // No noise (every draw is T, which the estimate subtracts): the true overlaps.
        let expected = [[1, 0], [0, 2]];
        for (ga, row) in expected.iter().enumerate() {
            for (gb, &n) in row.iter().enumerate() {
                assert_eq!(counts.get(ga as u32, gb as u32), n, "cell ({ga}, {gb})");
            }
        }
    }
}

/// Any bytes as `agreement.toml`. Accepted terms keep their id through the canonical JSON
/// that travels between nodes.
pub fn agreement_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(terms) = Terms::from_toml(text) else {
        return;
    };
    let _ = terms.expires_at_unix();
    for party in &terms.parties {
        let _ = party.verifying_key();
        let _ = party.tls_cert_digest();
        let _ = terms.peer_of(&party.name);
    }
    let bytes = terms.canonical_bytes();
    let back: Terms = serde_json::from_slice(&bytes).expect("canonical bytes parse as terms");
    assert_eq!(
        back.id(),
        terms.id(),
        "the id changed through canonical JSON"
    );
    let _ = Agreement::new(terms).verify_signatures();
}

/// Any bytes as the JSON of a signed agreement (what a peer proposes or stores).
pub fn agreement_json(data: &[u8]) {
    let Ok(agreement) = serde_json::from_slice::<Agreement>(data) else {
        return;
    };
    if agreement.terms.validate().is_err() {
        return;
    }
    let _ = agreement.id();
    let _ = agreement.verify_signatures();
    let _ = agreement.is_fully_signed();
    let _ = agreement.check_active(0);
    for party in &agreement.terms.parties {
        for column in party.columns.keys() {
            let _ = agreement.bucket_labels(&party.name, column);
            let _ = agreement.bucket_of(&party.name, column, Some(" x "));
        }
    }
}

thread_local! {
    /// One store per fuzzing process: opening a fresh one per input would dominate the time.
    static STORE: RefCell<Option<(tempfile::TempDir, Store)>> = const { RefCell::new(None) };
}

/// Any bytes as a CSV file imported into a store (first byte: identifier kind and replace or
/// append; the rest: the file, whose header should name `id` and optionally `a`). A success's
/// counts add up and match what the store then holds; a failure changes nothing.
pub fn csv_import(data: &[u8]) {
    let Some((&mode, file)) = data.split_first() else {
        return;
    };
    STORE.with_borrow_mut(|slot| {
        let (dir, store) = slot.get_or_insert_with(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = Store::open(dir.path()).expect("open store");
            (dir, store)
        });
        let path = dir.path().join("input.csv");
        std::fs::write(&path, file).expect("write input");
        let kind = [
            IdKind::Email,
            IdKind::Phone,
            IdKind::DeviceId,
            IdKind::Email,
        ][usize::from(mode & 3)];
        let mut opts = ImportOptions::new("id", kind);
        if mode & 3 == 3 {
            opts.id_encoding = tandem_identity::IdEncoding::Sha256;
        }
        if mode & 4 != 0 {
            opts.attributes = vec!["a".into()];
        }
        opts.replace = mode & 8 == 0;
        let before = store.audience_summary().expect("summary");
        match store.import_csv(&path, &opts, None) {
            Ok(r) => {
                assert_eq!(r.rows, r.imported + r.duplicates + r.suppressed, "{r:?}");
                let members = store.members("default", kind, None).expect("members");
                assert_eq!(members.len() as u64, r.members, "{r:?}");
                let summary = store.audience_summary().expect("summary");
                let s = summary
                    .iter()
                    .find(|s| s.id_kind == kind)
                    .expect("summary row");
                assert_eq!(s.members, r.members);
            }
            Err(_) => {
                let after = store.audience_summary().expect("summary");
                assert_eq!(before, after, "a failed import changed the store");
            }
        }
    });
}

/// Any bytes as a JSON-lines audit export, verified offline with and without a node key.
pub fn audit_verify(data: &[u8]) {
    let _ = tandem_audit::verify_jsonl(data, None);
    let key = tandem_audit::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let _ = tandem_audit::verify_jsonl(data, Some(&key));
}

/// Seed inputs `(target, bytes)`: valid messages, files and exports for the fuzzer to mutate
/// (`cargo test -p tandem-fuzzing -- --ignored write_seed_corpus` writes them).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let p = psi_params();
    let (a, b) = psi_items();
    let (_, query) = Querier::start(p.clone(), &a, &mut NoNoise, &mut rng()).expect("query");
    let reply = respond(&p, &b, &query, &limits(), &mut NoNoise, &mut rng()).expect("reply");
    out.push(("psi_message", query));
    out.push(("psi_message", reply));
    for run in [
        &[0u8][..],
        &[1],
        &[0, 40, 0, 1],
        &[1, 60, 0, 0x80],
        &[0, 200, 0, 0],
    ] {
        out.push(("psi_run", run.to_vec()));
    }

    // The example agreement with its placeholders filled, signed by both parties.
    let example = include_str!("../../../examples/agreement.toml");
    out.push(("agreement_toml", example.as_bytes().to_vec()));
    let zeros = "0".repeat(64);
    let keys = [1u8, 2].map(|b| tandem_audit::SigningKey::from_bytes(&[b; 32]));
    let mut toml = example.to_owned();
    for (key, tls) in keys.iter().zip(["ab", "cd"]) {
        let fingerprint = tandem_agreement::fingerprint(&key.verifying_key());
        toml = toml.replacen(&zeros, &fingerprint, 1);
        toml = toml.replacen(&zeros, &tls.repeat(32), 1);
    }
    out.push(("agreement_toml", toml.clone().into_bytes()));
    let mut agreement = Agreement::new(Terms::from_toml(&toml).expect("filled example"));
    for (name, key) in ["acme", "shopx"].iter().zip(&keys) {
        agreement.sign(name, key).expect("sign");
    }
    let json = serde_json::to_vec(&agreement).expect("agreement JSON");
    out.push(("agreement_json", json));
    out.push((
        "agreement_json",
        br#"{"terms":{},"signatures":{}}"#.to_vec(),
    ));

    for (mode, csv) in [
        (
            4u8,
            "id,a\nAlice@Example.com,x\nbob@example.org,\n alice@example.com ,y\n",
        ),
        (1, "id\n+44 20 7946 0958\n020 7946 0958\n"),
        (2, "id\n6D92078A-8246-4BA4-AE5B-76104861E7DC\n"),
        (
            3,
            "id\n2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\n",
        ),
        (8, "id,a\nc@example.com,z\n"),
        (0, "id,a\nx@example.com,1\nnot-an-email,2\n"),
    ] {
        let mut data = vec![mode];
        data.extend_from_slice(csv.as_bytes());
        out.push(("csv_import", data));
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path()).expect("store");
    let key = tandem_audit::SigningKey::from_bytes(&[7; 32]);
    for i in 0..3 {
        store
            .append_audit(tandem_audit::AuditEvent::now(
                "fuzz",
                "seed.event",
                serde_json::json!({"i": i, "text": "é\u{0}\"", "n": 1.5}),
            ))
            .expect("append");
    }
    store.checkpoint(&key).expect("checkpoint");
    let mut export = Vec::new();
    store
        .export_audit(
            &mut export,
            tandem_store::ExportFormat::JsonLines,
            None,
            None,
        )
        .expect("export");
    out.push(("audit_verify", export));
    out.push(("node_envelope", envelope_seed(b"not a frame")));
    out.push((
        "node_envelope",
        envelope_seed(&tandem_node::wire::frame(
            &serde_json::json!({"charged": {"epsilon": 0.5, "delta": 0.0}, "head": {}}),
            b"payload",
        )),
    ));
    out
}

/// The fixed key of the `node_envelope` target (the peer's key from the agreement).
fn envelope_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[0x42; 32])
}

/// A `node_envelope` input: signed request headers, a blank line, the body.
fn envelope_seed(body: &[u8]) -> Vec<u8> {
    let env = tandem_node::wire::Envelope {
        agreement_id: "11".repeat(32),
        run_id: "22".repeat(16),
        sender: "shopx".into(),
        timestamp_ms: 1_700_000_000_000,
    };
    let mut out = Vec::new();
    for (k, v) in env.sign(tandem_node::wire::PSI_REQUEST, body, &envelope_key()) {
        out.extend_from_slice(format!("{k}: {v}\n").as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// Any bytes as a signed peer message (`protocols/node-wire-v1.md`): `name: value` header
/// lines up to a blank line, then the body. Reads the envelope from the headers and verifies
/// it (either kind), unframes the body and parses a receipt from its JSON. Properties: an
/// envelope read from the headers, signed again over the body, verifies (and not under the
/// other kind); a frame that unframes re-frames to the same JSON and payload.
pub fn node_envelope(data: &[u8]) {
    use tandem_node::wire::{
        Envelope, MAX_FRAME_JSON, PSI_REQUEST, PSI_RESPONSE, Receipt, frame, unframe,
    };
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or((data, &[][..]), |i| (&data[..i], &data[i + 2..]));
    let (head, body) = split;
    let mut headers = http::HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let key = envelope_key();
    if let Ok((env, sig)) = Envelope::from_headers(&headers) {
        let now = env.timestamp_ms;
        for kind in [PSI_REQUEST, PSI_RESPONSE] {
            let _ = env.verify(kind, body, &sig, &key.verifying_key(), now);
            let _ = env.check_fresh(now.wrapping_add(301_000));
        }
        let resigned = env.sign(PSI_RESPONSE, body, &key);
        let mut again = http::HeaderMap::new();
        for (k, v) in resigned {
            if let Ok(v) = http::HeaderValue::from_str(&v) {
                again.insert(k, v);
            }
        }
        if let Ok((env2, sig2)) = Envelope::from_headers(&again) {
            assert!(
                env2.verify(PSI_RESPONSE, body, &sig2, &key.verifying_key(), now)
                    .is_ok(),
                "a re-signed envelope does not verify"
            );
            assert!(
                env2.verify(PSI_REQUEST, body, &sig2, &key.verifying_key(), now)
                    .is_err(),
                "a response signature verifies as a request"
            );
        }
    }
    if let Ok((json, payload)) = unframe(body, MAX_FRAME_JSON) {
        let framed = frame(&json, payload);
        let (json2, payload2) = unframe(&framed, MAX_FRAME_JSON).expect("re-framed body");
        assert_eq!((&json, payload), (&json2, payload2), "frame round trip");
        if let Ok(receipt) = serde_json::from_value::<Receipt>(json) {
            let _ = receipt.head.verify(
                "11".repeat(32).as_str(),
                "22".repeat(16).as_str(),
                &key.verifying_key(),
            );
        }
    }
}
