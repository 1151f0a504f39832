//! Authentication: turning a bearer token into a verified `Principal`.
//!
//! Keys come from a `KeySource` per issuer; today that is the `LocalIssuer` (AMAS as its own
//! issuer in single-node mode), later remote JWKS/OIDC sources plug into the same verifier.

mod error;
mod keyfile;
mod local;
mod verify;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, DecodingKey};

pub use error::AuthError;
pub use local::LocalIssuer;
pub use verify::TokenVerifier;

/// The `auth_method` recorded on principals whose token was verified against the local issuer.
pub const LOCAL_JWT_METHOD: &str = "local_jwt";

/// A public key able to verify tokens, and the one algorithm it may be used with.
#[derive(Clone)]
pub struct VerificationKey {
    pub key: DecodingKey,
    pub algorithm: Algorithm,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Where the verification keys of one token issuer come from.
#[async_trait]
pub trait KeySource: Send + Sync {
    /// The key with this `kid`, or `None` when the issuer has no such key.
    async fn key(&self, kid: &str) -> Result<Option<VerificationKey>, AuthError>;
    /// The exact `iss` claim this source's tokens carry.
    fn issuer(&self) -> &str;
    /// The `auth_method` recorded on principals verified by this source.
    fn auth_method(&self) -> &str {
        LOCAL_JWT_METHOD
    }
}
