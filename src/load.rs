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
use crate::model::{DTypeSpec, DeviceSpec, LoadError, Model, ModelMeta, ModelOptions, Task};
use crate::pipelines::{
    ModuleEntry, PipelineInfo, PoolingConfig, PoolingDefaults, SentenceBertConfig, SentenceTransformersConfig,
};
use crate::tokenize::{TextTokenizer, TokenizerSettings};

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
    let options_on =
        |device| ModelOptions { device, dtype: config.dtype, gemm: config.gemm, quantize: config.quantize };
    let (mut model, meta) = Model::load_with_options(&files, config.task, &options_on(config.device))?;
    let mut replicas = config
        .more_devices
        .iter()
        .map(|&device| Model::load_with_options(&files, config.task, &options_on(device)).map(|(m, _)| m))
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
    let settings: TokenizerSettings = match &files.tokenizer_config {
        Some(path) => read_json(path)?,
        None => TokenizerSettings::default(),
    };
    let bad_tokenizer =
        |reason: String| LoadError::BadTokenizer { path: tokenizer_path(&files.tokenizer).into(), reason };
    let raw_tokenizer = read_tokenizer(&files.tokenizer, settings.do_lower_case.unwrap_or(true))?;
    let tokenizer =
        TextTokenizer::new(raw_tokenizer, &settings, max_positions, None).map_err(|e| bad_tokenizer(e.to_string()))?;
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
    let pooling_config: Option<PoolingConfig> = files.pooling.as_deref().map(read_json).transpose()?;
    let modules: Option<Vec<ModuleEntry>> = files.modules.as_deref().map(read_json).transpose()?;
    let pooling = PoolingDefaults::from_configs(pooling_config.as_ref(), modules.as_deref())
        .map_err(|e| LoadError::BadConfig { path: files.pooling.clone().unwrap_or_default(), reason: e.to_string() })?;
    let st_config: SentenceTransformersConfig =
        files.sentence_transformers_config.as_deref().map(read_json).transpose()?.unwrap_or_default();
    let info = PipelineInfo {
        task: meta.task,
        labels: meta.labels.clone(),
        problem_type: meta.problem_type.clone(),
        pooling,
        prompts: st_config.into(),
        sentence_transformers: files.modules.is_some() || files.pooling.is_some(),
    };
    Ok(Loaded { model, replicas, tokenizer, info, meta })
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
