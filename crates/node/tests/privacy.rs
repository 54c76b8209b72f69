//! Issue 9: nothing about the responder's data leaves it uncharged. The responder validates
//! the whole query from public quantities before it reads its audience, and every failure
//! after its charge reaches the querier as an opaque code without numbers.

use std::sync::Mutex;

use tandem_node::Home;
use tandem_node::analysis::Format;
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

/// The audience-version leak: if shopx's version moved only when an opt-out removed a member,
/// acme could learn membership for free — ask a cached query, have the person opt out at shopx
/// (or wait for one), and see through the uncharged audience-version check whether the cached
/// answer still holds. An opt-out of someone shopx never held must move the version too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_out_of_a_non_member_still_changes_the_audience_version() {
    let pair = NodePair::start().await;
    let overlap = tandem_node::analysis::find("overlap").expect("overlap");
    let q = tandem_node::analysis::Query {
        fresh: false,
        ..pair.query()
    };
    let ask = || tandem_node::querier::run_query(&pair.acme, overlap, &q, "test");
    let first = ask().await.expect("first run");
    assert!(ask().await.expect("cached").cached);
    // p0 is acme's only: shopx never held it.
    let digest = pair
        .shopx
        .normaliser()
        .digest_encoded(
            tandem_identity::IdKind::Email,
            tandem_identity::IdEncoding::Raw,
            "p0@example.com",
        )
        .expect("digest");
    let removed = pair
        .shopx
        .store()
        .expect("store")
        .delete_digests(&[digest], "test")
        .expect("opt-out");
    assert_eq!(removed, 0, "not a member of shopx's audience");
    let after = ask().await.expect("after the opt-out");
    assert!(
        !after.cached && after.run_id != first.run_id,
        "the version must move whether or not the opt-out matched"
    );
}

/// The audience-version check is uncharged, so it is throttled per peer: after
/// `MAX_AUDIENCE_CHECKS_PER_HOUR` checks (each cached answer makes one) the next is refused 429
/// and the cached answer cannot be confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_version_checks_are_throttled_per_peer() {
    let pair = NodePair::start().await;
    let overlap = tandem_node::analysis::find("overlap").expect("overlap");
    let q = tandem_node::analysis::Query {
        fresh: false,
        ..pair.query()
    };
    let ask = || tandem_node::querier::run_query(&pair.acme, overlap, &q, "test");
    ask().await.expect("first run");
    for _ in 0..tandem_node::state::MAX_AUDIENCE_CHECKS_PER_HOUR {
        assert!(ask().await.expect("cached").cached);
    }
    let e = ask().await.expect_err("throttled");
    assert_eq!(e.peer_answer().map(|a| a.status), Some(429), "{e}");
}

/// Issue 9 item 7: a stored report is querier-internal (the responder could remove the noise it
/// injected), in its JSON and its CSV; a partner export adds acme's own noise to every cell,
/// charged to acme's ledger before anything is output and audited as released to the partner,
/// and says what was added. Over the budget it is refused with nothing output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_export_adds_the_queriers_own_charged_noise() {
    let pair = NodePair::with_budgets(3.0, 50.0).await;
    let overlap = tandem_node::analysis::find("overlap").expect("overlap");
    let report = tandem_node::querier::run_query(&pair.acme, overlap, &pair.query(), "test")
        .await
        .expect("run");
    let mut store = pair.acme.store().expect("store");
    let id = tandem_node::results::list(&store, None).expect("list")[0]
        .result_id
        .clone();
    let csv = tandem_node::results::render(&mut store, &id, Format::Csv, "test").expect("csv");
    let mut lines = csv.lines();
    assert!(lines.next().expect("header").ends_with(",querier_internal"));
    assert!(lines.all(|l| l.ends_with(",true")), "{csv}");

    let spent_before = spent(&store);
    let export = tandem_node::results::partner_export(&mut store, "acme", &id, Some(0.5), "test")
        .expect("partner export");
    assert!(export.safe_to_share && !export.querier_internal);
    assert_eq!(export.added_noise.epsilon, 0.5);
    assert_eq!(export.added_noise.charged_to, "acme");
    assert_eq!(export.cells.len(), report.cells.len());
    let t = i64::from(export.added_noise.offset);
    for (e, r) in export.cells.iter().zip(&report.cells) {
        assert!((e.estimate - r.estimate).abs() <= t);
        assert_eq!((e.ci_low, e.ci_high), (r.ci_low - t, r.ci_high + t));
    }
    assert!(
        (spent(&store) - spent_before - 0.5).abs() < 1e-9,
        "charged to acme's ledger"
    );
    let run = store
        .run(&export.added_noise.run_id)
        .expect("run")
        .expect("in the ledger");
    assert_eq!(
        (run.status.as_str(), run.charge.as_deref()),
        ("finished", Some("spent"))
    );
    let released = store
        .audit_entries(None, None)
        .expect("audit")
        .into_iter()
        .find(|e| {
            e.event.action == "result.released"
                && e.event.details["run_id"] == export.added_noise.run_id.as_str()
        })
        .expect("audited");
    assert_eq!(released.event.details["recipient"], "partner:shopx");
    let csv = tandem_node::results::render_partner_export(&export, Format::Csv).expect("csv");
    assert!(csv.lines().skip(1).all(|l| l.ends_with(",false")), "{csv}");

    // acme's lifetime cap is 3: exports at ε 2 soon do not fit (by either route), and the
    // refused one charges and outputs nothing.
    let e = (0..10)
        .find_map(|_| {
            tandem_node::results::partner_export(&mut store, "acme", &id, Some(2.0), "test").err()
        })
        .expect("refused once over the cap");
    assert_eq!(e.code_str(), "budget_exceeded", "{e}");
    let before_refusal = spent(&store);
    let e = tandem_node::results::partner_export(&mut store, "acme", &id, Some(2.0), "test")
        .expect_err("still over the cap");
    assert_eq!(e.code_str(), "budget_exceeded", "{e}");
    assert_eq!(spent(&store), before_refusal);
}

/// ε acme has charged under the pair's agreement (both roles).
fn spent(store: &tandem_store::Store) -> f64 {
    store
        .runs(None)
        .expect("runs")
        .iter()
        .filter(|r| r.charge.as_deref() == Some("spent") || r.charge.as_deref() == Some("reserved"))
        .map(|r| r.epsilon)
        .sum()
}

/// Item 4: the querier learns whether the peer would admit a run before it charges itself. The
/// preview shows the peer's budget; once the peer's budget is spent, the preview says it would
/// refuse, and the run is refused locally with nothing charged on either side (before, acme
/// charged itself and then shopx refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_peer_would_refuse_charges_neither_side() {
    let pair = NodePair::with_budgets(50.0, 1.5).await;
    let overlap = tandem_node::analysis::find("overlap").expect("overlap");
    let q = pair.query();
    let mut admitted = 0;
    let refusal = loop {
        let p = tandem_node::querier::preview_with_peer(&pair.acme, overlap, &q)
            .await
            .expect("preview");
        let b = p.responder_budget.expect("the peer's budget is shown");
        assert_eq!(b.party, "shopx");
        if !b.admits {
            break b;
        }
        assert!(b.epsilon_left > 0.0 && b.epsilon_cost > 0.0, "{b:?}");
        tandem_node::querier::run_query(&pair.acme, overlap, &q, "test")
            .await
            .expect("the peer said it would admit it");
        admitted += 1;
        assert!(admitted < 10, "shopx's budget of 1.5 never ran out");
    };
    assert!(admitted >= 1);
    assert_eq!(
        refusal.code.as_deref(),
        Some("budget_exceeded"),
        "{refusal:?}"
    );
    let d = refusal.details.expect("which cap and what is left");
    assert!(d["cap"].is_number() && d["left"].is_number(), "{d}");

    let runs = |h: &Home| h.store().expect("store").runs(None).expect("runs");
    let (acme_before, shopx_before) = (runs(&pair.acme), runs(&pair.shopx));
    let e = tandem_node::querier::run_query(&pair.acme, overlap, &q, "test")
        .await
        .expect_err("the peer would refuse");
    // The peer's own code passes through, with who refused.
    assert_eq!(e.code_str(), "budget_exceeded", "{e}");
    assert_eq!(
        e.peer_answer()
            .map(|a| (a.peer.as_str(), a.code.as_deref())),
        Some(("shopx", Some("budget_exceeded"))),
        "{e}"
    );
    assert!(e.message().contains("nothing was charged"), "{e}");
    assert_eq!(runs(&pair.acme), acme_before, "acme charged nothing");
    assert_eq!(runs(&pair.shopx), shopx_before, "shopx recorded nothing");
}

/// Item 3 (node-wide cap): `[limits.node_budget]` in acme's config caps acme's charges over all
/// agreements; a run over it is refused before anything is charged, naming the node-wide cap
/// and what is left, although the agreement's own budget (50) is ample; the preview says so
/// beforehand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_wide_cap_refuses_a_run_the_agreement_would_allow() {
    let pair = NodePair::start().await;
    let mut cfg = pair.acme.config.clone();
    cfg.limits.node_budget = Some(tandem_node::home::NodeBudget {
        epsilon_total: 0.01,
        delta_total: Some(1e-6),
        refresh_days: None,
    });
    std::fs::write(
        pair.acme.dir.join("config.toml"),
        toml::to_string(&cfg).expect("toml"),
    )
    .expect("write config");
    let acme = Home::open(&pair.acme.dir).expect("open");
    let overlap = tandem_node::analysis::find("overlap").expect("overlap");
    // The preview counts the node-wide cap too: no more runs like this one, 0.01 left.
    let preview = tandem_node::querier::preview(
        &acme.store().expect("store"),
        "acme",
        overlap,
        &pair.query(),
    )
    .expect("preview");
    assert!(
        (preview.querier_epsilon_left - 0.01).abs() < 1e-9,
        "{}",
        preview.querier_epsilon_left
    );
    assert_eq!(preview.querier_queries_left, Some(0));
    let e = tandem_node::querier::run_query(&acme, overlap, &pair.query(), "test")
        .await
        .expect_err("over the node-wide cap");
    assert_eq!(e.code_str(), "budget_exceeded", "{e}");
    let d = e.details().expect("details");
    assert_eq!(d["account"], "node", "{d}");
    assert_eq!(d["cap"], 0.01, "{d}");
    assert!(d["left"].is_number(), "{d}");
    assert!(e.message().contains("node-wide cap"), "{e}");
    let store = acme.store().expect("store");
    assert!(
        store
            .runs(None)
            .expect("runs")
            .iter()
            .all(|r| r.charge.is_none()),
        "nothing charged"
    );
}

/// `[limits.node_budget]` with `epsilon_total` alone (no `delta_total`) loads and caps ε over
/// all agreements by basic composition: a run with δ > 0 is admitted (a δ cap of 0 would
/// refuse it), and the run that would pass the ε cap is refused naming the node-wide cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_wide_cap_of_epsilon_alone_loads_and_caps() {
    let pair = NodePair::start().await;
    let config = pair.acme.dir.join("config.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    assert!(!text.contains("node_budget"), "{text}");
    text.push_str("\n[limits.node_budget]\nepsilon_total = 0.3\n");
    std::fs::write(&config, text).expect("write config");
    let acme = Home::open(&pair.acme.dir).expect("a config without delta_total loads");
    let cap = acme.config.limits.node_budget.clone().expect("the cap");
    assert_eq!((cap.epsilon_total, cap.delta_total), (0.3, None));
    let overlap = tandem_node::analysis::find("overlap").expect("overlap");
    let first = tandem_node::querier::run_query(&acme, overlap, &pair.query(), "test")
        .await
        .expect("ε 0.25 of 0.3, δ not capped node-wide");
    assert!(first.querier_budget.epsilon_spent > 0.0);
    let e = tandem_node::querier::run_query(&acme, overlap, &pair.query(), "test")
        .await
        .expect_err("0.5 > 0.3");
    assert_eq!(e.code_str(), "budget_exceeded", "{e}");
    let d = e.details().expect("details");
    assert_eq!(
        (&d["account"], &d["cap"]),
        (&"node".into(), &0.3.into()),
        "{d}"
    );
    assert!(e.message().contains("node-wide cap"), "{e}");
}
