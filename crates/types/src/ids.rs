//! Identifier newtypes. Task ids are UUID v7, so they sort by creation time; step, call,
//! approval, agent and provider ids are strings, each its own type.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Identifies one task for its whole life (journal, API, audit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub Uuid);

impl TaskId {
    /// A new, time-ordered id.
    #[must_use]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TaskId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// The tenant a principal and its tasks belong to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub String);

impl TenantId {
    /// The tenant used when a token names none (single-tenant installations).
    #[must_use]
    pub fn default_tenant() -> Self {
        Self("default".to_owned())
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Defines a string id: backed by `Arc<str>`, so a clone (ids are cloned into every journal
/// event, audit record and map key) is a reference-count bump, not an allocation. It
/// serializes as the bare string, exactly as the `String` it replaces, so journals, API
/// bodies and audit records are unchanged. Each kind is its own type: a step id cannot be
/// passed where a call id is expected.
macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // `Hash` and `Ord` of `Arc<str>` are those of `str`, as `Borrow` requires.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(Arc::from(s))
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                Self(Arc::from(s.as_str()))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0.as_ref().to_owned()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                *self.0 == **other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == &*other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                **self == *other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == &*other.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(ArcStrVisitor).map(Self)
            }
        }
    };
}

/// Reads a string straight into an `Arc<str>` (one copy, no intermediate `String`).
struct ArcStrVisitor;

impl Visitor<'_> for ArcStrVisitor {
    type Value = Arc<str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Arc<str>, E> {
        Ok(Arc::from(v))
    }
}

string_id! {
    /// A workflow step, by its name in the workflow (`research`, `review`).
    StepId
}

string_id! {
    /// One governed call inside a step: a tool call's id (provider-assigned or `call_<n>`) or a
    /// model call's `turn-<n>:<provider>`.
    CallId
}

string_id! {
    /// An approval request (a UUID v7 string for new requests; journals may hold any string).
    ApprovalId
}

string_id! {
    /// An agent, by its name in the configuration.
    AgentId
}

string_id! {
    /// A model provider, by its configuration key.
    ProviderId
}

impl ApprovalId {
    /// A new, time-ordered id.
    #[must_use]
    pub fn new() -> Self {
        Self::from(Uuid::now_v7().to_string())
    }
}

impl Default for ApprovalId {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Clones share the text: that is the point of `Arc<str>` on the hot path.
    #[test]
    fn a_clone_shares_the_text() {
        let step = StepId::from("research");
        let copy = step.clone();
        assert!(std::ptr::eq(step.as_str(), copy.as_str()));
    }

    /// Maps keyed by ids are looked up by `&str`, and ids compare with strings both ways.
    #[test]
    fn ids_behave_as_their_text() {
        let mut steps = BTreeMap::new();
        steps.insert(StepId::from("research"), 1);
        assert_eq!(steps.get("research"), Some(&1));
        let call = CallId::from(String::from("call_1"));
        assert_eq!(call, "call_1");
        assert!("call_1" == call);
        assert_eq!(call.to_string(), "call_1");
        assert_eq!(format!("{call:?}"), "\"call_1\"");
        assert_eq!(String::from(call), "call_1");
        assert_eq!(
            serde_json::to_string(&AgentId::from("a\"b")).unwrap(),
            r#""a\"b""#
        );
    }

    #[test]
    fn new_approval_ids_are_distinct_uuids() {
        let (a, b) = (ApprovalId::new(), ApprovalId::new());
        assert_ne!(a, b);
        assert_eq!(Uuid::parse_str(a.as_str()).unwrap().get_version_num(), 7);
    }
}
