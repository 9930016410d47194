//! Text → validated token ids. This is CPU work: the server runs it off the async runtime, and the
//! model step only ever sees the ids produced here.
//!
//! This module owns padding and truncation: some `tokenizer.json` files carry their own settings
//! (all-MiniLM-L6-v2 pads every input to 128 tokens), so both are switched off on load and applied
//! here and in the batcher instead.

use tokenizers::{Decoder, ModelWrapper, PostProcessor, Tokenizer, TruncationParams};

/// Which end of an over-long input is cut (TEI's `truncation_direction`, `transformers`'
/// `truncation_side`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, utoipa::ToSchema)]
pub enum TruncationDirection {
    /// Keep the end of the input.
    #[serde(alias = "left", alias = "Left")]
    Left,
    /// Keep the start of the input.
    #[default]
    #[serde(alias = "right", alias = "Right")]
    Right,
}

/// What to do with an input longer than the model's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// Refuse it (422 naming the limit).
    Refuse,
    /// Cut it to the limit from that side.
    Cut(TruncationDirection),
}

impl Truncation {
    pub fn new(truncate: bool, direction: TruncationDirection) -> Self {
        if truncate {
            Self::Cut(direction)
        } else {
            Self::Refuse
        }
    }

    fn cuts(self) -> bool {
        self != Self::Refuse
    }

    fn keeps_end(self) -> bool {
        self == Self::Cut(TruncationDirection::Left)
    }
}

/// `true`: cut the end (the default direction); `false`: refuse.
impl From<bool> for Truncation {
    fn from(truncate: bool) -> Self {
        Self::new(truncate, TruncationDirection::Right)
    }
}

/// Characters of input read per token of the model's limit. A token covers at least one
/// character of text that produces tokens; 64 leaves room for long runs of spaces and invisible
/// characters that produce none. Past `max_len × 64` characters the rest of an input is not
/// tokenized at all (see docs/reliability.md), which bounds the tokenizer's time and memory per
/// input whatever the body holds.
pub const CHARS_PER_TOKEN: usize = 64;

/// The start (or end) of a text, up to a character budget.
#[derive(Debug, PartialEq, Eq)]
struct Piece<'a> {
    text: &'a str,
    /// Cut inside a word (no whitespace near the budget).
    split_word: bool,
}

/// How far from the budget (in bytes) a whitespace is looked for, so that no word is split.
const CUT_WINDOW: usize = 1024;

/// The first `max_chars` characters of `text`, cut at a whitespace boundary where one is near (so
/// no word is split; the whitespace stays with the rest), and whether anything is left after it.
fn head_within(text: &str, max_chars: usize) -> (Piece<'_>, bool) {
    let Some((end, _)) = text.char_indices().nth(max_chars) else {
        return (Piece { text, split_word: false }, false);
    };
    let window = end.saturating_sub(CUT_WINDOW);
    match text[..end].rfind(char::is_whitespace).filter(|&i| i > 0 && i >= window) {
        Some(space) => (Piece { text: &text[..space], split_word: false }, true),
        None => (Piece { text: &text[..end], split_word: true }, true),
    }
}

/// The last `max_chars` characters of `text`, cut at a whitespace boundary where one is near (the
/// whitespace stays with this piece, as a word's leading space belongs to it for byte-level BPE),
/// and whether anything is left before it.
fn tail_within(text: &str, max_chars: usize) -> (Piece<'_>, bool) {
    let start = match text.char_indices().rev().nth(max_chars.saturating_sub(1)) {
        Some((start, _)) if start > 0 => start,
        _ => return (Piece { text, split_word: false }, false),
    };
    let space = text[start..]
        .char_indices()
        .take_while(|&(i, _)| i <= CUT_WINDOW)
        .find(|&(_, c)| c.is_whitespace())
        .map(|(i, _)| start + i);
    match space {
        Some(space) => (Piece { text: &text[space..], split_word: false }, true),
        None => (Piece { text: &text[start..], split_word: true }, true),
    }
}

/// Why an input cannot be served; each maps to a 4xx response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("input text is empty")]
    Empty,
    #[error("input text is empty after the tokenizer's normalization (only invisible or control characters)")]
    NoTokens,
    #[error("input is {tokens} tokens long, above the limit of {max}; shorten it or set truncate=true")]
    TooLong { tokens: usize, max: usize },
    #[error("input is {chars} characters long, far above the limit of {max} tokens; shorten it or set truncate=true")]
    FarTooLong { chars: usize, max: usize },
    #[error("input has {count} mask tokens, above the limit of {max}")]
    TooManyMasks { count: usize, max: usize },
    #[error("input has no mask token {mask}; fill-mask needs at least one")]
    NoMaskToken { mask: String },
    #[error("cannot tokenize input: {0}")]
    Tokenizer(String),
    #[error("text pairs are served by text-classification models only")]
    PairNotForTask,
}

/// One tokenized input, with what post-processing needs to map tokens back to the text.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub text: String,
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// `(start, end)` in characters (Unicode scalar values, as Python indexes strings).
    pub offsets: Vec<(usize, usize)>,
    /// True for special tokens ([CLS], [SEP], ...).
    pub special: Vec<bool>,
    /// Whether tokens were cut to fit `max_len`.
    pub truncated: bool,
}

impl Encoded {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// One token of [`TextTokenizer::tokens`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: u32,
    /// The input's bytes it covers (its vocabulary entry for a special token).
    pub text: String,
    pub special: bool,
    /// Byte offsets into the input; `None` for special tokens.
    pub byte_offsets: Option<(usize, usize)>,
}

/// The settings of `tokenizer_config.json` that matter here (the loader reads the file).
#[derive(Debug, Default, serde::Deserialize)]
pub struct TokenizerSettings {
    /// Lower-casing for a tokenizer built from `vocab.txt`.
    #[serde(default)]
    pub do_lower_case: Option<bool>,
    #[serde(default)]
    pub mask_token: Option<serde_json::Value>,
    #[serde(default)]
    pub model_max_length: Option<f64>,
    /// transformers' clean-up of the decoded text (`" ' "` to `"'"`, `" ."` to `"."`, ...); off
    /// when absent, as in transformers 4.45 on.
    #[serde(default)]
    pub clean_up_tokenization_spaces: Option<bool>,
}

/// The tokenizer could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(String);

/// A loaded tokenizer whose padding and truncation are ours, not its file's.
pub struct TextTokenizer {
    plain: Tokenizer,
    /// Cuts the end of over-long inputs (the default).
    truncating: Tokenizer,
    /// Cuts their start.
    truncating_left: Tokenizer,
    max_len: usize,
    /// Special tokens the post-processor adds to one sequence ([CLS] and [SEP]: 2).
    added_tokens: usize,
    mask: Option<(String, u32)>,
    pad_id: u32,
    unk_id: Option<u32>,
    subword_prefix: Option<String>,
    /// `clean_up_tokenization_spaces` of `tokenizer_config.json`.
    clean_up: bool,
    /// Counted once: `tokenizers` counts it by copying the whole vocabulary into a new map, which
    /// cost a tenth of the server's CPU on short inputs when every request asked (docs/benchmarks.md).
    vocab_size: usize,
    /// A yes/no reranker's prompt, which text pairs are written into instead of the tokenizer's
    /// pair template.
    answer_prompt: Option<AnswerPrompt>,
}

/// A yes/no reranker's prompt (Qwen3-Reranker's model card): the token ids around the pair, and
/// the instruction written before it.
#[derive(Debug, Clone)]
pub struct AnswerPrompt {
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    instruction: String,
}

impl AnswerPrompt {
    /// Qwen3-Reranker's default instruction.
    pub const QWEN3_INSTRUCTION: &'static str =
        "Given a web search query, retrieve relevant passages that answer the query";
    const QWEN3_PREFIX: &'static str =
        "<|im_start|>system\nJudge whether the Document meets the requirements based on \
        the Query and the Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n\
        <|im_start|>user\n";
    const QWEN3_SUFFIX: &'static str = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";

    /// Qwen3-Reranker's chat prompt, tokenized as its model card does (no special tokens added).
    pub fn qwen3_reranker(tokenizer: &TextTokenizer, instruction: &str) -> Result<Self, SetupError> {
        let ids = |text: &str| {
            tokenizer.plain.encode(text, false).map(|e| e.get_ids().to_vec()).map_err(|e| SetupError(e.to_string()))
        };
        let (prefix, suffix) = (ids(Self::QWEN3_PREFIX)?, ids(Self::QWEN3_SUFFIX)?);
        if prefix.len() + suffix.len() >= tokenizer.max_len {
            return Err(SetupError(format!(
                "the reranker prompt takes {} tokens, the input limit is {}",
                prefix.len() + suffix.len(),
                tokenizer.max_len
            )));
        }
        Ok(Self { prefix, suffix, instruction: instruction.to_string() })
    }
}

impl TextTokenizer {
    /// Wraps a loaded tokenizer, switching its own padding and truncation off.
    /// `max_positions` is the longest input the model accepts, special tokens included.
    pub fn new(
        mut plain: Tokenizer,
        config: &TokenizerSettings,
        max_positions: usize,
        pad_id_hint: Option<u32>,
    ) -> Result<Self, SetupError> {
        plain.with_padding(None);
        let _ = plain.with_truncation(None);

        let tokenizer_limit = config.model_max_length.filter(|m| *m > 0.0 && *m < 1e9).map(|m| m as usize);
        let max_len = tokenizer_limit.map_or(max_positions, |t| t.min(max_positions));
        let truncating_to = |direction| {
            let mut truncating = plain.clone();
            truncating
                .with_truncation(Some(TruncationParams { max_length: max_len, direction, ..Default::default() }))
                .map_err(|e| SetupError(e.to_string()))?;
            Ok::<_, SetupError>(truncating)
        };
        let truncating = truncating_to(tokenizers::TruncationDirection::Right)?;
        let truncating_left = truncating_to(tokenizers::TruncationDirection::Left)?;

        let mask_name = match &config.mask_token {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Object(o)) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
            _ => None,
        };
        let mask = mask_name
            .into_iter()
            .chain(["[MASK]".to_string(), "<mask>".to_string()])
            .find_map(|name| plain.token_to_id(&name).map(|id| (name, id)));
        let pad_id = ["[PAD]", "<pad>"].iter().find_map(|t| plain.token_to_id(t)).or(pad_id_hint).unwrap_or(0);
        let unk_id = ["[UNK]", "<unk>"].iter().find_map(|t| plain.token_to_id(t));
        let subword_prefix = match plain.get_model() {
            ModelWrapper::WordPiece(wp) => Some(wp.continuing_subword_prefix.clone()),
            ModelWrapper::BPE(bpe) => bpe.continuing_subword_prefix.clone(),
            _ => None,
        }
        .filter(|p| !p.is_empty());
        let added_tokens = plain.get_post_processor().map_or(0, |p| p.added_tokens(false));
        let vocab_size = plain.get_vocab_size(true);
        Ok(Self {
            plain,
            truncating,
            truncating_left,
            max_len,
            added_tokens,
            mask,
            pad_id,
            unk_id,
            subword_prefix,
            clean_up: config.clean_up_tokenization_spaces.unwrap_or(false),
            vocab_size,
            answer_prompt: None,
        })
    }

    /// Writes text pairs into a yes/no reranker's prompt from now on.
    pub fn set_answer_prompt(&mut self, prompt: AnswerPrompt) {
        self.answer_prompt = Some(prompt);
    }

    /// A pair in the reranker's prompt: `prefix "<Instruct>: …\n<Query>: text\n<Document>: pair"
    /// suffix`. Too long: the end is cut (the document's), as the model card's `truncation` of the
    /// middle part does, or an error. Offsets are not kept (nothing maps tokens of a pair back).
    fn encode_answer_pair(
        &self,
        prompt: &AnswerPrompt,
        text: &str,
        pair: &str,
        truncation: Truncation,
    ) -> Result<Encoded, InputError> {
        let body = format!("<Instruct>: {}\n<Query>: {text}\n<Document>: {pair}", prompt.instruction);
        let around = prompt.prefix.len() + prompt.suffix.len();
        let budget = self.max_len - around;
        let (piece, cut) = head_within(&body, budget.saturating_mul(CHARS_PER_TOKEN));
        if cut && !truncation.cuts() {
            return Err(InputError::FarTooLong { chars: body.chars().count() + around, max: self.max_len });
        }
        let raw = self.plain.encode(piece.text, false).map_err(|e| InputError::Tokenizer(e.to_string()))?;
        let mut middle = raw.get_ids();
        if middle.len() > budget {
            if !truncation.cuts() {
                return Err(InputError::TooLong { tokens: middle.len() + around, max: self.max_len });
            }
            middle = &middle[..budget];
        }
        let ids: Vec<u32> = [&prompt.prefix[..], middle, &prompt.suffix[..]].concat();
        let special =
            (0..ids.len()).map(|i| i < prompt.prefix.len() || i >= prompt.prefix.len() + middle.len()).collect();
        let n = ids.len();
        Ok(Encoded {
            text: text.to_string(),
            ids,
            type_ids: vec![0; n],
            offsets: vec![(0, 0); n],
            special,
            truncated: cut || raw.get_ids().len() > budget,
        })
    }

    /// Tokenizes one input with special tokens. Longer than `max_len`: cut from the side
    /// `truncation` names, or an error. A long text is read in pieces of [`CHARS_PER_TOKEN`] ×
    /// `max_len` characters, cut at whitespace, from the side that is kept, only until the limit is
    /// reached: the tokenizer never holds more than about `max_len` tokens of a text past the first
    /// piece, whatever the text's size, and the result is the one encoding the whole text would give.
    pub fn encode(&self, text: &str, truncation: impl Into<Truncation>) -> Result<Encoded, InputError> {
        let truncation = truncation.into();
        if text.trim().is_empty() {
            return Err(InputError::Empty);
        }
        let encode =
            |t: &str| self.plain.encode_char_offsets(t, false).map_err(|e| InputError::Tokenizer(e.to_string()));
        let from_end = truncation.keeps_end();
        let piece_chars = self.max_len.saturating_mul(CHARS_PER_TOKEN);
        let piece_of = |t| if from_end { tail_within(t, piece_chars) } else { head_within(t, piece_chars) };
        let (first, mut more) = piece_of(text);
        let mut raw = encode(first.text)?;
        let mut counted = raw.len().saturating_sub(usize::from(first.split_word));
        // Bytes read so far, from the start (or the end when the end is kept).
        let mut read = first.text.len();
        while more && counted + self.added_tokens <= self.max_len {
            let rest = if from_end { &text[..text.len() - read] } else { &text[read..] };
            let (piece, rest) = piece_of(rest);
            // A word cut in two counts at least one token twice.
            counted += encode(piece.text)?.len().saturating_sub(usize::from(piece.split_word));
            read += piece.text.len();
            more = rest;
        }
        let over = counted + self.added_tokens > self.max_len;
        if over && !truncation.cuts() {
            return Err(if more {
                InputError::FarTooLong { chars: text.chars().count(), max: self.max_len }
            } else {
                InputError::TooLong { tokens: counted + self.added_tokens, max: self.max_len }
            });
        }
        // Where the encoded part starts in `text`, in bytes.
        let start = if more && from_end { text.len() - read } else { 0 };
        if read > first.text.len() {
            // Read past the first piece: encode what is needed in one pass — the whole text when
            // it fits, else up to the piece where the limit was reached (whitespace-cut, so the
            // tokens up to the limit are the whole text's).
            raw = encode(match (more, from_end) {
                (false, _) => text,
                (true, false) => &text[..read],
                (true, true) => &text[start..],
            })?;
        }
        if raw.get_special_tokens_mask().iter().all(|&m| m == 1) {
            return Err(InputError::NoTokens);
        }
        let tokens = raw.len() + self.added_tokens;
        if tokens > self.max_len && !truncation.cuts() {
            return Err(InputError::TooLong { tokens, max: self.max_len });
        }
        // The truncating tokenizer's post-processing cuts to the limit, then adds the special
        // tokens: what encoding with truncation on does, without a second encode.
        let cutter = if from_end { &self.truncating_left } else { &self.truncating };
        let encoding = cutter.post_process(raw, None, true).map_err(|e| InputError::Tokenizer(e.to_string()))?;
        let truncated = tokens > self.max_len || more;
        let special: Vec<bool> = encoding.get_special_tokens_mask().iter().map(|&m| m == 1).collect();
        // Offsets of a piece taken from the end count from its start: shift them to the text's.
        let shift = if start > 0 { text[..start].chars().count() } else { 0 };
        let offsets = encoding
            .get_offsets()
            .iter()
            .zip(&special)
            .map(|(&(a, b), &special)| if special { (a, b) } else { (a + shift, b + shift) })
            .collect();
        Ok(Encoded {
            text: text.to_string(),
            ids: encoding.get_ids().to_vec(),
            type_ids: encoding.get_type_ids().to_vec(),
            offsets,
            special,
            truncated,
        })
    }

    /// Tokenizes a text pair (`[CLS] text [SEP] text_pair [SEP]` for BERT, with `token_type_ids`
    /// 0 then 1), as `tokenizer(text, text_pair)` does. Longer than `max_len`: cut longest-first
    /// (the longer text loses a token at a time, from the side `truncation` names, as
    /// `transformers` and sentence-transformers' `CrossEncoder` truncate), or an error. Offsets and
    /// `text` are the first text's.
    pub fn encode_pair(
        &self,
        text: &str,
        pair: &str,
        truncation: impl Into<Truncation>,
    ) -> Result<Encoded, InputError> {
        let truncation = truncation.into();
        if text.trim().is_empty() || pair.trim().is_empty() {
            return Err(InputError::Empty);
        }
        if let Some(prompt) = &self.answer_prompt {
            return self.encode_answer_pair(prompt, text, pair, truncation);
        }
        // Each side can contribute at most `max_len` tokens: neither is read past the character
        // budget that bounds single texts (see `encode`), from the side that is kept.
        let budget = self.max_len.saturating_mul(CHARS_PER_TOKEN);
        let from_end = truncation.keeps_end();
        let piece_of = |t| if from_end { tail_within(t, budget) } else { head_within(t, budget) };
        let ((first, first_cut), (second, second_cut)) = (piece_of(text), piece_of(pair));
        let cut = first_cut || second_cut;
        if cut && !truncation.cuts() {
            return Err(InputError::FarTooLong {
                chars: text.chars().count() + pair.chars().count(),
                max: self.max_len,
            });
        }
        let (head, pair_head) = (first.text, second.text);
        let encode = |tok: &Tokenizer| {
            tok.encode_char_offsets((head, pair_head), true).map_err(|e| InputError::Tokenizer(e.to_string()))
        };
        let mut encoding = encode(&self.plain)?;
        let mut truncated = cut;
        if encoding.len() > self.max_len || cut {
            if !truncation.cuts() {
                return Err(InputError::TooLong { tokens: encoding.len(), max: self.max_len });
            }
            encoding = encode(if from_end { &self.truncating_left } else { &self.truncating })?;
            truncated = true;
        }
        let sequence_ids = encoding.get_sequence_ids();
        // The first text's piece may start inside it (its end kept).
        let shift = text[..text.len() - head.len()].chars().count();
        Ok(Encoded {
            text: text.to_string(),
            ids: encoding.get_ids().to_vec(),
            type_ids: encoding.get_type_ids().to_vec(),
            // Offsets into the second text would be read as offsets into the first.
            offsets: encoding
                .get_offsets()
                .iter()
                .zip(&sequence_ids)
                .map(|(&(a, b), s)| if *s == Some(0) { (a + shift, b + shift) } else { (0, 0) })
                .collect(),
            special: encoding.get_special_tokens_mask().iter().map(|&m| m == 1).collect(),
            truncated,
        })
    }

    /// Takes token ids of this vocabulary as one input, as given (no special tokens added, as TEI
    /// does with id inputs). Longer than `max_len`: cut from the side `truncation` names, or an error.
    pub fn encode_ids(&self, ids: &[u32], truncation: impl Into<Truncation>) -> Result<Encoded, InputError> {
        let truncation = truncation.into();
        if ids.is_empty() {
            return Err(InputError::Empty);
        }
        let vocab = self.vocab_size();
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(InputError::Tokenizer(format!(
                "token id {bad} is not in the model's vocabulary of {vocab} tokens"
            )));
        }
        let truncated = ids.len() > self.max_len;
        if truncated && !truncation.cuts() {
            return Err(InputError::TooLong { tokens: ids.len(), max: self.max_len });
        }
        let kept = match (truncated, truncation.keeps_end()) {
            (false, _) => ids,
            (true, false) => &ids[..self.max_len],
            (true, true) => &ids[ids.len() - self.max_len..],
        };
        let n = kept.len();
        Ok(Encoded {
            text: String::new(),
            ids: kept.to_vec(),
            type_ids: vec![0; n],
            offsets: vec![(0, 0); n],
            special: vec![false; n],
            truncated,
        })
    }

    /// The tokens of a text with byte offsets, as TEI's `/tokenize` lists them; not truncated.
    pub fn tokens(&self, text: &str, add_special_tokens: bool) -> Result<Vec<Token>, InputError> {
        let encoding = self.plain.encode(text, add_special_tokens).map_err(|e| InputError::Tokenizer(e.to_string()))?;
        Ok(encoding
            .get_ids()
            .iter()
            .zip(encoding.get_offsets())
            .zip(encoding.get_special_tokens_mask())
            .zip(encoding.get_tokens())
            .map(|(((&id, &(start, stop)), &special), token)| {
                if special == 1 {
                    Token { id, text: token.clone(), special: true, byte_offsets: None }
                } else {
                    let text =
                        String::from_utf8_lossy(text.as_bytes().get(start..stop).unwrap_or_default()).into_owned();
                    Token { id, text, special: false, byte_offsets: Some((start, stop)) }
                }
            })
            .collect())
    }

    /// Token ids it can produce: the vocabulary with added tokens.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The longest input in tokens, special tokens included.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The mask token and its id, for fill-mask.
    pub fn mask(&self) -> Option<(&str, u32)> {
        self.mask.as_ref().map(|(s, id)| (s.as_str(), *id))
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn unk_id(&self) -> Option<u32> {
        self.unk_id
    }

    /// The continuing-subword prefix (`##`) when the tokenizer model marks word pieces.
    pub fn subword_prefix(&self) -> Option<&str> {
        self.subword_prefix.as_deref()
    }

    /// The vocabulary entry of a token id (`convert_ids_to_tokens`).
    pub fn id_to_token(&self, id: u32) -> String {
        self.plain.id_to_token(id).unwrap_or_default()
    }

    /// Decodes ids to text, with the tokenizer's own clean-up (TEI's `/decode`).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        self.plain.decode(ids, skip_special_tokens).unwrap_or_default()
    }

    /// Decodes ids to text as transformers' `tokenizer.decode` does: then, when the model's
    /// `clean_up_tokenization_spaces` says so, its clean-up on the whole text (the `tokenizers`
    /// decoder cleans token by token, so it misses `" ' "` across tokens).
    pub fn decode_as_transformers(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        let text = self.decode(ids, skip_special_tokens);
        if self.clean_up {
            clean_up_tokenization(&text)
        } else {
            text
        }
    }

    /// Joins vocabulary tokens into text (`convert_tokens_to_string`).
    pub fn tokens_to_string(&self, tokens: Vec<String>) -> String {
        match self.plain.get_decoder() {
            Some(decoder) => decoder.decode(tokens).unwrap_or_default(),
            None => tokens.join(" "),
        }
    }
}

/// transformers' `clean_up_tokenization`, in its order.
fn clean_up_tokenization(text: &str) -> String {
    [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ]
    .iter()
    .fold(text.to_string(), |t, (from, to)| t.replace(from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_up_is_transformers_in_its_order() {
        assert_eq!(clean_up_tokenization("i was ' home , very happy !"), "i was'home, very happy!");
        assert_eq!(clean_up_tokenization("it ' s done . is n't it ?"), "it's done. isn't it?");
        assert_eq!(clean_up_tokenization("we 're sure 've 'm"), "we're sure've'm");
    }

    #[test]
    fn the_head_is_cut_at_a_word_boundary_within_the_budget() {
        assert_eq!(head_within("short text", 64), (Piece { text: "short text", split_word: false }, false));
        assert_eq!(head_within("aaa bbb ccc", 9), (Piece { text: "aaa bbb", split_word: false }, true));
        // No whitespace near the cut: cut at the budget, on a character boundary.
        assert_eq!(head_within("ééééé", 3), (Piece { text: "ééé", split_word: true }, true));
    }

    #[test]
    fn the_tail_is_cut_at_a_word_boundary_within_the_budget() {
        assert_eq!(tail_within("short text", 64), (Piece { text: "short text", split_word: false }, false));
        assert_eq!(tail_within("short text", 10), (Piece { text: "short text", split_word: false }, false));
        // The whitespace before the kept words stays with them.
        assert_eq!(tail_within("aaa bbb ccc", 9), (Piece { text: " bbb ccc", split_word: false }, true));
        assert_eq!(tail_within("aaa bbb ccc", 7), (Piece { text: " ccc", split_word: false }, true));
        assert_eq!(tail_within("ééééé", 3), (Piece { text: "ééé", split_word: true }, true));
    }
}
