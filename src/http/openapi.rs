//! `GET /openapi.json`: the OpenAPI document of the HTTP API. The router collects it from each
//! route's `#[utoipa::path]` and the request and response types themselves (`utoipa-axum`), so a
//! route cannot be served without being described; the errors that the shared layers answer on
//! every inference route (body limits, API key, shedding, timeout) are added here once.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, InfoBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};

use super::error::ErrorBody;
use super::kserve::{is_v2_path, V2ErrorBody};
use super::openai::OpenAiErrorBody;

/// The errors of the layers in front of every inference route.
const LAYER_ERRORS: [(&str, &str); 9] = [
    ("400", "the body is not UTF-8 or not JSON"),
    ("401", "`--api-key` is set and the request has no or a wrong key"),
    ("408", "the body did not arrive within `--body-read-timeout`"),
    ("413", "the body, the input count or the work (tokens) is over a limit"),
    ("415", "not a JSON content type"),
    ("422", "invalid input or parameters (the message names which)"),
    ("499", "the client left before the answer (logged and counted only)"),
    ("503", "overloaded (with `Retry-After`), loading or draining"),
    ("504", "the request took longer than `--request-timeout`"),
];

/// The error body of a path: OpenAI's SDKs read errors in OpenAI's shape on its routes, KServe's
/// clients the protocol's on `/v2`.
fn error_body_name(path: &str) -> std::borrow::Cow<'static, str> {
    if path.starts_with("/v1/") {
        OpenAiErrorBody::name()
    } else if is_v2_path(path) {
        V2ErrorBody::name()
    } else {
        ErrorBody::name()
    }
}

/// Adds the layers' errors to every operation of the inference routes (`inference`; of
/// `model_info`, the API key's 401 only) and the document's own information, then merges the
/// operational routes' document.
pub fn document(mut inference: OpenApi, mut model_info: OpenApi, operational: OpenApi) -> OpenApi {
    for (path, item) in inference.paths.paths.iter_mut() {
        let body = error_body_name(path);
        let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete];
        for operation in operations.into_iter().flatten() {
            add_errors(operation, &body, &LAYER_ERRORS);
            operation.security = Some(api_key_security());
        }
    }
    for (path, item) in model_info.paths.paths.iter_mut() {
        let body = error_body_name(path);
        for operation in [&mut item.get].into_iter().flatten() {
            add_errors(operation, &body, &LAYER_ERRORS[1..2]);
            operation.security = Some(api_key_security());
        }
    }
    inference.merge(model_info);
    inference.merge(operational);
    let components = inference.components.get_or_insert_with(Default::default);
    for (name, schema) in [
        (ErrorBody::name(), ErrorBody::schema()),
        (OpenAiErrorBody::name(), OpenAiErrorBody::schema()),
        (V2ErrorBody::name(), V2ErrorBody::schema()),
    ] {
        components.schemas.entry(name.into_owned()).or_insert(schema);
    }
    // `Authorization: Bearer <key>`: what /docs' "Authorize" sends once a key is entered.
    components.add_security_scheme(
        API_KEY_SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("`--api-key`")).build(),
        ),
    );
    let mut nested = Vec::new();
    OpenAiErrorBody::schemas(&mut nested);
    components.schemas.extend(nested);
    inference.info = InfoBuilder::new()
        .title("pipeserve")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Hugging Face encoder pipelines over HTTP: the Inference API (`/`, `/predict`), \
             text-embeddings-inference's routes, OpenAI's embeddings API and KServe's Open \
             Inference Protocol (v2).",
        ))
        .build();
    inference
}

/// The name of the API key's security scheme in the document.
const API_KEY_SCHEME: &str = "api_key";

/// No key, or the API key: the key is needed only when the server runs with `--api-key`.
fn api_key_security() -> Vec<SecurityRequirement> {
    vec![SecurityRequirement::default(), SecurityRequirement::new(API_KEY_SCHEME, Vec::<String>::new())]
}

fn add_errors(operation: &mut Operation, body: &str, errors: &[(&str, &str)]) {
    for &(status, description) in errors {
        let content = ContentBuilder::new().schema(Some(RefOr::<Schema>::Ref(Ref::from_schema_name(body)))).build();
        let response = ResponseBuilder::new().description(description).content("application/json", content).build();
        operation.responses.responses.entry(status.to_string()).or_insert(response.into());
    }
}
