//! Streamed psi-ca-v1 runs between two real nodes over HTTPS (psi-ca-v1 §10, node-wire-v1
//! §streamed runs): the counts are those of the whole-message run, a connection cut mid-run is
//! resumed with exactly one charge on each ledger, and a repeated chunk gets identical bytes.
//!
//! The cuts come from a plaintext proxy on the responder's address: it presents the responder's
//! own TLS certificate (so the querier's pin holds), forwards each call to the real responder
//! (moved to another port) and, for the calls chosen, drops the connection after the responder
//! answered: the answer is lost, as when a connection breaks on the way back.

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
use tower::ServiceExt;

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
    let token = pair
        .acme
        .store()
        .expect("store")
        .create_token("alice", "analyst", "test")
        .expect("token");
    let state = Arc::new(tandem_node::state::NodeState::new(&pair.acme));
    let get = |id: String| {
        let req = http::Request::builder()
            .uri(format!("/api/v1/runs/{id}"))
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .expect("request");
        let router = tandem_node::server::router(state.clone());
        async move {
            let resp = router.oneshot(req).await.expect("response");
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 22)
                .await
                .expect("body");
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).expect("json"),
            )
        }
    };
    let (status, body) = get(streamed.run_id.clone()).await;
    assert_eq!(status, http::StatusCode::OK, "{body}");
    assert_eq!(body["run"]["status"], "finished", "{body}");
    assert_eq!(body["progress"]["phase"], "done", "{body}");
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

/// Serves a forwarding proxy for `shopx` on its address; the real shopx serves elsewhere.
/// `cut(path, n)` says whether the `n`-th call (from 0) to `path` loses its answer.
async fn proxy(
    pair: &mut NodePair,
    cut: fn(&str, usize) -> bool,
) -> (Arc<Mutex<Vec<Logged>>>, tokio::sync::watch::Sender<bool>) {
    pair.stop_responder().await;
    let shopx = pair.shopx.clone();
    let (real, real_addr) = tandem_node::server::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (stop, mut rx) = tokio::sync::watch::channel(false);
    let served = shopx.clone();
    tokio::spawn(async move {
        let _ = tandem_node::server::serve(&served, real, async move {
            let _ = rx.changed().await;
        })
        .await;
    });
    let upstream = Peer {
        url: format!("https://{real_addr}"),
        cert_sha256: tandem_node::wire::parse_fingerprint(&shopx.tls_fingerprint())
            .expect("fingerprint"),
    };
    let listener = TcpListener::bind(&shopx.config.listen)
        .await
        .expect("rebind");
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(
        tandem_node::tls::server_config(&shopx.tls_cert, &shopx.tls_key).expect("tls"),
    ));
    let log: Arc<Mutex<Vec<Logged>>> = Arc::default();
    let seen: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let out = log.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (tls, upstream, log, seen) =
                (tls.clone(), upstream.clone(), log.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(mut s) = tls.accept(tcp).await else {
                    return;
                };
                let Some((path, headers, body)) = read_request(&mut s).await else {
                    return;
                };
                let forwarded: Vec<(&'static str, String)> = headers
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("tandem-"))
                    .map(|(k, v)| (&*Box::leak(k.into_boxed_str()), v))
                    .collect();
                let Ok(resp) = upstream
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
                let n = {
                    let mut seen = seen.lock().expect("lock");
                    let n = seen.entry(path.clone()).or_insert(0);
                    *n += 1;
                    *n - 1
                };
                log.lock().expect("lock").push((
                    path.clone(),
                    body,
                    resp.status.as_u16(),
                    resp.body.to_vec(),
                ));
                if cut(&path, n) {
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
    (out, stop)
}

#[tokio::test]
async fn connections_cut_mid_run_resume_with_one_charge_on_each_ledger_and_identical_bytes() {
    let mut pair = pair().await;
    // The opening's answer, the third query chunk's and the second reply chunk's are lost.
    let (log, _stop) = proxy(&mut pair, |path, n| {
        (path == OPEN_PATH && n == 0)
            || (path == CHUNK_PATH && n == 2)
            || (path == REPLY_CHUNK_PATH && n == 1)
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
