//! Shared helpers for the integration tests: model folders, the in-process inference service,
//! tolerant JSON comparison; `server` runs the binary, `load` drives closed-loop clients.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use pipeserve::config::Config;
use pipeserve::infer::{Infer, InferRequest, InferSettings, Inferred};
use pipeserve::load::{LoadConfig, Loaded};
use pipeserve::model::files::HubOptions;
use pipeserve::model::{DTypeSpec, DeviceSpec, Task};
use pipeserve::pipelines::{Output, Params};
use pipeserve::telemetry::Metrics;
use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A model folder: fetched/generated ones live in `models/` (scripts/fetch_models.py), tiny
/// committed ones in `tests/fixtures/models/`.
pub fn model_dir(name: &str) -> PathBuf {
    let fetched = root().join("models").join(name);
    if fetched.is_dir() {
        return fetched;
    }
    let committed = root().join("tests/fixtures/models").join(name);
    assert!(
        committed.is_dir(),
        "model {name} is missing: run `python3 scripts/fetch_models.py` first (the README's test command does)"
    );
    committed
}

/// About `n` tokens of ordinary words for the MiniLM tokenizer.
pub fn words(n: usize) -> String {
    (0..n).map(|i| ["serving", "encoder", "models", "batch", "queue"][i % 5]).collect::<Vec<_>>().join(" ")
}

/// A writable copy of a model folder (its files, not its subfolders), for tests that break it.
pub fn copy_of(model: &str) -> tempfile::TempDir {
    let src = model_dir(model);
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    dir
}

pub fn load_config(name: &str) -> LoadConfig {
    LoadConfig {
        model: model_dir(name).to_string_lossy().into_owned(),
        hub: HubOptions::default(),
        task: None,
        device: DeviceSpec::Cpu,
        dtype: DTypeSpec::F32,
        max_input_tokens: None,
        ..LoadConfig::default()
    }
}

pub fn loaded(config: &LoadConfig) -> Loaded {
    pipeserve::load::load(config).unwrap_or_else(|e| panic!("cannot load {}: {e}", config.model))
}

/// The service settings of a server started with default flags.
pub fn default_settings() -> InferSettings {
    Config::try_parse_from(["pipeserve", "--model", "unused"]).unwrap().infer()
}

/// The inference service the server builds, in process (needs a tokio runtime).
pub fn service(name: &str) -> Infer {
    service_from(&load_config(name))
}

pub fn service_from(config: &LoadConfig) -> Infer {
    let (infer, _backend) = Infer::start(loaded(config), default_settings(), Arc::new(Metrics::new())).unwrap();
    infer
}

/// [`service`] with the settings a server started with `flags` would use.
pub fn service_with_flags(name: &str, flags: &[&str]) -> Infer {
    let settings = Config::try_parse_from(["pipeserve", "--model", "unused"].iter().chain(flags)).unwrap().infer();
    let (infer, _backend) = Infer::start(loaded(&load_config(name)), settings, Arc::new(Metrics::new())).unwrap();
    infer
}

pub fn service_with(name: &str, task: Option<Task>, dtype: DTypeSpec) -> Infer {
    service_from(&LoadConfig { task, dtype, ..load_config(name) })
}

/// One call through the service, as a handler makes it.
pub async fn call(infer: &Infer, texts: &[&str], params: &Params) -> Inferred {
    let inputs = texts.iter().map(|t| t.to_string()).collect();
    infer.run(InferRequest::new(inputs, params.clone())).await.unwrap_or_else(|e| panic!("{texts:?}: {e}"))
}

/// The outputs of [`call`].
pub async fn run(infer: &Infer, texts: &[&str], params: &Params) -> Vec<Output> {
    call(infer, texts, params).await.outputs
}

/// Compares two JSON values: numbers within `tol`, everything else exactly. Returns the first
/// difference with its path.
pub fn diff(expected: &Value, actual: &Value, tol: f64, path: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (e.as_f64().unwrap(), a.as_f64().unwrap());
            ((e - a).abs() > tol).then(|| format!("{path}: expected {e}, got {a} (diff {})", (e - a).abs()))
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Some(format!("{path}: expected {} items, got {}", e.len(), a.len()));
            }
            e.iter().zip(a).enumerate().find_map(|(i, (e, a))| diff(e, a, tol, &format!("{path}[{i}]")))
        }
        (Value::Object(e), Value::Object(a)) => {
            let mut ek: Vec<_> = e.keys().collect();
            let mut ak: Vec<_> = a.keys().collect();
            ek.sort();
            ak.sort();
            if ek != ak {
                return Some(format!("{path}: expected keys {ek:?}, got {ak:?}"));
            }
            e.iter().find_map(|(k, ev)| diff(ev, &a[k], tol, &format!("{path}.{k}")))
        }
        _ => (expected != actual).then(|| format!("{path}: expected {expected}, got {actual}")),
    }
}

/// Largest absolute difference between the numbers of two same-shaped JSON values.
pub fn max_abs_diff(a: &Value, b: &Value) -> f64 {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => (x.as_f64().unwrap() - y.as_f64().unwrap()).abs(),
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "shapes differ");
            x.iter().zip(y).map(|(x, y)| max_abs_diff(x, y)).fold(0.0, f64::max)
        }
        (Value::Object(x), Value::Object(y)) => x.iter().map(|(k, v)| max_abs_diff(v, &y[k])).fold(0.0, f64::max),
        _ => {
            assert_eq!(a, b, "non-numeric values differ");
            0.0
        }
    }
}
pub mod hub;
pub mod load;
pub mod server;
