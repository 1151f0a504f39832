//! Governance: authentication (local issuer, token verification) and, later, the action
//! pipeline (policy, contracts, sandbox, data protection, audit).

pub mod auth;

pub use auth::{
    AuthError, IssuerHealth, JwksSource, KeySource, LocalIssuer, TokenVerifier, VerificationKey,
};
pub mod gate;
pub mod moderation;
