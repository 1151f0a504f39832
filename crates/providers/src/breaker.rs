//! The per-provider circuit breaker: after repeated failures a provider is skipped (fail fast)
//! for a cool-down, then one probe call decides whether it is healthy again.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use amas_config::BreakerConfig;
use amas_telemetry::Metrics;
use amas_telemetry::metrics::ProviderNameLabels;

use crate::ProviderError;

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// The cool-down is over and one probe call is (or may be) in flight.
    HalfOpen,
    /// Calls fail fast until the cool-down ends.
    Open,
}

impl BreakerState {
    /// The value of the `provider_breaker_state` gauge.
    fn gauge_value(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

/// The breaker's source of time, so tests can move it forward instead of sleeping.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to (tests and benchmarks).
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    elapsed: Mutex<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            elapsed: Mutex::new(Duration::ZERO),
        }
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        *lock(&self.elapsed) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *lock(&self.elapsed)
    }
}

#[derive(Debug)]
enum Inner {
    Closed {
        consecutive_failures: u32,
    },
    Open {
        since: Instant,
    },
    /// `probing`: the single probe has been handed out and has not reported yet.
    HalfOpen {
        probing: bool,
    },
}

impl Inner {
    fn state(&self) -> BreakerState {
        match self {
            Self::Closed { .. } => BreakerState::Closed,
            Self::Open { .. } => BreakerState::Open,
            Self::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// Which state let a call through; its outcome only counts while that state still holds, so a
/// slow call started before the breaker opened cannot close it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PermitKind {
    Closed,
    Probe,
}

/// Circuit breaker of one provider. Shared (`Arc`) between every chain that uses the provider.
pub struct CircuitBreaker {
    provider: String,
    failure_threshold: u32,
    cool_down: Duration,
    clock: Arc<dyn Clock>,
    metrics: Option<Metrics>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("provider", &self.provider)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    /// A closed breaker on the system clock, without metrics.
    #[must_use]
    pub fn new(provider: &str, config: &BreakerConfig) -> Self {
        Self::with_clock(provider, config, Arc::new(SystemClock))
    }

    #[must_use]
    pub fn with_clock(provider: &str, config: &BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            provider: provider.to_owned(),
            // A threshold of 0 would open on nothing; treat it as "open on the first failure".
            failure_threshold: config.failure_threshold.max(1),
            cool_down: config.cool_down,
            clock,
            metrics: None,
            inner: Mutex::new(Inner::Closed {
                consecutive_failures: 0,
            }),
        }
    }

    /// Publishes every state change on the `provider_breaker_state` gauge.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self.publish(BreakerState::Closed);
        self
    }

    #[must_use]
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The current state; an open breaker whose cool-down is over reads as half-open.
    #[must_use]
    pub fn state(&self) -> BreakerState {
        let inner = lock(&self.inner);
        match *inner {
            Inner::Open { since } if self.cooled_down(since) => BreakerState::HalfOpen,
            ref other => other.state(),
        }
    }

    /// Asks to make a call. Report its outcome on the permit; a permit dropped without an
    /// outcome (cancelled call) is neutral, except that an unfinished probe re-opens the breaker
    /// so another probe can follow after the next cool-down.
    ///
    /// # Errors
    /// [`ProviderError::CircuitOpen`] while open, or while the half-open probe is in flight.
    pub fn acquire(&self) -> Result<BreakerPermit<'_>, ProviderError> {
        let mut inner = lock(&self.inner);
        let kind = match *inner {
            Inner::Closed { .. } => PermitKind::Closed,
            Inner::Open { since } if self.cooled_down(since) => {
                *inner = Inner::HalfOpen { probing: true };
                self.publish(BreakerState::HalfOpen);
                PermitKind::Probe
            }
            Inner::HalfOpen { probing: false } => {
                *inner = Inner::HalfOpen { probing: true };
                PermitKind::Probe
            }
            Inner::Open { since } => {
                return Err(ProviderError::CircuitOpen {
                    provider: self.provider.clone(),
                    retry_in: Some(self.cooldown_left(since)),
                });
            }
            Inner::HalfOpen { probing: true } => {
                return Err(ProviderError::CircuitOpen {
                    provider: self.provider.clone(),
                    retry_in: None,
                });
            }
        };
        Ok(BreakerPermit {
            breaker: self,
            kind,
            reported: false,
        })
    }

    fn on_success(&self, kind: PermitKind) {
        let mut inner = lock(&self.inner);
        match (&mut *inner, kind) {
            (
                Inner::Closed {
                    consecutive_failures,
                },
                PermitKind::Closed,
            ) => *consecutive_failures = 0,
            (Inner::HalfOpen { .. }, PermitKind::Probe) => {
                *inner = Inner::Closed {
                    consecutive_failures: 0,
                };
                self.publish(BreakerState::Closed);
            }
            // A stale outcome from a call let through under an earlier state.
            _ => {}
        }
    }

    fn on_failure(&self, kind: PermitKind) {
        let mut inner = lock(&self.inner);
        match (&mut *inner, kind) {
            (
                Inner::Closed {
                    consecutive_failures,
                },
                PermitKind::Closed,
            ) => {
                *consecutive_failures += 1;
                if *consecutive_failures >= self.failure_threshold {
                    self.open(&mut inner);
                }
            }
            (Inner::HalfOpen { .. }, PermitKind::Probe) => self.open(&mut inner),
            _ => {}
        }
    }

    fn on_abandoned(&self, kind: PermitKind) {
        if kind == PermitKind::Probe {
            let mut inner = lock(&self.inner);
            if matches!(*inner, Inner::HalfOpen { probing: true }) {
                *inner = Inner::HalfOpen { probing: false };
            }
        }
    }

    fn open(&self, inner: &mut MutexGuard<'_, Inner>) {
        **inner = Inner::Open {
            since: self.clock.now(),
        };
        tracing::warn!(
            gen_ai.provider = %self.provider,
            cool_down_ms = u64::try_from(self.cool_down.as_millis()).unwrap_or(u64::MAX),
            "Circuit breaker opened."
        );
        self.publish(BreakerState::Open);
    }

    fn cooled_down(&self, since: Instant) -> bool {
        self.clock.now().saturating_duration_since(since) >= self.cool_down
    }

    /// What is left of the cool-down of a breaker open since `since`.
    fn cooldown_left(&self, since: Instant) -> Duration {
        self.cool_down
            .saturating_sub(self.clock.now().saturating_duration_since(since))
    }

    fn publish(&self, state: BreakerState) {
        if let Some(metrics) = &self.metrics {
            metrics
                .provider_breaker_state
                .get_or_create(&ProviderNameLabels {
                    provider: self.provider.clone(),
                })
                .set(state.gauge_value());
        }
    }
}

/// Leave to make one call through a breaker; report the outcome with [`Self::success`] or
/// [`Self::failure`].
#[derive(Debug)]
#[must_use = "report the call's outcome on the permit"]
pub struct BreakerPermit<'a> {
    breaker: &'a CircuitBreaker,
    kind: PermitKind,
    reported: bool,
}

impl BreakerPermit<'_> {
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.on_success(self.kind);
    }

    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.on_failure(self.kind);
    }

    /// Whether this call is the half-open probe.
    #[must_use]
    pub fn is_probe(&self) -> bool {
        self.kind == PermitKind::Probe
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.on_abandoned(self.kind);
        }
    }
}

/// The breaker's state stays meaningful even if a thread panicked while holding the lock.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> (CircuitBreaker, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        let cfg = BreakerConfig {
            failure_threshold: threshold,
            cool_down: Duration::from_secs(10),
        };
        (CircuitBreaker::with_clock("p", &cfg, clock.clone()), clock)
    }

    fn fail(b: &CircuitBreaker) {
        b.acquire().unwrap().failure();
    }

    #[test]
    fn opens_after_threshold_consecutive_failures_only() {
        let (b, _) = breaker(3);
        fail(&b);
        fail(&b);
        // A success resets the count: failures must be consecutive.
        b.acquire().unwrap().success();
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        let err = b.acquire().unwrap_err();
        assert_eq!(err.code(), "AMAS-PROV-0006");
    }

    /// An open breaker says how long its cool-down has left (a step parks that long); a
    /// breaker whose probe is in flight does not know.
    #[test]
    fn an_open_breaker_tells_the_cool_down_left() {
        let (b, clock) = breaker(1);
        fail(&b);
        clock.advance(Duration::from_secs(3));
        let err = b.acquire().unwrap_err();
        assert_eq!(err.retry_later(), Some(Duration::from_secs(7)));
        clock.advance(Duration::from_secs(7));
        let _probe = b.acquire().unwrap();
        let err = b.acquire().unwrap_err();
        assert!(matches!(err, ProviderError::CircuitOpen { .. }), "{err}");
        assert_eq!(err.retry_later(), None);
    }

    #[test]
    fn one_probe_after_cool_down_and_success_closes() {
        let (b, clock) = breaker(1);
        fail(&b);
        clock.advance(Duration::from_secs(9));
        assert!(b.acquire().is_err(), "still cooling down");
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.acquire().unwrap();
        assert!(probe.is_probe());
        assert!(b.acquire().is_err(), "only one probe at a time");
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(!b.acquire().unwrap().is_probe());
    }

    #[test]
    fn failed_probe_reopens_for_a_full_cool_down() {
        let (b, clock) = breaker(1);
        fail(&b);
        clock.advance(Duration::from_secs(10));
        b.acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance(Duration::from_secs(5));
        assert!(b.acquire().is_err());
        clock.advance(Duration::from_secs(5));
        assert!(b.acquire().unwrap().is_probe());
    }

    #[test]
    fn abandoned_probe_lets_the_next_caller_probe() {
        let (b, clock) = breaker(1);
        fail(&b);
        clock.advance(Duration::from_secs(10));
        drop(b.acquire().unwrap());
        assert!(b.acquire().unwrap().is_probe());
    }

    #[test]
    fn stale_success_does_not_close_an_open_breaker() {
        let (b, _) = breaker(1);
        let slow = b.acquire().unwrap();
        fail(&b);
        slow.success();
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn gauge_follows_state() {
        let clock = Arc::new(ManualClock::default());
        let metrics = Metrics::new();
        let cfg = BreakerConfig {
            failure_threshold: 1,
            cool_down: Duration::from_secs(1),
        };
        let b = CircuitBreaker::with_clock("gp", &cfg, clock.clone()).with_metrics(metrics.clone());
        let gauge = |m: &Metrics| {
            m.provider_breaker_state
                .get_or_create(&ProviderNameLabels {
                    provider: "gp".into(),
                })
                .get()
        };
        assert_eq!(gauge(&metrics), 0);
        fail(&b);
        assert_eq!(gauge(&metrics), 2);
        clock.advance(Duration::from_secs(1));
        let probe = b.acquire().unwrap();
        assert_eq!(gauge(&metrics), 1);
        probe.success();
        assert_eq!(gauge(&metrics), 0);
    }
}
