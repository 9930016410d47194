//! `GET /docs`: an API explorer (Swagger UI) on the server's own `/openapi.json`, from which a
//! person can try every route. Everything the page loads is compiled into the binary (the files
//! under `src/http/docs/`, Swagger UI 5.35.0 vendored from npm with its licence: see its README
//! there), so nothing is fetched at build or run time, and the page's Content-Security-Policy lets
//! it load and call nothing but this server.
//!
//! An operational route: no API key and no shedding, as `/openapi.json`. With `--api-key` the page
//! still loads; its calls to the inference routes need the key ("Authorize" in the page).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Scripts, styles and calls from this origin only; Swagger UI's icons are `data:` images in its
/// stylesheet. No framing, no forms posting elsewhere, no `<base>` rewriting.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its bytes, content type and caching policy.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    cache_control: &'static str,
}

/// The page is revalidated every time (it names the assets); the assets may be kept a day.
const PAGE_CACHE: &str = "no-cache";
const ASSET_CACHE: &str = "public, max-age=86400";

static PAGE: Asset = Asset {
    body: include_bytes!("docs/index.html"),
    content_type: "text/html; charset=utf-8",
    cache_control: PAGE_CACHE,
};
static INIT: Asset = Asset {
    body: include_bytes!("docs/docs.js"),
    content_type: "text/javascript; charset=utf-8",
    cache_control: ASSET_CACHE,
};
static BUNDLE: Asset = Asset {
    body: include_bytes!("docs/swagger-ui/swagger-ui-bundle.js"),
    content_type: "text/javascript; charset=utf-8",
    cache_control: ASSET_CACHE,
};
static STYLE: Asset = Asset {
    body: include_bytes!("docs/swagger-ui/swagger-ui.css"),
    content_type: "text/css; charset=utf-8",
    cache_control: ASSET_CACHE,
};
static LICENSE: Asset = Asset {
    body: include_bytes!("docs/swagger-ui/LICENSE"),
    content_type: "text/plain; charset=utf-8",
    cache_control: ASSET_CACHE,
};

impl IntoResponse for &'static Asset {
    fn into_response(self) -> Response {
        let mut response = self.body.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(self.cache_control));
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        response
    }
}

/// The page and its assets, for the operational part of the router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/docs", get(|| async { &PAGE }))
        .route("/docs/docs.js", get(|| async { &INIT }))
        .route("/docs/swagger-ui-bundle.js", get(|| async { &BUNDLE }))
        .route("/docs/swagger-ui.css", get(|| async { &STYLE }))
        .route("/docs/swagger-ui-LICENSE", get(|| async { &LICENSE }))
}
