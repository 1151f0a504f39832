//! Layered configuration: embedded defaults < `--config DIR` < `AMAS__SECTION__KEY` environment
//! variables. Raw types with unknown keys rejected, validated into the typed [`AmasConfig`];
//! every problem is reported at once, with its file and path.

mod contract;
mod model;

pub use contract::{Contract, Violation};
pub use model::*;
