//! The API keys file (`--api-keys-file`): JSON that a Kubernetes Secret holds as one key.
//!
//! ```json
//! {"keys": [
//!   {"sha256": "<hex of SHA-256(key)>", "tenant": "search", "priority": "interactive",
//!    "tokens_per_second": 2000},
//!   {"sha256": "<hex>", "tenant": "indexer", "priority": "batch", "tokens_per_minute": 3000000}
//! ]}
//! ```
//!
//! Only hashes are stored (`printf %s "$KEY" | sha256sum`). Several entries may name one tenant
//! (two keys during a rotation); they share its class and quota, which must then agree.

use std::collections::HashMap;

use serde::Deserialize;

use super::quota::QuotaSpec;
use crate::batching::Priority;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    pub keys: Vec<KeyEntry>,
}

/// One key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// SHA-256 of the key, 64 hex digits.
    #[serde(deserialize_with = "sha256_hex")]
    pub sha256: [u8; 32],
    /// The tenant's name: its metrics label and fair-share key.
    pub tenant: String,
    /// The class of its requests that name none (`interactive` or `batch`).
    #[serde(default, deserialize_with = "priority")]
    pub priority: Option<Priority>,
    /// Token quota per second (bucket of one second's tokens).
    pub tokens_per_second: Option<u64>,
    /// Token quota per minute (bucket of one minute's tokens).
    pub tokens_per_minute: Option<u64>,
}

impl KeyEntry {
    /// Its quota, if it has one.
    pub fn quota(&self) -> Option<QuotaSpec> {
        (self.tokens_per_second.is_some() || self.tokens_per_minute.is_some())
            .then_some(QuotaSpec { per_second: self.tokens_per_second, per_minute: self.tokens_per_minute })
    }
}

/// Why a keys file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("not a keys file: {0}")]
    Json(#[from] serde_json::Error),
    #[error("tenant {0:?}: its entries disagree on priority or quota")]
    Conflict(String),
    #[error("tenant names must be 1 to 64 characters of letters, digits, '-', '_' or '.': {0:?}")]
    BadName(String),
    #[error("a quota of 0 tokens lets nothing through (tenant {0:?}); leave it out for no quota")]
    ZeroQuota(String),
}

impl KeysFile {
    /// Parses and checks `contents`.
    pub fn parse(contents: &[u8]) -> Result<Self, FileError> {
        let file: Self = serde_json::from_slice(contents)?;
        let mut seen: HashMap<&str, (Option<Priority>, Option<QuotaSpec>)> = HashMap::new();
        for e in &file.keys {
            let name_ok = !e.tenant.is_empty()
                && e.tenant.len() <= 64
                && e.tenant.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !name_ok {
                return Err(FileError::BadName(e.tenant.chars().take(64).collect()));
            }
            if e.tokens_per_second == Some(0) || e.tokens_per_minute == Some(0) {
                return Err(FileError::ZeroQuota(e.tenant.clone()));
            }
            let this = (e.priority, e.quota());
            if *seen.entry(e.tenant.as_str()).or_insert(this) != this {
                return Err(FileError::Conflict(e.tenant.clone()));
            }
        }
        Ok(file)
    }
}

fn sha256_hex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let s = String::deserialize(d)?;
    let s = s.trim();
    let bad = || serde::de::Error::custom("sha256 must be 64 hex digits");
    if s.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn priority<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Priority>, D::Error> {
    let s = String::deserialize(d)?;
    Priority::parse(&s).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

    #[test]
    fn parses_entries_and_refuses_what_would_mislead() {
        let ok = format!(r#"{{"keys": [{{"sha256": "{HASH}", "tenant": "a", "tokens_per_minute": 60}}]}}"#);
        let file = KeysFile::parse(ok.as_bytes()).unwrap();
        assert_eq!(file.keys[0].quota(), Some(QuotaSpec { per_second: None, per_minute: Some(60) }));
        assert_eq!(file.keys[0].priority, None);
        for bad in [
            r#"{"keys": [{"sha256": "abc", "tenant": "a"}]}"#.to_string(),
            format!(r#"{{"keys": [{{"sha256": "{HASH}", "tenant": "a b"}}]}}"#),
            format!(r#"{{"keys": [{{"sha256": "{HASH}", "tenant": "a", "tokens_per_second": 0}}]}}"#),
            format!(r#"{{"keys": [{{"sha256": "{HASH}", "tenant": "a", "priority": "urgent"}}]}}"#),
            format!(r#"{{"keys": [{{"sha256": "{HASH}", "tenant": "a", "extra": 1}}]}}"#),
            format!(
                r#"{{"keys": [{{"sha256": "{HASH}", "tenant": "a", "priority": "batch"}}, {{"sha256": "{HASH}", "tenant": "a"}}]}}"#
            ),
            "keys:\n- a".to_string(),
        ] {
            assert!(KeysFile::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
