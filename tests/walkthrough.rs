//! End-to-end: two real `tandem serve` processes on loopback HTTPS, driven through the CLI as a
//! user would (init, import, propose, accept, serve, query, budget, runs).

mod common;

use common::{Pair, Server, fails, ok, overlap, s, spent, tandem};

/// RFC 3339 (UTC) of `secs` after the Unix epoch.
fn rfc3339(secs: i64) -> String {
    tandem_agreement::format_rfc3339(secs).expect("a representable time")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[test]
fn walkthrough_overlap_budget_and_refusals() {
    let pair = Pair::new(3000, 4000, 1200);
    let acme = Server::start(&pair.acme, pair.acme_port);
    let shopx = Server::start(&pair.shopx, pair.shopx_port);

    // An agreement only proposed (not yet countersigned) is refused by both sides.
    let file = pair.agreement_file("2099-01-01T00:00:00Z", 1.0, 2.5);
    let out = ok(&[
        "agreement",
        "propose",
        "--dir",
        s(&pair.acme),
        "--file",
        s(&file),
    ]);
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("proposed agreement "))
        .expect("id")
        .trim()
        .to_string();
    let err = overlap(&pair, &id, "1.0", false).expect_err("unsigned agreement must be refused");
    assert!(err.contains("proposed"), "{err}");

    // Countersign: now both signatures are on record on both nodes. The 12-character short id
    // that lists and reports print names the agreement wherever an id is taken.
    let short = &id[..12];
    let out = ok(&["agreement", "accept", "--dir", s(&pair.shopx), short]);
    assert!(out.contains("delivered"), "{out}");
    assert!(ok(&["agreement", "list", "--dir", s(&pair.acme)]).contains("active"));

    // The overlap by segment, with intervals that cover the truth (ε = 1: 95% intervals, so
    // allow one miss of twelve).
    let report = overlap(&pair, &id, "1.0", false).expect("query runs");
    let cells = report["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), 5 * 4, "age bands + other × tiers + other");
    let mut misses = 0;
    for c in cells {
        let key = (
            c["querier_group"].as_str().unwrap().to_string(),
            c["responder_group"].as_str().unwrap().to_string(),
        );
        let truth = pair.truth.get(&key).copied().unwrap_or(0);
        let (lo, hi) = (
            c["ci_low"].as_i64().unwrap(),
            c["ci_high"].as_i64().unwrap(),
        );
        assert!(
            c["estimate"].as_i64().unwrap() <= hi,
            "the interval is the estimate ± h, clipped at 0"
        );
        assert!(
            (c["estimate"].as_i64().unwrap() - truth).abs() < 40,
            "cell {key:?} far from truth"
        );
        if !(lo <= truth && truth <= hi) {
            misses += 1;
        }
    }
    assert!(misses <= 3, "{misses} intervals miss the truth");
    assert!(
        (report["responder_budget"]["epsilon_spent"]
            .as_f64()
            .unwrap()
            - 1.0)
            .abs()
            < 1e-9
    );
    assert!((report["querier_budget"]["epsilon_spent"].as_f64().unwrap() - 0.25).abs() < 1e-9);
    // Issue 9 item 3: the signed heads show the route that admitted the run and ρ charged per
    // mechanism (0.75²/2 + 0.25²/2 = 0.3125 for the responder at ε = 1, not 1²/2).
    assert_eq!(report["responder_budget"]["route"], "basic");
    assert_eq!(report["querier_budget"]["route"], "basic");
    let rho = report["responder_budget"]["rho_total_spent"]
        .as_f64()
        .unwrap();
    assert!((rho - 0.3125).abs() < 1e-6, "{rho}");

    // The same query again (by the short id: the same question): the stored answer, no budget
    // spent, no fresh noise.
    let again = overlap(&pair, short, "1.0", false).expect("cached");
    assert_eq!(again["cached"], true);
    assert_eq!(again["cells"], report["cells"]);
    // Issue 9 items 4 and 6: it shows the run and date it comes from, and is querier-internal.
    assert_eq!(again["run_id"], report["run_id"]);
    assert!(again["answered_at"].is_string(), "{again}");
    assert_eq!(report["querier_internal"], true);
    assert!((spent(&pair.shopx, &id) - 1.0).abs() < 1e-9);

    // Second fresh run: shopx at 2.0 of 2.5, acme at 0.5 of 1.0.
    overlap(&pair, &id, "1.0", true).expect("second run");
    // Third: shopx would spend 3.0 > 2.5. Issue 9 item 4: acme asks shopx's budget first
    // (signed, free), so the run is refused before either side charges anything.
    let err = overlap(&pair, &id, "1.0", true).expect_err("shopx must refuse");
    assert!(err.contains("shopx") && err.contains("budget"), "{err}");
    // Issue 11 defect 4: the peer's code (403 budget_exceeded, not 422), which cap and what is
    // left; issue 12: the cap is for the agreement's lifetime.
    for part in [
        "budget_exceeded (403)",
        "refused by shopx",
        "cap:",
        "left:",
        "nothing was charged on either side",
        "does not refresh",
        "period",
    ] {
        assert!(err.contains(part), "{part} missing from {err}");
    }
    assert!((spent(&pair.shopx, &id) - 2.0).abs() < 1e-9);
    assert!((spent(&pair.acme, &id) - 0.5).abs() < 1e-9);
    // The preview says so before anything is tried.
    let preview = ok(&[
        "query",
        "overlap",
        "--dir",
        s(&pair.acme),
        "--agreement",
        &id,
        "--group-by",
        "age_band",
        "--peer-group-by",
        "tier",
        "--epsilon",
        "1.0",
        "--fresh",
        "--preview",
    ]);
    assert!(preview.contains("shopx would REFUSE it"), "{preview}");

    // Issue 12: the three reports above (fresh, cached, fresh) are stored and re-read from the
    // CLI at no cost: neither ledger moves.
    let list: serde_json::Value =
        serde_json::from_str(&ok(&["results", "list", "--dir", s(&pair.acme), "--json"]))
            .expect("results JSON");
    let list = list.as_array().expect("a list");
    assert_eq!(list.len(), 3, "{list:?}");
    assert_eq!(list[1]["cached"], true);
    let result_id = list[2]["result_id"].as_str().expect("id");
    // CSV without `--format`: the default a newcomer expects.
    let csv_file = pair.root.path().join("first.csv");
    ok(&[
        "results",
        "export",
        "--dir",
        s(&pair.acme),
        result_id,
        "--out",
        s(&csv_file),
    ]);
    let csv = std::fs::read_to_string(&csv_file).expect("exported CSV");
    assert!(
        csv.starts_with("querier_group,responder_group,estimate,ci_low,ci_high,below_threshold"),
        "{csv}"
    );
    assert_eq!(
        csv.lines().count(),
        report["cells"].as_array().map_or(0, Vec::len) + 1
    );
    let shown = ok(&["results", "show", "--dir", s(&pair.acme), result_id]);
    assert!(shown.contains("Overlap rate (95% intervals)"), "{shown}");
    assert!((spent(&pair.acme, &id) - 0.5).abs() < 1e-9);
    assert!((spent(&pair.shopx, &id) - 2.0).abs() < 1e-9);
    // Issue 9 item 7: the CSV is marked querier-internal; a copy for the partner carries
    // acme's own noise, charged to acme (ε 0.25 here) and never to shopx.
    assert!(csv.lines().skip(1).all(|l| l.ends_with(",true")), "{csv}");
    let shared: serde_json::Value = serde_json::from_str(&ok(&[
        "results",
        "export",
        "--dir",
        s(&pair.acme),
        result_id,
        "--format",
        "json",
        "--for-partner",
        "--epsilon",
        "0.25",
    ]))
    .expect("partner export JSON");
    assert_eq!(shared["safe_to_share"], true, "{shared}");
    assert_eq!(shared["added_noise"]["epsilon"], 0.25, "{shared}");
    assert!((spent(&pair.acme, &id) - 0.75).abs() < 1e-9);
    assert!((spent(&pair.shopx, &id) - 2.0).abs() < 1e-9);

    // A mistyped result id: the error alone, not the sharing warning of an export that is
    // not made.
    let err = fails(&[
        "results",
        "export",
        "--dir",
        s(&pair.acme),
        "0123",
        "--format",
        "csv",
    ]);
    assert!(err.contains("no stored result 0123"), "{err}");
    assert!(!err.contains("Querier-internal"), "{err}");

    // A query outside the agreement's columns is refused with the reason.
    let err = fails(&[
        "query",
        "overlap",
        "--dir",
        s(&pair.acme),
        "--agreement",
        &id,
        "--group-by",
        "income",
        "--epsilon",
        "0.1",
    ]);
    assert!(err.contains("income"), "{err}");

    // The history shows every run, including the failed one.
    let runs = ok(&["runs", "--dir", s(&pair.acme), "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&runs).expect("json");
    assert!(runs.as_array().expect("runs").len() >= 3);
    // By the short id, the same runs; a mistyped id is an error naming the way to the ids, not
    // an empty list.
    let by_short = ok(&[
        "runs",
        "--dir",
        s(&pair.acme),
        "--agreement",
        short,
        "--json",
    ]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&by_short).expect("json"),
        runs
    );
    let typo = if short == "ffffffffffff" {
        "eeeeeeeeeeee"
    } else {
        "ffffffffffff"
    };
    for args in [
        &["runs", "--dir", s(&pair.acme), "--agreement", typo][..],
        &["budget", "--dir", s(&pair.acme), "--agreement", typo],
        &[
            "results",
            "list",
            "--dir",
            s(&pair.acme),
            "--agreement",
            typo,
        ],
    ] {
        let err = fails(args);
        assert!(
            err.contains(&format!("unknown agreement {typo}"))
                && err.contains("tandem agreement list"),
            "{args:?}: {err}"
        );
    }

    // The peer goes down: a clear error, and nothing charged for a message that never left.
    shopx.kill();
    let before = spent(&pair.acme, &id);
    let err = overlap(&pair, &id, "0.1", true).expect_err("peer down");
    assert!(err.contains("not reachable"), "{err}");
    assert!(
        (spent(&pair.acme, &id) - before).abs() < 1e-12,
        "a failed connection must not spend budget"
    );
    drop(acme);
}

#[test]
fn expired_agreement_is_refused() {
    let pair = Pair::new(200, 200, 50);
    let _acme = Server::start(&pair.acme, pair.acme_port);
    let _shopx = Server::start(&pair.shopx, pair.shopx_port);
    let file = pair.agreement_file(&rfc3339(now() + 4), 5.0, 5.0);
    let id = pair.pair(&file);
    overlap(&pair, &id, "1.0", true).expect("runs before expiry");
    std::thread::sleep(std::time::Duration::from_secs(5));
    let err = overlap(&pair, &id, "1.0", true).expect_err("expired");
    assert!(err.contains("expired"), "{err}");
}

#[test]
fn malformed_csv_reports_the_line_and_changes_nothing() {
    let pair = Pair::new(100, 100, 10);
    let before = ok(&["status", "--dir", s(&pair.acme)]);
    let bad = pair.root.path().join("bad.csv");
    std::fs::write(&bad, "email,age_band\nok1@example.com,18-24\nok2@example.com,25-34\nnot-an-email,18-24\nok3@example.com,45+\n")
        .expect("write");
    let err = fails(&[
        "import",
        "--dir",
        s(&pair.acme),
        "--file",
        s(&bad),
        "--id-column",
        "email",
        "--id-kind",
        "email",
        "--attributes",
        "age_band",
    ]);
    assert!(err.contains("line 4"), "{err}");
    assert_eq!(
        ok(&["status", "--dir", s(&pair.acme)]),
        before,
        "the store must be unchanged"
    );
    // A missing column is named too.
    let err = fails(&[
        "import",
        "--dir",
        s(&pair.acme),
        "--file",
        s(&bad),
        "--id-column",
        "mail",
        "--id-kind",
        "email",
    ]);
    assert!(err.contains("mail"), "{err}");
}

#[test]
fn help_is_useful() {
    let out = tandem(&["query", "overlap", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--peer-group-by") && text.contains("--epsilon"),
        "{text}"
    );
}

#[test]
fn agreement_must_match_the_nodes_region() {
    let pair = Pair::new(10, 10, 1);
    let file = pair.agreement_file("2099-01-01T00:00:00Z", 5.0, 5.0);
    let text = std::fs::read_to_string(&file).expect("read");
    // Place acme's data in the EU although its node is configured for CN.
    let moved = text.replacen("region = \"CN\"", "region = \"EU\"", 1);
    std::fs::write(&file, moved).expect("write");
    let err = fails(&[
        "agreement",
        "propose",
        "--dir",
        s(&pair.acme),
        "--file",
        s(&file),
    ]);
    assert!(err.contains("data residency"), "{err}");
}
