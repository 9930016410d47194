//! Property tests for request parsing and validation (the same functions the handlers and the
//! fuzz targets call) and for tokenization: on any input, never a panic, and every rejection is a
//! 4xx whose message names a problem and holds nothing internal.

use crate::common;

use axum::http::{header, HeaderMap, HeaderValue};
use pipeserve::http::api::{EmbedRequest, OpenAiEmbeddingsRequest, PredictRequest};
use pipeserve::http::error::ApiError;
use pipeserve::http::parse::{parse_json, parse_text};
use pipeserve::infer::check_request;
use pipeserve::model::Task;
use pipeserve::pipelines::Params;
use proptest::prelude::*;
use serde_json::{json, Value};

const TASKS: [Task; 4] = [Task::FillMask, Task::FeatureExtraction, Task::TextClassification, Task::TokenClassification];

fn check(result: Result<(), ApiError>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        prop_assert!(e.status().is_client_error(), "{} for {e}", e.status());
        let message = e.to_string();
        prop_assert!(!message.is_empty());
        for leak in ["panicked", ".rs:", "src/", "backtrace"] {
            prop_assert!(!message.contains(leak), "{message}");
        }
    }
    Ok(())
}

/// The checks a handler runs before the service tokenizes anything.
fn validate<T>(texts: &[T], params: &Params, task: Task, max: usize) -> Result<(), ApiError> {
    check_request(texts, params, task, max).map_err(ApiError::from)
}

fn run_all(content_type: Option<&str>, body: &[u8]) -> Result<(), TestCaseError> {
    let mut headers = HeaderMap::new();
    if let Some(ct) = content_type {
        if let Ok(v) = HeaderValue::from_str(ct) {
            headers.insert(header::CONTENT_TYPE, v);
        }
    }
    for task in TASKS {
        check(parse_text(body).and_then(|t| validate(&[t], &Params::default(), task, 8)))?;
        check(
            parse_json::<PredictRequest>(&headers, body)
                .and_then(|r| validate(&r.inputs.into_vec(), &r.parameters, task, 8)),
        )?;
        check(
            parse_json::<EmbedRequest>(&headers, body)
                .and_then(|r| validate(&r.inputs.into_vec(), &Params::default(), task, 8)),
        )?;
        check(
            parse_json::<OpenAiEmbeddingsRequest>(&headers, body)
                .and_then(|r| validate(&r.input.into_vec(), &Params::default(), task, 8)),
        )?;
    }
    Ok(())
}

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "mean", "cls", "max", "none", "simple", "first", "softmax", "sigmoid", "O", "[MASK]"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "top_k",
                    "pooling",
                    "normalize",
                    "truncate",
                    "aggregation_strategy",
                    "ignore_labels",
                    "function_to_apply",
                    "x"
                ])
                .prop_map(String::from),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256),
                                   ct in prop::option::of(prop::sample::select(vec!["application/json", "text/plain", "application/problem+json", "", "APPLICATION/JSON; charset=latin1"]))) {
        run_all(ct, &body)?;
    }

    #[test]
    fn arbitrary_json_requests_never_panic(inputs in json_value(), parameters in json_value(), extra in prop::option::of(json_value())) {
        // One body per route shape, so the bodies get past `deny_unknown_fields` to the values.
        let extra = extra.unwrap_or(Value::Null);
        let bodies = [
            json!({"inputs": inputs, "parameters": parameters}),
            json!({"inputs": inputs, "normalize": extra, "truncate": parameters}),
            json!({"input": inputs, "encoding_format": extra, "model": parameters}),
        ];
        for request in bodies {
            let body = request.to_string();
            run_all(Some("application/json"), body.as_bytes())?;
            // And prefixes of it: truncated bodies are a 400, never a panic.
            for cut in [1, body.len() / 3, body.len() / 2, body.len() - 1] {
                run_all(Some("application/json"), &body.as_bytes()[..cut])?;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Tokenization and the per-task input checks on arbitrary text (a committed tiny model).
    #[test]
    fn arbitrary_text_tokenizes_or_is_a_clear_422(text in "\\PC{0,64}|[\\u{0}-\\u{ffff}]{0,64}", truncate in any::<bool>()) {
        let tokenizer = TOKENIZER.with(|t| t.clone());
        for task in [Task::FeatureExtraction, Task::FillMask] {
            match pipeserve::infer::prepare(&tokenizer, task, &text, truncate) {
                Ok(encoded) => prop_assert!(encoded.len() <= tokenizer.max_len()),
                Err(error) => {
                    let api = ApiError::from(pipeserve::infer::InferError::Input { index: None, error });
                    prop_assert_eq!(api.status().as_u16(), 422, "{}", api);
                }
            }
        }
    }
}

thread_local! {
    static TOKENIZER: std::rc::Rc<pipeserve::tokenize::TextTokenizer> =
        std::rc::Rc::new(common::loaded(&common::load_config("tiny-bert-st")).tokenizer);
}

/// Long texts of words (accents, CJK, punctuation, runs of spaces) that span one to several of the
/// tokenizer's reading pieces.
fn long_text() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec![
        "the",
        "quick",
        "brown",
        "fox",
        "naïve",
        "café",
        "Zürich",
        "東京",
        "tokenization",
        "—",
        "x,",
        "(a)",
        "",
    ]);
    (prop::collection::vec(word, 1..9000), prop::sample::select(vec![" ", "  ", "\n", " \t "]))
        .prop_map(|(words, sep)| words.join(sep))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Cutting from either side gives the tokens (ids and character offsets) that the whole text's
    /// untruncated encoding has at that end, however many pieces the text is read in; refusing
    /// names the limit.
    #[test]
    fn truncation_keeps_the_whole_texts_tokens_at_either_end(text in long_text()) {
        use pipeserve::tokenize::{Truncation, TruncationDirection};

        let tokenizer = TOKENIZER.with(|t| t.clone());
        prop_assume!(!text.trim().is_empty());
        let whole = tokenizer.tokens(&text, false).unwrap();
        // Byte offsets of the whole text's tokens as character offsets (what `Encoded` holds).
        let chars_at: std::collections::HashMap<usize, usize> =
            text.char_indices().map(|(c, _)| c).chain([text.len()]).enumerate().map(|(i, b)| (b, i)).collect();
        let whole: Vec<(u32, (usize, usize))> = whole
            .iter()
            .map(|t| {
                let (a, b) = t.byte_offsets.unwrap();
                (t.id, (chars_at[&a], chars_at[&b]))
            })
            .collect();
        let room = tokenizer.max_len() - 2;
        for direction in [TruncationDirection::Right, TruncationDirection::Left] {
            let encoded = tokenizer.encode(&text, Truncation::Cut(direction)).unwrap();
            let kept: Vec<(u32, (usize, usize))> = encoded.ids[1..encoded.len() - 1]
                .iter()
                .copied()
                .zip(encoded.offsets[1..encoded.len() - 1].iter().copied())
                .collect();
            let expected = match direction {
                _ if whole.len() <= room => &whole[..],
                TruncationDirection::Right => &whole[..room],
                TruncationDirection::Left => &whole[whole.len() - room..],
            };
            prop_assert_eq!(encoded.truncated, whole.len() > room);
            prop_assert!(kept == expected, "{:?}: {} tokens kept, {} expected", direction, kept.len(), expected.len());
            prop_assert!(encoded.special[0] && encoded.special[encoded.len() - 1]);
        }
        let refused = tokenizer.encode(&text, Truncation::Refuse);
        prop_assert_eq!(refused.is_err(), whole.len() > room);
        if let Err(error) = refused {
            let max = tokenizer.max_len();
            prop_assert!(error.to_string().contains(&format!("limit of {max}")), "{}", error);
        }
    }
}
