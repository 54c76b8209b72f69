//! Streamed psi-ca-v1 runs between two real nodes over HTTPS (psi-ca-v1 §10, node-wire-v1
//! §streamed runs): the counts are those of the whole-message run, a connection cut mid-run is
//! resumed with exactly one charge on each ledger, a repeated chunk gets identical bytes, and a
//! responder restarted mid-run fails the run once, charged once on each side.
//!
//! The faults come from a proxy on the responder's address: it presents the responder's own
//! TLS certificate (so the querier's pin holds), forwards each call to the real responder
//! (moved to another port) and, for the calls chosen, drops the connection after the responder
//! answered (the answer is lost, as when a connection breaks on the way back) or restarts the
//! responder before forwarding the call (between two chunks, by the test's choice).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_node::analysis::Report;
use tandem_node::client::Peer;
use tandem_node::home::Home;
use tandem_node::stream::{CHUNK_PATH, OPEN_PATH, REPLY_CHUNK_PATH};
use tandem_testkit::{NodePair, Side};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// acme holds `p0…p2999` (even `x`, odd `y`), shopx `p1500…p4499` (multiples of 3 `gold`,
/// else `silver`): 1500 shared.
const ACME: std::ops::Range<usize> = 0..3000;
const SHOPX: std::ops::Range<usize> = 1500..4500;

fn seg(i: usize) -> &'static str {
    if i.is_multiple_of(2) { "x" } else { "y" }
}

fn tier(i: usize) -> &'static str {
    if i.is_multiple_of(3) {
        "gold"
    } else {
        "silver"
    }
}

async fn pair() -> NodePair {
    let rows = |r: std::ops::Range<usize>, col: &str, f: fn(usize) -> &'static str| {
        let mut s = format!("email,{col}\n");
        for i in r {
            s.push_str(&format!("p{i}@example.com,{}\n", f(i)));
        }
        s
    };
    NodePair::with_data(
        Side::new(&rows(ACME, "seg", seg)).column("seg", &["x", "y"]),
        Side::new(&rows(SHOPX, "tier", tier)).column("tier", &["silver", "gold"]),
    )
    .await
}

fn truth() -> BTreeMap<(String, String), i64> {
    let mut t = BTreeMap::new();
    for i in SHOPX.start..ACME.end {
        *t.entry((seg(i).to_string(), tier(i).to_string()))
            .or_insert(0) += 1;
    }
    t
}

/// acme streaming in chunks of `c` records (0: whole messages).
fn acme(pair: &NodePair, c: u32) -> Home {
    let mut h = pair.acme.clone();
    h.config.limits.stream_chunk_records = c;
    h
}

async fn overlap(home: &Home, pair: &NodePair) -> Report {
    tandem_node::querier::run_query(
        home,
        &tandem_node::analysis::overlap::Overlap,
        &pair.query(),
        "test",
    )
    .await
    .expect("the run succeeds")
}

/// Each cell's estimate is within twice the 95% interval's width of the truth: every cell has
/// the same (clamped) Laplace noise, P(|noise| > 4·h) = 0.05⁴ ≈ 6·10⁻⁶ for the half-width h
/// (the widest interval: one not clipped at 0), so a cell outside it is a wrong count, not bad
/// luck.
fn assert_counts(report: &Report) {
    let truth = truth();
    let width = report
        .cells
        .iter()
        .map(|c| c.ci_high - c.ci_low)
        .max()
        .unwrap_or_default();
    assert!(width > 0);
    for cell in &report.cells {
        let t = truth
            .get(&(cell.querier_group.clone(), cell.responder_group.clone()))
            .copied()
            .unwrap_or(0);
        assert!(
            (cell.estimate - t).abs() <= 2 * width,
            "{cell:?} against the truth {t}"
        );
    }
}

fn runs(home: &Home) -> Vec<tandem_store::RunRecord> {
    home.store().expect("store").runs(None).expect("runs")
}

#[tokio::test]
async fn a_streamed_run_counts_what_the_whole_message_run_counts() {
    let pair = pair().await;
    let streamed = overlap(&acme(&pair, 256), &pair).await;
    let whole = overlap(&acme(&pair, 0), &pair).await;
    assert_counts(&streamed);
    assert_counts(&whole);
    assert_eq!(streamed.epsilon, whole.epsilon);
    // The same charge on both ledgers, once per run.
    assert_eq!(
        streamed.responder_budget.epsilon_spent,
        whole.responder_budget.epsilon_spent
    );
    for home in [&pair.acme, &pair.shopx] {
        let runs = runs(home);
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert!(runs.iter().all(|r| r.status == "finished"), "{runs:?}");
    }
    // The run's progress is known and complete (both nodes share this process), and the
    // status endpoint shows it beside the run's record.
    let p = tandem_node::stream::progress(&streamed.run_id).expect("progress");
    assert_eq!(p.phase, "done");
    assert_eq!(p.done, p.total);
    assert!(p.total > 0);
    let get = |id: String| run_status(&pair.acme, id);
    let (status, body) = get(streamed.run_id.clone()).await;
    assert_eq!(status, http::StatusCode::OK, "{body}");
    assert_eq!(body["run"]["status"], "finished", "{body}");
    assert_eq!(body["progress"]["phase"], "done", "{body}");
    // A finished run keeps the rate of its last phase and has nothing left to wait for.
    assert!(
        body["progress"]["rate_per_s"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{body}"
    );
    assert!(body["progress"]["eta_s"].is_null(), "{body}");
    assert_eq!(
        body["progress"]["done"], body["progress"]["total"],
        "{body}"
    );
    let (status, body) = get(whole.run_id.clone()).await;
    assert_eq!(status, http::StatusCode::OK, "{body}");
    assert!(body.get("progress").is_none(), "{body}");
    let (status, _) = get("00".repeat(16)).await;
    assert_eq!(status, http::StatusCode::NOT_FOUND);
}

/// `GET /api/v1/runs/{id}` on `home`'s API as an analyst: the status and the JSON body.
async fn run_status(home: &Home, id: String) -> (http::StatusCode, serde_json::Value) {
    let token = home
        .store()
        .expect("store")
        .create_token(
            &format!("analyst-{}", rand::random::<u32>()),
            "analyst",
            "test",
        )
        .expect("token");
    let state = Arc::new(tandem_node::state::NodeState::new(home));
    tandem_testkit::api_call(&state, "GET", &format!("/api/v1/runs/{id}"), &token, "").await
}

/// One call the proxy forwarded: its path, request body and the responder's answer.
type Logged = (String, Vec<u8>, u16, Vec<u8>);

/// Reads one HTTP/1.1 request: path, headers, body.
async fn read_request<S: AsyncReadExt + Unpin>(
    s: &mut S,
) -> Option<(String, Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = text.lines();
    // The client sends the absolute form (`https://host:port/path`).
    let target = lines.next()?.split(' ').nth(1)?;
    let path = match target.strip_prefix("https://") {
        Some(rest) => rest[rest.find('/')?..].to_string(),
        None => target.to_string(),
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    Some((path, headers, body))
}

/// What the proxy does with a call.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Forwards the call and its answer.
    None,
    /// Forwards the call, then drops the connection: the answer is lost.
    Cut,
    /// Restarts the responder, then forwards the call to the restarted one.
    Restart,
}

/// The real shopx behind the proxy: where it serves, and its stop signal and task.
struct Upstream {
    peer: Peer,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts `shopx` as `tandem serve` does (runs a stop interrupted are recorded `failed`, their
/// charges kept; no streamed run is open) on a fresh loopback port.
async fn start_real(shopx: &Home) -> Upstream {
    tandem_node::maintenance::recover(shopx).expect("startup recovery");
    let (real, real_addr) = tandem_node::server::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (stop, mut rx) = tokio::sync::watch::channel(false);
    let served = shopx.clone();
    let task = tokio::spawn(async move {
        let _ = tandem_node::server::serve(&served, real, async move {
            let _ = rx.changed().await;
        })
        .await;
    });
    Upstream {
        peer: Peer {
            url: format!("https://{real_addr}"),
            cert_sha256: tandem_node::wire::parse_fingerprint(&shopx.tls_fingerprint())
                .expect("fingerprint"),
        },
        stop,
        task,
    }
}

/// Serves a forwarding proxy for `shopx` on its address; the real shopx serves elsewhere (for
/// as long as the proxy does). `fault(path, n)` says what becomes of the `n`-th call (from 0)
/// to `path`.
async fn proxy(
    pair: &mut NodePair,
    fault: impl Fn(&str, usize) -> Fault + Send + Sync + 'static,
) -> Arc<Mutex<Vec<Logged>>> {
    pair.stop_responder().await;
    let shopx = pair.shopx.clone();
    let upstream = Arc::new(tokio::sync::Mutex::new(start_real(&shopx).await));
    let listener = TcpListener::bind(&shopx.config.listen)
        .await
        .expect("rebind");
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(
        tandem_node::tls::server_config(&shopx.tls_cert, &shopx.tls_key).expect("tls"),
    ));
    let log: Arc<Mutex<Vec<Logged>>> = Arc::default();
    let seen: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let fault = Arc::new(fault);
    let out = log.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (tls, upstream, log, seen, fault, shopx) = (
                tls.clone(),
                upstream.clone(),
                log.clone(),
                seen.clone(),
                fault.clone(),
                shopx.clone(),
            );
            tokio::spawn(async move {
                let Ok(mut s) = tls.accept(tcp).await else {
                    return;
                };
                let Some((path, headers, body)) = read_request(&mut s).await else {
                    return;
                };
                let n = {
                    let mut seen = seen.lock().expect("lock");
                    let n = seen.entry(path.clone()).or_insert(0);
                    *n += 1;
                    *n - 1
                };
                let fault = fault(&path, n);
                let peer = {
                    let mut real = upstream.lock().await;
                    if fault == Fault::Restart {
                        let _ = real.stop.send(true);
                        let _ = (&mut real.task).await;
                        *real = start_real(&shopx).await;
                    }
                    real.peer.clone()
                };
                let forwarded: Vec<(&'static str, String)> = headers
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("tandem-"))
                    .map(|(k, v)| (&*Box::leak(k.into_boxed_str()), v))
                    .collect();
                let Ok(resp) = peer
                    .post(
                        &path,
                        &forwarded,
                        body.clone(),
                        Duration::from_secs(60),
                        1 << 28,
                    )
                    .await
                else {
                    return;
                };
                log.lock().expect("lock").push((
                    path.clone(),
                    body,
                    resp.status.as_u16(),
                    resp.body.to_vec(),
                ));
                if fault == Fault::Cut {
                    return; // the answer is lost with the connection
                }
                let mut head = format!(
                    "HTTP/1.1 {}\r\ncontent-length: {}\r\nconnection: close\r\n",
                    resp.status,
                    resp.body.len()
                );
                for (k, v) in &resp.headers {
                    if k.as_str().starts_with("tandem-")
                        && let Ok(v) = v.to_str()
                    {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                }
                head.push_str("\r\n");
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&resp.body).await;
                let _ = s.shutdown().await;
            });
        }
    });
    out
}

#[tokio::test]
async fn connections_cut_mid_run_resume_with_one_charge_on_each_ledger_and_identical_bytes() {
    let mut pair = pair().await;
    // The opening's answer, the third query chunk's and the second reply chunk's are lost.
    let log = proxy(&mut pair, |path, n| {
        let cut = (path == OPEN_PATH && n == 0)
            || (path == CHUNK_PATH && n == 2)
            || (path == REPLY_CHUNK_PATH && n == 1);
        if cut { Fault::Cut } else { Fault::None }
    })
    .await;
    let report = overlap(&acme(&pair, 256), &pair).await;
    assert_counts(&report);
    for home in [&pair.acme, &pair.shopx] {
        let runs = runs(home);
        assert_eq!(runs.len(), 1, "charged once: {runs:?}");
        assert_eq!(runs[0].status, "finished", "{runs:?}");
    }
    let log = log.lock().expect("lock").clone();
    // Every call sent again got the same answer, byte for byte (a reply chunk is made afresh
    // from the state fixed after the query; an acknowledgement names the same frame digest).
    let mut repeats = BTreeMap::<String, usize>::new();
    for (i, (path, body, status, answer)) in log.iter().enumerate() {
        assert_eq!(*status, 200, "{path}: {}", String::from_utf8_lossy(answer));
        for (p2, b2, _, a2) in &log[..i] {
            if p2 == path && b2 == body {
                assert_eq!(a2, answer, "{path}: a retry got other bytes");
                *repeats.entry(path.clone()).or_default() += 1;
            }
        }
    }
    for path in [OPEN_PATH, CHUNK_PATH, REPLY_CHUNK_PATH] {
        assert_eq!(
            repeats.get(path),
            Some(&1),
            "{path} retried once: {repeats:?}"
        );
    }
}

/// The responder restarts just before the `n`-th call to `path` (its open streamed runs live in
/// its memory only, spec §10): the querier's run fails at once with a clear error (a 404 is not
/// retried), each side keeps the one charge it took, the status endpoint says `failed`, both
/// audit logs verify, and the next run works. Returns the responder's record of the failed run.
async fn restart_mid_stream(path: &'static str, n: usize) -> tandem_store::RunRecord {
    let mut pair = pair().await;
    let log = proxy(&mut pair, move |p, i| {
        if p == path && i == n {
            Fault::Restart
        } else {
            Fault::None
        }
    })
    .await;
    let e = tokio::time::timeout(
        Duration::from_secs(120),
        tandem_node::querier::run_query(
            &acme(&pair, 256),
            &tandem_node::analysis::overlap::Overlap,
            &pair.query(),
            "test",
        ),
    )
    .await
    .expect("the run ends, never hangs")
    .expect_err("the restarted responder no longer holds the run");
    assert_eq!(e.code(), tandem_node::error::Code::PeerRefused, "{e}");
    let text = e.to_string();
    for part in ["404", "no open streamed run", "restarted", "stands"] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
    // The call after the restart was answered 404 once and the querier stopped there.
    let log = log.lock().expect("lock").clone();
    let refused: Vec<&Logged> = log.iter().filter(|l| l.2 != 200).collect();
    assert_eq!(
        refused.len(),
        1,
        "{:?}",
        log.iter().map(|l| (&l.0, l.2)).collect::<Vec<_>>()
    );
    assert_eq!((refused[0].0.as_str(), refused[0].2), (path, 404));
    assert_eq!(
        log.last().map(|l| l.2),
        Some(404),
        "nothing was sent after the 404"
    );

    // One run on each ledger, its charge taken once and standing.
    let (q_runs, r_runs) = (runs(&pair.acme), runs(&pair.shopx));
    assert_eq!(
        (q_runs.len(), r_runs.len()),
        (1, 1),
        "{q_runs:?} {r_runs:?}"
    );
    let (q, r) = (&q_runs[0], &r_runs[0]);
    assert_eq!(q.run_id, r.run_id);
    assert_eq!(
        (q.status.as_str(), q.charge.as_deref()),
        ("failed", Some("spent")),
        "{q:?}"
    );
    assert_eq!(r.charge.as_deref(), Some("spent"), "{r:?}");
    for (home, run) in [(&pair.acme, q), (&pair.shopx, r)] {
        let store = home.store().expect("store");
        let budget =
            tandem_node::compliance::budgets(&store, &home.config.name, Some(&pair.agreement_id))
                .expect("budget");
        assert!(
            (budget[0].epsilon_spent - run.epsilon).abs() < 1e-9
                && budget[0].epsilon_reserved == 0.0,
            "{}: {budget:?}",
            home.config.name
        );
    }
    // The status endpoint says failed, its progress too (not a stale phase with an ETA).
    let (status, body) = run_status(&pair.acme, q.run_id.clone()).await;
    assert_eq!(status, http::StatusCode::OK, "{body}");
    assert_eq!(body["run"]["status"], "failed", "{body}");
    assert_eq!(body["progress"]["phase"], "failed", "{body}");
    assert!(body["progress"]["eta_s"].is_null(), "{body}");
    for home in [&pair.acme, &pair.shopx] {
        home.store()
            .expect("store")
            .verify_audit(Some(&home.key.verifying_key()))
            .expect("the audit log verifies");
    }

    // The restarted responder answers the next run in full, charged once more on each side.
    let report = overlap(&acme(&pair, 256), &pair).await;
    assert_counts(&report);
    for home in [&pair.acme, &pair.shopx] {
        let after = runs(home);
        assert_eq!(after.len(), 2, "{after:?}");
        assert_eq!(after[1].status, "finished", "{after:?}");
    }
    r.clone()
}

#[tokio::test]
async fn a_responder_restarted_between_query_chunks_fails_the_run_charged_once() {
    // Before the reply was fixed: the restart records the responder's run as interrupted.
    let r = restart_mid_stream(CHUNK_PATH, 2).await;
    assert_eq!(r.status, "failed", "{r:?}");
    assert!(
        r.error
            .as_deref()
            .unwrap_or_default()
            .contains("interrupted"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_responder_restarted_between_reply_chunks_fails_the_run_charged_once() {
    // After the reply was fixed and released: the responder's run stays finished.
    let r = restart_mid_stream(REPLY_CHUNK_PATH, 1).await;
    assert_eq!(r.status, "finished", "{r:?}");
}
