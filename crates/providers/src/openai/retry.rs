//! When to retry a failed call and how long to wait: exponential backoff with jitter, and the
//! server's `Retry-After` when it sends one.

use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// First backoff delay; doubles each retry.
const BASE_DELAY: Duration = Duration::from_millis(100);
/// Longest backoff delay.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// The backoff before retry number `retry` (0-based): half fixed, half random, so clients that
/// failed together do not retry together.
pub(super) fn backoff(retry: u32) -> Duration {
    let exp = BASE_DELAY
        .saturating_mul(2u32.saturating_pow(retry))
        .min(MAX_DELAY);
    let half = exp / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(rand::thread_rng().gen_range(0..=jitter_ms))
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub(super) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers("7"), now),
            Some(Duration::from_secs(7))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(12));
        assert_eq!(
            retry_after(&headers(&later), now),
            Some(Duration::from_secs(12))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(12));
        assert_eq!(retry_after(&headers(&past), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for retry in 0..20 {
            let d = backoff(retry);
            let exp = BASE_DELAY
                .saturating_mul(2u32.saturating_pow(retry))
                .min(MAX_DELAY);
            assert!(d >= exp / 2 && d <= exp, "retry {retry}: {d:?}");
        }
    }
}
