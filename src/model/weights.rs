//! Reading checkpoint tensors (safetensors, sharded safetensors, PyTorch pickles) into one name →
//! tensor map, with legacy names normalized so every architecture sees the modern Hugging Face names.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::files::WeightFiles;
use super::LoadError;

/// All tensors of a checkpoint, on the CPU in their stored dtype until an architecture asks for them.
pub struct Weights {
    tensors: HashMap<String, Tensor>,
}

impl Weights {
    /// Reads every tensor of the checkpoint.
    pub fn read(files: &WeightFiles) -> Result<Self, LoadError> {
        let mut tensors = HashMap::new();
        match files {
            WeightFiles::Safetensors(paths) => {
                for path in paths {
                    let shard = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| bad(path, e))?;
                    tensors.extend(shard);
                }
            }
            WeightFiles::Pytorch(path) => {
                let all = candle_core::pickle::read_all(path).map_err(|e| bad(path, e))?;
                tensors.extend(all);
            }
        }
        let tensors = tensors.into_iter().map(|(name, t)| (normalize_name(&name), t)).collect();
        Ok(Self { tensors })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The first dimension of a 2-D tensor (e.g. the number of labels of a classifier).
    pub fn rows(&self, name: &str) -> Option<usize> {
        self.tensors.get(name).and_then(|t| t.dims().first().copied())
    }

    /// A var builder that converts tensors to `dtype` on `device` as the architecture loads them.
    pub fn into_var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_tensors(self.tensors, dtype, device)
    }
}

fn bad(path: &Path, e: candle_core::Error) -> LoadError {
    // candle's error text can span lines (backtraces); keep the first one.
    let reason = e.to_string().lines().next().unwrap_or("unreadable").to_string();
    LoadError::BadWeights { path: path.to_path_buf(), reason }
}

/// Maps TF-era LayerNorm names (`gamma`/`beta`) to `weight`/`bias`, as `transformers` does on load.
fn normalize_name(name: &str) -> String {
    if let Some(stem) = name.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = name.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_layer_norm_names_are_normalized() {
        assert_eq!(normalize_name("bert.embeddings.LayerNorm.gamma"), "bert.embeddings.LayerNorm.weight");
        assert_eq!(
            normalize_name("cls.predictions.transform.LayerNorm.beta"),
            "cls.predictions.transform.LayerNorm.bias"
        );
        assert_eq!(normalize_name("classifier.weight"), "classifier.weight");
    }
}
