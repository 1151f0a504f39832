//! The `local` provider: SmolLM2-135M-Instruct (GGUF, Q4_1) run in-process on the CPU with
//! candle, with llguidance constraining the answer to the agent's output schema (and, when tools
//! are offered, to a tool call or a final answer: see the `tools` module). The model is
//! loaded on the first call, once, and shared by every later call.

mod engine;
mod prompt;
mod tools;
mod vocab;
mod weights;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use amas_config::LocalModelConfig;
use async_trait::async_trait;
use tokio::sync::OnceCell;

use self::engine::Engine;
use crate::{ChatRequest, ChatResponse, ModelProvider, ProviderError};

/// The script that installs the model files (see `docs/errors/AMAS-PROV-0005.md`).
pub const FETCH_COMMAND: &str = "scripts/fetch-model.sh";

/// The embedded local model.
pub struct LocalProvider {
    name: String,
    model_path: PathBuf,
    model: String,
    max_tokens: u32,
    engine: OnceCell<Arc<Engine>>,
}

impl LocalProvider {
    /// Resolves where the model lives; does not load it (that happens on the first chat).
    ///
    /// # Errors
    /// [`ProviderError::Config`] when the model directory cannot be determined.
    pub fn new(name: &str, cfg: &LocalModelConfig) -> Result<Self, ProviderError> {
        let config_error = |reason: String| ProviderError::Config {
            provider: name.to_owned(),
            reason,
        };
        let dir = cfg
            .model_dir
            .clone()
            .or_else(|| std::env::var_os("AMAS_MODEL_DIR").map(PathBuf::from))
            .or_else(|| {
                std::env::var_os("HOME").map(|home| {
                    PathBuf::from(home)
                        .join(".cache")
                        .join("amas")
                        .join("models")
                })
            })
            .ok_or_else(|| {
                config_error(
                    "no model_dir configured and neither AMAS_MODEL_DIR nor HOME is set".to_owned(),
                )
            })?;
        let model_path = dir.join(&cfg.model_file);
        let model = model_path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .ok_or_else(|| {
                config_error(format!("model_file {:?} names no file", cfg.model_file))
            })?;
        Ok(Self {
            name: name.to_owned(),
            model_path,
            model,
            max_tokens: cfg.max_tokens,
            engine: OnceCell::new(),
        })
    }

    /// The GGUF file this provider runs.
    #[must_use]
    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    /// Whether the model file is present (it may still fail to load).
    #[must_use]
    pub fn is_installed(&self) -> bool {
        self.model_path.is_file()
    }

    async fn engine(&self) -> Result<Arc<Engine>, ProviderError> {
        self.engine
            .get_or_try_init(|| async {
                if !self.is_installed() {
                    return Err(ProviderError::ModelMissing {
                        path: self.model_path.display().to_string(),
                        fetch_command: FETCH_COMMAND.to_owned(),
                    });
                }
                let path = self.model_path.clone();
                let started = Instant::now();
                let engine = tokio::task::spawn_blocking(move || Engine::load(&path))
                    .await
                    .map_err(|e| self.inference_error(format!("the loading thread failed: {e}")))?
                    .map_err(|reason| self.inference_error(reason))?;
                tracing::info!(
                    gen_ai.provider.name = %self.name,
                    gen_ai.request.model = %self.model,
                    load_ms = started.elapsed().as_millis(),
                    "Local model loaded."
                );
                Ok(Arc::new(engine))
            })
            .await
            .cloned()
    }

    fn inference_error(&self, reason: String) -> ProviderError {
        ProviderError::Inference {
            provider: self.name.clone(),
            reason,
        }
    }
}

#[async_trait]
impl ModelProvider for LocalProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn system(&self) -> &str {
        "amas.local"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let max_tokens = request.max_output_tokens.min(self.max_tokens);
        if max_tokens == 0 {
            return Err(self.inference_error("the token budget of this call is zero".to_owned()));
        }
        let engine = self.engine().await?;
        let messages = request.messages.clone();
        let constraint = tools::constraint(request.output_schema.as_ref(), &request.tools);
        let instruction = tools::instruction(request.output_schema.as_ref(), &request.tools);
        let started = Instant::now();
        let generation = tokio::task::spawn_blocking(move || {
            engine.generate(
                &messages,
                instruction.as_deref(),
                constraint.as_ref(),
                max_tokens as usize,
            )
        })
        .await
        .map_err(|e| self.inference_error(format!("the generation thread failed: {e}")))?
        .map_err(|reason| self.inference_error(reason))?;
        let seconds = started.elapsed().as_secs_f64();
        tracing::debug!(
            gen_ai.provider.name = %self.name,
            gen_ai.usage.input_tokens = generation.prompt_tokens,
            gen_ai.usage.output_tokens = generation.generated_tokens,
            tokens_per_second = generation.generated_tokens as f64 / seconds.max(1e-9),
            "Local generation finished."
        );
        let (content, tool_calls) =
            tools::interpret(generation.text, &request.messages, &request.tools)
                .map_err(|reason| self.inference_error(reason))?;
        Ok(ChatResponse {
            provider: self.name.as_str().into(),
            model: self.model.clone(),
            content,
            usage: amas_types::Usage {
                input_tokens: generation.prompt_tokens as u64,
                output_tokens: generation.generated_tokens as u64,
            },
            tool_calls,
        })
    }
}
