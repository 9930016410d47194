//! Model inputs for the model-step benches: ordinary word ids, no tokenizer needed.

/// `batch` inputs of `[CLS] w w ... [SEP]`, each exactly `tokens` long (BERT's 101/102), with word
/// ids that differ between inputs.
pub fn synthetic_ids(batch: usize, tokens: usize) -> Vec<Vec<u32>> {
    (0..batch)
        .map(|b| {
            let mut v = vec![101u32];
            v.extend((0..tokens - 2).map(|i| 2000 + ((i * 7 + b * 13) % 5000) as u32));
            v.push(102);
            v
        })
        .collect()
}
