//! Token buckets per client and route class, in bounded memory. A client is a principal (hashed
//! issuer, tenant and subject) or, for requests without a valid token, a client address (an
//! IPv4 address or an IPv6 /64, see `clients`).
//!
//! Memory: at most `max_clients` buckets. A bucket that has refilled completely is the same as
//! a new one, so it is dropped first; when the table is still full, new clients share one
//! overflow bucket per class, which keeps every limit in force (fail closed) instead of
//! forgetting an active client's debt.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use amas_config::{RateLimit, RateLimitsConfig};
use amas_types::Principal;

use crate::clients::client_addr;

/// Shards of the table, so concurrent requests rarely wait on one lock.
const SHARDS: usize = 16;

/// At most one full sweep of a shard per this interval when it is full.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What a route costs: each class has its own bucket per client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteClass {
    Unauthenticated,
    Read,
    Write,
    Stream,
    Admin,
}

impl RouteClass {
    /// The metric label (a bounded set).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Read => "read",
            Self::Write => "write",
            Self::Stream => "stream",
            Self::Admin => "admin",
        }
    }

    /// The class of an authenticated request, from its method and matched route template.
    pub fn of(method: &axum::http::Method, route: &str) -> Self {
        if route == "/api/v1/audit" || route == "/metrics" {
            Self::Admin
        } else if route == "/api/v1/tasks/{id}/events" {
            Self::Stream
        } else if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
            Self::Read
        } else {
            Self::Write
        }
    }
}

/// Who is charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ClientKey {
    /// A hash of the principal's issuer, tenant and subject (fixed size, whatever the token).
    Principal(u64),
    Address(IpAddr),
}

/// The answer for one request: allowed or not, and what the `RateLimit-*` headers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub class: RouteClass,
    /// The bucket's size (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests left right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Seconds until the bucket is full again (`RateLimit-Reset`).
    pub reset_secs: u64,
    /// Seconds until the next request is allowed (`Retry-After`; 0 when allowed).
    pub retry_after_secs: u64,
    /// Seconds one full bucket lasts at the refill rate (`RateLimit-Policy` `w=`).
    pub window_secs: u64,
    /// The first refusal after an allowed request: a flood is audited once, not per request.
    pub first_refusal: bool,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    /// The last request was refused.
    refusing: bool,
}

impl Bucket {
    fn full(limit: RateLimit, now: Instant) -> Self {
        Self {
            tokens: f64::from(limit.burst),
            updated: now,
            refusing: false,
        }
    }

    fn refill(&mut self, limit: RateLimit, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate(limit)).min(f64::from(limit.burst));
        self.updated = now;
    }

    fn is_full(&self, limit: RateLimit, now: Instant) -> bool {
        let mut b = *self;
        b.refill(limit, now);
        b.tokens >= f64::from(limit.burst)
    }

    fn take(&mut self, limit: RateLimit, class: RouteClass, now: Instant) -> Verdict {
        self.refill(limit, now);
        let allowed = self.tokens >= 1.0;
        if allowed {
            self.tokens -= 1.0;
        }
        let first_refusal = !allowed && !self.refusing;
        self.refusing = !allowed;
        let r = rate(limit);
        let burst = f64::from(limit.burst);
        let secs = |x: f64| -> u64 {
            if x <= 0.0 {
                0
            } else {
                // Saturating float-to-int cast: the values are bounded by burst / rate.
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "non-negative and bounded by burst / rate"
                )]
                let s = x.ceil() as u64;
                s
            }
        };
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "0 <= tokens <= burst, which is a u32"
        )]
        let remaining = self.tokens.floor().max(0.0) as u32;
        Verdict {
            allowed,
            class,
            limit: limit.burst,
            remaining,
            reset_secs: secs((burst - self.tokens) / r),
            retry_after_secs: if allowed {
                0
            } else {
                secs((1.0 - self.tokens) / r).max(1)
            },
            window_secs: secs(burst / r).max(1),
            first_refusal,
        }
    }
}

/// Tokens per second.
fn rate(limit: RateLimit) -> f64 {
    f64::from(limit.per_minute) / 60.0
}

#[derive(Default)]
struct Shard {
    buckets: HashMap<(ClientKey, RouteClass), Bucket>,
    last_sweep: Option<Instant>,
}

/// The rate limiter: shared by every request. Cheap to call (one hash, one short lock).
pub struct RateLimiter {
    config: RateLimitsConfig,
    shards: Vec<Mutex<Shard>>,
    /// Where new clients are charged when the table is full, one bucket per class.
    overflow: Mutex<HashMap<RouteClass, Bucket>>,
    hasher: std::hash::RandomState,
    per_shard: usize,
}

impl RateLimiter {
    pub fn new(config: RateLimitsConfig) -> Self {
        let per_shard = config.max_clients.div_ceil(SHARDS).max(1);
        Self {
            config,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            overflow: Mutex::new(HashMap::new()),
            hasher: std::hash::RandomState::new(),
            per_shard,
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    fn limit(&self, class: RouteClass) -> RateLimit {
        match class {
            RouteClass::Unauthenticated => self.config.unauthenticated,
            RouteClass::Read => self.config.read,
            RouteClass::Write => self.config.write,
            RouteClass::Stream => self.config.stream,
            RouteClass::Admin => self.config.admin,
        }
    }

    /// Charges one request of `principal` in `class`.
    pub fn check_principal(&self, principal: &Principal, class: RouteClass) -> Verdict {
        let key = self.hasher.hash_one((
            principal.auth_method.as_str(),
            principal.tenant.0.as_str(),
            principal.sub.as_str(),
        ));
        self.check(ClientKey::Principal(key), class, Instant::now())
    }

    /// Charges one unauthenticated request from `addr`.
    pub fn check_address(&self, addr: IpAddr) -> Verdict {
        self.check(
            ClientKey::Address(client_addr(addr)),
            RouteClass::Unauthenticated,
            Instant::now(),
        )
    }

    /// Gives back one request charged to `addr` by [`Self::check_address`] (its token turned
    /// out valid); never beyond a full bucket, and nothing if the address has no bucket.
    pub fn refund_address(&self, addr: IpAddr) {
        let key = (
            ClientKey::Address(client_addr(addr)),
            RouteClass::Unauthenticated,
        );
        let limit = self.limit(RouteClass::Unauthenticated);
        let index = usize::try_from(self.hasher.hash_one(key.0) % SHARDS as u64).unwrap_or(0);
        let Some(shard) = self.shards.get(index) else {
            return;
        };
        let mut shard = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bucket) = shard.buckets.get_mut(&key) {
            bucket.refill(limit, Instant::now());
            bucket.tokens = (bucket.tokens + 1.0).min(f64::from(limit.burst));
        }
    }

    fn check(&self, key: ClientKey, class: RouteClass, now: Instant) -> Verdict {
        let limit = self.limit(class);
        let index = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        let Some(shard) = self.shards.get(index) else {
            return self.check_overflow(class, limit, now);
        };
        let mut shard = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bucket) = shard.buckets.get_mut(&(key, class)) {
            return bucket.take(limit, class, now);
        }
        if shard.buckets.len() >= self.per_shard {
            self.sweep(&mut shard, now);
        }
        if shard.buckets.len() >= self.per_shard {
            drop(shard);
            return self.check_overflow(class, limit, now);
        }
        let bucket = shard
            .buckets
            .entry((key, class))
            .or_insert_with(|| Bucket::full(limit, now));
        bucket.take(limit, class, now)
    }

    /// Drops every bucket that has refilled completely (indistinguishable from a new one).
    fn sweep(&self, shard: &mut Shard, now: Instant) {
        if shard
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY)
        {
            return;
        }
        shard.last_sweep = Some(now);
        shard
            .buckets
            .retain(|(_, class), bucket| !bucket.is_full(self.limit(*class), now));
    }

    fn check_overflow(&self, class: RouteClass, limit: RateLimit, now: Instant) -> Verdict {
        let mut overflow = self
            .overflow
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        overflow
            .entry(class)
            .or_insert_with(|| Bucket::full(limit, now))
            .take(limit, class, now)
    }

    /// Buckets held now (for tests of the memory bound).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .buckets
                    .len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_clients: usize) -> RateLimitsConfig {
        let l = RateLimit {
            per_minute: 60,
            burst: 3,
        };
        RateLimitsConfig {
            enabled: true,
            max_clients,
            unauthenticated: l,
            read: l,
            write: l,
            stream: l,
            admin: l,
        }
    }

    fn ip(n: u32) -> ClientKey {
        ClientKey::Address(IpAddr::V4(n.into()))
    }

    /// A burst is allowed, the next request is not, and one token comes back per second at
    /// 60/min; the headers' numbers follow the bucket.
    #[test]
    fn bucket_allows_a_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(config(1000));
        let t0 = Instant::now();
        let class = RouteClass::Read;
        let first = limiter.check(ip(1), class, t0);
        assert!(first.allowed);
        assert_eq!((first.limit, first.remaining), (3, 2));
        assert!(limiter.check(ip(1), class, t0).allowed);
        assert!(limiter.check(ip(1), class, t0).allowed);
        let refused = limiter.check(ip(1), class, t0);
        assert!(!refused.allowed);
        assert!(refused.first_refusal);
        assert!(!limiter.check(ip(1), class, t0).first_refusal);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after_secs, 1);
        assert_eq!(refused.reset_secs, 3);
        assert_eq!(refused.window_secs, 3);
        // Another class and another client have their own buckets.
        assert!(limiter.check(ip(1), RouteClass::Write, t0).allowed);
        assert!(limiter.check(ip(2), class, t0).allowed);
        let later = limiter.check(ip(1), class, t0 + Duration::from_millis(1100));
        assert!(later.allowed);
        assert_eq!(later.remaining, 0);
    }

    /// The table never grows past its bound: idle (refilled) buckets are evicted, and while
    /// every bucket is active, new clients share the overflow bucket, which still limits them.
    #[test]
    fn memory_is_bounded_and_overflow_still_limits() {
        let limiter = RateLimiter::new(config(16));
        let t0 = Instant::now();
        for n in 0..10_000 {
            let _ = limiter.check(ip(n), RouteClass::Read, t0);
        }
        assert!(limiter.tracked() <= 16, "{}", limiter.tracked());
        // New clients beyond the bound share one bucket of burst 3.
        let allowed = (20_000..20_010)
            .filter(|n| limiter.check(ip(*n), RouteClass::Write, t0).allowed)
            .count();
        assert!(allowed <= 3 + 16, "{allowed}");
        // Once the buckets have refilled, a sweep frees room for new clients.
        let later = t0 + Duration::from_secs(60);
        assert!(limiter.check(ip(99_999), RouteClass::Read, later).allowed);
        assert!(limiter.tracked() <= 16);
    }

    #[test]
    fn ipv4_mapped_addresses_share_the_ipv4_bucket() {
        let limiter = RateLimiter::new(config(1000));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check_address(v4).allowed);
        }
        assert!(!limiter.check_address(mapped).allowed);
    }

    /// A client holding an IPv6 /64 cannot get fresh buckets by changing the low 64 bits: every
    /// address of the block drains one bucket, while the next /64 has its own.
    #[test]
    fn ipv6_addresses_of_one_64_share_a_bucket() {
        let limiter = RateLimiter::new(config(1000));
        for host in 1..=3 {
            let ip: IpAddr = format!("2001:db8:7:8::{host:x}").parse().unwrap();
            assert!(limiter.check_address(ip).allowed);
        }
        let same_64: IpAddr = "2001:db8:7:8:dead:beef:0:1".parse().unwrap();
        assert!(!limiter.check_address(same_64).allowed);
        let next_64: IpAddr = "2001:db8:7:9::1".parse().unwrap();
        assert!(limiter.check_address(next_64).allowed);
        assert_eq!(limiter.tracked(), 2);
    }

    /// A refund gives one request back (a token that turned out valid costs its address
    /// nothing), never beyond a full bucket.
    #[test]
    fn a_refund_gives_one_request_back() {
        let limiter = RateLimiter::new(config(1000));
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        limiter.refund_address(ip);
        assert_eq!(limiter.tracked(), 0, "no bucket is made by a refund");
        for _ in 0..3 {
            assert!(limiter.check_address(ip).allowed);
        }
        assert!(!limiter.check_address(ip).allowed);
        limiter.refund_address(ip);
        assert!(limiter.check_address(ip).allowed);
        assert!(!limiter.check_address(ip).allowed);
    }

    #[test]
    fn classes_follow_method_and_route() {
        use axum::http::Method;
        assert_eq!(
            RouteClass::of(&Method::GET, "/api/v1/tasks/{id}"),
            RouteClass::Read
        );
        assert_eq!(
            RouteClass::of(&Method::POST, "/api/v1/tasks"),
            RouteClass::Write
        );
        assert_eq!(
            RouteClass::of(&Method::GET, "/api/v1/tasks/{id}/events"),
            RouteClass::Stream
        );
        assert_eq!(
            RouteClass::of(&Method::GET, "/api/v1/audit"),
            RouteClass::Admin
        );
    }
}
