//! A JSON-Schema contract, compiled once at load time.

use std::fmt;

use serde::{Serialize, Serializer};

/// One broken rule: where in the document, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the checked document (`""` for the root).
    pub path: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}

/// A named, compiled JSON Schema.
pub struct Contract {
    pub name: String,
    pub schema: serde_json::Value,
    validator: jsonschema::Validator,
}

impl fmt::Debug for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contract")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Serialize for Contract {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.schema.serialize(s)
    }
}

impl Contract {
    /// Compiles `schema`.
    ///
    /// # Errors
    /// The compiler's message when the schema is not a valid JSON Schema.
    pub fn compile(name: impl Into<String>, schema: serde_json::Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
        Ok(Self {
            name: name.into(),
            schema,
            validator,
        })
    }

    /// Checks `doc`, returning every violation (empty: valid).
    #[must_use]
    pub fn check(&self, doc: &serde_json::Value) -> Vec<Violation> {
        self.validator
            .iter_errors(doc)
            .map(|e| Violation {
                path: e.instance_path().to_string(),
                message: e.to_string(),
            })
            .collect()
    }

    /// Like [`Contract::check`], but the messages never quote the checked value (`value is not
    /// of type "integer"`): for documents that may carry data no log or audit record may hold,
    /// such as a tool's result.
    #[must_use]
    pub fn check_masked(&self, doc: &serde_json::Value) -> Vec<Violation> {
        self.validator
            .iter_errors(doc)
            .map(|e| Violation {
                path: e.instance_path().to_string(),
                message: e.masked().to_string(),
            })
            .collect()
    }
}
