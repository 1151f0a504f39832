//! The tool layer: the [`Tool`] trait, the [`ToolRegistry`] configured by `config/tools.yaml`,
//! and the sandboxed built-in tools (`http_fetch`, `file_read`, `file_write`, `sql_query`,
//! `calculator`, `code_analyzer`, `vulnerability_scanner`, and two disabled policy targets).
//! Policy, quotas and approvals are decided before a call reaches this crate.

mod analyzer;
mod calculator;
pub mod config;
mod disabled;
mod error;
mod fs;
pub mod http;
mod output;
mod params;
mod registry;
mod scanner;
mod spec;
pub mod sql;

pub use analyzer::{CodeAnalyzer, analyze};
pub use calculator::{Calculator, evaluate};
pub use config::{ToolConfig, ToolsConfig};
pub use disabled::Disabled;
pub use error::{ToolError, codes};
pub use fs::{FileRead, FileWrite};
pub use http::HttpFetch;
pub use output::builtin_output_schema;
pub use registry::ToolRegistry;
pub use scanner::{VulnerabilityScanner, scan_text};
pub use spec::{Risk, SideEffects, Tool, ToolContext, ToolKind, ToolOutput, ToolSpec};
pub use sql::SqlQuery;
