//! Who is calling: API keys to tenants, transport-free, so the HTTP layer and a gRPC interceptor
//! share one [`Keys::authenticate`]. Keys come from `--api-key` (the tenant `default`) and from
//! `--api-keys-file` (format in [`file`]), which is re-read when its contents change: a rotated
//! Kubernetes Secret takes effect without a restart, and a broken file keeps the last good set.
//! Presented keys are hashed (SHA-256) and compared with every stored hash in constant time.

pub mod file;
pub mod quota;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::batching::Priority;
pub use file::{FileError, KeyEntry, KeysFile};
pub use quota::{OverQuota, Quota, QuotaSpec};

/// The tenant of requests when no key is required.
pub const ANONYMOUS: &str = "anonymous";
/// The tenant of the single `--api-key`.
pub const DEFAULT_TENANT: &str = "default";

/// One tenant: a name (also its metrics label: names only ever come from the configuration), its
/// default class and its token quota, if any.
#[derive(Debug)]
pub struct Tenant {
    /// Stable for the process's life, the queue's fair share key (0: anonymous).
    pub id: u32,
    pub name: Arc<str>,
    /// The class of its requests that name none; `None`: the server's default.
    pub priority: Option<Priority>,
    /// Its token buckets (shared across reloads while the tenant's quota is unchanged).
    pub quota: Option<Arc<Quota>>,
}

impl Tenant {
    /// The tenant of requests when no key is configured.
    pub fn anonymous() -> Arc<Self> {
        Arc::new(Self { id: 0, name: ANONYMOUS.into(), priority: None, quota: None })
    }
}

/// Why a request is not let in (401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing API key: send `Authorization: Bearer <key>`")]
    Missing,
    #[error("invalid API key")]
    Invalid,
}

/// Where keys come from. Its `Debug` never shows the key.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// `--api-key`: one key, tenant [`DEFAULT_TENANT`].
    pub api_key: Option<String>,
    /// `--api-keys-file`: the tenants' keys, watched for changes.
    pub keys_file: Option<PathBuf>,
    /// How often the file is checked.
    pub poll: Duration,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("keys_file", &self.keys_file)
            .field("poll", &self.poll)
            .finish()
    }
}

/// The keys in force.
#[derive(Debug, Default)]
struct KeySet {
    /// SHA-256 of each key and its tenant.
    keys: Vec<([u8; 32], Arc<Tenant>)>,
}

/// Every key the server accepts, swappable at run time. Cheap to share as an `Arc`.
#[derive(Debug)]
pub struct Keys {
    /// False: no key configured, every request is [`Tenant::anonymous`].
    required: bool,
    single: Option<([u8; 32], Arc<Tenant>)>,
    set: RwLock<Arc<KeySet>>,
    /// Tenant ids and buckets by name, kept across reloads.
    known: Mutex<Known>,
    anonymous: Arc<Tenant>,
}

#[derive(Debug, Default)]
struct Known {
    ids: HashMap<String, u32>,
    quotas: HashMap<String, Arc<Quota>>,
}

/// SHA-256 of `key`, as the keys file stores it.
pub fn hash(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

impl Keys {
    /// No authentication: every request is anonymous.
    pub fn open() -> Self {
        Self {
            required: false,
            single: None,
            set: RwLock::default(),
            known: Mutex::default(),
            anonymous: Tenant::anonymous(),
        }
    }

    /// The keys `config` names; the file (if any) is read now and then watched on a thread of its
    /// own every `config.poll`. A file that cannot be read at start leaves only `--api-key` in
    /// force (every other request gets 401) until a good one appears; the reason is logged.
    pub fn start(config: &AuthConfig) -> Arc<Self> {
        if config.api_key.is_none() && config.keys_file.is_none() {
            return Arc::new(Self::open());
        }
        let mut keys = Self { required: true, ..Self::open() };
        if let Some(key) = &config.api_key {
            let tenant = keys.tenant(DEFAULT_TENANT, None, None);
            keys.single = Some((hash(key.as_bytes()), tenant));
        }
        let keys = Arc::new(keys);
        if let Some(path) = config.keys_file.clone() {
            let last = match std::fs::read(&path) {
                Ok(bytes) => {
                    if let Err(e) = keys.reload(&bytes) {
                        tracing::error!(path = %path.display(), error = %e, "API keys file is invalid; no key of it is accepted until it is fixed");
                    }
                    Some(bytes)
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot read the API keys file; no key of it is accepted until it can be read");
                    None
                }
            };
            watch(Arc::downgrade(&keys), path, config.poll, last);
        }
        keys
    }

    /// Who sent `headers`: the tenant of the key in `Authorization: Bearer <key>` or
    /// `x-api-key: <key>`; anonymous when no key is configured.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Tenant>, AuthError> {
        if !self.required {
            return Ok(self.anonymous.clone());
        }
        let given = hash(presented(headers).ok_or(AuthError::Missing)?);
        let set = self.set.read().unwrap_or_else(|e| e.into_inner()).clone();
        // Every stored hash is compared, whatever matched before: the time does not depend on
        // which key (if any) matched.
        let mut found = None;
        for (stored, tenant) in self.single.iter().chain(set.keys.iter()) {
            if bool::from(stored[..].ct_eq(&given[..])) {
                found = Some(tenant);
            }
        }
        found.cloned().ok_or(AuthError::Invalid)
    }

    /// Replaces the file's keys with those in `contents`; on an error the keys in force stay.
    /// Returns how many keys are now in force from the file.
    pub fn reload(&self, contents: &[u8]) -> Result<usize, FileError> {
        let file = KeysFile::parse(contents)?;
        let mut keys = Vec::with_capacity(file.keys.len());
        let mut tenants: HashMap<String, Arc<Tenant>> = HashMap::new();
        for entry in &file.keys {
            let tenant = tenants
                .entry(entry.tenant.clone())
                .or_insert_with(|| self.tenant(&entry.tenant, entry.priority, entry.quota()))
                .clone();
            keys.push((entry.sha256, tenant));
        }
        let n = keys.len();
        *self.set.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(KeySet { keys });
        Ok(n)
    }

    /// Every tenant name the metrics may carry: those in force, plus `default` and `anonymous`.
    pub fn tenant_names(&self) -> Vec<Arc<str>> {
        let set = self.set.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut names: Vec<Arc<str>> = set.keys.iter().map(|(_, t)| t.name.clone()).collect();
        names.extend(self.single.iter().map(|(_, t)| t.name.clone()));
        names.push(self.anonymous.name.clone());
        names.sort();
        names.dedup();
        names
    }

    /// The tenant `name` with an id stable across reloads, and its buckets kept while its quota
    /// is unchanged.
    fn tenant(&self, name: &str, priority: Option<Priority>, quota: Option<QuotaSpec>) -> Arc<Tenant> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let next = known.ids.len() as u32 + 1;
        let id = *known.ids.entry(name.to_string()).or_insert(next);
        let quota = quota.map(|spec| match known.quotas.get(name) {
            Some(q) if q.spec() == spec => q.clone(),
            _ => {
                let q = Arc::new(Quota::new(spec));
                known.quotas.insert(name.to_string(), q.clone());
                q
            }
        });
        Arc::new(Tenant { id, name: name.into(), priority, quota })
    }
}

/// Checks the file every `every` on a thread of its own; re-reads it when its bytes change (a
/// Kubernetes Secret volume swaps a symlink, so contents are compared, not inotify events). Ends
/// once the keys are dropped.
fn watch(keys: Weak<Keys>, path: PathBuf, every: Duration, mut last: Option<Vec<u8>>) {
    let spawned = std::thread::Builder::new().name("api-keys-watch".into()).spawn(move || loop {
        std::thread::sleep(every);
        let Some(keys) = keys.upgrade() else { return };
        match std::fs::read(&path) {
            Ok(bytes) if last.as_deref() != Some(&bytes[..]) => {
                match keys.reload(&bytes) {
                    Ok(n) => tracing::info!(path = %path.display(), keys = n, "API keys file reloaded"),
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "API keys file is invalid; the last good keys stay in force")
                    }
                }
                last = Some(bytes);
            }
            Ok(_) => {}
            Err(e) => {
                if last.is_some() {
                    tracing::error!(path = %path.display(), error = %e, "cannot read the API keys file; the last good keys stay in force");
                }
                last = None;
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the API keys file watcher; the file is read only once");
    }
}

/// The key the client sent, if any.
fn presented(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.as_bytes();
        let scheme = value.get(..7)?;
        return scheme.eq_ignore_ascii_case(b"bearer ").then(|| value[7..].trim_ascii());
    }
    headers.get("x-api-key").map(|v| v.as_bytes().trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn finds_the_key_in_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert("x-api-key", HeaderValue::from_static("k1"));
        assert_eq!(presented(&h), Some(&b"k1"[..]));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer k2"));
        assert_eq!(presented(&h), Some(&b"k2"[..]));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bear"));
        assert_eq!(presented(&h), None);
    }

    fn with_key(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_str(key).unwrap());
        h
    }

    fn hex(key: &str) -> String {
        hash(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn keys_map_to_tenants_and_a_reload_swaps_them_keeping_ids_and_buckets() {
        let config = AuthConfig { api_key: Some("single".into()), ..AuthConfig::default() };
        let keys = Keys::start(&config);
        assert_eq!(&*keys.authenticate(&with_key("single")).unwrap().name, DEFAULT_TENANT);
        assert_eq!(keys.authenticate(&HeaderMap::new()).unwrap_err(), AuthError::Missing);
        let file = format!(
            r#"{{"keys": [{{"sha256": "{}", "tenant": "search", "priority": "interactive", "tokens_per_second": 100}},
                         {{"sha256": "{}", "tenant": "indexer", "priority": "batch"}}]}}"#,
            hex("k-search"),
            hex("k-index")
        );
        assert_eq!(keys.reload(file.as_bytes()).unwrap(), 2);
        let search = keys.authenticate(&with_key("k-search")).unwrap();
        assert_eq!((&*search.name, search.priority), ("search", Some(Priority::Interactive)));
        assert_eq!(keys.authenticate(&with_key("k-index")).unwrap().priority, Some(Priority::Batch));
        assert_eq!(keys.authenticate(&with_key("nope")).unwrap_err(), AuthError::Invalid);
        // Rotated: the old key is refused, the new one is the same tenant with the same bucket.
        let rotated = file.replace(&hex("k-search"), &hex("k-search-2"));
        keys.reload(rotated.as_bytes()).unwrap();
        assert_eq!(keys.authenticate(&with_key("k-search")).unwrap_err(), AuthError::Invalid);
        let again = keys.authenticate(&with_key("k-search-2")).unwrap();
        assert_eq!(again.id, search.id);
        assert!(Arc::ptr_eq(again.quota.as_ref().unwrap(), search.quota.as_ref().unwrap()));
        // A broken file keeps the last good set.
        assert!(keys.reload(b"{\"keys\": [{\"sha256\": \"zz\"}]}").is_err());
        assert!(keys.authenticate(&with_key("k-search-2")).is_ok());
        assert_eq!(
            keys.tenant_names().iter().map(|n| &**n).collect::<Vec<_>>(),
            ["anonymous", "default", "indexer", "search"]
        );
    }

    #[test]
    fn without_keys_everyone_is_anonymous() {
        let keys = Keys::start(&AuthConfig::default());
        assert_eq!(&*keys.authenticate(&HeaderMap::new()).unwrap().name, ANONYMOUS);
    }
}
