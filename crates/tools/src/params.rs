//! Typed parameters from the JSON a model sent; serde's message becomes an `InvalidParams`.

use serde::de::DeserializeOwned;

use crate::error::ToolError;

/// Deserializes `params` into a tool's parameter struct.
///
/// # Errors
/// `InvalidParams` at the offending JSON pointer.
pub(crate) fn parse_params<T: DeserializeOwned>(params: serde_json::Value) -> Result<T, ToolError> {
    serde_path_to_error::deserialize::<_, T>(params).map_err(|e| {
        let path = e.path().to_string();
        let pointer = if path == "." {
            String::new()
        } else {
            format!("/{}", path.replace('.', "/"))
        };
        ToolError::invalid(&pointer, e.inner().to_string())
    })
}
