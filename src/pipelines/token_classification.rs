//! token-classification (NER): per-token entities, or words and entity groups under the
//! `aggregation_strategy`s of `transformers` (none, simple, first, average, max), with character
//! offsets into the input.

use serde::Serialize;

use super::{argmax, softmax, Aggregation, Output, Params, PipelineInfo};
use crate::model::Matrix;
use crate::tokenize::{Encoded, TextTokenizer};

/// An entity: a token (`entity`, `index`) without aggregation, a group (`entity_group`) with it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_group: Option<String>,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub word: String,
    pub start: usize,
    pub end: usize,
}

/// A token with its scores, before aggregation (`gather_pre_entities`).
struct PreEntity {
    word: String,
    scores: Vec<f32>,
    start: usize,
    end: usize,
    index: usize,
    is_subword: bool,
}

/// A labelled token or word, before grouping.
struct Labelled {
    entity: String,
    score: f32,
    index: Option<usize>,
    word: String,
    start: usize,
    end: usize,
}

pub fn postprocess(
    info: &PipelineInfo,
    tokenizer: &TextTokenizer,
    encoded: &Encoded,
    logits: &Matrix,
    params: &Params,
) -> Output {
    let strategy = params.aggregation_strategy.unwrap_or_default();
    let label = |i: usize| info.labels.get(i).cloned().unwrap_or_else(|| format!("LABEL_{i}"));
    let pre = gather(tokenizer, encoded, logits);
    let labelled: Vec<Labelled> = match strategy {
        Aggregation::None | Aggregation::Simple => pre
            .into_iter()
            .map(|p| {
                let (best, score) = argmax(&p.scores);
                Labelled { entity: label(best), score, index: Some(p.index), word: p.word, start: p.start, end: p.end }
            })
            .collect(),
        _ => words(pre).into_iter().map(|w| aggregate_word(tokenizer, &w, strategy, &label)).collect(),
    };
    let ignore = params.ignore_labels.clone().unwrap_or_else(|| vec!["O".to_string()]);
    let entities = if strategy == Aggregation::None {
        labelled
            .into_iter()
            .map(|l| Entity {
                entity: Some(l.entity),
                entity_group: None,
                score: l.score,
                index: l.index,
                word: l.word,
                start: l.start,
                end: l.end,
            })
            .collect::<Vec<_>>()
    } else {
        group(tokenizer, labelled)
    };
    Output::Entities(
        entities
            .into_iter()
            .filter(|e| {
                let name = e.entity.as_ref().or(e.entity_group.as_ref());
                !name.is_some_and(|n| ignore.contains(n))
            })
            .collect(),
    )
}

/// Scores per non-special token, with the subword flag `transformers` derives from the offsets.
fn gather(tokenizer: &TextTokenizer, encoded: &Encoded, logits: &Matrix) -> Vec<PreEntity> {
    let chars: Vec<char> = encoded.text.chars().collect();
    let slice = |a: usize, b: usize| chars[a.min(chars.len())..b.min(chars.len())].iter().collect::<String>();
    (0..encoded.ids.len())
        .filter(|&i| !encoded.special[i])
        .map(|i| {
            let id = encoded.ids[i];
            let (start, end) = encoded.offsets[i];
            let mut word = tokenizer.id_to_token(id);
            let word_ref = slice(start, end);
            let mut is_subword = match tokenizer.subword_prefix() {
                // A word-aware tokenizer: a piece whose text differs in length from the vocabulary
                // entry carries the continuation prefix.
                Some(_) => word.chars().count() != word_ref.chars().count(),
                // The fallback heuristic: no space just before the token.
                None => start > 0 && !slice(start - 1, start + 1).contains(' '),
            };
            if Some(id) == tokenizer.unk_id() {
                word = word_ref;
                is_subword = false;
            }
            PreEntity { word, scores: softmax(logits.row(i)), start, end, index: i, is_subword }
        })
        .collect()
}

/// Groups tokens into words: a subword joins the word before it.
fn words(pre: Vec<PreEntity>) -> Vec<Vec<PreEntity>> {
    let mut out: Vec<Vec<PreEntity>> = Vec::new();
    for p in pre {
        match out.last_mut() {
            Some(word) if p.is_subword => word.push(p),
            _ => out.push(vec![p]),
        }
    }
    out
}

/// One label for a whole word under first / average / max.
fn aggregate_word(
    tokenizer: &TextTokenizer,
    tokens: &[PreEntity],
    strategy: Aggregation,
    label: &dyn Fn(usize) -> String,
) -> Labelled {
    let (best, score) = match strategy {
        Aggregation::Max => {
            let top = tokens
                .iter()
                .fold(&tokens[0], |best, t| if max_of(&t.scores) > max_of(&best.scores) { t } else { best });
            argmax(&top.scores)
        }
        Aggregation::Average => {
            let n = tokens[0].scores.len();
            let avg: Vec<f32> =
                (0..n).map(|j| tokens.iter().map(|t| t.scores[j]).sum::<f32>() / tokens.len() as f32).collect();
            argmax(&avg)
        }
        _ => argmax(&tokens[0].scores),
    };
    Labelled {
        entity: label(best),
        score,
        index: None,
        word: tokenizer.tokens_to_string(tokens.iter().map(|t| t.word.clone()).collect()),
        start: tokens[0].start,
        end: tokens[tokens.len() - 1].end,
    }
}

fn max_of(v: &[f32]) -> f32 {
    v.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// Splits `B-PER` into (`B`, `PER`); a label without a B-/I- prefix counts as a continuation.
fn tag(entity: &str) -> (&str, &str) {
    if let Some(t) = entity.strip_prefix("B-") {
        ("B", t)
    } else if let Some(t) = entity.strip_prefix("I-") {
        ("I", t)
    } else {
        ("I", entity)
    }
}

/// Merges adjacent tokens or words of the same entity type (a `B-` starts a new group).
fn group(tokenizer: &TextTokenizer, labelled: Vec<Labelled>) -> Vec<Entity> {
    let mut groups: Vec<Vec<Labelled>> = Vec::new();
    for l in labelled {
        let joins = groups.last().and_then(|g| g.last()).is_some_and(|last| {
            let (bi, t) = tag(&l.entity);
            let (_, last_t) = tag(&last.entity);
            t == last_t && bi != "B"
        });
        if joins {
            if let Some(g) = groups.last_mut() {
                g.push(l);
            }
        } else {
            groups.push(vec![l]);
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let name = g[0].entity.split_once('-').map_or(g[0].entity.as_str(), |(_, t)| t).to_string();
            Entity {
                entity: None,
                entity_group: Some(name),
                score: g.iter().map(|l| l.score).sum::<f32>() / g.len() as f32,
                index: None,
                word: tokenizer.tokens_to_string(g.iter().map(|l| l.word.clone()).collect()),
                start: g[0].start,
                end: g[g.len() - 1].end,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_like_transformers() {
        assert_eq!(tag("B-PER"), ("B", "PER"));
        assert_eq!(tag("I-LOC"), ("I", "LOC"));
        assert_eq!(tag("MISC"), ("I", "MISC"));
    }
}
