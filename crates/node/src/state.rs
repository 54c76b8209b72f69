//! What every HTTP handler of a serving node shares: its state, how it runs synchronous work,
//! and how a [`NodeError`] becomes an HTTP response.

use std::path::PathBuf;

use axum::response::{IntoResponse, Response};

use crate::error::{Code, NodeError, Result};
use crate::home::Home;

/// Failed authentications (401) one source may make per clock minute; further API calls from
/// it are answered 429 `too_many_requests` with `Retry-After` until the minute ends, without
/// being checked or audited one by one, so a flood of bogus tokens writes at most this many
/// `api.refused` entries plus one `api.throttled` entry (with the count so far) per source and
/// minute.
pub const MAX_AUTH_FAILURES_PER_MINUTE: u32 = 20;

/// The remote address of the connection a request came on (a request extension set by the
/// server).
#[derive(Clone, Copy, Debug)]
pub struct Source(pub std::net::IpAddr);

/// Failed authentications per source in the current clock minute (in memory; a restart forgets
/// them).
#[derive(Debug, Default)]
pub struct AuthFailures {
    /// The minute counted (ms since the epoch / 60 000).
    minute: i64,
    /// Failures per source in that minute.
    counts: std::collections::HashMap<std::net::IpAddr, u32>,
}

/// A source over its failure allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds until the minute ends (`Retry-After`, at least 1).
    pub retry_after_s: u64,
    /// Refused calls from the source in this minute, this one included.
    pub count: u32,
    /// True for the first throttled call of the minute (the one that is audited).
    pub first: bool,
}

impl AuthFailures {
    fn roll(&mut self, now_ms: i64) {
        let minute = now_ms.div_euclid(60_000);
        if minute != self.minute {
            self.minute = minute;
            self.counts.clear();
        }
    }

    /// Whether a call from `source` at `now_ms` is throttled (and counts it if so).
    pub fn check(&mut self, source: std::net::IpAddr, now_ms: i64) -> Option<Throttled> {
        self.roll(now_ms);
        let count = self.counts.get_mut(&source)?;
        if *count < MAX_AUTH_FAILURES_PER_MINUTE {
            return None;
        }
        *count = count.saturating_add(1);
        let left_ms = 60_000 - now_ms.rem_euclid(60_000);
        Some(Throttled {
            retry_after_s: u64::try_from((left_ms + 999) / 1000).unwrap_or(60).max(1),
            count: *count,
            first: *count == MAX_AUTH_FAILURES_PER_MINUTE + 1,
        })
    }

    /// Counts a failed authentication from `source` at `now_ms`.
    pub fn record(&mut self, source: std::net::IpAddr, now_ms: i64) {
        self.roll(now_ms);
        let count = self.counts.entry(source).or_default();
        *count = count.saturating_add(1);
    }
}

/// Successful API calls counted per (actor, operation, clock minute), written to the audit log
/// as one `api.access` entry each (`details`: `what`, `count`, `minute_start_ms`) once the
/// minute is over, many in one transaction. One synced audit entry per call made the analyst
/// API fail under load (`database is locked` while runs wrote too; issue 11). Refusals are still
/// audited one by one (and throttled, see [`AuthFailures`]). Counts not yet written are lost if
/// the process is killed (at most the current and the previous minute); a clean shutdown writes
/// them.
#[derive(Debug, Default)]
pub struct AccessTally {
    counts: std::sync::Mutex<std::collections::BTreeMap<(i64, String, String), u64>>,
}

impl AccessTally {
    fn counts(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<(i64, String, String), u64>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one successful call by `actor` to do `what` at `now_ms`.
    pub fn record(&self, actor: &str, what: &str, now_ms: i64) {
        *self
            .counts()
            .entry((
                now_ms.div_euclid(60_000),
                actor.to_string(),
                what.to_string(),
            ))
            .or_default() += 1;
    }

    /// Takes the counts of minutes before the one of `now_ms` (of every minute with `all`) as
    /// `api.access` events, in (minute, actor, operation) order.
    pub fn take(&self, now_ms: i64, all: bool) -> Vec<tandem_store::AuditEvent> {
        let minute = now_ms.div_euclid(60_000);
        let mut counts = self.counts();
        let keep = if all {
            Default::default()
        } else {
            counts.split_off(&(minute, String::new(), String::new()))
        };
        std::mem::replace(&mut *counts, keep)
            .into_iter()
            .map(|((m, actor, what), count)| {
                tandem_store::AuditEvent::now(
                    actor,
                    "api.access",
                    serde_json::json!({"what": what, "count": count, "minute_start_ms": m * 60_000}),
                )
            })
            .collect()
    }

    /// Puts back counts whose write failed (they are written with the next flush).
    fn restore(&self, events: Vec<tandem_store::AuditEvent>) {
        let mut counts = self.counts();
        for e in events {
            let d = &e.details;
            let (Some(what), Some(count), Some(start)) = (
                d.get("what").and_then(|v| v.as_str()),
                d.get("count").and_then(|v| v.as_u64()),
                d.get("minute_start_ms").and_then(|v| v.as_i64()),
            ) else {
                continue;
            };
            *counts
                .entry((start.div_euclid(60_000), e.actor.clone(), what.to_string()))
                .or_default() += count;
        }
    }
}

/// Failed runs one peer may cause in any hour (after its signature verified: a forged sender
/// name cannot lock the real peer out); further run requests from it are answered 429
/// `too_many_requests` with `Retry-After` before anything is read or charged. Every failed run
/// costs the responder work and tells the querier one bit (accepted or not), so they are
/// bounded even when charged.
pub const MAX_FAILED_RUNS_PER_HOUR: usize = 10;

/// Audience-version checks (`POST /v1/psi/audience-version`) one peer may make in any hour;
/// further ones are answered 429 `too_many_requests` with `Retry-After`. The check is uncharged;
/// its answer moves with every import, opt-out and purge, so polling it tells when this node's
/// data changed: bounded, and tallied in the audit log (`api.access`).
pub const MAX_AUDIENCE_CHECKS_PER_HOUR: usize = 60;

/// Budget pre-checks (`POST /v1/psi/budget-check`) one peer may make in any hour (each query
/// and each preview of the peer makes one); further ones are answered 429 with `Retry-After`.
pub const MAX_BUDGET_CHECKS_PER_HOUR: usize = 600;

/// Events per peer in the last hour (a sliding window, in memory; a restart forgets them), with
/// an allowance per hour: failed runs ([`MAX_FAILED_RUNS_PER_HOUR`], the default) or
/// audience-version checks ([`MAX_AUDIENCE_CHECKS_PER_HOUR`]).
#[derive(Debug)]
pub struct FailedRuns {
    /// Per peer name: times of its counted events, oldest first, ms since the epoch.
    by_peer: std::collections::HashMap<String, std::collections::VecDeque<i64>>,
    /// Events allowed per peer and hour.
    limit: usize,
}

impl Default for FailedRuns {
    fn default() -> Self {
        FailedRuns::with_limit(MAX_FAILED_RUNS_PER_HOUR)
    }
}

impl FailedRuns {
    const WINDOW_MS: i64 = 3_600_000;

    /// A window allowing `limit` events per peer and hour.
    pub fn with_limit(limit: usize) -> Self {
        FailedRuns {
            by_peer: Default::default(),
            limit,
        }
    }

    fn prune(&mut self, peer: &str, now_ms: i64) -> Option<&mut std::collections::VecDeque<i64>> {
        let times = self.by_peer.get_mut(peer)?;
        while times
            .front()
            .is_some_and(|&t| t <= now_ms - Self::WINDOW_MS)
        {
            times.pop_front();
        }
        Some(times)
    }

    /// Whether `peer` is over its allowance at `now_ms`: the seconds until its oldest counted
    /// failure leaves the window (`Retry-After`, at least 1).
    pub fn check(&mut self, peer: &str, now_ms: i64) -> Option<u64> {
        let limit = self.limit;
        let times = self.prune(peer, now_ms)?;
        if times.len() < limit {
            return None;
        }
        let oldest = *times.front()?;
        let left_ms = oldest + Self::WINDOW_MS - now_ms;
        Some(u64::try_from((left_ms + 999) / 1000).unwrap_or(1).max(1))
    }

    /// Counts a failed run of `peer` at `now_ms`.
    pub fn record(&mut self, peer: &str, now_ms: i64) {
        self.prune(peer, now_ms);
        self.by_peer
            .entry(peer.to_string())
            .or_default()
            .push_back(now_ms);
    }
}

/// What every handler needs.
pub struct NodeState {
    /// This node's party name.
    pub name: String,
    /// Path of the store (opened per request, in a blocking task).
    pub store_path: PathBuf,
    /// The node (keys, configuration).
    pub home: Home,
    /// Bounds the PSI runs answered at once (each holds its messages in memory and keeps the
    /// cores busy), so that concurrent large requests cannot exhaust memory.
    pub run_slots: tokio::sync::Semaphore,
    /// Failed authentications per source, for throttling.
    pub auth_failures: std::sync::Mutex<AuthFailures>,
    /// Bounds the queries this node runs as querier at once (`limits.max_concurrent_queries`);
    /// one more is refused 429 at once.
    pub query_slots: tokio::sync::Semaphore,
    /// Successful API calls not yet written to the audit log.
    pub access: AccessTally,
    /// Failed runs per peer, for throttling run requests.
    pub failed_runs: std::sync::Mutex<FailedRuns>,
    /// Audience-version checks per peer, for throttling them.
    pub audience_checks: std::sync::Mutex<FailedRuns>,
    /// Budget pre-checks per peer, for throttling them.
    pub budget_checks: std::sync::Mutex<FailedRuns>,
    /// Streamed runs open as responder (psi-ca-v1 §10), in memory only.
    pub streams: crate::stream::StreamRuns,
}

impl NodeState {
    /// State for serving `home`.
    pub fn new(home: &Home) -> NodeState {
        NodeState {
            name: home.config.name.clone(),
            store_path: home.store_path(),
            home: home.clone(),
            run_slots: tokio::sync::Semaphore::new(home.config.limits.max_concurrent_runs.max(1)),
            auth_failures: std::sync::Mutex::new(AuthFailures::default()),
            query_slots: tokio::sync::Semaphore::new(
                home.config.limits.max_concurrent_queries.max(1),
            ),
            access: AccessTally::default(),
            failed_runs: std::sync::Mutex::new(FailedRuns::default()),
            audience_checks: std::sync::Mutex::new(FailedRuns::with_limit(
                MAX_AUDIENCE_CHECKS_PER_HOUR,
            )),
            budget_checks: std::sync::Mutex::new(FailedRuns::with_limit(
                MAX_BUDGET_CHECKS_PER_HOUR,
            )),
            streams: crate::stream::StreamRuns::default(),
        }
    }

    /// Writes the `api.access` counts of finished minutes (of every minute with `all`) to the
    /// audit log in one transaction; on failure they stay in memory for the next flush.
    /// Returns how many entries were written.
    pub fn flush_access(&self, all: bool) -> Result<usize> {
        let events = self.access.take(crate::wire::now_ms(), all);
        if events.is_empty() {
            return Ok(0);
        }
        let written = self
            .home
            .store()
            .and_then(|mut s| Ok(s.append_audit_batch(events.clone())?));
        if written.is_err() {
            self.access.restore(events);
        }
        written
    }
}

/// Runs `f` on the blocking pool (the store and opendp are synchronous).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NodeError::new(Code::Internal, format!("task failed: {e}")))?
}

/// A handler's result: the response, or a [`NodeError`] answered as its JSON body.
pub type Answer = std::result::Result<Response, HttpError>;

/// A [`NodeError`] on its way out as an HTTP response (status from its code, JSON body).
#[derive(Debug)]
pub struct HttpError(pub NodeError);

impl From<NodeError> for HttpError {
    fn from(e: NodeError) -> Self {
        HttpError(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let e = self.0;
        if e.code().status().is_server_error() {
            tracing::error!(code = e.code_str(), error = %e, "request failed");
        } else if e.code() == Code::ClockSkew {
            // The operator must fix the clocks: say so in this node's log too.
            tracing::warn!(code = e.code_str(), error = %e, "refused a peer message");
        }
        let retry_after = e
            .details()
            .and_then(|d| d.get("retry_after_s"))
            .and_then(serde_json::Value::as_u64);
        let mut response = (e.status(), axum::Json(e.body())).into_response();
        if let Some(s) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(s),
            );
        }
        response
    }
}

/// Gives every error answer the node's JSON error body, also those no handler wrote: axum's own
/// answers to an unknown path (404), a method the route does not take (405, `Allow` kept), a
/// query string or path that does not parse (400) or a body over the limit (413) are plain text
/// or empty; their text becomes the reason and the status picks the code.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = Code::ALL
        .into_iter()
        .find(|c| c.status() == status)
        .unwrap_or(if status.is_server_error() {
            Code::Internal
        } else {
            Code::BadRequest
        });
    let (mut parts, body) = response.into_parts();
    // axum's texts describe the request, never data; bounded in case a body is not one of them.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let reason = match text.trim() {
        "" => status.canonical_reason().unwrap_or("error").to_lowercase(),
        t => t.to_string(),
    };
    let mut fresh = HttpError(NodeError::new(code, reason)).into_response();
    *fresh.status_mut() = status;
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    fresh.headers_mut().extend(parts.headers);
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_auth_failures_are_throttled_until_the_minute_ends() {
        let mut f = AuthFailures::default();
        let (a, b) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let t0 = 120_000 * 60; // the start of a minute
        for i in 0..MAX_AUTH_FAILURES_PER_MINUTE {
            assert_eq!(f.check(a, t0 + i64::from(i)), None);
            f.record(a, t0 + i64::from(i));
        }
        let first = f.check(a, t0 + 15_500).expect("throttled");
        assert_eq!(first.retry_after_s, 45);
        assert!(first.first);
        assert_eq!(first.count, MAX_AUTH_FAILURES_PER_MINUTE + 1);
        let again = f.check(a, t0 + 59_999).expect("still throttled");
        assert!(!again.first);
        assert_eq!(again.retry_after_s, 1);
        // Another source is not affected; the next minute starts afresh.
        assert_eq!(f.check(b, t0 + 20_000), None);
        assert_eq!(f.check(a, t0 + 60_000), None);
    }

    #[test]
    fn failed_runs_are_throttled_per_peer_for_an_hour() {
        let mut f = FailedRuns::default();
        let t0 = 1_000_000_000;
        for i in 0..MAX_FAILED_RUNS_PER_HOUR as i64 {
            assert_eq!(f.check("acme", t0 + i), None);
            f.record("acme", t0 + i);
        }
        assert_eq!(f.check("acme", t0 + 600_000), Some(3000));
        assert_eq!(f.check("other", t0 + 600_000), None);
        // The oldest failure leaves the window: one more run is allowed.
        assert_eq!(f.check("acme", t0 + 3_600_000), None);
    }
}
