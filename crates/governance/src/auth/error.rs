//! Why a token was refused, with a stable public code and a bounded metric label per reason.
//!
//! Messages are fixed text: they never echo the token or any value taken from it (issuer, kid),
//! because those are attacker-controlled and end up in logs and response bodies.

use amas_types::codes;

/// An authentication failure, or a failure of the local key store.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    #[error("no bearer token was presented")]
    Missing,
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(&'static str),
    #[error("the token's signing algorithm is not accepted")]
    UnsupportedAlgorithm,
    #[error("the token's issuer is not trusted")]
    UnknownIssuer,
    #[error("the token's signing key (kid) is missing or unknown to its issuer")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued for another audience")]
    WrongAudience,
    #[error("the token's issuer does not match its signing key")]
    WrongIssuer,
    #[error("the token is older than its issuer's maximum token age")]
    TooOld,
    #[error("the token names no tenant and its issuer has no fixed tenant")]
    MissingTenant,
    #[error("the token is larger than accepted")]
    TooLarge,
    /// The issuer's keys have never been fetched (its identity provider is unreachable), so
    /// nothing it signed can be verified yet.
    #[error("the issuer's signing keys are unavailable; retry later")]
    KeysUnavailable,
    /// The issuer's cached key set outlived its lifetime (`Cache-Control: max-age` within the
    /// configured bounds) and could not be fetched again, so none of its keys is trusted.
    #[error("the issuer's signing keys expired and could not be fetched again; retry later")]
    KeysExpired,
    /// The local signing key could not be created, read or used. Holds paths and I/O errors only.
    #[error("token key store failure: {0}")]
    KeyStore(String),
}

impl AuthError {
    /// The stable public code; each has a page under `docs/errors/`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => codes::AUTH_NO_TOKEN,
            Self::Malformed(_) => codes::AUTH_MALFORMED_TOKEN,
            Self::UnsupportedAlgorithm => codes::AUTH_ALGORITHM_REJECTED,
            Self::UnknownIssuer => codes::AUTH_UNTRUSTED_ISSUER,
            Self::UnknownKey => codes::AUTH_UNKNOWN_KEY,
            Self::BadSignature => codes::AUTH_BAD_SIGNATURE,
            Self::Expired => codes::AUTH_EXPIRED,
            Self::NotYetValid => codes::AUTH_NOT_YET_VALID,
            Self::WrongAudience => codes::AUTH_WRONG_AUDIENCE,
            Self::WrongIssuer => codes::AUTH_ISSUER_MISMATCH,
            Self::KeyStore(_) => codes::AUTH_KEY_STORE,
            Self::TooOld => codes::AUTH_TOO_OLD,
            Self::MissingTenant => codes::AUTH_NO_TENANT,
            Self::TooLarge => codes::AUTH_TOO_LARGE,
            Self::KeysUnavailable => codes::AUTH_KEYS_UNAVAILABLE,
            Self::KeysExpired => codes::AUTH_KEYS_EXPIRED,
        }
    }

    /// A bounded snake_case label for the `reason` of authentication-failure metrics.
    #[must_use]
    pub fn reason_label(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed(_) => "malformed",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::UnknownIssuer => "unknown_issuer",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongAudience => "wrong_audience",
            Self::WrongIssuer => "wrong_issuer",
            Self::KeyStore(_) => "key_store",
            Self::TooOld => "too_old",
            Self::MissingTenant => "missing_tenant",
            Self::TooLarge => "too_large",
            Self::KeysUnavailable => "keys_unavailable",
            Self::KeysExpired => "keys_expired",
        }
    }

    /// True when the caller is at fault (401); false when AMAS itself failed (500).
    #[must_use]
    pub fn is_client_error(&self) -> bool {
        match self {
            Self::Missing
            | Self::Malformed(_)
            | Self::UnsupportedAlgorithm
            | Self::UnknownIssuer
            | Self::UnknownKey
            | Self::BadSignature
            | Self::Expired
            | Self::NotYetValid
            | Self::WrongAudience
            | Self::WrongIssuer
            | Self::TooOld
            | Self::MissingTenant
            | Self::TooLarge => true,
            Self::KeyStore(_) | Self::KeysUnavailable | Self::KeysExpired => false,
        }
    }
}

/// Maps a verification failure of `jsonwebtoken` onto our reasons, keeping none of its text.
impl From<jsonwebtoken::errors::Error> for AuthError {
    fn from(err: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind;
        match err.kind() {
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidAudience => Self::WrongAudience,
            ErrorKind::InvalidIssuer => Self::WrongIssuer,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::UnsupportedAlgorithm
            | ErrorKind::InvalidAlgorithmName => Self::UnsupportedAlgorithm,
            ErrorKind::MissingRequiredClaim(_) => Self::Malformed("a required claim is missing"),
            ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => {
                Self::Malformed("a claim has the wrong type")
            }
            ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
                Self::Malformed("bad encoding")
            }
            // A key we hold that the crypto backend cannot use is our fault, not the caller's;
            // the enum is non_exhaustive, so anything new lands here and fails closed.
            _ => Self::KeyStore("verification key rejected by the crypto backend".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_so_docs_pages_map_one_to_one() {
        let all = [
            AuthError::Missing,
            AuthError::Malformed("x"),
            AuthError::UnsupportedAlgorithm,
            AuthError::UnknownIssuer,
            AuthError::UnknownKey,
            AuthError::BadSignature,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::WrongAudience,
            AuthError::WrongIssuer,
            AuthError::KeyStore("x".to_owned()),
            AuthError::TooOld,
            AuthError::MissingTenant,
            AuthError::TooLarge,
            AuthError::KeysUnavailable,
            AuthError::KeysExpired,
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(AuthError::code).collect();
        let labels: std::collections::BTreeSet<_> =
            all.iter().map(AuthError::reason_label).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(labels.len(), all.len());
        for code in codes {
            let page = format!("{}/../../docs/errors/{code}.md", env!("CARGO_MANIFEST_DIR"));
            assert!(
                std::path::Path::new(&page).exists(),
                "missing doc page {page}"
            );
        }
    }
}
