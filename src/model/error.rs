//! Errors raised while loading a model folder. Each variant renders as one line that names the
//! problem and the file, so a bad deployment fails at start-up with a readable reason.

use std::path::PathBuf;

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("model folder {0} does not exist or is not a directory")]
    NotAFolder(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{file} is missing in model folder {dir}")]
    MissingFile { dir: PathBuf, file: &'static str },
    #[error("no weights in {0}: expected model.safetensors, model.safetensors.index.json or pytorch_model.bin")]
    NoWeights(PathBuf),
    #[error("no tokenizer in {0}: expected tokenizer.json or vocab.txt")]
    NoTokenizer(PathBuf),
    #[error("invalid {path}: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    #[error("cannot read weights {path}: {reason}")]
    BadWeights { path: PathBuf, reason: String },
    #[error("weights do not match config.json: {0}")]
    WeightsMismatch(String),
    #[error("invalid tokenizer {path}: {reason}")]
    BadTokenizer { path: PathBuf, reason: String },
    #[error("unsupported architecture {0:?} (supported model types: bert, distilbert, roberta, xlm-roberta, camembert, deberta-v2, modernbert, mpnet, electra, qwen3)")]
    UnknownArchitecture(String),
    #[error("task {task} cannot be served by this checkpoint: {reason}")]
    TaskNotServable { task: String, reason: String },
    #[error("cannot pick a task: config.json names no architecture; set --task")]
    NoTask,
    #[error("device {device} is not available: {reason}")]
    Device { device: String, reason: String },
    #[error("cannot fetch {model} from the Hugging Face hub: {reason}")]
    Hub { model: String, reason: String },
    #[error("unsupported model options: {0}")]
    Options(String),
}
