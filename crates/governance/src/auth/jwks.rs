//! The keys of an OpenID Connect identity provider: its JWKS, found by discovery or at a
//! configured URL, trusted for its lifetime (`Cache-Control: max-age` within configured
//! bounds), refreshed in the background before that ends, and refetched on demand (a token
//! whose key set's lifetime is over, or an unknown `kid`) at most once per interval, with
//! concurrent requests sharing one fetch, so a flood of tokens cannot hammer the provider.
//!
//! A key is never used past the lifetime of the key set that published it: when the provider
//! is down, the cached keys keep verifying until then, [`IssuerHealth`] says so, and after it
//! the issuer's tokens are refused (fail closed) until a fetch succeeds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use amas_config::{JwksCacheConfig, JwksLocation, OidcIssuerConfig, SigningAlgorithm};
use async_trait::async_trait;
use jsonwebtoken::Algorithm;
use serde::Serialize;
use tracing::{info, warn};

use super::{AuthError, KeySource, VerificationKey, jwk};

/// Largest discovery document or JWKS accepted.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// How an issuer's key set stands, for `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IssuerHealth {
    /// The issuer's name in config.
    pub name: String,
    pub issuer: String,
    pub status: JwksStatus,
    /// Usable keys in the cache.
    pub keys: usize,
    /// Unix time of the last successful fetch.
    pub last_success_unix: Option<u64>,
    /// Why the last fetch failed, when it did (fixed text, never a response body).
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
}

/// The state of an issuer's key set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JwksStatus {
    /// The last fetch succeeded.
    Ok,
    /// The last fetch failed; the keys of an earlier fetch keep verifying until their
    /// lifetime ends.
    Stale,
    /// The cached key set outlived its lifetime and no fetch has succeeded since: this
    /// issuer's tokens are refused until one does.
    Expired,
    /// No fetch has succeeded yet: this issuer's tokens cannot be verified.
    Unavailable,
}

/// Why fetching the discovery document or the JWKS failed. Fixed text only.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum JwksError {
    #[error("request timed out")]
    Timeout,
    #[error("cannot connect")]
    Connect,
    #[error("request failed")]
    Request,
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("response larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    #[error("response is not the expected JSON")]
    InvalidJson,
    #[error("discovery document names another issuer")]
    IssuerMismatch,
    #[error("discovery document has no acceptable https jwks_uri")]
    BadJwksUri,
    #[error("JWKS has no usable key for the allowed algorithms")]
    NoUsableKeys,
}

/// One identity provider's keys, as a [`KeySource`].
pub struct JwksSource {
    name: String,
    issuer: String,
    auth_method: String,
    location: JwksLocation,
    allowed: Vec<Algorithm>,
    bounds: JwksCacheConfig,
    http: reqwest::Client,
    cache: RwLock<Cache>,
    /// Held while fetching: concurrent misses and the background refresh share one fetch.
    fetch: tokio::sync::Mutex<Resolved>,
    /// When the last on-demand refetch (an unknown `kid`, or a key set past its lifetime)
    /// started; at most one per `unknown_kid_refetch_interval`.
    last_demand_fetch: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, VerificationKey>,
    loaded: bool,
    /// When the lifetime of `keys` ends: no key is used from then on until a fetch succeeds.
    expires: Option<Instant>,
    /// When the background refresh fetches next (before `expires`, so requests rarely wait).
    next_refresh: Option<Instant>,
    last_success: Option<SystemTime>,
    last_error: Option<JwksError>,
    failures: u32,
}

/// The `jwks_uri` found by discovery, kept until a JWKS fetch fails.
#[derive(Default)]
struct Resolved {
    jwks_url: Option<String>,
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksSource")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl JwksSource {
    /// A source for `config`, with nothing fetched yet; see [`Self::spawn_refresh`] and
    /// [`Self::refresh`].
    ///
    /// # Errors
    /// `AuthError::KeyStore` when the HTTP client cannot be built (no TLS backend).
    pub fn new(config: &OidcIssuerConfig) -> Result<Self, AuthError> {
        let timeout = config.jwks_cache.http_timeout;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            // An environment proxy would see (and for loopback URLs could answer) key fetches.
            .no_proxy()
            .user_agent(concat!("amas/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| AuthError::KeyStore("cannot build the JWKS HTTP client".to_owned()))?;
        Ok(Self {
            name: config.name.clone(),
            issuer: config.issuer.clone(),
            auth_method: format!("oidc:{}", config.name),
            location: config.jwks.clone(),
            allowed: config.algorithms.iter().map(|a| algorithm(*a)).collect(),
            bounds: config.jwks_cache.clone(),
            http,
            cache: RwLock::new(Cache::default()),
            fetch: tokio::sync::Mutex::new(Resolved::default()),
            last_demand_fetch: Mutex::new(None),
        })
    }

    /// Builds the source and starts its background refresh (the first fetch runs at once).
    ///
    /// # Errors
    /// See [`Self::new`].
    pub fn spawn(config: &OidcIssuerConfig) -> Result<Arc<Self>, AuthError> {
        let source = Arc::new(Self::new(config)?);
        source.spawn_refresh();
        Ok(source)
    }

    /// Keeps the cache fresh until the source is dropped: fetches at once if never fetched,
    /// then before the key set's lifetime (its `max-age` clamped to the configured bounds)
    /// ends; after a failure, again after `min_refresh`.
    pub fn spawn_refresh(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        amas_telemetry::tasks::spawn("jwks.refresh", refresh_loop(weak))
    }

    /// Fetches now, whatever the cache says.
    ///
    /// # Errors
    /// Why the fetch failed; the previous keys stay in use.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        let mut resolved = self.fetch.lock().await;
        self.fetch_locked(&mut resolved).await
    }

    /// How the key set stands.
    #[must_use]
    pub fn health(&self) -> IssuerHealth {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        let status = match (cache.loaded, cache.fresh(Instant::now()), &cache.last_error) {
            (false, _, _) => JwksStatus::Unavailable,
            (true, false, _) => JwksStatus::Expired,
            (true, true, None) => JwksStatus::Ok,
            (true, true, Some(_)) => JwksStatus::Stale,
        };
        IssuerHealth {
            name: self.name.clone(),
            issuer: self.issuer.clone(),
            status,
            keys: cache.keys.len(),
            last_success_unix: cache
                .last_success
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            last_error: cache.last_error.as_ref().map(ToString::to_string),
            consecutive_failures: cache.failures,
        }
    }

    /// The key `kid` of the cached set, if that set is within its lifetime (`Err` otherwise).
    fn cached(&self, kid: &str) -> Result<Option<VerificationKey>, Expired> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        if cache.fresh(Instant::now()) {
            Ok(cache.keys.get(kid).cloned())
        } else {
            Err(Expired)
        }
    }

    /// Why no key can be trusted now: none was ever fetched, or the set's lifetime is over.
    fn no_trusted_keys(&self) -> AuthError {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        if cache.loaded {
            AuthError::KeysExpired
        } else {
            AuthError::KeysUnavailable
        }
    }

    /// Whether an on-demand refetch may start now; if so, records that it does.
    fn take_demand_slot(&self) -> bool {
        let mut last = self
            .last_demand_fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let interval = self.bounds.unknown_kid_refetch_interval;
        if last.is_some_and(|t| t.elapsed() < interval) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    fn demand_slot_free(&self) -> bool {
        let last = self
            .last_demand_fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.is_none_or(|t| t.elapsed() >= self.bounds.unknown_kid_refetch_interval)
    }

    /// Fetches on demand, at most once per interval, then looks `kid` up again: the key, `None`
    /// when the fresh set does not hold it, or why no key can be trusted.
    async fn refetch_for(&self, kid: &str) -> Result<Option<VerificationKey>, AuthError> {
        let mut resolved = self.fetch.lock().await;
        // Whoever held the lock may have fetched what we need.
        if let Ok(Some(key)) = self.cached(kid) {
            return Ok(Some(key));
        }
        if self.take_demand_slot() {
            let _ = self.fetch_locked(&mut resolved).await;
        }
        drop(resolved);
        self.cached(kid).map_err(|Expired| self.no_trusted_keys())
    }

    fn next_refresh(&self) -> Option<Instant> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        cache.next_refresh
    }

    async fn fetch_locked(&self, resolved: &mut Resolved) -> Result<(), JwksError> {
        // The lifetime counts from the request, not the answer: never longer than the
        // provider said.
        let asked = Instant::now();
        let result = self.download(resolved).await;
        let now = Instant::now();
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok((keys, max_age)) => {
                let ttl = max_age
                    .unwrap_or(self.bounds.max_refresh)
                    .clamp(self.bounds.min_refresh, self.bounds.max_refresh);
                if cache.failures > 0 || !cache.loaded {
                    info!(issuer.name = %self.name, keys = keys.len(), "JWKS loaded.");
                }
                cache.keys = keys;
                cache.loaded = true;
                cache.expires = Some(asked + ttl);
                // Refresh when four fifths of the lifetime are over (never sooner than
                // `min_refresh`), so a slow or failing fetch has time before the keys expire.
                cache.next_refresh = Some(asked + (ttl - ttl / 5).max(self.bounds.min_refresh));
                cache.last_success = Some(SystemTime::now());
                cache.last_error = None;
                cache.failures = 0;
                Ok(())
            }
            Err(err) => {
                // A failed JWKS fetch may mean the provider moved it: discover again next time.
                resolved.jwks_url = None;
                cache.next_refresh = Some(now + self.bounds.min_refresh);
                cache.last_error = Some(err.clone());
                cache.failures = cache.failures.saturating_add(1);
                if cache.fresh(now) {
                    warn!(
                        issuer.name = %self.name,
                        error = %err,
                        cached_keys = cache.keys.len(),
                        "JWKS fetch failed; cached keys stay in use until their lifetime ends."
                    );
                } else {
                    warn!(
                        issuer.name = %self.name,
                        error = %err,
                        "JWKS fetch failed and no key set is within its lifetime; this issuer's tokens are refused."
                    );
                }
                Err(err)
            }
        }
    }

    async fn download(
        &self,
        resolved: &mut Resolved,
    ) -> Result<(HashMap<String, VerificationKey>, Option<Duration>), JwksError> {
        let url = match (&self.location, &resolved.jwks_url) {
            (JwksLocation::Url { url }, _) | (JwksLocation::Discovery { .. }, Some(url)) => {
                url.clone()
            }
            (JwksLocation::Discovery { url }, None) => {
                let found = self.discover(url).await?;
                resolved.jwks_url = Some(found.clone());
                found
            }
        };
        let (doc, max_age) = self.get_json(&url).await?;
        let (keys, skipped) = jwk::parse_set(&doc, &self.allowed).ok_or(JwksError::InvalidJson)?;
        if skipped > 0 {
            info!(issuer.name = %self.name, skipped, "JWKS entries skipped (unsupported or not allowed).");
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys);
        }
        Ok((keys, max_age))
    }

    /// The `jwks_uri` of the discovery document, which must name this very issuer.
    async fn discover(&self, url: &str) -> Result<String, JwksError> {
        let (doc, _) = self.get_json(url).await?;
        if doc.get("issuer").and_then(serde_json::Value::as_str) != Some(self.issuer.as_str()) {
            return Err(JwksError::IssuerMismatch);
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(serde_json::Value::as_str)
            .ok_or(JwksError::BadJwksUri)?;
        if !acceptable_url(jwks_uri) {
            return Err(JwksError::BadJwksUri);
        }
        Ok(jwks_uri.to_owned())
    }

    async fn get_json(
        &self,
        url: &str,
    ) -> Result<(serde_json::Value, Option<Duration>), JwksError> {
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(request_error)?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status().as_u16()));
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(cache_max_age);
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(JwksError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let doc = serde_json::from_slice(&body).map_err(|_| JwksError::InvalidJson)?;
        Ok((doc, max_age))
    }
}

impl Cache {
    /// Whether the key set is within its lifetime at `now`.
    fn fresh(&self, now: Instant) -> bool {
        self.loaded && self.expires.is_some_and(|t| now < t)
    }
}

/// The cached key set is past its lifetime (or was never fetched).
struct Expired;

#[async_trait]
impl KeySource for JwksSource {
    async fn key(&self, kid: &str) -> Result<Option<VerificationKey>, AuthError> {
        match self.cached(kid) {
            Ok(Some(key)) => Ok(Some(key)),
            // An unknown kid in a fresh set: rate limit first, without waiting, so a flood of
            // random kids after a refetch returns at once instead of queueing behind the lock.
            Ok(None) if !self.demand_slot_free() => Ok(None),
            Ok(None) => self.refetch_for(kid).await,
            // Past its lifetime, no key of the set is trusted before the provider is asked
            // again: waits for a fetch under way, or starts one if the interval allows.
            Err(Expired) => self.refetch_for(kid).await,
        }
    }

    fn issuer(&self) -> &str {
        &self.issuer
    }

    fn auth_method(&self) -> &str {
        &self.auth_method
    }

    fn health(&self) -> Option<IssuerHealth> {
        Some(Self::health(self))
    }
}

async fn refresh_loop(weak: Weak<JwksSource>) {
    let mut stopping = amas_telemetry::tasks::global().stopping();
    loop {
        let Some(source) = weak.upgrade() else {
            return;
        };
        let due = source.next_refresh();
        drop(source);
        if let Some(due) = due {
            tokio::select! {
                () = tokio::time::sleep_until(due.into()) => {}
                () = stopping.wait() => return,
            }
        }
        let Some(source) = weak.upgrade() else {
            return;
        };
        let mut resolved = source.fetch.lock().await;
        // Someone else may have fetched while we slept or waited.
        if source.next_refresh().is_none_or(|t| t <= Instant::now()) {
            let _ = source.fetch_locked(&mut resolved).await;
        }
    }
}

fn request_error(err: reqwest::Error) -> JwksError {
    if err.is_timeout() {
        JwksError::Timeout
    } else if err.is_connect() {
        JwksError::Connect
    } else {
        JwksError::Request
    }
}

/// `max-age` of a `Cache-Control` value; `no-cache`/`no-store` count as zero (the lower bound
/// applies).
fn cache_max_age(value: &str) -> Option<Duration> {
    let mut found = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            found = secs
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    found
}

/// `https://`, or `http://` on loopback (as in config validation).
fn acceptable_url(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    // A loopback IP literal, not a name that merely starts with `127.`.
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !authority.contains('@') && loopback
}

fn algorithm(alg: SigningAlgorithm) -> Algorithm {
    match alg {
        SigningAlgorithm::RS256 => Algorithm::RS256,
        SigningAlgorithm::ES256 => Algorithm::ES256,
        SigningAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age_and_no_cache() {
        assert_eq!(
            cache_max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(cache_max_age("no-cache, max-age=300"), Some(Duration::ZERO));
        assert_eq!(cache_max_age("public"), None);
        assert_eq!(cache_max_age("max-age=abc"), None);
    }

    #[test]
    fn jwks_uri_must_be_https_or_loopback() {
        assert!(acceptable_url("https://idp.example.com/certs"));
        assert!(acceptable_url("http://127.0.0.1:9000/jwks"));
        assert!(!acceptable_url("http://idp.example.com/certs"));
        assert!(!acceptable_url("http://127.0.0.1@evil.example.com/"));
        assert!(!acceptable_url("http://127.attacker.example/jwks"));
        assert!(acceptable_url("http://[::1]:9000/jwks"));
        assert!(!acceptable_url("file:///etc/passwd"));
    }
}
