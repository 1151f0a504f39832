//! What an issuer's verified claims mean: the per-issuer checks (audiences, leeway, maximum
//! age) and where roles and tenant live, mapped onto a `Principal`.

use std::time::Duration;

use amas_config::{ClaimPath, OidcIssuerConfig, TenantMapping};
use amas_types::{Principal, TenantId};
use serde_json::{Map, Value};

use super::AuthError;

/// How the tokens of one issuer are checked and understood.
#[derive(Clone, Debug)]
pub struct IssuerPolicy {
    /// A token must name at least one of these in `aud`.
    pub audiences: Vec<String>,
    pub leeway: Duration,
    /// Oldest accepted `iat`; `Some` makes `iat` required.
    pub max_age: Option<Duration>,
    /// Where the roles are: an array of strings there; anything else grants no role.
    pub roles: ClaimPath,
    pub tenant: TenantRule,
}

/// Where a token's tenant comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantRule {
    /// A string claim at `path`; when it is absent, `if_missing`, else the token is refused.
    Claim {
        path: ClaimPath,
        if_missing: Option<TenantId>,
    },
    /// Every token of the issuer belongs to this tenant, whatever its claims say.
    Fixed(TenantId),
}

impl IssuerPolicy {
    /// The local issuer: roles in `roles`, tenant in `tenant` (the default tenant when absent,
    /// as `amas token create` without `--tenant` mints).
    #[must_use]
    pub fn local(audience: String, leeway: Duration) -> Self {
        Self {
            audiences: vec![audience],
            leeway,
            max_age: None,
            roles: ClaimPath::top("roles"),
            tenant: TenantRule::Claim {
                path: ClaimPath::top("tenant"),
                if_missing: Some(TenantId::default_tenant()),
            },
        }
    }

    /// An OIDC issuer as configured; a missing tenant claim is refused (fail closed).
    #[must_use]
    pub fn oidc(config: &OidcIssuerConfig) -> Self {
        let tenant = match &config.tenant {
            TenantMapping::Claim(path) => TenantRule::Claim {
                path: path.clone(),
                if_missing: None,
            },
            TenantMapping::Fixed(t) => TenantRule::Fixed(TenantId(t.clone())),
        };
        Self {
            audiences: config.audiences.clone(),
            leeway: config.clock_leeway,
            max_age: config.max_token_age,
            roles: config.roles_claim.clone(),
            tenant,
        }
    }

    /// Maps claims whose signature, `iss`, `aud`, `exp` and `nbf` were verified.
    pub(crate) fn principal(
        &self,
        claims: &Map<String, Value>,
        now: u64,
        auth_method: &str,
        issuer: &str,
    ) -> Result<Principal, AuthError> {
        let sub = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) => return Err(AuthError::Malformed("the sub claim is empty")),
            _ => {
                return Err(AuthError::Malformed(
                    "the sub claim is missing or not a string",
                ));
            }
        };
        self.check_times(claims, now)?;
        let tenant = self.tenant(claims)?;
        // The audit log cannot store a NUL (PostgreSQL text refuses it), and a principal whose
        // decisions cannot be audited must not act: refused here, the failed authentication is
        // audited instead (security review L3).
        if sub.contains('\0') {
            return Err(AuthError::Malformed(
                "the sub claim contains a NUL character",
            ));
        }
        if tenant.0.contains('\0') {
            return Err(AuthError::Malformed(
                "the tenant claim contains a NUL character",
            ));
        }
        Ok(Principal {
            sub,
            roles: self.roles(claims),
            tenant,
            auth_method: auth_method.to_owned(),
            issuer: issuer.to_owned(),
        })
    }

    /// The checks `jsonwebtoken` leaves to us: a token must not claim to be issued in the
    /// future, its validity window must not be inverted, and it must not be older than the
    /// issuer's maximum age.
    fn check_times(&self, claims: &Map<String, Value>, now: u64) -> Result<(), AuthError> {
        let leeway = self.leeway.as_secs();
        let iat = numeric(claims, "iat")?;
        let nbf = numeric(claims, "nbf")?;
        let exp =
            numeric(claims, "exp")?.ok_or(AuthError::Malformed("the exp claim is missing"))?;
        if iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
            return Err(AuthError::NotYetValid);
        }
        if nbf.or(iat).is_some_and(|start| start > exp) {
            return Err(AuthError::Malformed(
                "the token's validity window is inverted",
            ));
        }
        if let Some(max_age) = self.max_age {
            let iat = iat.ok_or(AuthError::Malformed(
                "the iat claim is required by this issuer",
            ))?;
            let oldest = now.saturating_sub(max_age.as_secs().saturating_add(leeway));
            if iat < oldest {
                return Err(AuthError::TooOld);
            }
        }
        Ok(())
    }

    /// Only the mapped claim counts, and only an array of strings there; other values in the
    /// array are skipped, and a string, object or number grants nothing, so a claim that
    /// merely looks like roles cannot escalate.
    fn roles(&self, claims: &Map<String, Value>) -> Vec<String> {
        let Some(Value::Array(items)) = lookup(claims, &self.roles) else {
            return Vec::new();
        };
        let mut roles: Vec<String> = Vec::with_capacity(items.len());
        for role in items.iter().filter_map(Value::as_str) {
            if !role.is_empty() && !role.contains('\0') && !roles.iter().any(|r| r == role) {
                roles.push(role.to_owned());
            }
        }
        roles
    }

    fn tenant(&self, claims: &Map<String, Value>) -> Result<TenantId, AuthError> {
        match &self.tenant {
            TenantRule::Fixed(t) => Ok(t.clone()),
            TenantRule::Claim { path, if_missing } => match lookup(claims, path) {
                Some(Value::String(t)) if !t.is_empty() => Ok(TenantId(t.clone())),
                Some(Value::String(_)) => Err(AuthError::Malformed("the tenant claim is empty")),
                Some(Value::Null) | None => if_missing.clone().ok_or(AuthError::MissingTenant),
                Some(_) => Err(AuthError::Malformed("the tenant claim is not a string")),
            },
        }
    }
}

/// The value at `path`, walking nested objects; a claim whose name contains the dots is not
/// the same as the nested path.
fn lookup<'a>(claims: &'a Map<String, Value>, path: &ClaimPath) -> Option<&'a Value> {
    let (first, rest) = path.0.split_first()?;
    let mut value = claims.get(first)?;
    for segment in rest {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// A NumericDate claim as whole seconds; present but not a non-negative integer is malformed.
fn numeric(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(AuthError::Malformed(
            "a time claim is not a non-negative integer",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(roles: &str) -> IssuerPolicy {
        IssuerPolicy {
            audiences: vec!["a".into()],
            leeway: Duration::from_secs(10),
            max_age: Some(Duration::from_secs(100)),
            roles: ClaimPath(roles.split('.').map(str::to_owned).collect()),
            tenant: TenantRule::Claim {
                path: ClaimPath::top("tenant"),
                if_missing: None,
            },
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn nested_roles_ignore_non_strings_and_lookalike_claims() {
        let p = policy("realm_access.roles");
        let c = claims(json!({
            "realm_access": {"roles": ["viewer", 7, {"x": 1}, null, "viewer", "submitter"]},
            "realm_access.roles": ["admin"],
            "roles": ["admin"],
        }));
        assert_eq!(p.roles(&c), ["viewer", "submitter"]);
        for shape in [json!("admin"), json!({"admin": true}), json!(1)] {
            let c = claims(json!({"realm_access": {"roles": shape}}));
            assert!(p.roles(&c).is_empty());
        }
    }

    #[test]
    fn max_age_counts_from_iat_with_leeway() {
        let p = policy("roles");
        let now = 10_000;
        let at = |iat: u64| claims(json!({"iat": iat, "exp": now + 100}));
        assert!(p.check_times(&at(now - 110), now).is_ok());
        assert_eq!(p.check_times(&at(now - 111), now), Err(AuthError::TooOld));
        let no_iat = claims(json!({"exp": now + 100}));
        assert!(matches!(
            p.check_times(&no_iat, now),
            Err(AuthError::Malformed(_))
        ));
    }

    /// A NUL in `sub` or the tenant is refused at authentication (the audit log could not
    /// record the principal's decisions); a role with one grants nothing.
    #[test]
    fn nul_in_sub_or_tenant_is_refused() {
        let p = policy("roles");
        let ok =
            claims(json!({"sub": "a", "tenant": "t", "iat": 5, "exp": 10, "roles": ["r\0", "x"]}));
        let principal = p.principal(&ok, 5, "local_jwt", "amas-local").unwrap();
        assert_eq!(principal.roles, ["x"]);
        for bad in [
            json!({"sub": "a\0", "tenant": "t", "iat": 5, "exp": 10}),
            json!({"sub": "a", "tenant": "t\0", "iat": 5, "exp": 10}),
        ] {
            let err = p
                .principal(&claims(bad), 5, "local_jwt", "amas-local")
                .unwrap_err();
            assert!(
                matches!(err, AuthError::Malformed(m) if m.contains("NUL")),
                "{err:?}"
            );
        }
    }

    #[test]
    fn tenant_fails_closed_unless_fixed() {
        let mut p = policy("roles");
        let none = claims(json!({}));
        assert_eq!(p.tenant(&none), Err(AuthError::MissingTenant));
        let obj = claims(json!({"tenant": {"id": "t"}}));
        assert!(matches!(p.tenant(&obj), Err(AuthError::Malformed(_))));
        p.tenant = TenantRule::Fixed(TenantId("acme".into()));
        let other = claims(json!({"tenant": "evil"}));
        assert_eq!(p.tenant(&other), Ok(TenantId("acme".into())));
    }
}
