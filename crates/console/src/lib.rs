//! Tandem's web console: a few static files (HTML, CSS, JavaScript, no framework, no CDN)
//! compiled into the binary with `include_str!` and served under `/console/`.
//!
//! The console holds no server-side logic of its own: the browser keeps the analyst's bearer
//! token in `sessionStorage` and calls the node's JSON API (`/api/v1/…`) with it, so it can do
//! exactly what the token's role may do through the API and nothing more. The charts (estimates
//! with their 95% intervals) are SVG drawn by `app.js`; there is no third-party code.
//!
//! Every response carries a strict `Content-Security-Policy` (only same-origin scripts, styles
//! and API calls; no inline script), `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: no-referrer`.

#![forbid(unsafe_code)]

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// Path prefix the console is served under.
pub const PREFIX: &str = "/console/";

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const ANALYSES_JS: &str = include_str!("../assets/analyses.js");
const CONSOLE_CSS: &str = include_str!("../assets/console.css");

/// Same-origin only; `data:` images for the favicon; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's routes: `GET /console` (redirect), `GET /console/` (the page) and its
/// assets `GET /console/{app.js, analyses.js, console.css}`. Generic over the state so that
/// it merges into the node's router (`Router<Arc<NodeState>>`) as it is.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent(PREFIX) }))
        .route(
            "/console/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/console/analyses.js",
            get(|| async { asset("text/javascript; charset=utf-8", ANALYSES_JS) }),
        )
        .route(
            "/console/console.css",
            get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }),
        )
}

/// One embedded file with its content type and the security headers.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Small files that change with the binary: revalidate rather than cache stale code.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_path(path: &str) -> Response {
        router::<()>()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    #[tokio::test]
    async fn serves_every_asset_with_its_type_and_policy() {
        for (path, ty, body) in [
            ("/console/", "text/html", INDEX_HTML),
            ("/console/app.js", "text/javascript", APP_JS),
            ("/console/analyses.js", "text/javascript", ANALYSES_JS),
            ("/console/console.css", "text/css", CONSOLE_CSS),
        ] {
            let resp = get_path(path).await;
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let h = resp.headers();
            assert!(
                h[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap_or("")
                    .starts_with(ty)
            );
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            let bytes = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(bytes, body.as_bytes(), "{path}");
        }
    }

    #[tokio::test]
    async fn bare_prefix_redirects_and_unknown_files_are_not_found() {
        let resp = get_path("/console").await;
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(resp.headers()[header::LOCATION], PREFIX);
        assert_eq!(
            get_path("/console/nope.js").await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn page_loads_only_embedded_same_origin_files() {
        // No CDN, no inline script: every script and stylesheet the page names is one we serve.
        for needle in ["http://", "https://", "<script>", "style="] {
            assert!(!INDEX_HTML.contains(needle), "index.html contains {needle}");
        }
        for file in ["app.js", "analyses.js", "console.css"] {
            assert!(INDEX_HTML.contains(file), "index.html does not load {file}");
        }
    }
}
