//! The inference service: ONE path from texts to pipeline outputs, free of HTTP:
//! validate → admit → tokenize (blocking pool) → queue → await the worker → post-process
//! (blocking pool). The routes, the warm-up and the golden tests all call [`Infer::run`].

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::auth::{OverQuota, Tenant};
use crate::batching::{Batcher, BatcherConfig, Closed, Origin, Overloaded, Priority, QueuedInput};
use crate::load::Loaded;
use crate::model::{Model, ModelMeta, Task};
use crate::pipelines::{self, Output, ParamError, Params, PipelineInfo};
use crate::telemetry::Metrics;
use crate::tokenize::{Encoded, InputError, TextTokenizer, Truncation};
use crate::worker::{self, WorkerConfig, WorkerError, WorkerStatus};

/// The service's limits and defaults.
#[derive(Debug, Clone, Copy)]
pub struct InferSettings {
    /// Most inputs in one request.
    pub max_client_batch_size: usize,
    /// Truncate over-long inputs unless a request says otherwise.
    pub auto_truncate: bool,
    /// A request's time budget when its caller sets no deadline.
    pub request_timeout: Duration,
    /// Largest response a request may ask for, estimated before the model runs.
    pub max_response_bytes: usize,
    pub batcher: BatcherConfig,
    /// Model instances and their math threads.
    pub worker: WorkerConfig,
    /// The priority classes' defaults.
    pub classes: Classes,
}

/// The priority classes' defaults: the class of requests that name none (and whose tenant names
/// none), and each class's time budget when the caller sets no deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classes {
    pub default: Priority,
    /// Interactive's, then batch's.
    pub timeout: [Duration; 2],
}

impl Classes {
    /// Both classes with one timeout, interactive the default.
    pub fn uniform(timeout: Duration) -> Self {
        Self { default: Priority::Interactive, timeout: [timeout; 2] }
    }

    /// The class `caller` runs in: its own, else its tenant's, else the default.
    pub fn of(&self, caller: &Caller) -> Priority {
        caller.priority.or(caller.tenant.priority).unwrap_or(self.default)
    }

    /// The time budget of `class`.
    pub fn timeout(&self, class: Priority) -> Duration {
        self.timeout[class as usize]
    }
}

/// Who a call is for: its tenant (from its key) and the class it asked for, if any.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: Arc<Tenant>,
    pub priority: Option<Priority>,
}

impl Default for Caller {
    /// Anonymous, in the default class.
    fn default() -> Self {
        Self { tenant: Tenant::anonymous(), priority: None }
    }
}

/// One input of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A text, tokenized with special tokens.
    Text(String),
    /// Token ids of the model's own vocabulary, used as given (OpenAI's and TEI's id inputs).
    Ids(Vec<u32>),
    /// A text pair (`text`, `text_pair`) for a sequence-classification model: cross-encoders,
    /// NLI (zero-shot classification).
    Pair(String, String),
}

impl From<String> for Input {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

/// One call: inputs for the configured pipeline, with their parameters and deadline.
#[derive(Debug, Clone)]
pub struct InferRequest {
    pub inputs: Vec<Input>,
    pub params: Params,
    /// When the caller stops waiting; `None`: now + its class's timeout. Inputs still queued
    /// then are dropped before they reach the model.
    pub deadline: Option<Instant>,
    /// Whose call, in which class.
    pub caller: Caller,
}

impl Input {
    /// At most how many tokens this input becomes, known before tokenizing (a token covers at
    /// least one character, special tokens aside).
    fn token_bound(&self, max_len: usize) -> usize {
        let n = match self {
            Self::Text(text) => text.chars().count() + 2,
            Self::Ids(ids) => ids.len(),
            Self::Pair(a, b) => a.chars().count() + b.chars().count() + 3,
        };
        n.min(max_len)
    }

    /// Bytes of text (or ids) to tokenize.
    fn byte_len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Ids(ids) => ids.len() * 4,
            Self::Pair(a, b) => a.len() + b.len(),
        }
    }
}

/// Requests with at most this much text are tokenized on the async runtime's thread, and those
/// of at most [`INLINE_TOKENS`] tokens post-processed there: tens of microseconds of work, less
/// than the two hops to the blocking pool and back cost (docs/benchmarks.md, round 4).
/// Anything larger goes to the blocking pool so the runtime's threads keep serving I/O.
const INLINE_TEXT_BYTES: usize = 512;
const INLINE_TOKENS: usize = 128;

/// Runs `work` here when `inline`, else on the blocking pool.
async fn off_runtime_unless<T: Send + 'static>(
    inline: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    if inline {
        Ok(work())
    } else {
        tokio::task::spawn_blocking(work).await
    }
}

impl InferRequest {
    pub fn new(inputs: Vec<String>, params: Params) -> Self {
        Self {
            inputs: inputs.into_iter().map(Input::from).collect(),
            params,
            deadline: None,
            caller: Caller::default(),
        }
    }
}

/// How a request's inputs went through the batcher: its slowest queue wait and largest batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    pub queue_wait: Duration,
    pub batch_size: usize,
}

/// The outputs of a call, one per input in order, and what they cost.
#[derive(Debug)]
pub struct Inferred {
    pub outputs: Vec<Output>,
    /// Tokens of all inputs, special tokens included.
    pub tokens: usize,
    pub stats: BatchStats,
}

/// Why a call failed. The HTTP layer maps each variant to a status once.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error("inputs is empty: send at least one string")]
    NoInputs,
    #[error("too many inputs: {count} in one request, the limit is {max}")]
    TooManyInputs { count: usize, max: usize },
    /// More work than the queue can ever hold: retrying cannot help.
    #[error(
        "the request's inputs are {tokens} tokens, more than the queue holds ({max}); send fewer or shorter inputs"
    )]
    TooMuchWork { tokens: usize, max: usize },
    #[error("the response would be about {bytes} bytes, above the limit of {max}; send fewer inputs or ask for pooled or fewer outputs")]
    ResponseTooLarge { bytes: usize, max: usize },
    /// One input cannot be served; `index` names it when the request had several.
    #[error("{}", match index { Some(i) => format!("inputs[{i}]: {error}"), None => error.to_string() })]
    Input { index: Option<usize>, error: InputError },
    /// The queue cannot take the request in time; `retry_after` says when it likely can.
    #[error("server is overloaded, retry later")]
    Overloaded { retry_after: Duration },
    /// The tenant used its token quota; `retry_after` is when its bucket has tokens again.
    #[error("rate limit exceeded: the tenant's token quota is used up, retry later")]
    RateLimited { retry_after: Duration },
    /// The caller went away (or its deadline passed) before the work was done.
    #[error("the request was abandoned")]
    Abandoned,
    /// Shutting down: the batcher is gone.
    #[error("server is not accepting work right now")]
    Unavailable,
    #[error("request timed out")]
    Timeout,
    /// A failure of ours (model step, worker, task); the detail is for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<Overloaded> for InferError {
    fn from(e: Overloaded) -> Self {
        Self::Overloaded { retry_after: e.retry_after }
    }
}

impl From<OverQuota> for InferError {
    fn from(e: OverQuota) -> Self {
        Self::RateLimited { retry_after: e.retry_after }
    }
}

impl From<Closed> for InferError {
    fn from(_: Closed) -> Self {
        Self::Unavailable
    }
}

impl From<WorkerError> for InferError {
    fn from(e: WorkerError) -> Self {
        match e {
            WorkerError::Expired => Self::Timeout,
            other => Self::Internal(other.to_string()),
        }
    }
}

/// The running parts behind an [`Infer`], for the shutdown sequence: the batcher task ends once
/// every `Infer` clone is dropped and its queue is empty, then the worker's instance threads end.
pub struct Backend {
    pub worker: Arc<WorkerStatus>,
    pub batcher_task: tokio::task::JoinHandle<()>,
}

/// The inference service. Cheap to clone.
#[derive(Clone)]
pub struct Infer {
    inner: Arc<Inner>,
}

struct Inner {
    tokenizer: TextTokenizer,
    info: PipelineInfo,
    meta: ModelMeta,
    batcher: Batcher,
    settings: InferSettings,
    metrics: Arc<Metrics>,
}

impl Infer {
    /// Moves the model onto its worker's instance threads (each a view of the same weights),
    /// starts the batcher, and returns the service. Must run inside a tokio runtime.
    pub fn start(
        loaded: Loaded,
        mut settings: InferSettings,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(Self, Backend)> {
        let Loaded { model, replicas, tokenizer, info, meta } = loaded;
        settings.batcher.limits.padding_free = meta.packed;
        // One copy of the weights per device; each of the device's `--instances` instances holds a
        // reference to it (RSS grows by activations only).
        let per_device = settings.worker.instances.max(1);
        let instances: Vec<Arc<Model>> = std::iter::once(model)
            .chain(replicas)
            .map(Arc::new)
            .flat_map(|model| std::iter::repeat_n(model, per_device))
            .collect();
        let (worker_handle, worker) = worker::spawn(instances, settings.worker.math_threads, metrics.clone())?;
        let (batcher, batcher_task) = Batcher::start(settings.batcher, worker_handle, metrics.clone());
        let inner = Inner { tokenizer, info, meta, batcher, settings, metrics };
        Ok((Self { inner: Arc::new(inner) }, Backend { worker, batcher_task }))
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.inner.tokenizer
    }

    pub fn info(&self) -> &PipelineInfo {
        &self.inner.info
    }

    pub fn meta(&self) -> &ModelMeta {
        &self.inner.meta
    }

    pub fn settings(&self) -> &InferSettings {
        &self.inner.settings
    }

    /// The class `caller` runs in.
    pub fn class_of(&self, caller: &Caller) -> Priority {
        self.inner.settings.classes.of(caller)
    }

    /// Refuses at once a tenant over its quota (429), and when no input of the caller's class can
    /// be admitted, or the work its class waits for would not be done by `deadline` at the
    /// worker's measured rate (503; the edge calls it before reading a body, [`Infer::run`] again
    /// before tokenizing, with the request's own work).
    pub fn shed(&self, caller: &Caller, deadline: Instant) -> Result<(), InferError> {
        self.shed_for(caller, deadline, 0)
    }

    /// [`Infer::shed`] for a request of at most `own_tokens`: it waits for what the queue's fair
    /// order runs before it (about as much of each request ahead as its own size, not their whole
    /// backlog), and behind other work it is admitted only when that wait and its own work should
    /// both be done by `deadline`. So a small request still fits where large ones do not, instead
    /// of whoever retries fastest taking every freed place. On an idle server a request is admitted
    /// whatever its size (its own estimate never refuses it alone).
    fn shed_for(&self, caller: &Caller, deadline: Instant, own_tokens: usize) -> Result<(), InferError> {
        let class = self.class_of(caller);
        let metrics = &self.inner.metrics;
        if let Some(quota) = &caller.tenant.quota {
            quota
                .check()
                .inspect_err(|_| metrics.tenant_outcome(&caller.tenant.name, class.as_str(), "rate_limited"))?;
        }
        let batcher = &self.inner.batcher;
        let budget = deadline.saturating_duration_since(Instant::now());
        let origin = Origin { class, tenant: caller.tenant.id };
        let wait = batcher.fair_wait(own_tokens, self.inner.tokenizer.max_len(), origin);
        let late = wait.is_some_and(|wait| {
            let own = batcher.predicted_time(own_tokens).unwrap_or_default();
            wait > budget || (!wait.is_zero() && wait + own > budget)
        });
        if batcher.is_full(class) || late {
            self.shed_metric(caller, class);
            return Err(batcher.refusal(class, wait.unwrap_or_default(), budget).into());
        }
        Ok(())
    }

    fn shed_metric(&self, caller: &Caller, class: Priority) {
        self.inner.metrics.shed.inc();
        self.inner.metrics.tenant_outcome(&caller.tenant.name, class.as_str(), "shed");
    }

    /// Tokenizes and checks one input exactly as [`Infer::run`] does.
    pub fn tokenize(&self, text: &str, params: &Params) -> Result<Encoded, InputError> {
        self.inner.tokenize(text, params)
    }

    /// Runs the configured pipeline on the request's inputs; one output per input, in order.
    /// Dropping the future (the client left, the timeout fired) abandons the work: tokenization
    /// and post-processing stop between inputs, queued inputs are skipped by the batcher.
    pub async fn run(&self, request: InferRequest) -> Result<Inferred, InferError> {
        let InferRequest { inputs, mut params, deadline, caller } = request;
        let inner = &self.inner;
        let class = self.class_of(&caller);
        let origin = Origin { class, tenant: caller.tenant.id };
        let deadline = deadline.unwrap_or_else(|| Instant::now() + inner.settings.classes.timeout(class));
        let abandoned = Abandon::default();
        let mut slots = tracing::debug_span!("validate", inputs = inputs.len() as i64).in_scope(|| {
            check_request(&inputs, &params, inner.info.task, inner.settings.max_client_batch_size)?;
            params.check_pooling(inner.info.pooling.pooling)?;
            let max_queue = inner.settings.batcher.max_queue;
            if inputs.len() > max_queue {
                return Err(InferError::TooManyInputs { count: inputs.len(), max: max_queue });
            }
            self.check_top_k(&params)?;
            params.truncate = Some(params.truncate.unwrap_or(inner.settings.auto_truncate));
            // Admission before tokenization: a full or late queue costs neither tokenizer nor model.
            let own = inputs.iter().map(|i| i.token_bound(inner.tokenizer.max_len())).sum();
            self.shed_for(&caller, deadline, own)?;
            let budget = deadline.saturating_duration_since(Instant::now());
            inner.batcher.admit(inputs.len(), budget, class).map_err(|e| {
                self.shed_metric(&caller, class);
                InferError::from(e)
            })
        })?;
        inner.metrics.tenant_outcome(&caller.tenant.name, class.as_str(), "admitted");

        // Until its tokens are counted in the queue, the request's work counts at its bound (at most
        // `max_len` tokens per input), so admission sees work still being tokenized ahead of it.
        let max_len = inner.tokenizer.max_len();
        let flow = inner.batcher.flow(inputs.iter().map(|i| i.token_bound(max_len)).sum(), origin);
        let params = Arc::new(params);
        let encoded = {
            let (service, params, gone) = (self.inner.clone(), params.clone(), abandoned.flag());
            let many = inputs.len() > 1;
            let started = std::time::Instant::now();
            let span = tracing::debug_span!("tokenize");
            let small = inputs.iter().map(Input::byte_len).sum::<usize>() <= INLINE_TEXT_BYTES;
            let result = off_runtime_unless(small, move || {
                let _span = span.entered();
                let mut encoded = Vec::with_capacity(inputs.len());
                for (i, input) in inputs.iter().enumerate() {
                    if gone.is_set() || Instant::now() >= deadline {
                        return Err(InferError::Abandoned);
                    }
                    let e = match input {
                        Input::Text(text) => service.tokenize(text, &params),
                        Input::Ids(ids) => service.tokenizer.encode_ids(ids, params.truncation(false)),
                        Input::Pair(text, pair) if service.info.task == Task::TextClassification => {
                            service.tokenizer.encode_pair(text, pair, params.truncation(false))
                        }
                        Input::Pair(..) => Err(InputError::PairNotForTask),
                    };
                    encoded.push(e.map_err(|error| InferError::Input { index: many.then_some(i), error })?);
                }
                Ok(encoded)
            })
            .await
            .map_err(|e| InferError::Internal(format!("tokenization task failed: {e}")))?;
            inner.metrics.tokenization_duration.observe(started.elapsed().as_secs_f64());
            result?
        };
        let costs: Vec<usize> = encoded.iter().map(Encoded::len).collect();
        let tokens = costs.iter().sum();
        let max_tokens = inner.settings.batcher.max_queue_tokens;
        if tokens > max_tokens {
            return Err(InferError::TooMuchWork { tokens, max: max_tokens });
        }
        let bytes: usize = encoded
            .iter()
            .map(|e| pipelines::response_bytes(&inner.info, &inner.tokenizer, e, &params, inner.meta.hidden_size))
            .sum();
        if bytes > inner.settings.max_response_bytes {
            return Err(InferError::ResponseTooLarge { bytes, max: inner.settings.max_response_bytes });
        }
        // The quota is charged what the model will run, once it is known (a request let in while
        // the bucket had tokens may take it below zero: the next one waits for that debt).
        if let Some(quota) = &caller.tenant.quota {
            quota.charge(tokens);
        }
        let budget = deadline.saturating_duration_since(Instant::now());
        inner.batcher.reserve_tokens(&flow, &mut slots, &costs, budget).map_err(|e| {
            self.shed_metric(&caller, class);
            InferError::from(e)
        })?;

        let top_k = (inner.info.task == Task::FillMask).then(|| params.fill_mask_top_k());
        let receivers = encoded
            .iter()
            .zip(slots)
            .map(|(e, slot)| {
                let input = QueuedInput { ids: e.ids.clone(), type_ids: e.type_ids.clone(), top_k };
                inner.batcher.submit(slot, input, deadline)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut raws = Vec::with_capacity(receivers.len());
        let mut stats = BatchStats::default();
        for receiver in receivers {
            let answer = receiver.await.map_err(|_| InferError::Internal("worker dropped the request".into()))??;
            stats.queue_wait = stats.queue_wait.max(answer.queue_wait);
            stats.batch_size = stats.batch_size.max(answer.batch_size);
            raws.push(answer.output);
        }

        let (service, gone) = (self.inner.clone(), abandoned.flag());
        let span = tracing::debug_span!("postprocess");
        let outputs = off_runtime_unless(tokens <= INLINE_TOKENS, move || {
            let _span = span.entered();
            let mut outputs = Vec::with_capacity(raws.len());
            for (e, raw) in encoded.iter().zip(raws) {
                if gone.is_set() {
                    return Err(InferError::Abandoned);
                }
                let output = pipelines::postprocess(&service.info, &service.tokenizer, e, raw, &params)
                    .map_err(|e| InferError::Internal(e.to_string()))?;
                outputs.push(output);
            }
            Ok(outputs)
        })
        .await
        .map_err(|e| InferError::Internal(format!("post-processing task failed: {e}")))??;
        abandoned.disarm();
        inner.metrics.tenant_served(&caller.tenant.name, class.as_str(), tokens, stats.queue_wait);
        Ok(Inferred { outputs, tokens, stats })
    }

    /// fill-mask's `top_k` cannot exceed the vocabulary (transformers fails on it too).
    fn check_top_k(&self, params: &Params) -> Result<(), InferError> {
        let vocab = self.inner.tokenizer.vocab_size();
        if self.inner.info.task == Task::FillMask && params.fill_mask_top_k() > vocab {
            let reason = format!("{} is more than the vocabulary's {vocab} tokens", params.fill_mask_top_k());
            return Err(InferError::Params(ParamError::Invalid { name: "top_k", reason }));
        }
        Ok(())
    }
}

/// Set when a call's future is dropped before it finished, so its blocking work stops early.
#[derive(Default)]
struct Abandon {
    flag: Arc<std::sync::atomic::AtomicBool>,
    done: bool,
}

/// The blocking side's view of [`Abandon`].
struct Gone(Arc<std::sync::atomic::AtomicBool>);

impl Gone {
    fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Abandon {
    fn flag(&self) -> Gone {
        Gone(self.flag.clone())
    }

    fn disarm(mut self) {
        self.done = true;
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if !self.done {
            self.flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Inner {
    /// Tokenizes `text` (truncating when the request, or the server default, allows it) and checks
    /// it for the task.
    fn tokenize(&self, text: &str, params: &Params) -> Result<Encoded, InputError> {
        prepare(&self.tokenizer, self.info.task, text, params.truncation(self.settings.auto_truncate))
    }
}

/// The checks that need no tokenizer: parameters fit the task, at least one input, not too many.
/// Pure, so the fuzz target and the property tests drive it directly.
pub fn check_request<T>(inputs: &[T], params: &Params, task: Task, max_inputs: usize) -> Result<(), InferError> {
    params.validate(task)?;
    if inputs.is_empty() {
        return Err(InferError::NoInputs);
    }
    if inputs.len() > max_inputs {
        return Err(InferError::TooManyInputs { count: inputs.len(), max: max_inputs });
    }
    Ok(())
}

/// Tokenizes one input (cut to the limit as `truncation` says, else rejected when too long) and
/// checks it for `task`.
pub fn prepare(
    tokenizer: &TextTokenizer,
    task: Task,
    text: &str,
    truncation: impl Into<Truncation>,
) -> Result<Encoded, InputError> {
    let encoded = tokenizer.encode(text, truncation)?;
    pipelines::check_input(task, &encoded, tokenizer)?;
    Ok(encoded)
}

/// Two inputs of different lengths for the warm-up (the padding path runs too).
pub fn warm_up_inputs(task: Task, tokenizer: &TextTokenizer) -> Vec<String> {
    match (task, tokenizer.mask()) {
        (Task::FillMask, Some((mask, _))) => vec![format!("The capital of France is {mask}."), format!("{mask} world")],
        _ => vec!["Warm-up: the quick brown fox jumps over the lazy dog.".into(), "hello".into()],
    }
}
