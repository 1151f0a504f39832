//! Governance: authentication (local issuer, token verification) and the pipeline every
//! governed action goes through (policy, contracts, sandbox, data protection, content
//! safety, audit).

pub mod auth;

pub use auth::{
    AuditKey, AuthError, IssuerHealth, JwksSource, KeySource, LocalIssuer, TokenVerifier,
    VerificationKey,
};
pub mod moderation;
pub mod pipeline;
