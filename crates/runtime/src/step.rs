//! One step: validate its input, then run model turns until the model gives a final answer
//! that satisfies the agent's output contract. A turn either asks for tool calls (run through
//! the governance gate, results fed back) or answers (checked; violations fed back until the
//! attempt limit). Every answer is journaled with its verdict before it is used, and a restart
//! replays journaled turns and tool results instead of repeating them.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

use amas_config::{AgentConfig, Contract, StepConfig, TokenPrices, Violation};
use amas_providers::{
    ChatMessage, ChatRequest, OutputSchema, ProviderChain, ToolCall, ToolDefinition,
};
use amas_store::StoreError;
use amas_telemetry::Metrics;
use amas_telemetry::metrics::{ContractLabels, CostLabels, StepLabels, TokenLabels};
use amas_types::{
    Approval, CallId, ErrorInfo, JournalEvent, JournaledAnswer, RequestedTool, StepState, Usage,
};

use crate::error::codes;
use crate::safety::OutputScreen;
use crate::tools::{CallResult, Parked, ToolRunner};
use crate::writer::TaskWriter;

/// The shortest park of a deferred model call: a provider answering `Retry-After: 0` once its
/// in-call retries are spent is not asked again in a busy loop.
const MIN_DEFERRAL: std::time::Duration = std::time::Duration::from_secs(1);

/// How a step ended.
pub(crate) enum StepOutcome {
    Succeeded(Value),
    Failed(ErrorInfo),
    /// The task was cancelled, or another writer took it over: stop without a verdict.
    Abandoned,
    /// A tool call waits for approval, or every provider asked to be called later: the step
    /// stops here until the task runs again.
    Parked(Parked),
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
    /// Runs the governed actions of the task: tool calls, model-call authorization, usage.
    pub tools: &'a ToolRunner,
    /// Approval requests this step opened (after a restart), by tool call id.
    pub approvals: BTreeMap<CallId, Approval>,
    /// The task's tenant, for the token and cost metrics.
    pub tenant: &'a str,
    /// Token prices by provider (`providers.<name>.prices`).
    pub prices: &'a BTreeMap<String, TokenPrices>,
    /// Content safety on every answer, before it is used.
    pub screen: &'a OutputScreen,
}

impl StepRun<'_> {
    pub(crate) async fn run(self) -> Result<StepOutcome, StoreError> {
        // A step is one agent's turn: the GenAI conventions' `invoke_agent` operation.
        let span = info_span!(
            "amas.step",
            otel.name = %format_args!("invoke_agent {}", self.agent.id),
            gen_ai.operation.name = "invoke_agent",
            gen_ai.agent.name = %self.agent.id,
            step = %self.step.name,
            agent = %self.agent.id,
        );
        let started = Instant::now();
        let agent = self.agent.id.to_string();
        let outcome = self.run_inner().instrument(span).await?;
        let status = match &outcome {
            StepOutcome::Succeeded(_) => "succeeded",
            StepOutcome::Failed(_) => "failed",
            StepOutcome::Abandoned => "abandoned",
            StepOutcome::Parked(_) => "parked",
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
        let prior = self
            .prior
            .clone()
            .unwrap_or_else(|| empty_state(self.step, self.agent));
        if self.prior.is_none() {
            // Queued, not awaited: nothing outside AMAS depends on the start, and the model
            // answer's append (awaited) commits after it. A crash before it commits re-runs the
            // step from its (deterministic) input.
            self.writer
                .send(vec![JournalEvent::StepStarted {
                    step: self.step.name.clone(),
                    agent: self.agent.id.clone(),
                    input: self.input.clone(),
                }])
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
        let limits = &self.agent.limits;
        // As journaled after a restart or a park: the bound on deferred model calls.
        let step_started = prior.started_at.unwrap_or_else(Utc::now);
        let definitions = self.tool_definitions();
        let mut messages = base_messages(self.agent, &self.input, !definitions.is_empty());
        let mut usage = prior.usage;
        let mut attempts = 0_u32;
        let mut tool_calls = 0_u32;
        let max_turns = limits.max_attempts + limits.max_tool_calls;
        for turn in 1..=max_turns {
            // Tools are offered until the step's tool-call budget is spent.
            let offer = if tool_calls < limits.max_tool_calls {
                definitions.clone()
            } else {
                Vec::new()
            };
            let (answer, mut pending) = if let Some(answer) = prior.responses.get(&turn) {
                (answer.clone(), Vec::new())
            } else {
                match self
                    .call_model(turn, &messages, offer, step_started)
                    .await?
                {
                    Ok((answer, events, call_usage)) => {
                        usage.input_tokens += call_usage.input_tokens;
                        usage.output_tokens += call_usage.output_tokens;
                        (answer, events)
                    }
                    Err(outcome) => return Ok(outcome),
                }
            };
            if usage.input_tokens + usage.output_tokens > limits.token_budget {
                self.writer.append_all(&pending).await?;
                return self
                    .fail(
                        codes::TOKEN_BUDGET,
                        format!(
                            "step used {} tokens, over the agent's budget of {}",
                            usage.input_tokens + usage.output_tokens,
                            limits.token_budget
                        ),
                    )
                    .await;
            }
            if !answer.tool_calls.is_empty() {
                if !pending.is_empty() {
                    self.writer.append_all(&pending).await?;
                }
                messages.push(ChatMessage::assistant(
                    answer.content.clone(),
                    answer.tool_calls.iter().map(to_provider_call).collect(),
                ));
                for call in &answer.tool_calls {
                    tool_calls += 1;
                    let result = if tool_calls <= limits.max_tool_calls {
                        self.tools
                            .run(
                                self.writer,
                                &self.step.name,
                                self.agent,
                                call,
                                prior.tools.get(&call.id),
                                self.approvals.get(&call.id),
                                &self.cancel,
                            )
                            .await?
                    } else {
                        CallResult::Message(
                            serde_json::json!({"error": {
                                "code": amas_types::codes::GOV_QUOTA,
                                "message": "no tool calls are available in this step; answer now",
                            }})
                            .to_string(),
                        )
                    };
                    match result {
                        CallResult::Message(text) => {
                            messages.push(ChatMessage::tool(call.id.clone(), text));
                        }
                        CallResult::Stop(error) => {
                            return self.fail(&error.code, error.message).await;
                        }
                        CallResult::Abandoned => return Ok(StepOutcome::Abandoned),
                        CallResult::Parked(parked) => return Ok(StepOutcome::Parked(parked)),
                    }
                }
                continue;
            }
            attempts += 1;
            let violations = check_output(&self.agent.output_contract, &answer.content);
            self.count_check(violations.is_empty());
            if violations.is_empty() {
                let output = serde_json::from_str(&answer.content).unwrap_or(Value::Null);
                pending.push(JournalEvent::StepSucceeded {
                    step: self.step.name.clone(),
                    output: output.clone(),
                });
                // Queued, not awaited: the next steps only use the output inside AMAS, and every
                // later append (a tool's start, the task's end) commits after it. A crash before
                // it commits re-runs the step.
                self.writer.send(pending).await?;
                info!(step = %self.step.name, turn, "Step succeeded.");
                return Ok(StepOutcome::Succeeded(output));
            }
            let errors: Vec<String> = violations.iter().map(ToString::to_string).collect();
            warn!(step = %self.step.name, turn, violations = errors.len(), "Output broke the contract.");
            if !prior.violations.contains_key(&turn) {
                pending.push(JournalEvent::ContractViolated {
                    step: self.step.name.clone(),
                    attempt: turn,
                    contract: self.agent.output_contract.name.clone(),
                    errors: errors.clone(),
                });
            }
            if !pending.is_empty() {
                self.writer.append_all(&pending).await?;
            }
            if attempts >= limits.max_attempts {
                return self
                    .fail(
                        codes::OUTPUT_CONTRACT,
                        format!(
                            "{} after {attempts} attempts",
                            contract_message(&self.agent.output_contract, "output", &violations)
                        ),
                    )
                    .await;
            }
            messages.push(ChatMessage::assistant(answer.content.clone(), Vec::new()));
            messages.push(ChatMessage::user(format!(
                "Your answer broke the output contract:\n- {}\nAnswer again with a JSON object that fixes every problem.",
                errors.join("\n- ")
            )));
        }
        self.fail(
            codes::OUTPUT_CONTRACT,
            format!("no valid answer within {max_turns} model turns"),
        )
        .await
    }

    fn tool_definitions(&self) -> Vec<ToolDefinition> {
        let runner = self.tools;
        self.agent
            .allowed_tools
            .iter()
            .filter_map(|name| runner.pipeline.tools().get(name).map(|t| t.spec()))
            .map(|spec| ToolDefinition {
                name: spec.name.clone(),
                description: spec.description.clone(),
                parameters: spec.parameters.schema.clone(),
            })
            .collect()
    }

    fn count_check(&self, valid: bool) {
        self.metrics
            .contract_checks
            .get_or_create(&ContractLabels {
                agent: self.agent.id.to_string(),
                outcome: if valid { "valid" } else { "violated" }.to_owned(),
            })
            .inc();
    }

    /// Asks the provider chain (only the providers policy allows for this prompt's data); returns the answer and its events (the model-call decisions and
    /// `ModelResponded`), which the caller journals (with the verdict) before using the answer.
    /// `Err(outcome)` ends the step.
    async fn call_model(
        &self,
        turn: u32,
        messages: &[ChatMessage],
        tools: Vec<ToolDefinition>,
        step_started: DateTime<Utc>,
    ) -> Result<Result<(JournaledAnswer, Vec<JournalEvent>, Usage), StepOutcome>, StoreError> {
        let runner = self.tools;
        let used = runner.tokens_of(&self.agent.id);
        if used >= self.agent.quotas.tokens_per_task {
            let message = format!(
                "token quota reached: agent `{}` used {used} tokens in this task, its quota is {}",
                self.agent.id, self.agent.quotas.tokens_per_task
            );
            return self.fail(codes::TOKEN_QUOTA, message).await.map(Err);
        }
        let decisions = runner.authorize_model_call(
            &self.step.name,
            turn,
            self.agent,
            &self.chain.provider_names(),
            messages,
        );
        runner.audit(decisions.audit).await;
        if decisions.allowed.is_empty() {
            self.writer.append_all(&decisions.events).await?;
            let message = format!(
                "policy allows no provider of agent `{}` for this data: {}",
                self.agent.id,
                decisions.refusals.join(" | ")
            );
            return self.fail(codes::MODEL_CALL_DENIED, message).await.map(Err);
        }
        let mut events = decisions.events;
        let allowed = decisions.allowed;
        let redact_for = decisions.redact_for;
        let redacted_messages = decisions.redacted;
        let request = ChatRequest {
            agent: self.agent.id.clone(),
            step: self.step.name.clone(),
            messages: messages.to_vec(),
            output_schema: Some(OutputSchema {
                name: self.agent.output_contract.name.clone(),
                schema: self.agent.output_contract.schema.clone(),
            }),
            max_output_tokens: self.agent.limits.max_output_tokens,
            tools,
        };
        // Providers policy allows only under the obligation `redact` get the redacted messages;
        // without them (they could not be made) such a provider gets nothing.
        let redacted_request = redacted_messages.map(|messages| ChatRequest {
            messages,
            ..request.clone()
        });
        let started = Instant::now();
        let mut cancel = self.cancel.clone();
        let request_for = |name: &str| {
            if !allowed.iter().any(|p| p == name) {
                None
            } else if redact_for.iter().any(|p| p == name) {
                redacted_request.as_ref()
            } else {
                Some(&request)
            }
        };
        let call =
            tokio::time::timeout(self.agent.limits.timeout, self.chain.chat_each(request_for));
        let result = tokio::select! {
            r = call => r,
            _ = cancel.wait_for(|c| *c) => return Ok(Err(StepOutcome::Abandoned)),
        };
        let response = match result {
            Err(_) => {
                let message = format!(
                    "the model did not answer within {:?}",
                    self.agent.limits.timeout
                );
                return self.fail(codes::STEP_TIMEOUT, message).await.map(Err);
            }
            Ok(Err(e)) => match e.retry_later() {
                Some(wait) => return self.defer(turn, &e, wait, step_started).await.map(Err),
                None => return self.fail(e.code(), e.to_string()).await.map(Err),
            },
            Ok(Ok(response)) => response,
        };
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let cost = self.count_usage(&response.provider, &response.model, response.usage);
        let record = runner.model_usage_audit(
            &self.step.name,
            self.agent,
            &response.provider,
            &response.model,
            amas_governance::pipeline::ModelUsage {
                input_tokens: response.usage.input_tokens,
                output_tokens: response.usage.output_tokens,
                latency: started.elapsed(),
                cost,
            },
        );
        runner.audit(vec![record]).await;
        let answer = JournaledAnswer {
            content: response.content,
            tool_calls: response
                .tool_calls
                .into_iter()
                .map(|c| RequestedTool {
                    id: c.id.into(),
                    name: c.name,
                    arguments: c.arguments,
                })
                .collect(),
        };
        let provider = response.provider.clone();
        let responded = JournalEvent::ModelResponded {
            step: self.step.name.clone(),
            attempt: turn,
            provider: response.provider,
            model: response.model,
            content: answer.content.clone(),
            tool_calls: answer.tool_calls.clone(),
            usage: response.usage,
            latency_ms,
        };
        events.push(responded);
        runner.count_tokens(
            &self.agent.id,
            response.usage.input_tokens + response.usage.output_tokens,
        );
        // The verdict is journaled with the answer (a block with the step's failure), so a
        // restart reuses both and never asks the model or the classifier again.
        let screened = self
            .screen
            .model_output(&self.step.name, &self.agent.id, turn, &provider, &answer)
            .await;
        if let Some(screened) = screened {
            events.push(screened.event);
            if let Some(error) = screened.blocked {
                return self.fail_after(events, error).await.map(Err);
            }
        }
        Ok(Ok((answer, events, response.usage)))
    }

    /// Counts a model call's tokens and estimated cost by provider, model and tenant; the cost,
    /// when the provider has prices.
    fn count_usage(&self, provider: &str, model: &str, usage: Usage) -> Option<f64> {
        let tenant = self.metrics.tenant_label(self.tenant);
        for (direction, tokens) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
        ] {
            self.metrics
                .tokens
                .get_or_create(&TokenLabels {
                    provider: provider.to_owned(),
                    model: model.to_owned(),
                    tenant: tenant.clone(),
                    direction: direction.to_owned(),
                })
                .inc_by(tokens);
        }
        let prices = self.prices.get(provider)?;
        let cost = prices.cost(usage.input_tokens, usage.output_tokens);
        self.metrics
            .estimated_cost
            .get_or_create(&CostLabels {
                provider: provider.to_owned(),
                model: model.to_owned(),
                tenant,
            })
            .inc_by(cost);
        Some(cost)
    }

    /// Every provider asked to be called again after `wait`: parks the task until then (the
    /// turn is asked again when it runs: nothing of the call was journaled), unless that is past
    /// the agent's `limits.timeout` from the step's journaled start; then the step fails with
    /// the provider error. The bound is in the journal, so it holds across parks and restarts,
    /// and a provider that keeps refusing cannot hold the task for longer than the agent may
    /// wait for its model.
    async fn defer(
        &self,
        turn: u32,
        error: &amas_providers::ProviderError,
        wait: std::time::Duration,
        step_started: DateTime<Utc>,
    ) -> Result<StepOutcome, StoreError> {
        let info = ErrorInfo {
            code: error.code().to_owned(),
            message: error.to_string(),
        };
        let timeout = self.agent.limits.timeout;
        let wait =
            chrono::Duration::from_std(wait.max(MIN_DEFERRAL)).unwrap_or(chrono::Duration::MAX);
        let until = Utc::now().checked_add_signed(wait);
        let deadline = chrono::Duration::from_std(timeout)
            .ok()
            .and_then(|t| step_started.checked_add_signed(t));
        let until = match (until, deadline) {
            (Some(until), Some(deadline)) if until <= deadline => until,
            _ => {
                let message = format!(
                    "{}; the providers ask to wait {}s more, past the agent's timeout of {timeout:?} \
                     from the step's start",
                    info.message,
                    wait.num_seconds()
                );
                return self.fail(&info.code, message).await;
            }
        };
        if *self.cancel.borrow() {
            return Ok(StepOutcome::Abandoned);
        }
        info!(step = %self.step.name, turn, code = %info.code, until = %until, "Model call deferred; the task parks.");
        self.writer
            .append(JournalEvent::ModelCallDeferred {
                step: self.step.name.clone(),
                attempt: turn,
                until,
                error: info,
            })
            .await?;
        Ok(StepOutcome::Parked(Parked {
            approval: None,
            step: self.step.name.clone(),
            until,
        }))
    }

    async fn fail(&self, code: &str, message: String) -> Result<StepOutcome, StoreError> {
        let error = ErrorInfo {
            code: code.to_owned(),
            message,
        };
        self.fail_after(Vec::new(), error).await
    }

    /// Fails the step with `events` journaled in the same write as the failure, so a restart
    /// never finds the answer without its verdict.
    async fn fail_after(
        &self,
        mut events: Vec<JournalEvent>,
        error: ErrorInfo,
    ) -> Result<StepOutcome, StoreError> {
        if *self.cancel.borrow() {
            return Ok(StepOutcome::Abandoned);
        }
        warn!(step = %self.step.name, code = %error.code, "Step failed.");
        events.push(JournalEvent::StepFailed {
            step: self.step.name.clone(),
            error: error.clone(),
        });
        self.writer.append_all(&events).await?;
        Ok(StepOutcome::Failed(error))
    }
}

fn empty_state(step: &StepConfig, agent: &AgentConfig) -> StepState {
    StepState {
        step: step.name.clone(),
        agent: agent.id.clone(),
        status: amas_types::StepStatus::Running,
        attempts: 0,
        started_at: None,
        finished_at: None,
        usage: Usage::default(),
        input: None,
        output: None,
        error: None,
        responses: Default::default(),
        violations: Default::default(),
        tools: Default::default(),
    }
}

fn to_provider_call(call: &RequestedTool) -> ToolCall {
    ToolCall {
        id: call.id.to_string(),
        name: call.name.clone(),
        arguments: call.arguments.clone(),
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

/// The agent's instructions and the input. Violations and tool results are appended per turn.
fn base_messages(agent: &AgentConfig, input: &Value, tools: bool) -> Vec<ChatMessage> {
    let tool_hint = if tools {
        "\nYou may call the tools you are given; when you have what you need, answer."
    } else {
        ""
    };
    let system = format!(
        "{}{tool_hint}\nAnswer with one JSON object that satisfies this JSON Schema, and nothing else:\n{}",
        agent.system_prompt.trim_end(),
        agent.output_contract.schema
    );
    vec![
        ChatMessage::system(system),
        ChatMessage::user(input.to_string()),
    ]
}
