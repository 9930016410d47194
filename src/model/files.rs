//! Finding the files of a model in the Hugging Face folder layout, fetching them from the hub
//! first when the model is given as a hub id.

use std::path::{Path, PathBuf};

use super::LoadError;

/// The weight files of a checkpoint, in the format they were saved in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightFiles {
    /// One or more safetensors files (several when sharded through `model.safetensors.index.json`).
    Safetensors(Vec<PathBuf>),
    /// A PyTorch pickle (`pytorch_model.bin`).
    Pytorch(PathBuf),
}

/// The tokenizer definition found in the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizerFile {
    /// A fast-tokenizer `tokenizer.json`.
    Json(PathBuf),
    /// A WordPiece `vocab.txt` (classic BERT checkpoints without `tokenizer.json`).
    Vocab(PathBuf),
}

/// Every file the loader reads from a model folder.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub tokenizer: TokenizerFile,
    /// `tokenizer_config.json`, when present (lower-casing for `vocab.txt`, `model_max_length`).
    pub tokenizer_config: Option<PathBuf>,
    pub weights: WeightFiles,
    /// sentence-transformers `1_Pooling/config.json`, when present.
    pub pooling: Option<PathBuf>,
    /// sentence-transformers `modules.json`, when present (tells whether embeddings are normalized).
    pub modules: Option<PathBuf>,
    /// sentence-transformers `sentence_bert_config.json`, when present (`max_seq_length`).
    pub sentence_bert_config: Option<PathBuf>,
    /// sentence-transformers `config_sentence_transformers.json`, when present (`prompts`).
    pub sentence_transformers_config: Option<PathBuf>,
}

impl ModelFiles {
    /// Locates the files of a local model folder.
    pub fn locate(dir: &Path) -> Result<Self, LoadError> {
        if !dir.is_dir() {
            return Err(LoadError::NotAFolder(dir.to_path_buf()));
        }
        // Reading the listing up front turns an unreadable folder into a clear error.
        std::fs::read_dir(dir).map_err(|source| LoadError::Read { path: dir.to_path_buf(), source })?;
        let file = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        let config = file("config.json")
            .ok_or_else(|| LoadError::MissingFile { dir: dir.to_path_buf(), file: "config.json" })?;
        let tokenizer = file("tokenizer.json")
            .map(TokenizerFile::Json)
            .or_else(|| file("vocab.txt").map(TokenizerFile::Vocab))
            .ok_or_else(|| LoadError::NoTokenizer(dir.to_path_buf()))?;
        let weights = if let Some(single) = file("model.safetensors") {
            WeightFiles::Safetensors(vec![single])
        } else if let Some(index) = file("model.safetensors.index.json") {
            WeightFiles::Safetensors(shards_from_index(dir, &index)?)
        } else if let Some(bin) = file("pytorch_model.bin") {
            WeightFiles::Pytorch(bin)
        } else {
            return Err(LoadError::NoWeights(dir.to_path_buf()));
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            tokenizer,
            tokenizer_config: file("tokenizer_config.json"),
            weights,
            pooling: file("1_Pooling/config.json"),
            modules: file("modules.json"),
            sentence_bert_config: file("sentence_bert_config.json"),
            sentence_transformers_config: file("config_sentence_transformers.json"),
        })
    }
}

/// Reads a sharded checkpoint's index and returns its shard files, each once, in a stable order.
fn shards_from_index(dir: &Path, index: &Path) -> Result<Vec<PathBuf>, LoadError> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let parsed: Index = read_json(index)?;
    let mut names: Vec<String> = parsed.weight_map.into_values().collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(LoadError::BadWeights {
                    path: index.to_path_buf(),
                    reason: format!("shard {name} listed in the index is missing"),
                })
            }
        })
        .collect()
}

/// Reads and parses a JSON file, naming the file in the error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|e| LoadError::BadConfig { path: path.to_path_buf(), reason: e.to_string() })
}

/// How a hub id is fetched.
#[derive(Clone, Default)]
pub struct HubOptions {
    /// Branch, tag or commit; `None`: `main`.
    pub revision: Option<String>,
    /// Access token for private and gated repositories.
    pub token: Option<String>,
    /// Only the local hub cache, no network (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
}

impl std::fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubOptions")
            .field("revision", &self.revision)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("offline", &self.offline)
            .finish()
    }
}

/// Resolves `--model`: an existing folder is used as is; anything else is taken as a hub id and
/// downloaded into the local hub cache (only with the `hub` feature and a network).
pub fn resolve(model: &str, hub: &HubOptions) -> Result<PathBuf, LoadError> {
    let path = Path::new(model);
    if path.exists() || model.starts_with('.') || model.starts_with('/') {
        return Ok(path.to_path_buf());
    }
    fetch_from_hub(model, hub)
}

/// Fetches one file of a hub repository into the cache and returns its path.
#[cfg(feature = "hub")]
type FetchFile = Box<dyn Fn(&str) -> Result<PathBuf, String>>;

#[cfg(feature = "hub")]
fn fetch_from_hub(model: &str, hub: &HubOptions) -> Result<PathBuf, LoadError> {
    let hub_err = |reason: String| LoadError::Hub { model: model.to_string(), reason };
    let revision = hub.revision.clone().unwrap_or_else(|| "main".into());
    let repo_id = hf_hub::Repo::with_revision(model.to_string(), hf_hub::RepoType::Model, revision);
    // The cache (`HF_HOME`) and endpoint (`HF_ENDPOINT`) come from hf-hub's own variables; the
    // token from the configuration (`HF_TOKEN`), which hf-hub 0.4 would only read from a file.
    let get: FetchFile = if hub.offline {
        // No network at all: the cache (filled by `--download-only`) or nothing.
        let cache = hf_hub::Cache::from_env().repo(repo_id);
        Box::new(move |file| cache.get(file).ok_or_else(|| format!("{file} is not in the hub cache (offline mode)")))
    } else {
        let mut builder = hf_hub::api::sync::ApiBuilder::from_env().with_progress(false);
        if hub.token.is_some() {
            builder = builder.with_token(hub.token.clone());
        }
        let repo = builder.build().map_err(|e| hub_err(e.to_string()))?.repo(repo_id);
        Box::new(move |file| repo.get(file).map_err(|e| e.to_string()))
    };
    let config = get("config.json").map_err(hub_err)?;
    let optional = [
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "modules.json",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "special_tokens_map.json",
    ];
    for name in optional {
        let _ = get(name);
    }
    let weights_found =
        get("model.safetensors").is_ok() || fetch_sharded(&get).is_ok() || get("pytorch_model.bin").is_ok();
    if !weights_found {
        return Err(hub_err("the repository has no safetensors or pytorch weights".into()));
    }
    Ok(config.parent().map(Path::to_path_buf).unwrap_or_default())
}

#[cfg(feature = "hub")]
fn fetch_sharded(get: &FetchFile) -> Result<(), LoadError> {
    let index =
        get("model.safetensors.index.json").map_err(|reason| LoadError::Hub { model: "index".into(), reason })?;
    let dir = index.parent().map(Path::to_path_buf).unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let parsed: Index = read_json(&index)?;
    let mut shards: Vec<_> = parsed.weight_map.into_values().collect();
    shards.sort();
    shards.dedup();
    for shard in shards {
        if !dir.join(&shard).is_file() {
            get(&shard).map_err(|reason| LoadError::Hub { model: shard.clone(), reason })?;
        }
    }
    Ok(())
}

#[cfg(not(feature = "hub"))]
fn fetch_from_hub(model: &str, _hub: &HubOptions) -> Result<PathBuf, LoadError> {
    Err(LoadError::NotAFolder(PathBuf::from(model)))
}
