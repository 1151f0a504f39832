//! How secrets (and the names of the variables that hold them) appear when a validated
//! configuration is serialized for `amas config dump` or hashed into the audit log: as
//! `"<redacted>"` when set, `null` when not, so the dump shows *that* one is configured and
//! never what it is.

use serde::Serializer;

/// What a set secret serializes as.
pub const REDACTED: &str = "<redacted>";

/// `serialize_with` for an optional secret or secret-bearing name.
///
/// # Errors
/// Those of the serializer.
pub fn optional<T, S: Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str(REDACTED),
        None => s.serialize_none(),
    }
}

/// `serialize_with` for a secret that is always present.
///
/// # Errors
/// Those of the serializer.
pub fn always<T, S: Serializer>(_: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(REDACTED)
}
