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

/// `serialize_with` for a database URL: shown with its password (and any `password=` query
/// parameter) replaced by `<redacted>`, so `config dump` tells which server and user, never
/// the credential.
///
/// # Errors
/// Those of the serializer.
pub fn url<S: Serializer>(value: &secrecy::SecretString, s: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret as _;
    s.serialize_str(&url_without_password(value.expose_secret()))
}

/// `url` with the password of its user-info part and of a `password=` query parameter
/// replaced by `<redacted>`: safe to log or show. Text that is not a URL with a scheme is
/// redacted whole, since there is no telling where a password would be in it.
#[must_use]
pub fn url_without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return REDACTED.to_owned();
    };
    // Hosts and paths hold no `@`, a password may hold anything: everything before the last
    // `@` ahead of the query is the user info.
    let query_at = rest.find(['?', '#']).unwrap_or(rest.len());
    let (before_query, tail) = rest.split_at(query_at);
    let authority = match before_query.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:{REDACTED}@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => before_query.to_owned(),
    };
    let tail = match tail.split_once('?') {
        None => tail.to_owned(),
        Some((fragment, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}={REDACTED}")
                    }
                    _ => param.to_owned(),
                })
                .collect();
            format!("{fragment}?{}", params.join("&"))
        }
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The password never survives, wherever the URL puts it; the rest stays readable.
    #[test]
    fn database_urls_lose_their_passwords_only() {
        let cases = [
            (
                "postgres://amas:hunter2@db.example:5432/amas",
                "postgres://amas:<redacted>@db.example:5432/amas",
            ),
            (
                "postgresql://amas:p@ss:w/rd@db/amas?sslmode=require",
                "postgresql://amas:<redacted>@db/amas?sslmode=require",
            ),
            (
                "postgres://db/amas?user=amas&password=hunter2&sslmode=verify-full",
                "postgres://db/amas?user=amas&password=<redacted>&sslmode=verify-full",
            ),
            ("postgres://amas@db/amas", "postgres://amas@db/amas"),
            ("hunter2", "<redacted>"),
        ];
        for (url, shown) in cases {
            let redacted = url_without_password(url);
            assert_eq!(redacted, shown);
            assert!(
                !redacted.contains("hunter2") && !redacted.contains("ss:w"),
                "{redacted}"
            );
        }
    }
}
