//! sentence-transformers settings beyond pooling: the input limit of `sentence_bert_config.json`
//! and the prompts of `config_sentence_transformers.json` (TEI's `prompt_name`). The loader reads
//! the files; the embedding routes apply the prompt before the text reaches the service.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `sentence_bert_config.json`.
#[derive(Debug, Default, Deserialize)]
pub struct SentenceBertConfig {
    /// Longest input in tokens, special tokens included (sentence-transformers truncates to it).
    #[serde(default)]
    pub max_seq_length: Option<usize>,
}

/// `config_sentence_transformers.json`.
#[derive(Debug, Default, Deserialize)]
pub struct SentenceTransformersConfig {
    #[serde(default)]
    pub prompts: BTreeMap<String, String>,
    #[serde(default)]
    pub default_prompt_name: Option<String>,
}

/// The model's named prompts and the one used when a request names none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompts {
    pub prompts: BTreeMap<String, String>,
    pub default_prompt_name: Option<String>,
}

/// A request named a prompt the model does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("prompt_name {name:?} is not one of the model's prompts ({})", list(.known))]
pub struct UnknownPrompt {
    pub name: String,
    pub known: Vec<String>,
}

fn list(known: &[String]) -> String {
    if known.is_empty() {
        "it has none".to_string()
    } else {
        known.join(", ")
    }
}

impl From<SentenceTransformersConfig> for Prompts {
    fn from(c: SentenceTransformersConfig) -> Self {
        Self { prompts: c.prompts, default_prompt_name: c.default_prompt_name }
    }
}

impl Prompts {
    /// The prompt text for `name`, or the default prompt when `name` is `None`, as
    /// sentence-transformers' `encode(prompt_name=...)` picks it.
    pub fn resolve(&self, name: Option<&str>) -> Result<Option<&str>, UnknownPrompt> {
        match name {
            Some(name) => self
                .prompts
                .get(name)
                .map(|p| Some(p.as_str()))
                .ok_or_else(|| UnknownPrompt { name: name.to_string(), known: self.prompts.keys().cloned().collect() }),
            None => Ok(self.default_prompt_name.as_deref().and_then(|d| self.prompts.get(d)).map(String::as_str)),
        }
    }

    /// Prepends the resolved prompt to every text (sentence-transformers concatenates without a space).
    pub fn apply(&self, name: Option<&str>, texts: Vec<String>) -> Result<Vec<String>, UnknownPrompt> {
        Ok(match self.resolve(name)? {
            Some(prompt) if !prompt.is_empty() => texts.into_iter().map(|t| format!("{prompt}{t}")).collect(),
            _ => texts,
        })
    }
}

/// The tokens a prompt takes at the start of an input, as sentence-transformers counts them for
/// `include_prompt: false`: the prompt tokenized alone with special tokens, less a trailing special
/// token (`[SEP]`, `</s>`). No prompt takes none (sentence-transformers then masks nothing; the
/// empty string alone would tokenize to the leading special token).
pub fn prompt_tokens(tokenizer: &crate::tokenize::TextTokenizer, prompt: &str) -> usize {
    if prompt.is_empty() {
        return 0;
    }
    match tokenizer.tokens(prompt, true) {
        Ok(tokens) => tokens.len() - usize::from(tokens.last().is_some_and(|t| t.special)),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_resolve_as_sentence_transformers() {
        let config: SentenceTransformersConfig = serde_json::from_str(
            r#"{"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": "query"}"#,
        )
        .unwrap();
        let prompts = Prompts::from(config);
        assert_eq!(prompts.apply(None, vec!["a".into()]).unwrap(), vec!["query: a"]);
        assert_eq!(prompts.apply(Some("passage"), vec!["a".into()]).unwrap(), vec!["passage: a"]);
        let err = prompts.apply(Some("doc"), vec!["a".into()]).unwrap_err().to_string();
        assert!(err.contains("doc") && err.contains("passage, query"), "{err}");
        assert_eq!(Prompts::default().apply(None, vec!["a".into()]).unwrap(), vec!["a"]);
        assert!(Prompts::default().apply(Some("q"), vec!["a".into()]).unwrap_err().to_string().contains("it has none"));
    }
}
