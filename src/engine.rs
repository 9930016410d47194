//! The engine: a model, its tokenizer and the pipeline metadata, loaded together from one folder.
//! The server splits it — the model moves to the worker thread, the tokenizer and metadata stay
//! with the HTTP side — while tests and the warm-up use [`Engine::run`] end to end.

use std::sync::Arc;

use crate::model::files::{self, ModelFiles};
use crate::model::{DTypeSpec, DeviceSpec, LoadError, Model, ModelInput, ModelMeta, Task};
use crate::pipelines::{self, Output, ParamError, Params, PipelineInfo, PoolingDefaults};
use crate::tokenize::{Encoded, InputError, TextTokenizer};

/// What to load and where.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// A local folder in the Hugging Face layout, or a hub id (fetched when the `hub` feature is on).
    pub model: String,
    /// The pipeline; `None` takes it from `config.json`.
    pub task: Option<Task>,
    pub device: DeviceSpec,
    pub dtype: DTypeSpec,
    /// A lower input limit than the model's own, in tokens.
    pub max_input_tokens: Option<usize>,
}

/// A loaded engine.
pub struct Engine {
    pub model: Model,
    pub tokenizer: Arc<TextTokenizer>,
    pub info: Arc<PipelineInfo>,
    pub meta: ModelMeta,
}

/// Why an end-to-end run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error("model failed: {0}")]
    Model(#[from] candle_core::Error),
    #[error(transparent)]
    Output(#[from] pipelines::OutputMismatch),
}

impl Engine {
    pub fn load(config: &EngineConfig) -> Result<Self, LoadError> {
        let dir = files::resolve(&config.model)?;
        let files = ModelFiles::locate(&dir)?;
        let (mut model, meta) = Model::load(&files, config.task, config.device, config.dtype)?;
        let max_positions = config.max_input_tokens.map_or(meta.max_positions, |m| m.min(meta.max_positions));
        let tokenizer = TextTokenizer::load(&files.tokenizer, files.tokenizer_config.as_deref(), max_positions, None)?;
        if meta.task == Task::FillMask && tokenizer.mask().is_none() {
            return Err(LoadError::TaskNotServable {
                task: meta.task.to_string(),
                reason: "the tokenizer has no mask token".into(),
            });
        }
        check_vocabulary(&files, &tokenizer)?;
        model.set_special_ids(tokenizer.pad_id(), tokenizer.mask().map(|(_, id)| id));
        let info = PipelineInfo {
            task: meta.task,
            labels: meta.labels.clone(),
            problem_type: meta.problem_type.clone(),
            pooling: PoolingDefaults::load(files.pooling.as_deref(), files.modules.as_deref())?,
        };
        Ok(Self { model, tokenizer: Arc::new(tokenizer), info: Arc::new(info), meta })
    }

    /// Tokenizes and checks one input for this engine's task.
    pub fn prepare(&self, text: &str, params: &Params) -> Result<Encoded, InputError> {
        prepare(&self.tokenizer, self.info.task, text, params)
    }

    /// The whole pipeline on a batch of texts in one model step.
    pub fn run(&self, texts: &[&str], params: &Params) -> Result<Vec<Output>, RunError> {
        params.validate(self.info.task)?;
        let encoded = texts.iter().map(|t| self.prepare(t, params)).collect::<Result<Vec<_>, _>>()?;
        let inputs: Vec<ModelInput<'_>> =
            encoded.iter().map(|e| ModelInput { ids: &e.ids, type_ids: &e.type_ids }).collect();
        let raw = self.model.forward(&inputs)?;
        encoded
            .iter()
            .zip(raw)
            .map(|(e, r)| Ok(pipelines::postprocess(&self.info, &self.tokenizer, e, r, params)?))
            .collect()
    }
}

/// Tokenizes `text` (truncating only when the request allows it) and checks it for `task`.
pub fn prepare(tokenizer: &TextTokenizer, task: Task, text: &str, params: &Params) -> Result<Encoded, InputError> {
    let encoded = tokenizer.encode(text, params.truncate.unwrap_or(false))?;
    pipelines::check_input(task, &encoded, tokenizer)?;
    Ok(encoded)
}

/// A tokenizer from another model yields ids past the embedding table; say so at load instead of
/// failing every request (or the warm-up) with an index error.
fn check_vocabulary(files: &ModelFiles, tokenizer: &TextTokenizer) -> Result<(), LoadError> {
    let raw: serde_json::Value = files::read_json(&files.config)?;
    let Some(model_vocab) = raw.get("vocab_size").and_then(serde_json::Value::as_u64) else {
        return Ok(());
    };
    let tokenizer_vocab = tokenizer.vocab_size();
    if tokenizer_vocab as u64 > model_vocab {
        return Err(LoadError::BadTokenizer {
            path: match &files.tokenizer {
                files::TokenizerFile::Json(p) | files::TokenizerFile::Vocab(p) => p.clone(),
            },
            reason: format!(
                "it does not belong to this model: it has {tokenizer_vocab} tokens, config.json's vocab_size is {model_vocab}"
            ),
        });
    }
    Ok(())
}
