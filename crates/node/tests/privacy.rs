//! Issue 9: nothing about the responder's data leaves it uncharged. The responder validates
//! the whole query from public quantities before it reads its audience, and every failure
//! after its charge reaches the querier as an opaque code without numbers.

use std::sync::Mutex;

use tandem_node::Home;
use tandem_node::querier::{Prepared, prepare_query};
use tandem_node::state::FailedRuns;
use tandem_node::wire::{Envelope, MAX_FRAME_JSON, PSI_REQUEST, frame, unframe};
use tandem_testkit::NodePair;

/// A fresh, charged query of acme's: the signed body's JSON opening and PSI query.
fn prepared(pair: &NodePair) -> (serde_json::Value, Vec<u8>) {
    let analysis = tandem_node::analysis::find("overlap").expect("overlap");
    let p = prepare_query(
        &pair.acme.store_path(),
        &pair.acme.key,
        "acme",
        analysis,
        &pair.query(),
        "test",
    )
    .expect("prepared");
    let Prepared::Fresh(pending) = p else {
        panic!("a fresh query was answered from the cache")
    };
    let (body, _) = pending.signed_request(&pair.acme.key);
    let (opening, message) = unframe(&body, MAX_FRAME_JSON).expect("frame");
    (opening, message.to_vec())
}

/// Sends `opening` and `message`, signed by acme under `run_id`, to `shopx`'s responder.
fn send(
    pair: &NodePair,
    shopx: &Home,
    opening: &serde_json::Value,
    message: &[u8],
) -> Result<(), tandem_node::NodeError> {
    let header = tandem_psi::peek_header(message).expect("header");
    let env = Envelope {
        agreement_id: pair.agreement_id.clone(),
        run_id: hex::encode(header.run_id),
        sender: "acme".into(),
        timestamp_ms: tandem_node::wire::now_ms(),
    };
    let body = frame(opening, message);
    let mut headers = http::HeaderMap::new();
    for (k, v) in env.sign(PSI_REQUEST, &body, &pair.acme.key) {
        headers.insert(k, v.parse().expect("header value"));
    }
    let (env, sig) = Envelope::from_headers(&headers).expect("envelope");
    let failed = Mutex::new(FailedRuns::default());
    tandem_node::responder::respond(shopx, env, &sig, &body, &failed).map(|_| ())
}

/// The public bound the responder checks before reading anything: the query's points, the
/// reply's injected slots and its largest possible junk.
fn public_bound(message: &[u8]) -> (u64, u64) {
    let p = tandem_psi::peek_header(message).expect("header").params();
    let (na, nb) = (u64::from(p.querier_buckets), u64::from(p.responder_buckets));
    let a_total = tandem_psi::ParsedQuery::parse(
        &p,
        message,
        &tandem_psi::Limits {
            max_points: usize::MAX,
        },
        &mut rand::rng(),
    )
    .expect("valid query")
    .bucket_sizes()
    .iter()
    .sum::<u64>();
    let injected = 2 * u64::from(p.cell_noise.offset) * na * nb;
    let max_junk = 2 * u64::from(p.responder_bucket_noise.offset) * nb;
    (a_total + 2 * injected + max_junk, max_junk)
}

/// Status, ε and ledger state (`spent` / `released`) of a run in shopx's ledger.
fn shopx_run_status(pair: &NodePair, run_id: &str) -> (String, f64, Option<String>) {
    let store = pair.shopx.store().expect("store");
    let run = store
        .runs(None)
        .expect("runs")
        .into_iter()
        .find(|r| r.run_id == run_id)
        .expect("the run is in shopx's ledger");
    (run.status, run.epsilon, run.charge)
}

fn run_hex(message: &[u8]) -> String {
    hex::encode(tandem_psi::peek_header(message).expect("header").run_id)
}

/// A malformed or oversized query is refused before the responder reads its audience: with the
/// audience's members table gone, a valid query fails reading it (`refused`), while a malformed
/// one is still `malformed` and an oversized one `too_large` — neither touched the store's
/// members. The peer's error carries no number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_or_oversized_query_never_reads_the_audience() {
    let pair = NodePair::start().await;
    let conn = rusqlite::Connection::open(pair.shopx.store_path()).expect("sqlite");
    conn.execute_batch("DROP TABLE audience_members")
        .expect("drop the audience's members");
    drop(conn);

    let (opening, message) = prepared(&pair);
    let err = send(&pair, &pair.shopx, &opening, &message).expect_err("no members table");
    assert_eq!(err.code_str(), "refused", "{err}");

    // The last point of the query no longer decodes.
    let (opening, mut bad) = prepared(&pair);
    let n = bad.len();
    bad[n - 32..].fill(0xff);
    let err = send(&pair, &pair.shopx, &opening, &bad).expect_err("malformed");
    assert_eq!(err.code_str(), "malformed", "{err}");
    assert!(
        !err.message().contains(|c: char| c.is_ascii_digit()),
        "{err}"
    );
    // Noise was drawn before the query was read: the charge stands.
    let (status, _, charge) = shopx_run_status(&pair, &run_hex(&bad));
    assert_eq!(
        (status.as_str(), charge.as_deref()),
        ("failed", Some("spent"))
    );

    // Over a limit decided from public quantities only.
    let (opening, message) = prepared(&pair);
    let (bound, _) = public_bound(&message);
    let mut small = pair.shopx.clone();
    small.config.max_message_bytes = 32 * (bound as usize - 1);
    let err = send(&pair, &small, &opening, &message).expect_err("too large");
    assert_eq!(err.code_str(), "too_large", "{err}");
    assert!(
        !err.message().contains(|c: char| c.is_ascii_digit()),
        "{err}"
    );
    assert!(err.details().is_none(), "{err:?}");
}

/// A reply that would exceed the responder's limit because of its own audience
/// is refused only after the charge, which stands, and the refusal carries no number (main
/// sent `|B| + ΣJ_B` and released the charge: a free, repeatable estimate of `|B|`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_reply_is_refused_without_a_number_and_charged() {
    let pair = NodePair::start().await;
    // shopx's audience: 3000 members, more than the largest junk its reply could add.
    let mut rows = String::from("email,tier\n");
    for i in 0..3000 {
        rows += &format!("b{i}@example.com,gold\n");
    }
    let file = pair.shopx.dir.join("big.csv");
    std::fs::write(&file, rows).expect("write");
    let mut opts = tandem_store::ImportOptions::new("email", tandem_identity::IdKind::Email);
    opts.attributes = vec!["tier".into()];
    pair.shopx
        .store()
        .expect("store")
        .import_csv(&file, &opts, None)
        .expect("import");
    let (opening, message) = prepared(&pair);
    let (bound, max_junk) = public_bound(&message);
    assert!(
        max_junk < 3000,
        "the test needs |B| > the largest junk ({max_junk})"
    );
    let mut small = pair.shopx.clone();
    small.config.max_message_bytes = 32 * bound as usize;
    let err = send(&pair, &small, &opening, &message).expect_err("reply too large");
    assert_eq!(err.code_str(), "too_large", "{err}");
    assert!(
        !err.message().contains(|c: char| c.is_ascii_digit()),
        "{err}"
    );
    assert!(err.details().is_none(), "{err:?}");
    let (status, epsilon, charge) = shopx_run_status(&pair, &run_hex(&message));
    assert_eq!(
        (status.as_str(), charge.as_deref()),
        ("failed", Some("spent"))
    );
    let views = tandem_node::compliance::budgets(
        &pair.shopx.store().expect("store"),
        "shopx",
        Some(&pair.agreement_id),
    )
    .expect("budgets");
    assert!(
        (views[0].epsilon_spent - epsilon).abs() < 1e-9,
        "the charge stands: {:?}",
        views[0]
    );
}

/// Issue 9 item 6, the stale cache: after the responder re-imports its audience with half the
/// overlap, the identical query returns a fresh, charged answer; on unchanged data it returns
/// the cached one, free, showing its run and date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_is_reused_only_while_the_peers_audience_is_unchanged() {
    let pair = NodePair::start().await;
    let overlap = tandem_node::analysis::find("overlap").expect("overlap");
    let q = tandem_node::analysis::Query {
        fresh: false,
        ..pair.query()
    };
    let ask = || tandem_node::querier::run_query(&pair.acme, overlap, &q, "test");
    let first = ask().await.expect("first run");
    assert!(!first.cached && first.querier_budget.epsilon_spent > 0.0);
    assert!(first.responder_audience_version.is_some());
    let again = ask().await.expect("cached");
    assert!(again.cached, "unchanged data: the cached answer");
    assert_eq!(again.run_id, first.run_id);
    assert_eq!(again.querier_budget.epsilon_spent, 0.0);
    assert!(again.answered_at.is_some());

    // shopx re-imports: p150…p224 only, half the overlap of before.
    let mut rows = String::from("email,tier\n");
    for i in 150..225 {
        rows += &format!("p{i}@example.com,gold\n");
    }
    let file = pair.shopx.dir.join("half.csv");
    std::fs::write(&file, rows).expect("write");
    let mut opts = tandem_store::ImportOptions::new("email", tandem_identity::IdKind::Email);
    opts.attributes = vec!["tier".into()];
    pair.shopx
        .store()
        .expect("store")
        .import_csv(&file, &opts, None)
        .expect("import");
    let fresh = ask().await.expect("fresh run");
    assert!(!fresh.cached, "the peer's audience changed: a new run");
    assert_ne!(fresh.run_id, first.run_id);
    assert!(fresh.querier_budget.epsilon_spent > 0.0, "charged");
    assert_ne!(
        fresh.responder_audience_version,
        first.responder_audience_version
    );
    let cached = ask().await.expect("cached again");
    assert!(cached.cached && cached.run_id == fresh.run_id);
}
