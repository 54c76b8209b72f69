//! Network faults on loopback (issue 11): the peer vanishes, closes or resets mid-stream, stalls
//! mid-body, answers garbage (non-HTTP bytes, wrong JSON, a bad signature) or too slowly; and
//! clients of a node that trickle their headers or body (slowloris). Each test states its bound
//! (`within`): every fault ends in a clear error in that time, never a hang or a panic, and a
//! querier's run is never left `started`.
//!
//! The fake peers are tiny `tokio::net::TcpListener` servers on the responder's address,
//! presenting the responder's own TLS certificate (so the pin holds) and then misbehaving.

use std::sync::Arc;
use std::time::Duration;

use tandem_node::error::Code;
use tandem_node::home::Home;
use tandem_testkit::NodePair;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Tls = tokio_rustls::server::TlsStream<TcpStream>;

/// Fails the test if `f` takes longer than `bound` (a hang is a failure, not a stuck CI).
async fn within<T>(bound: Duration, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(bound, f)
        .await
        .unwrap_or_else(|_| panic!("no answer within {bound:?}"))
}

/// Reads a request head (up to the blank line) and, if it announces one, its body; returns
/// the headers.
async fn read_request(s: &mut Tls) -> http::HeaderMap {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut headers = http::HeaderMap::new();
    for line in text.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':')
            && let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.trim().as_bytes()),
                http::HeaderValue::from_str(v.trim()),
            )
        {
            headers.insert(k, v);
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = s.read_exact(&mut body).await;
    headers
}

/// Stops the responder and serves `behave` on its address with its TLS certificate.
async fn fake_responder<F, Fut>(pair: &mut NodePair, behave: F)
where
    F: Fn(Tls, Home) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    pair.stop_responder().await;
    let shopx = pair.shopx.clone();
    let addr = shopx.config.listen.clone();
    let listener = TcpListener::bind(&addr).await.expect("rebind");
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(
        tandem_node::tls::server_config(&shopx.tls_cert, &shopx.tls_key).expect("tls"),
    ));
    let behave = Arc::new(behave);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (tls, behave, shopx) = (tls.clone(), behave.clone(), shopx.clone());
            tokio::spawn(async move {
                if let Ok(s) = tls.accept(tcp).await {
                    behave(s, shopx).await;
                }
            });
        }
    });
}

/// acme with short timeouts (1 s to connect, 1 s for the answer).
fn impatient(home: &Home) -> Home {
    let mut h = home.clone();
    h.config.limits.connect_timeout_s = 1;
    h.config.limits.peer_answer_timeout_s = 1;
    h
}

/// Runs acme's query and checks the error's code, that it came within `bound`, and that the run
/// ended (never left `started`).
async fn query_fails(pair: &NodePair, bound: Duration, code: Code) -> String {
    let acme = impatient(&pair.acme);
    let q = pair.query();
    let e = within(
        bound,
        tandem_node::querier::run_query(
            &acme,
            &tandem_node::analysis::overlap::Overlap,
            &q,
            "test",
        ),
    )
    .await
    .expect_err("the query must fail");
    assert_eq!(e.code(), code, "{e}");
    let runs = acme.store().expect("store").runs(None).expect("runs");
    assert!(!runs.is_empty());
    assert!(runs.iter().all(|r| r.status != "started"), "{runs:?}");
    e.to_string()
}

#[tokio::test]
async fn a_vanished_peer_is_unreachable_at_once() {
    let mut pair = NodePair::start().await;
    pair.stop_responder().await; // connection refused
    let msg = query_fails(&pair, Duration::from_secs(5), Code::PeerUnreachable).await;
    assert!(msg.contains("not reachable"), "{msg}");
}

#[tokio::test]
async fn a_peer_that_accepts_tcp_but_never_speaks_tls_is_unreachable_after_the_connect_timeout() {
    let mut pair = NodePair::start().await;
    pair.stop_responder().await;
    let listener = TcpListener::bind(&pair.shopx.config.listen)
        .await
        .expect("rebind");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp); // accepted, never answered
        }
    });
    let msg = query_fails(&pair, Duration::from_secs(5), Code::PeerUnreachable).await;
    assert!(msg.contains("no connection within 1 s"), "{msg}");
}

#[tokio::test]
async fn a_peer_that_closes_mid_request_is_peer_failed() {
    let mut pair = NodePair::start().await;
    fake_responder(&mut pair, |mut s, _| async move {
        let mut some = [0u8; 64];
        let _ = s.read(&mut some).await;
        drop(s); // closes with the request half read
    })
    .await;
    query_fails(&pair, Duration::from_secs(5), Code::PeerFailed).await;
}

#[tokio::test]
async fn non_http_bytes_are_peer_failed() {
    let mut pair = NodePair::start().await;
    fake_responder(&mut pair, |mut s, _| async move {
        read_request(&mut s).await;
        let _ = s
            .write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff garbage")
            .await;
        let _ = s.shutdown().await;
    })
    .await;
    let msg = query_fails(&pair, Duration::from_secs(5), Code::PeerFailed).await;
    assert!(msg.contains("after the request was sent"), "{msg}");
}

#[tokio::test]
async fn a_peer_that_stalls_mid_body_times_out() {
    let mut pair = NodePair::start().await;
    fake_responder(&mut pair, |mut s, _| async move {
        read_request(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\nsome bytes")
            .await;
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await;
    let msg = query_fails(&pair, Duration::from_secs(5), Code::PeerFailed).await;
    assert!(msg.contains("no whole answer within 1 s"), "{msg}");
}

#[tokio::test]
async fn a_peer_that_answers_too_slowly_times_out() {
    let mut pair = NodePair::start().await;
    fake_responder(&mut pair, |mut s, _| async move {
        read_request(&mut s).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await;
    })
    .await;
    let msg = query_fails(&pair, Duration::from_secs(5), Code::PeerFailed).await;
    assert!(msg.contains("no whole answer within 1 s"), "{msg}");
}

#[tokio::test]
async fn a_peer_that_resets_mid_stream_is_peer_failed() {
    let mut pair = NodePair::start().await;
    fake_responder(&mut pair, |mut s, _| async move {
        read_request(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\npartial")
            .await;
        let _ = s.flush().await;
        // SO_LINGER 0: closing sends a TCP RST instead of a FIN.
        let (tcp, _) = s.get_ref();
        #[allow(deprecated)] // set_zero_linger is newer than the tokio in use
        tcp.set_linger(Some(Duration::ZERO)).expect("linger");
        drop(s);
    })
    .await;
    query_fails(&pair, Duration::from_secs(5), Code::PeerFailed).await;
}

#[tokio::test]
async fn wrong_json_and_a_bad_signature_are_bad_peer_answers() {
    // A 200 whose body is not a PSI answer and carries no envelope.
    let mut pair = NodePair::start().await;
    fake_responder(&mut pair, |mut s, _| async move {
        read_request(&mut s).await;
        let body = br#"{"overlap": "lots"}"#;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(body).await;
        let _ = s.flush().await;
    })
    .await;
    query_fails(&pair, Duration::from_secs(5), Code::BadPeerAnswer).await;

    // A well-formed envelope for the right run, signed by another key.
    let mut pair = NodePair::start().await;
    fake_responder(&mut pair, |mut s, shopx| async move {
        let headers = read_request(&mut s).await;
        let Ok((mut env, _)) = tandem_node::wire::Envelope::from_headers(&headers) else {
            return;
        };
        env.sender = shopx.config.name.clone();
        let body = b"not a frame either";
        let forger = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let mut head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n", body.len());
        for (k, v) in env.sign(tandem_node::wire::PSI_RESPONSE, body, &forger) {
            head += &format!("{k}: {v}\r\n");
        }
        head += "\r\n";
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(body).await;
        let _ = s.flush().await;
    })
    .await;
    let msg = query_fails(&pair, Duration::from_secs(5), Code::BadPeerAnswer).await;
    assert!(msg.to_lowercase().contains("signature"), "{msg}");
}

/// Serves acme again on a fresh port with 1-second header and body timeouts; returns its
/// address and a TLS client pinned to it.
async fn strict_acme(pair: &NodePair) -> (std::net::SocketAddr, tokio_rustls::TlsConnector) {
    let mut home = pair.acme.clone();
    home.config.limits.request_header_timeout_s = 1;
    home.config.limits.request_body_idle_s = 1;
    let (listener, addr) = tandem_node::server::bind("127.0.0.1:0")
        .await
        .expect("bind");
    tokio::spawn(async move {
        let _ = tandem_node::server::serve(&home, listener, std::future::pending()).await;
    });
    let pin: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&pair.acme.tls_cert).into();
    let cfg = tandem_node::tls::pinned_client_config(pin).expect("client config");
    (addr, tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

async fn connect(
    addr: std::net::SocketAddr,
    tls: &tokio_rustls::TlsConnector,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    tls.connect(name, tcp).await.expect("tls")
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected() {
    let pair = NodePair::start().await;
    let (addr, tls) = strict_acme(&pair).await;
    let mut s = connect(addr, &tls).await;
    s.write_all(b"GET /api/v1/runs HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    // One header line every 300 ms, never the blank line: the server hangs up after 1 s.
    let trickle = async {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if s.write_all(format!("x-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            let mut buf = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break, // closed
                Ok(Ok(_)) => {}                  // perhaps a 408 before closing
                Err(_) => {}
            }
        }
    };
    within(Duration::from_secs(5), trickle).await;
}

#[tokio::test]
async fn a_client_stalling_its_body_gets_400_and_is_disconnected() {
    let pair = NodePair::start().await;
    let (addr, tls) = strict_acme(&pair).await;
    let mut s = connect(addr, &tls).await;
    s.write_all(
        b"POST /api/v1/queries/overlap HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{\"agree",
    )
    .await
    .expect("write");
    let mut answer = Vec::new();
    within(Duration::from_secs(5), s.read_to_end(&mut answer))
        .await
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}
