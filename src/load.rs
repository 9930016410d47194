//! The loader: reads a model folder (fetching it from the hub first when given a hub id) and
//! returns the model, its tokenizer and the pipeline metadata as values. Every file is read here;
//! the tokenizer and the pipelines receive parsed settings and never touch the filesystem.

use std::path::Path;

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::model::files::{self, read_json, HubOptions, ModelFiles, TokenizerFile};
use crate::model::gemm::{GemmChoice, Quantize};
use crate::model::{AnswerTokens, DTypeSpec, DeviceSpec, LoadError, Model, ModelMeta, ModelOptions, Task};
use crate::pipelines::{
    DenseActivation, DenseModule, ModuleEntry, PipelineInfo, Pooling, PoolingConfig, PoolingDefaults,
    SentenceBertConfig, SentenceTransformersConfig, SpladeConfig,
};
use crate::tokenize::{AnswerPrompt, TextTokenizer, TokenizerSettings};

/// What to load and where.
#[derive(Debug, Clone, Default)]
pub struct LoadConfig {
    /// A local folder in the Hugging Face layout, or a hub id (fetched when the `hub` feature is on).
    pub model: String,
    /// How a hub id is fetched (revision, token).
    pub hub: HubOptions,
    /// The pipeline; `None` takes it from `config.json`.
    pub task: Option<Task>,
    pub device: DeviceSpec,
    /// Further GPUs (`--device cuda:0,cuda:1`): each gets its own copy of the weights.
    pub more_devices: Vec<DeviceSpec>,
    pub dtype: DTypeSpec,
    /// The GEMM library of the encoder's linear layers on CPU (`--gemm`).
    pub gemm: GemmChoice,
    /// int8 linear layers (`--quantize`).
    pub quantize: Quantize,
    /// A lower input limit than the model's own, in tokens.
    pub max_input_tokens: Option<usize>,
    /// The pooling instead of the model's own (`--pooling`); `splade` serves a masked-LM's
    /// sparse embeddings.
    pub pooling: Option<Pooling>,
    /// A yes/no reranker's instruction (`None`: its model card's).
    pub rerank_instruction: Option<String>,
}

/// A loaded model with everything the inference service needs around it.
pub struct Loaded {
    pub model: Model,
    /// The same model on each of `more_devices`, in order.
    pub replicas: Vec<Model>,
    pub tokenizer: TextTokenizer,
    pub info: PipelineInfo,
    pub meta: ModelMeta,
}

/// Resolves the model folder (downloading a hub id into the hub cache) without loading it.
pub fn fetch(config: &LoadConfig) -> Result<std::path::PathBuf, LoadError> {
    files::resolve(&config.model, &config.hub)
}

/// Loads the model, its tokenizer and the pipeline metadata.
pub fn load(config: &LoadConfig) -> Result<Loaded, LoadError> {
    let dir = fetch(config)?;
    let files = ModelFiles::locate(&dir)?;
    let pooling_config: Option<PoolingConfig> = files.pooling.as_deref().map(read_json).transpose()?;
    let modules: Option<Vec<ModuleEntry>> = files.modules.as_deref().map(read_json).transpose()?;
    let mut pooling = PoolingDefaults::from_configs(pooling_config.as_ref(), modules.as_deref())
        .map_err(|e| LoadError::BadConfig { path: files.pooling.clone().unwrap_or_default(), reason: e.to_string() })?;
    if let Some(splade) = modules.iter().flatten().find(|m| m.kind.ends_with("SpladePooling")) {
        let path = dir.join(&splade.path).join("config.json");
        if path.is_file() {
            let splade: SpladeConfig = read_json(&path)?;
            splade.check().map_err(|reason| LoadError::BadConfig { path, reason })?;
        }
    }
    if let Some(p) = config.pooling {
        if p == Pooling::None {
            return Err(LoadError::Options(
                "--pooling none: pooling makes one vector per input; leave it unset".into(),
            ));
        }
        pooling.pooling = p;
    }
    let splade = pooling.pooling == Pooling::Splade;
    let settings: TokenizerSettings = match &files.tokenizer_config {
        Some(path) => read_json(path)?,
        None => TokenizerSettings::default(),
    };
    let raw_tokenizer = read_tokenizer(&files.tokenizer, settings.do_lower_case.unwrap_or(true))?;
    let answers = match (raw_tokenizer.token_to_id("yes"), raw_tokenizer.token_to_id("no")) {
        (Some(yes), Some(no)) => Some(AnswerTokens { yes, no }),
        _ => None,
    };
    let options_on = |device| ModelOptions {
        device,
        dtype: config.dtype,
        gemm: config.gemm,
        quantize: config.quantize,
        splade,
        answers,
    };
    // A sentence-transformers folder is an embedding model whatever head its config names
    // (all-mpnet-base-v2 says MPNetForMaskedLM and ships no masked-LM head).
    let task = config.task.or((files.modules.is_some() && !splade).then_some(Task::FeatureExtraction));
    let (mut model, meta) = Model::load_with_options(&files, task, &options_on(config.device))?;
    let mut replicas = config
        .more_devices
        .iter()
        .map(|&device| Model::load_with_options(&files, task, &options_on(device)).map(|(m, _)| m))
        .collect::<Result<Vec<_>, _>>()?;
    // sentence-transformers cuts every input at `max_seq_length` (all-MiniLM-L6-v2: 256, below the
    // model's 512 positions); serving more would answer with a vector it never produces.
    let sentence_bert: SentenceBertConfig =
        files.sentence_bert_config.as_deref().map(read_json).transpose()?.unwrap_or_default();
    let max_positions =
        [Some(meta.max_positions), sentence_bert.max_seq_length.filter(|&m| m > 0), config.max_input_tokens]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(meta.max_positions);
    let bad_tokenizer =
        |reason: String| LoadError::BadTokenizer { path: tokenizer_path(&files.tokenizer).into(), reason };
    let mut tokenizer =
        TextTokenizer::new(raw_tokenizer, &settings, max_positions, None).map_err(|e| bad_tokenizer(e.to_string()))?;
    if meta.answers {
        let instruction = config.rerank_instruction.as_deref().unwrap_or(AnswerPrompt::QWEN3_INSTRUCTION);
        let prompt = AnswerPrompt::qwen3_reranker(&tokenizer, instruction).map_err(|e| bad_tokenizer(e.to_string()))?;
        tokenizer.set_answer_prompt(prompt);
    }
    if meta.task == Task::FillMask && tokenizer.mask().is_none() {
        return Err(LoadError::TaskNotServable {
            task: meta.task.to_string(),
            reason: "the tokenizer has no mask token".into(),
        });
    }
    check_vocabulary(&files, &tokenizer)?;
    for m in std::iter::once(&mut model).chain(&mut replicas) {
        m.set_special_ids(tokenizer.pad_id(), tokenizer.mask().map(|(_, id)| id));
    }
    let st_config: SentenceTransformersConfig =
        files.sentence_transformers_config.as_deref().map(read_json).transpose()?.unwrap_or_default();
    let dense = modules
        .iter()
        .flatten()
        .filter(|m| m.kind.ends_with("Dense"))
        .map(|m| read_dense(&dir.join(&m.path)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut width = meta.hidden_size;
    for module in &dense {
        if module.in_features != width {
            return Err(LoadError::BadConfig {
                path: files.modules.clone().unwrap_or_default(),
                reason: format!("a Dense module takes {} values, the vector before it has {width}", module.in_features),
            });
        }
        width = module.out_features;
    }
    let info = PipelineInfo {
        task: meta.task,
        labels: meta.labels.clone(),
        problem_type: meta.problem_type.clone(),
        pooling,
        dense,
        prompts: st_config.into(),
        sentence_transformers: files.modules.is_some() || files.pooling.is_some(),
    };
    Ok(Loaded { model, replicas, tokenizer, info, meta })
}

/// `config.json` of a sentence-transformers `Dense` module.
#[derive(serde::Deserialize)]
struct DenseConfig {
    in_features: usize,
    out_features: usize,
    #[serde(default = "with_bias")]
    bias: bool,
    #[serde(default)]
    activation_function: Option<String>,
}

fn with_bias() -> bool {
    true
}

/// Reads a `Dense` module folder: its config and `linear.weight` / `linear.bias` from
/// `model.safetensors` (or `pytorch_model.bin`).
fn read_dense(folder: &Path) -> Result<DenseModule, LoadError> {
    let config_path = folder.join("config.json");
    let config: DenseConfig = read_json(&config_path)?;
    let bad = |path: &Path, reason: String| LoadError::BadWeights { path: path.to_path_buf(), reason };
    let activation = DenseActivation::parse(config.activation_function.as_deref().unwrap_or("Identity"))
        .map_err(|reason| LoadError::BadConfig { path: config_path.clone(), reason })?;
    let (path, tensors) = if folder.join("model.safetensors").is_file() {
        let path = folder.join("model.safetensors");
        let t =
            candle_core::safetensors::load(&path, &candle_core::Device::Cpu).map_err(|e| bad(&path, e.to_string()))?;
        (path, t)
    } else {
        let path = folder.join("pytorch_model.bin");
        let t = candle_core::pickle::read_all(&path).map_err(|e| bad(&path, e.to_string()))?.into_iter().collect();
        (path, t)
    };
    let get = |name: &str, len: usize| -> Result<Vec<f32>, LoadError> {
        let t = tensors.get(name).ok_or_else(|| bad(&path, format!("{name} is missing")))?;
        let values = t
            .to_dtype(candle_core::DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| bad(&path, e.to_string()))?;
        if values.len() != len {
            return Err(bad(&path, format!("{name} has {} values, config.json says {len}", values.len())));
        }
        Ok(values)
    };
    let weight = get("linear.weight", config.out_features * config.in_features)?;
    let bias = if config.bias { get("linear.bias", config.out_features)? } else { vec![0.0; config.out_features] };
    Ok(DenseModule { in_features: config.in_features, out_features: config.out_features, weight, bias, activation })
}

fn tokenizer_path(file: &TokenizerFile) -> &Path {
    match file {
        TokenizerFile::Json(p) | TokenizerFile::Vocab(p) => p,
    }
}

/// Reads `tokenizer.json`, or builds a BERT WordPiece tokenizer from `vocab.txt`.
fn read_tokenizer(file: &TokenizerFile, lowercase: bool) -> Result<Tokenizer, LoadError> {
    match file {
        TokenizerFile::Json(path) => Tokenizer::from_file(path)
            .map_err(|e| LoadError::BadTokenizer { path: path.clone(), reason: e.to_string() }),
        TokenizerFile::Vocab(path) => wordpiece_from_vocab(path, lowercase),
    }
}

/// The tokenizer `transformers` builds for a BERT checkpoint that ships only `vocab.txt`.
fn wordpiece_from_vocab(path: &Path, lowercase: bool) -> Result<Tokenizer, LoadError> {
    let bad = |reason: String| LoadError::BadTokenizer { path: path.to_path_buf(), reason };
    let vocab = path.to_str().ok_or_else(|| bad("path is not UTF-8".into()))?;
    let model = WordPiece::from_file(vocab).unk_token("[UNK]".into()).build().map_err(|e| bad(e.to_string()))?;
    let mut tokenizer = Tokenizer::new(model);
    let id = |t: &str| tokenizer.token_to_id(t).ok_or_else(|| bad(format!("vocab.txt has no {t} token")));
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))))
        .with_decoder(Some(WordPieceDecoder::default()));
    let specials: Vec<AddedToken> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .filter(|t| tokenizer.token_to_id(t).is_some())
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}

/// A tokenizer from another model yields ids past the embedding table; say so at load instead of
/// failing every request (or the warm-up) with an index error.
fn check_vocabulary(files: &ModelFiles, tokenizer: &TextTokenizer) -> Result<(), LoadError> {
    let raw: serde_json::Value = read_json(&files.config)?;
    let Some(model_vocab) = raw.get("vocab_size").and_then(serde_json::Value::as_u64) else {
        return Ok(());
    };
    let tokenizer_vocab = tokenizer.vocab_size();
    if tokenizer_vocab as u64 > model_vocab {
        return Err(LoadError::BadTokenizer {
            path: tokenizer_path(&files.tokenizer).into(),
            reason: format!(
                "it does not belong to this model: it has {tokenizer_vocab} tokens, config.json's vocab_size is {model_vocab}"
            ),
        });
    }
    Ok(())
}
