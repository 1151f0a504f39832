//! Scrubbing for logs, spans and error messages: text that may quote user or model data (a task
//! type, a provider's error body, a contract violation) passes through [`scrub`] before it is
//! logged, put on a span or returned in an error body. The embedded rules are built once; hash
//! tokens use a key drawn at process start, so they join within one process's output but cannot
//! be used to confirm a guessed value. Fails closed: text that cannot be scanned is replaced.

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

use crate::{DataProtector, TenantKey};

/// What replaces text that could not be scanned.
pub const SCRUBBED: &str = "[redacted: unscannable]";

struct Scrubber {
    protector: Option<std::sync::Arc<DataProtector>>,
    key: TenantKey,
}

fn scrubber() -> &'static Scrubber {
    static SCRUBBER: OnceLock<Scrubber> = OnceLock::new();
    SCRUBBER.get_or_init(|| {
        let seed = RandomState::new();
        let mut key = Vec::with_capacity(32);
        for i in 0u64..4 {
            key.extend_from_slice(&seed.hash_one(i).to_le_bytes());
        }
        Scrubber {
            protector: DataProtector::shared_embedded(),
            key: TenantKey::new(key),
        }
    })
}

/// `text` with every detected value redacted (embedded rules); [`SCRUBBED`] when it cannot be
/// scanned or the rules cannot be built.
#[must_use]
pub fn scrub(text: &str) -> String {
    let s = scrubber();
    match &s.protector {
        Some(p) => match p.redact_text(text, &s.key) {
            Ok(red) => red.redacted,
            Err(_) => SCRUBBED.to_owned(),
        },
        None => SCRUBBED.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn scrub_removes_detected_values_and_keeps_the_rest() {
        let out = scrub("unknown task type `jane@example.com` with 4111 1111 1111 1111");
        assert!(!out.contains("jane@"), "{out}");
        assert!(!out.contains("4111 1111 1111 1111"), "{out}");
        assert!(out.starts_with("unknown task type `"), "{out}");
        assert_eq!(scrub("nothing to see"), "nothing to see");
    }
}
