//! Secrets stay out of logs and error text (issue 11): a two-node demo at debug log level
//! (`TANDEM_LOG=debug`), then imports that fail on bad identifiers, and every line they print
//! (log lines on stderr, the report on stdout, error texts) is searched for the identifiers,
//! their SHA-256 digests (hex, Base64, Base64url) and any other 32-byte value in hex (a curve
//! point or a digest), except the public ones (agreement id, signing keys, certificate
//! fingerprints, hashes of outputs).

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use tandem_identity::{IdKind, Normaliser};

fn tandem_debug(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .env("TANDEM_LOG", "debug")
        .output()
        .expect("tandem runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs of at least `min` characters from `alphabet`.
fn runs_of(text: &str, min: usize, alphabet: impl Fn(char) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if alphabet(c) {
            cur.push(c);
        } else {
            if cur.len() >= min {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
        }
    }
    out
}

/// The e-mail addresses of a demo CSV (first column).
fn identifiers(csv: &Path) -> Vec<String> {
    std::fs::read_to_string(csv)
        .expect("csv")
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .map(|e| e.trim_matches('"').to_string())
        .filter(|e| !e.is_empty())
        .collect()
}

#[test]
fn no_identifier_digest_or_curve_point_in_debug_logs_or_error_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keep = dir.path().join("demo");
    let (ok, mut text) = tandem_debug(&[
        "demo",
        "--querier-size",
        "300",
        "--responder-size",
        "400",
        "--overlap",
        "120",
        "--keep",
        keep.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("DEBUG"), "debug logging is on: {text}");

    // Imports that fail on a bad identifier, and one from a file that does not exist: the
    // errors name the line and column, never the value.
    let acme = keep.join("acme");
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "email,age_band\nok@example.com,18-24\nsecret-not-an-email,25-34\n",
    )
    .expect("write");
    for kind in ["email", "phone"] {
        let (ok, out) = tandem_debug(&[
            "import",
            "--dir",
            acme.to_str().expect("utf-8"),
            "--file",
            bad.to_str().expect("utf-8"),
            "--id-column",
            "email",
            "--id-kind",
            kind,
            "--audience",
            "probe",
        ]);
        assert!(!ok, "{out}");
        assert!(!out.contains("secret-not-an-email"), "{out}");
        text += &out;
    }

    // A query while the peer is down (the demo's servers are gone): the failed run's log line
    // and error text.
    let agreement = text
        .lines()
        .find_map(|l| l.strip_prefix("agreement ")?.split_whitespace().next())
        .expect("the demo names its agreement")
        .to_string();
    let (ok, out) = tandem_debug(&[
        "query",
        "overlap",
        "--dir",
        acme.to_str().expect("utf-8"),
        "--agreement",
        &agreement,
        "--group-by",
        "age_band",
        "--peer-group-by",
        "tier",
        "--epsilon",
        "0.5",
        "--fresh",
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("peer_unreachable") || out.contains("not reachable"),
        "{out}"
    );
    text += &out;

    let normaliser = Normaliser {
        default_region: None,
    };
    let mut secret = Vec::new();
    for csv in ["acme_customers.csv", "shopx_buyers.csv"] {
        for id in identifiers(&keep.join(csv)) {
            let d = normaliser
                .digest(IdKind::Email, &id)
                .expect("demo ids are valid");
            secret.push(id.clone());
            secret.push(hex::encode(d));
            secret.push(hex::encode_upper(d));
            secret.push(base64::engine::general_purpose::STANDARD.encode(d));
            secret.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d));
        }
    }
    assert!(secret.len() > 1000);
    let leaked: Vec<_> = secret
        .iter()
        .filter(|s| text.contains(s.as_str()))
        .collect();
    assert!(leaked.is_empty(), "leaked: {leaked:?}");

    // Any other 32-byte hex value must be a public one.
    let mut public: HashSet<String> = HashSet::new();
    for node in ["acme", "shopx"] {
        let dir = keep.join(node);
        for cmd in [&["card"][..], &["status"], &["runs", "--json"]] {
            let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
                .args(cmd)
                .args(["--dir", dir.to_str().expect("utf-8")])
                .output()
                .expect("tandem runs");
            let out = String::from_utf8_lossy(&out.stdout).into_owned();
            public.extend(runs_of(&out, 64, |c| c.is_ascii_hexdigit()));
        }
    }
    let hex_runs = runs_of(&text, 64, |c| c.is_ascii_hexdigit());
    let unknown: Vec<_> = hex_runs.iter().filter(|h| !public.contains(*h)).collect();
    assert!(
        unknown.is_empty(),
        "32-byte hex values that are not public: {unknown:?}\n{text}"
    );
}
