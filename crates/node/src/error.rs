//! The node's one error type. Every failure carries a stable machine-readable [`Code`]; each code
//! belongs to one [`Fault`] (who has to act) and maps to one HTTP status. The codes are the
//! contract of `protocols/node-api-v1.md` (people's API) and `protocols/node-wire-v1.md` (peers).

use http::StatusCode;
use serde::Serialize;
use tandem_store::StoreError;

/// Who is at fault, i.e. who has to change something for the call to succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The one who sent this request: an analyst, admin or auditor on `/api/v1/…`, the paired
    /// node on a peer endpoint. Never a 5xx.
    Caller,
    /// The paired node, when this node called it (unreachable, refused, answered badly).
    Peer,
    /// Data this node holds or was handed (a CSV, a stored document, the audit log).
    Data,
    /// This node itself (I/O, database, a bug).
    Node,
}

/// Stable error codes (the `code` field of every error body). Adding a code is compatible;
/// renaming one is not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// 400: a header, body or parameter is malformed.
    BadRequest,
    /// 401: no, unknown or revoked bearer token.
    Unauthenticated,
    /// 403: the token's role may not do this.
    Forbidden,
    /// 404: no such agreement, token, run or analysis, or no such route.
    NotFound,
    /// 405: the route exists but not with this method (`Allow` lists the methods it takes).
    MethodNotAllowed,
    /// 409: the change conflicts with the current state (e.g. a token name in use).
    Conflict,
    /// 413: a body over this node's `max_message_bytes`; on the peer endpoint also a query (or
    /// the reply to it) over the responder's limit, without any number.
    TooLarge,
    /// 400: peer endpoints: the PSI query is malformed (framing, binding, sizes, a point); the
    /// detail stays in the responder's log.
    Malformed,
    /// 422: well-formed, but not a valid value (a role, a token name, an identifier kind).
    Invalid,
    /// 422: the query is not allowed by the agreement (column, join key, ε over the per-query
    /// cap, agreement not active or expired).
    InvalidQuery,
    /// 403: the agreement does not allow this peer request (peer endpoints).
    Refused,
    /// 403: the privacy budget cannot afford the run; nothing was charged.
    BudgetExceeded,
    /// 401: a peer message's envelope or ledger head does not verify.
    BadSignature,
    /// 401: a peer message's timestamp is outside the allowed window around the receiver's
    /// clock: the two nodes' clocks differ (`details`: both clocks and the window, in ms).
    ClockSkew,
    /// 409: the run id was used before.
    Replay,
    /// 429: too many failed authentications from this source this minute (`Retry-After`).
    TooManyRequests,
    /// 502: the peer could not be reached; nothing was sent to it.
    PeerUnreachable,
    /// 502: the call to the peer failed after the request was (perhaps) sent.
    PeerFailed,
    /// 502: the peer's answer does not verify or parse.
    BadPeerAnswer,
    /// 403 or 502: the peer refused; the body's `code` is then the peer's own code.
    PeerRefused,
    /// 422: the data handed to the node does not parse (CSV row, identifier, agreement file).
    BadData,
    /// 500: data stored on this node is inconsistent (store, audit log).
    CorruptData,
    /// 503: the node is shutting down.
    Unavailable,
    /// 503: the node's database stayed locked by other writers for the whole busy timeout;
    /// nothing was done, retry after `Retry-After` seconds (`details.retry_after_s`).
    Busy,
    /// 500: this node failed (I/O, database, a bug).
    Internal,
}

impl Code {
    /// Every code, in documentation order.
    pub const ALL: [Code; 25] = [
        Code::BadRequest,
        Code::Unauthenticated,
        Code::Forbidden,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::Conflict,
        Code::TooLarge,
        Code::Malformed,
        Code::Invalid,
        Code::InvalidQuery,
        Code::Refused,
        Code::BudgetExceeded,
        Code::BadSignature,
        Code::ClockSkew,
        Code::Replay,
        Code::TooManyRequests,
        Code::PeerUnreachable,
        Code::PeerFailed,
        Code::BadPeerAnswer,
        Code::PeerRefused,
        Code::BadData,
        Code::CorruptData,
        Code::Unavailable,
        Code::Busy,
        Code::Internal,
    ];

    /// The code as it appears in error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadRequest => "bad_request",
            Code::Unauthenticated => "unauthenticated",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::Conflict => "conflict",
            Code::TooLarge => "too_large",
            Code::Malformed => "malformed",
            Code::Invalid => "invalid",
            Code::InvalidQuery => "invalid_query",
            Code::Refused => "refused",
            Code::BudgetExceeded => "budget_exceeded",
            Code::BadSignature => "bad_signature",
            Code::ClockSkew => "clock_skew",
            Code::Replay => "replay",
            Code::TooManyRequests => "too_many_requests",
            Code::PeerUnreachable => "peer_unreachable",
            Code::PeerFailed => "peer_failed",
            Code::BadPeerAnswer => "bad_peer_answer",
            Code::PeerRefused => "peer_refused",
            Code::BadData => "bad_data",
            Code::CorruptData => "corrupt_data",
            Code::Unavailable => "unavailable",
            Code::Busy => "busy",
            Code::Internal => "internal",
        }
    }

    /// Who is at fault.
    pub fn fault(self) -> Fault {
        match self {
            Code::BadRequest
            | Code::Unauthenticated
            | Code::Forbidden
            | Code::NotFound
            | Code::MethodNotAllowed
            | Code::Conflict
            | Code::TooLarge
            | Code::Malformed
            | Code::Invalid
            | Code::InvalidQuery
            | Code::Refused
            | Code::BudgetExceeded
            | Code::BadSignature
            | Code::ClockSkew
            | Code::Replay
            | Code::TooManyRequests => Fault::Caller,
            Code::PeerUnreachable | Code::PeerFailed | Code::BadPeerAnswer | Code::PeerRefused => {
                Fault::Peer
            }
            Code::BadData | Code::CorruptData => Fault::Data,
            Code::Unavailable | Code::Busy | Code::Internal => Fault::Node,
        }
    }

    /// The HTTP status (for [`Code::PeerRefused`]: 403, or 502 when the peer did not answer
    /// with a refusal; see [`NodeError::status`]).
    pub fn status(self) -> StatusCode {
        match self {
            Code::BadRequest | Code::Malformed => StatusCode::BAD_REQUEST,
            Code::Unauthenticated | Code::BadSignature | Code::ClockSkew => {
                StatusCode::UNAUTHORIZED
            }
            Code::Forbidden | Code::Refused | Code::BudgetExceeded | Code::PeerRefused => {
                StatusCode::FORBIDDEN
            }
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::Conflict | Code::Replay => StatusCode::CONFLICT,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::Invalid | Code::InvalidQuery | Code::BadData => StatusCode::UNPROCESSABLE_ENTITY,
            Code::PeerUnreachable | Code::PeerFailed | Code::BadPeerAnswer => {
                StatusCode::BAD_GATEWAY
            }
            Code::Unavailable | Code::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Code::CorruptData | Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What the peer answered when it refused a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAnswer {
    /// The peer's party name.
    pub peer: String,
    /// Its HTTP status.
    pub status: u16,
    /// Its `code`, passed through to this node's caller (`None`: the body had none).
    pub code: Option<String>,
}

/// The JSON body of every error answer (`protocols/node-api-v1.md`, Errors).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The reason, for people.
    pub error: String,
    /// The stable code ([`Code::as_str`]; a peer's own code when the peer refused).
    #[schema(schema_with = crate::openapi::error_code)]
    pub code: String,
    /// Who has to act.
    pub fault: Fault,
    /// Machine-readable details, where the code's documentation says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// The peer that refused, for a passed-through refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerRef>,
}

/// The peer named in an [`ErrorBody`].
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PeerRef {
    /// The peer's party name.
    pub name: String,
    /// The HTTP status it answered.
    pub status: u16,
}

/// An error of the node: a [`Code`], a reason for people, and structured details.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    code: Code,
    message: String,
    details: Option<serde_json::Value>,
    peer: Option<PeerAnswer>,
}

impl NodeError {
    /// An error with its code and reason.
    pub fn new(code: Code, message: impl std::fmt::Display) -> NodeError {
        NodeError {
            code,
            message: message.to_string(),
            details: None,
            peer: None,
        }
    }

    /// Adds machine-readable details (the `details` field of the body).
    pub fn with_details(mut self, details: serde_json::Value) -> NodeError {
        self.details = Some(details);
        self
    }

    /// Prefixes the reason with some context.
    pub fn context(mut self, context: impl std::fmt::Display) -> NodeError {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Appends a note to the reason (`"<reason>; <note>"`).
    pub fn note(mut self, note: impl std::fmt::Display) -> NodeError {
        self.message = format!("{}; {note}", self.message);
        self
    }

    /// Adds `value` under `key` to the details (made an object if there were none).
    pub fn with_detail(mut self, key: &str, value: serde_json::Value) -> NodeError {
        match &mut self.details {
            Some(serde_json::Value::Object(map)) => {
                map.insert(key.to_string(), value);
            }
            _ => self.details = Some(serde_json::json!({ key: value })),
        }
        self
    }

    /// A refusal by the peer, its code passed through.
    pub fn peer_refused(answer: PeerAnswer, message: impl std::fmt::Display) -> NodeError {
        NodeError {
            peer: Some(answer),
            ..NodeError::new(Code::PeerRefused, message)
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl std::fmt::Display) -> NodeError {
        NodeError::new(Code::BadRequest, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl std::fmt::Display) -> NodeError {
        NodeError::new(Code::NotFound, message)
    }

    /// 422 `invalid_query`.
    pub fn invalid_query(message: impl std::fmt::Display) -> NodeError {
        NodeError::new(Code::InvalidQuery, message)
    }

    /// 403 `refused`.
    pub fn refused(message: impl std::fmt::Display) -> NodeError {
        NodeError::new(Code::Refused, message)
    }

    /// 401 `bad_signature`.
    pub fn bad_signature(message: impl std::fmt::Display) -> NodeError {
        NodeError::new(Code::BadSignature, message)
    }

    /// 502 `bad_peer_answer`.
    pub fn bad_peer_answer(message: impl std::fmt::Display) -> NodeError {
        NodeError::new(Code::BadPeerAnswer, message)
    }

    /// 422 `bad_data`.
    pub fn bad_data(message: impl std::fmt::Display) -> NodeError {
        NodeError::new(Code::BadData, message)
    }

    /// 500 `internal`.
    pub fn internal(message: impl std::fmt::Display) -> NodeError {
        NodeError::new(Code::Internal, message)
    }

    /// The code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The code as sent: the peer's own code for a passed-through refusal, else [`Code::as_str`].
    pub fn code_str(&self) -> &str {
        match &self.peer {
            Some(PeerAnswer { code: Some(c), .. }) => c,
            _ => self.code.as_str(),
        }
    }

    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        self.code.fault()
    }

    /// The reason, for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Structured details, if any.
    pub fn details(&self) -> Option<&serde_json::Value> {
        self.details.as_ref()
    }

    /// The peer's answer, for a passed-through refusal.
    pub fn peer_answer(&self) -> Option<&PeerAnswer> {
        self.peer.as_ref()
    }

    /// The HTTP status: [`Code::status`], except that a peer's refusal is 403 only when the peer
    /// itself answered 403 (a refusal under the agreement or its budget), else 502.
    pub fn status(&self) -> StatusCode {
        match &self.peer {
            Some(p) if p.status != 403 => StatusCode::BAD_GATEWAY,
            _ => self.code.status(),
        }
    }

    /// The JSON error body: `{"error", "code", "fault"[, "details"][, "peer"]}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!(ErrorBody {
            error: self.message.clone(),
            code: self.code_str().to_string(),
            fault: self.fault(),
            details: self.details.clone(),
            peer: self.peer.as_ref().map(|p| PeerRef {
                name: p.peer.clone(),
                status: p.status,
            }),
        })
    }
}

/// Seconds a caller answered [`Code::Busy`] is asked to wait (`Retry-After`).
pub const BUSY_RETRY_AFTER_S: u64 = 1;

impl From<StoreError> for NodeError {
    fn from(e: StoreError) -> Self {
        if e.is_busy() {
            // Never show SQLite's "database is locked" to a caller: say what to do.
            tracing::warn!(error = %e, "the store stayed locked for the whole busy timeout");
            return NodeError::new(
                Code::Busy,
                format!(
                    "the node is busy (other writes held its database for the whole busy timeout); nothing was done, retry in {BUSY_RETRY_AFTER_S} s"
                ),
            )
            .with_details(serde_json::json!({ "retry_after_s": BUSY_RETRY_AFTER_S }));
        }
        let code = match &e {
            StoreError::BudgetExceeded { .. } => Code::BudgetExceeded,
            StoreError::Replay { .. } => Code::Replay,
            StoreError::AgreementNotActive { .. } => Code::Refused,
            StoreError::NotFound(_) => Code::NotFound,
            StoreError::Conflict(_) => Code::Conflict,
            StoreError::Invalid(_) => Code::Invalid,
            StoreError::Import { .. } => Code::BadData,
            StoreError::Corrupt(_) | StoreError::Audit(_) => Code::CorruptData,
            StoreError::Sqlite(_) | StoreError::Io { .. } => Code::Internal,
        };
        let details = match &e {
            StoreError::BudgetExceeded {
                spent,
                cost,
                cap,
                what,
                account,
                ..
            } => Some(serde_json::json!({
                "budget": what, "cap": cap, "spent": spent, "left": (cap - spent).max(0.0), "cost": cost,
                "account": account,
            })),
            _ => None,
        };
        let err = NodeError::new(code, &e);
        match details {
            Some(d) => err.with_details(d),
            None => err,
        }
    }
}

impl From<tandem_agreement::AgreementError> for NodeError {
    fn from(e: tandem_agreement::AgreementError) -> Self {
        use tandem_agreement::AgreementError as A;
        let code = match &e {
            A::Invalid(_) | A::Parse(_) => Code::BadData,
            A::BadSignature { .. } => Code::BadSignature,
            A::NotSigned { .. } | A::Expired { .. } => Code::Refused,
            A::UnknownParty(_) | A::UnknownColumn { .. } => Code::InvalidQuery,
        };
        NodeError::new(code, e)
    }
}

impl From<tandem_psi::PsiError> for NodeError {
    fn from(e: tandem_psi::PsiError) -> Self {
        NodeError::bad_request(format!("psi-ca-v1: {e}"))
    }
}

impl From<tandem_dp::DpError> for NodeError {
    fn from(e: tandem_dp::DpError) -> Self {
        match e {
            tandem_dp::DpError::InvalidParameter(_) => NodeError::invalid_query(e),
            tandem_dp::DpError::OpenDp(_) => NodeError::internal(e),
        }
    }
}

impl From<serde_json::Error> for NodeError {
    /// JSON this node (de)serialises itself; a peer's or caller's JSON is mapped at the call.
    fn from(e: serde_json::Error) -> Self {
        NodeError::internal(format!("JSON: {e}"))
    }
}

impl From<std::io::Error> for NodeError {
    fn from(e: std::io::Error) -> Self {
        NodeError::internal(e)
    }
}

/// The node's result type.
pub type Result<T, E = NodeError> = std::result::Result<T, E>;

/// Gives any failure a [`Code`] and a context: `fs::read(p).or_code(Code::Internal, || …)`.
pub trait OrCode<T> {
    /// The error (or absence) as a [`NodeError`] with `code` and the reason `context()`
    /// (followed by the underlying error, if any).
    fn or_code(self, code: Code, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::fmt::Display> OrCode<T> for std::result::Result<T, E> {
    fn or_code(self, code: Code, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| NodeError::new(code, format!("{}: {e}", context())))
    }
}

impl<T> OrCode<T> for Option<T> {
    fn or_code(self, code: Code, context: impl FnOnce() -> String) -> Result<T> {
        self.ok_or_else(|| NodeError::new(code, context()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_no_caller_fault_is_a_5xx() {
        let mut names: Vec<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
        for c in Code::ALL {
            if c.fault() == Fault::Caller {
                assert!(c.status().is_client_error(), "{c:?}");
            }
        }
    }

    #[test]
    fn every_code_is_documented() {
        let doc = include_str!("../../../protocols/node-api-v1.md");
        for c in Code::ALL {
            assert!(doc.contains(&format!("`{}`", c.as_str())), "{c:?}");
        }
    }

    #[test]
    fn caller_faults_from_the_store() {
        let e = NodeError::from(StoreError::Invalid("role \"root\"".into()));
        assert_eq!(
            (e.status(), e.code_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
        );
        let e = NodeError::from(StoreError::Conflict("token exists".into()));
        assert_eq!(
            (e.status(), e.fault()),
            (StatusCode::CONFLICT, Fault::Caller)
        );
        let e = NodeError::from(StoreError::NotFound("active token \"x\"".into()));
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        let e = NodeError::from(StoreError::BudgetExceeded {
            spent: 9.5,
            cost: 1.0,
            cap: 10.0,
            what: "epsilon",
            zcdp: None,
            account: None,
        });
        assert_eq!(
            (e.status(), e.code_str()),
            (StatusCode::FORBIDDEN, "budget_exceeded")
        );
        let d = e.details().expect("details");
        assert_eq!(
            (d["cap"].as_f64(), d["left"].as_f64()),
            (Some(10.0), Some(0.5))
        );
    }

    #[test]
    fn a_peer_refusal_passes_its_code_through() {
        let answer = PeerAnswer {
            peer: "shopx".into(),
            status: 403,
            code: Some("budget_exceeded".into()),
        };
        let e = NodeError::peer_refused(answer.clone(), "refused by shopx");
        assert_eq!(
            (e.status(), e.code_str()),
            (StatusCode::FORBIDDEN, "budget_exceeded")
        );
        assert_eq!(e.fault(), Fault::Peer);
        assert_eq!(e.body()["peer"]["name"], "shopx");
        let e = NodeError::peer_refused(
            PeerAnswer {
                status: 500,
                code: None,
                ..answer
            },
            "shopx failed",
        );
        assert_eq!(
            (e.status(), e.code_str()),
            (StatusCode::BAD_GATEWAY, "peer_refused")
        );
    }

    #[test]
    fn data_and_node_faults() {
        let e = NodeError::from(StoreError::Corrupt("bad row".into()));
        assert_eq!(
            (e.fault(), e.status()),
            (Fault::Data, StatusCode::INTERNAL_SERVER_ERROR)
        );
        let e = NodeError::bad_data("line 3: not an email");
        assert_eq!(
            (e.fault(), e.status()),
            (Fault::Data, StatusCode::UNPROCESSABLE_ENTITY)
        );
        let e = NodeError::from(std::io::Error::other("disk full"));
        assert_eq!((e.fault(), e.code_str()), (Fault::Node, "internal"));
    }
}
