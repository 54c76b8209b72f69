//! HTTPS client for node-to-node calls: one pinned TLS connection per call, HTTP/1.1, bounded
//! response size and an overall deadline.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Code, OrCode, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

/// Why a call to the peer failed; tells the caller whether anything may have reached the peer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The peer could not be reached or authenticated: nothing was sent.
    #[error("peer at {url} is not reachable: {reason}")]
    Unreachable {
        /// The peer's URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The request was (perhaps partly) sent, then the call failed.
    #[error("call to {url} failed after the request was sent: {reason}")]
    AfterSend {
        /// The peer's URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// A response from the peer.
pub struct Response {
    /// HTTP status.
    pub status: http::StatusCode,
    /// Headers.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// The pinned peer: where it is and which certificate it must present.
#[derive(Clone)]
pub struct Peer {
    /// `https://host:port`.
    pub url: String,
    /// SHA-256 of the peer's DER TLS certificate.
    pub cert_sha256: [u8; 32],
}

/// Seconds [`Peer::post`] allows for connecting (TCP, TLS, HTTP handshake).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Peer {
    /// POSTs `body` to `path` with extra `headers`; allows [`DEFAULT_CONNECT_TIMEOUT`] to
    /// connect, then at most `timeout` for sending the request and reading the whole answer,
    /// and reads at most `max_response` bytes. See [`Peer::post_with`].
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
        timeout: Duration,
        max_response: usize,
    ) -> std::result::Result<Response, CallError> {
        self.post_with(
            path,
            headers,
            body,
            DEFAULT_CONNECT_TIMEOUT,
            timeout,
            max_response,
        )
        .await
    }

    /// POSTs `body` to `path` with extra `headers`. Every way the peer can fail ends in a
    /// [`CallError`] within `connect_timeout + timeout`, never a hang or a panic:
    /// - refused, unreachable, no TLS, wrong certificate, connect slower than `connect_timeout`:
    ///   [`CallError::Unreachable`] (nothing was sent);
    /// - closed or reset while the request is sent or the answer read, bytes that are not
    ///   HTTP, an answer over `max_response` bytes, no whole answer within `timeout` (a peer
    ///   that stalls mid-body or answers too slowly): [`CallError::AfterSend`].
    ///
    /// An answer that is HTTP but not what the protocol expects (wrong JSON, bad signature) is
    /// the caller's to judge (`bad_peer_answer`).
    pub async fn post_with(
        &self,
        path: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
        connect_timeout: Duration,
        timeout: Duration,
        max_response: usize,
    ) -> std::result::Result<Response, CallError> {
        let unreachable = |reason: String| CallError::Unreachable {
            url: self.url.clone(),
            reason,
        };
        let after = |reason: String| CallError::AfterSend {
            url: self.url.clone(),
            reason,
        };
        let (host, authority) = split_url(&self.url).map_err(|e| unreachable(e.to_string()))?;
        let cfg = crate::tls::pinned_client_config(self.cert_sha256)
            .map_err(|e| unreachable(e.to_string()))?;
        let connect = async {
            let tcp = TcpStream::connect(&authority)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let name =
                ServerName::try_from(host.clone()).map_err(|e| unreachable(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
                .connect(name, tcp)
                .await
                .map_err(|e| unreachable(format!("TLS: {e}")))?;
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tls))
                .await
                .map_err(|e| unreachable(e.to_string()))
        };
        let (mut sender, conn) = tokio::time::timeout(connect_timeout, connect)
            .await
            .map_err(|_| {
                unreachable(format!(
                    "no connection within {} s",
                    connect_timeout.as_secs_f64()
                ))
            })??;
        tokio::spawn(conn);
        let mut req = http::Request::post(format!("{}{}", self.url.trim_end_matches('/'), path))
            .header(http::header::HOST, authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/octet-stream");
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| unreachable(e.to_string()))?;
        let exchange = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| after(e.to_string()))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, max_response)
                .collect()
                .await
                .map_err(|e| after(format!("reading the response: {e}")))?
                .to_bytes();
            Ok(Response {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| {
            after(format!(
                "no whole answer within {} s",
                timeout.as_secs_f64()
            ))
        })?
    }
}

/// Splits `https://host:port/...` into the host (for SNI) and `host:port` (to connect).
fn split_url(url: &str) -> Result<(String, String)> {
    let host = crate::home::host_of(url)?;
    let rest = url
        .strip_prefix("https://")
        .or_code(Code::Invalid, || "URL must start with https://".into())?;
    let authority = rest.split('/').next().unwrap_or(rest).to_string();
    let authority = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:443")
    } else {
        authority
    };
    Ok((host, authority))
}

#[cfg(test)]
mod tests {
    #[test]
    fn split() {
        assert_eq!(
            super::split_url("https://127.0.0.1:7402").unwrap(),
            ("127.0.0.1".to_string(), "127.0.0.1:7402".to_string())
        );
        assert_eq!(
            super::split_url("https://example.com").unwrap().1,
            "example.com:443"
        );
    }
}
