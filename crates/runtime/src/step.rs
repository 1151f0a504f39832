//! One step: validate its input, ask the model (unless the journal already holds the answer),
//! check the answer against the output contract, and feed violations back until the agent's
//! attempt limit. Every answer is journaled before it is used.

use std::time::Instant;

use serde_json::Value;
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

use amas_config::{AgentConfig, Contract, StepConfig, Violation};
use amas_providers::{ChatMessage, ChatRequest, OutputSchema, ProviderChain, Role};
use amas_store::StoreError;
use amas_telemetry::Metrics;
use amas_telemetry::metrics::{ContractLabels, StepLabels};
use amas_types::{ErrorInfo, JournalEvent, StepState};

use crate::error::codes;
use crate::writer::TaskWriter;

/// How a step ended.
pub(crate) enum StepOutcome {
    Succeeded(Value),
    Failed(ErrorInfo),
    /// The task was cancelled, or another writer took it over: stop without a verdict.
    Abandoned,
}

pub(crate) struct StepRun<'a> {
    pub step: &'a StepConfig,
    pub agent: &'a AgentConfig,
    pub chain: &'a ProviderChain,
    pub writer: &'a TaskWriter,
    pub metrics: &'a Metrics,
    /// What the journal already says about this step (after a restart).
    pub prior: Option<StepState>,
    pub input: Value,
    pub cancel: watch::Receiver<bool>,
}

impl StepRun<'_> {
    pub(crate) async fn run(self) -> Result<StepOutcome, StoreError> {
        let span = info_span!("amas.step", step = %self.step.name, agent = %self.agent.id);
        let started = Instant::now();
        let agent = self.agent.id.clone();
        let outcome = self.run_inner().instrument(span).await?;
        let status = match &outcome {
            StepOutcome::Succeeded(_) => "succeeded",
            StepOutcome::Failed(_) => "failed",
            StepOutcome::Abandoned => "abandoned",
        };
        let labels = StepLabels {
            agent,
            status: status.to_owned(),
        };
        self.metrics.steps.get_or_create(&labels).inc();
        self.metrics
            .step_duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        Ok(outcome)
    }

    async fn run_inner(&self) -> Result<StepOutcome, StoreError> {
        let prior = self.prior.clone();
        if prior.is_none() {
            self.writer
                .append(JournalEvent::StepStarted {
                    step: self.step.name.clone(),
                    agent: self.agent.id.clone(),
                    input: self.input.clone(),
                })
                .await?;
        }
        let input_violations = self.agent.input_contract.check(&self.input);
        if !input_violations.is_empty() {
            return self
                .fail(
                    codes::INPUT_CONTRACT,
                    contract_message(&self.agent.input_contract, "input", &input_violations),
                )
                .await;
        }
        let (responses, journaled_violations, mut usage) = match &prior {
            Some(p) => (p.responses.clone(), p.violations.clone(), p.usage),
            None => Default::default(),
        };
        let mut history: Vec<(String, Vec<String>)> = Vec::new();
        let max_attempts = self.agent.limits.max_attempts;
        for attempt in 1..=max_attempts {
            // The model's answer, journaled together with its verdict (one commit) unless the
            // journal already holds it from before a restart.
            let (content, mut pending) = if let Some(content) = responses.get(&attempt) {
                (content.clone(), Vec::new())
            } else {
                match self.call_model(attempt, &history).await? {
                    Ok((content, responded)) => {
                        if let JournalEvent::ModelResponded { usage: u, .. } = &responded {
                            usage.input_tokens += u.input_tokens;
                            usage.output_tokens += u.output_tokens;
                        }
                        (content, vec![responded])
                    }
                    Err(outcome) => return Ok(outcome),
                }
            };
            let violations = check_output(&self.agent.output_contract, &content);
            let outcome_label = if violations.is_empty() { "valid" } else { "violated" };
            self.metrics
                .contract_checks
                .get_or_create(&ContractLabels {
                    agent: self.agent.id.clone(),
                    outcome: outcome_label.to_owned(),
                })
                .inc();
            if violations.is_empty() {
                let output = serde_json::from_str(&content).unwrap_or(Value::Null);
                pending.push(JournalEvent::StepSucceeded {
                    step: self.step.name.clone(),
                    output: output.clone(),
                });
                self.writer.append_all(&pending).await?;
                info!(step = %self.step.name, attempt, "Step succeeded.");
                return Ok(StepOutcome::Succeeded(output));
            }
            let errors: Vec<String> = violations.iter().map(ToString::to_string).collect();
            warn!(step = %self.step.name, attempt, violations = errors.len(), "Output broke the contract.");
            if !journaled_violations.contains_key(&attempt) {
                pending.push(JournalEvent::ContractViolated {
                    step: self.step.name.clone(),
                    attempt,
                    contract: self.agent.output_contract.name.clone(),
                    errors: errors.clone(),
                });
            }
            if !pending.is_empty() {
                self.writer.append_all(&pending).await?;
            }
            let budget = self.agent.limits.token_budget;
            if usage.input_tokens + usage.output_tokens > budget {
                return self
                    .fail(
                        codes::TOKEN_BUDGET,
                        format!(
                            "step used {} tokens, over the agent's budget of {budget}",
                            usage.input_tokens + usage.output_tokens
                        ),
                    )
                    .await;
            }
            if attempt == max_attempts {
                return self
                    .fail(
                        codes::OUTPUT_CONTRACT,
                        format!(
                            "{} after {max_attempts} attempts",
                            contract_message(&self.agent.output_contract, "output", &violations)
                        ),
                    )
                    .await;
            }
            history.push((content, errors));
        }
        // max_attempts >= 1 is guaranteed by config validation; the loop always returns.
        self.fail(codes::OUTPUT_CONTRACT, "no attempt was allowed".to_owned())
            .await
    }

    /// Asks the provider chain; returns the answer and its `ModelResponded` event, which the
    /// caller journals with the verdict before using the answer. `Err(outcome)` ends the step.
    async fn call_model(
        &self,
        attempt: u32,
        history: &[(String, Vec<String>)],
    ) -> Result<Result<(String, JournalEvent), StepOutcome>, StoreError> {
        let request = ChatRequest {
            agent: self.agent.id.clone(),
            step: self.step.name.clone(),
            messages: build_messages(self.agent, &self.input, history),
            output_schema: Some(OutputSchema {
                name: self.agent.output_contract.name.clone(),
                schema: self.agent.output_contract.schema.clone(),
            }),
            max_output_tokens: self.agent.limits.max_output_tokens,
        };
        let started = Instant::now();
        let mut cancel = self.cancel.clone();
        let call = tokio::time::timeout(self.agent.limits.timeout, self.chain.chat(&request));
        let result = tokio::select! {
            r = call => r,
            _ = cancel.wait_for(|c| *c) => return Ok(Err(StepOutcome::Abandoned)),
        };
        let response = match result {
            Err(_) => {
                return self
                    .fail(
                        codes::STEP_TIMEOUT,
                        format!(
                            "the model did not answer within {:?}",
                            self.agent.limits.timeout
                        ),
                    )
                    .await
                    .map(Err);
            }
            Ok(Err(e)) => {
                return self.fail(e.code(), e.to_string()).await.map(Err);
            }
            Ok(Ok(response)) => response,
        };
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let responded = JournalEvent::ModelResponded {
            step: self.step.name.clone(),
            attempt,
            provider: response.provider,
            model: response.model,
            content: response.content.clone(),
            usage: response.usage,
            latency_ms,
        };
        Ok(Ok((response.content, responded)))
    }

    async fn fail(&self, code: &str, message: String) -> Result<StepOutcome, StoreError> {
        if *self.cancel.borrow() {
            return Ok(StepOutcome::Abandoned);
        }
        let error = ErrorInfo {
            code: code.to_owned(),
            message,
        };
        warn!(step = %self.step.name, code, "Step failed.");
        self.writer
            .append(JournalEvent::StepFailed {
                step: self.step.name.clone(),
                error: error.clone(),
            })
            .await?;
        Ok(StepOutcome::Failed(error))
    }
}

/// Parses and checks a model answer; a non-JSON answer is one violation at the root.
fn check_output(contract: &Contract, content: &str) -> Vec<Violation> {
    match serde_json::from_str::<Value>(content) {
        Ok(doc) => contract.check(&doc),
        Err(e) => vec![Violation {
            path: String::new(),
            message: format!("the answer is not valid JSON ({e})"),
        }],
    }
}

fn contract_message(contract: &Contract, which: &str, violations: &[Violation]) -> String {
    let paths: Vec<String> = violations.iter().map(ToString::to_string).collect();
    format!(
        "{which} broke contract `{}` at: {}",
        contract.name,
        paths.join("; ")
    )
}

/// The conversation: the agent's instructions, the input, and for each failed attempt the answer
/// and the validator's messages, so the model can correct itself.
fn build_messages(
    agent: &AgentConfig,
    input: &Value,
    history: &[(String, Vec<String>)],
) -> Vec<ChatMessage> {
    let system = format!(
        "{}\nAnswer with one JSON object that satisfies this JSON Schema, and nothing else:\n{}",
        agent.system_prompt.trim_end(),
        agent.output_contract.schema
    );
    let mut messages = vec![
        ChatMessage {
            role: Role::System,
            content: system,
        },
        ChatMessage {
            role: Role::User,
            content: input.to_string(),
        },
    ];
    for (answer, errors) in history {
        messages.push(ChatMessage {
            role: Role::Assistant,
            content: answer.clone(),
        });
        messages.push(ChatMessage {
            role: Role::User,
            content: format!(
                "Your answer broke the output contract:\n- {}\nAnswer again with a JSON object that fixes every problem.",
                errors.join("\n- ")
            ),
        });
    }
    messages
}
