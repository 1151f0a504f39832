//! Test harness: the runtime as production composes it (`amas_runtime::compose`: the embedded
//! policy bundle, tool registry and data protection, a real SQLite store with its audit
//! writer), whose model provider is a programmable fake (the model is the outside world here).

#![allow(
    dead_code,
    reason = "compiled into several test binaries, each using a subset: an expect would be \
              unfulfilled in those using all (allow_attributes checks outer attributes only)"
)]

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use amas_config::{AmasConfig, BreakerConfig, LoadOptions};
use amas_providers::{ChatRequest, ChatResponse, ModelProvider, ProviderError, ProviderSet};
use amas_runtime::Runtime;
use amas_runtime::compose::Composition;
use amas_store::{SqliteStore, TaskJournal};
use amas_telemetry::Metrics;
use amas_types::{Principal, Priority, TaskId, TaskSpec, TaskState, TaskStatus, Usage};

/// Canned answers per agent, consumed in order (the last one repeats), with a record of every
/// request and of how many calls were in flight at once.
#[derive(Default)]
pub struct FakeModel {
    answers: Mutex<HashMap<String, VecDeque<Value>>>,
    pub requests: Mutex<Vec<ChatRequest>>,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// When set, calls of this agent wait until this many are in flight (a parallelism probe).
    pub rendezvous: Mutex<Option<(String, usize)>>,
}

impl FakeModel {
    pub fn answer(&self, agent: &str, answers: Vec<Value>) {
        self.answers
            .lock()
            .unwrap()
            .insert(agent.to_owned(), answers.into());
    }

    /// Valid answers for the steps after research (analysis, synthesis).
    pub fn answer_downstream(&self) {
        self.answer("analysis", vec![valid("analysis")]);
        self.answer("synthesis", vec![valid("synthesis")]);
    }

    pub fn requests_for(&self, agent: &str) -> Vec<ChatRequest> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.agent == agent)
            .cloned()
            .collect()
    }

    pub fn steps_in_call_order(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.step.to_string())
            .collect()
    }
}

#[async_trait]
impl ModelProvider for FakeModel {
    fn name(&self) -> &str {
        "fake"
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.requests.lock().unwrap().push(request.clone());
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let rendezvous = self.rendezvous.lock().unwrap().clone();
        if let Some((agent, count)) = rendezvous
            && agent == request.agent
        {
            // Wait (bounded) for the sibling call; a sequential scheduler never gets there.
            for _ in 0..200 {
                if self.max_in_flight.load(Ordering::SeqCst) >= count {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        let answer = {
            let mut answers = self.answers.lock().unwrap();
            let queue = answers.get_mut(request.agent.as_str());
            match queue {
                Some(q) if q.len() > 1 => q.pop_front(),
                Some(q) => q.front().cloned(),
                None => None,
            }
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let answer = answer.ok_or_else(|| ProviderError::Unavailable {
            provider: "fake".into(),
            reason: format!("no answer scripted for agent {}", request.agent),
        })?;
        // `{"__tool_calls": [{"name", "arguments"}]}` asks for tool calls instead of answering.
        let tool_calls: Vec<amas_providers::ToolCall> = answer
            .get("__tool_calls")
            .and_then(Value::as_array)
            .map(|calls| {
                calls
                    .iter()
                    .enumerate()
                    .map(|(i, c)| amas_providers::ToolCall {
                        id: format!("call_{}_{i}", self.requests.lock().unwrap().len()),
                        name: c["name"].as_str().unwrap().to_owned(),
                        arguments: c["arguments"].clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let content = match answer {
            _ if !tool_calls.is_empty() => String::new(),
            Value::String(s) => s,
            other => other.to_string(),
        };
        Ok(ChatResponse {
            tool_calls,
            provider: "fake".into(),
            model: "fake-1".into(),
            usage: Usage {
                input_tokens: 10,
                output_tokens: 5,
            },
            content,
        })
    }
}

/// Valid answers for the default agents.
pub fn valid(agent: &str) -> Value {
    match agent {
        "research" => json!({"findings": ["Rust has no GC"], "summary": "Rust is memory safe."}),
        "analysis" => json!({"insights": ["Safety without GC"], "risks": []}),
        "synthesis" => json!({"title": "Rust", "report": "Rust is safe and fast."}),
        other => panic!("no valid answer for {other}"),
    }
}

pub struct Harness {
    pub runtime: Runtime,
    pub model: Arc<FakeModel>,
    pub journal: Arc<dyn TaskJournal>,
    pub config: Arc<AmasConfig>,
    pub _dir: tempfile::TempDir,
}

/// The embedded configuration with every agent's chain pointed at the fake model.
pub fn config() -> AmasConfig {
    let mut config = amas_config::load(&LoadOptions::default()).expect("embedded config loads");
    for agent in config.agents.values_mut() {
        agent.providers = vec!["fake".to_owned()];
    }
    // The fake model stands in for a local one: trusted with every level.
    config.provider_trust.insert(
        "fake".to_owned(),
        ["public", "internal", "confidential", "restricted"]
            .map(str::to_owned)
            .to_vec(),
    );
    config
}

/// A harness on a fresh directory for `config` (every harness is governed: the embedded Rego
/// bundle and tool registry, workspaces under the harness's directory).
pub async fn harness_with_tools(config: AmasConfig) -> Harness {
    harness_governed(
        config,
        tempfile::tempdir().unwrap(),
        Arc::new(FakeModel::default()),
        &Governance::default(),
    )
    .await
}

/// How a governed harness's gate differs from the embedded defaults.
pub struct Governance {
    pub environment: &'static str,
    /// Tools marked `requires_approval`.
    pub needs_approval: Vec<&'static str>,
    /// Tools raised to `risk: high`.
    pub high_risk: Vec<&'static str>,
    /// Tools added to (or replacing ones of) the embedded registry: doubles of the outside world.
    pub extra_tools: Vec<Arc<dyn amas_tools::Tool>>,
    /// Providers besides `fake`, by name (e.g. an OpenAI-compatible one on a mock server).
    pub extra_providers: Vec<(String, Arc<dyn ModelProvider>)>,
}

impl Default for Governance {
    fn default() -> Self {
        Self {
            environment: "development",
            needs_approval: Vec::new(),
            high_risk: Vec::new(),
            extra_tools: Vec::new(),
            extra_providers: Vec::new(),
        }
    }
}

/// A harness on `dir` (which may hold an earlier run's journal) with the real gate: the embedded
/// Rego bundle and tool registry, adjusted by `gov`.
pub async fn harness_governed(
    config: AmasConfig,
    dir: tempfile::TempDir,
    model: Arc<FakeModel>,
    gov: &Governance,
) -> Harness {
    compose(config, dir, model, gov, None).await
}

/// The default harness with `safety` screening submissions, model outputs and tool results: a
/// stand-in for a moderation service (the outside world).
pub async fn harness_with_safety(safety: amas_dataprotect::ContentSafety) -> Harness {
    compose(
        config(),
        tempfile::tempdir().unwrap(),
        Arc::new(FakeModel::default()),
        &Governance::default(),
        Some(safety),
    )
    .await
}

/// The runtime as production composes it (`amas_runtime::compose`): the embedded Rego bundle,
/// the embedded tool registry adjusted by `gov`, the embedded data protection, the SQLite store
/// in `dir` with its group-committing audit writer (checkpoints signed by the audit key there),
/// workspaces under `dir`.
async fn compose(
    config: AmasConfig,
    dir: tempfile::TempDir,
    model: Arc<FakeModel>,
    gov: &Governance,
    content_safety: Option<amas_dataprotect::ContentSafety>,
) -> Harness {
    let config = Arc::new(config);
    let store = Arc::new(SqliteStore::open(dir.path()).await.expect("store opens"));
    let journal: Arc<dyn TaskJournal> = Arc::clone(&store) as Arc<dyn TaskJournal>;
    let metrics = Metrics::new();
    let breaker = BreakerConfig {
        failure_threshold: 100,
        cool_down: Duration::from_secs(1),
    };
    let mut providers = ProviderSet::from_config(&Default::default(), metrics.clone())
        .expect("empty provider set")
        .with_provider(
            "fake",
            Arc::clone(&model) as Arc<dyn ModelProvider>,
            breaker.clone(),
        );
    for (name, provider) in &gov.extra_providers {
        providers = providers.with_provider(name, Arc::clone(provider), breaker.clone());
    }
    let policy: Arc<dyn amas_policy::PolicyEngine> =
        Arc::new(amas_policy::RegoPolicyEngine::embedded().expect("embedded policies compile"));
    let mut tools = amas_tools::ToolsConfig::load(None, &[]).expect("embedded tools load");
    for tool in &mut tools.tools {
        if gov.needs_approval.contains(&tool.spec.name.as_str()) {
            tool.spec.requires_approval = true;
        }
        if gov.high_risk.contains(&tool.spec.name.as_str()) {
            tool.spec.risk = amas_tools::Risk::High;
        }
    }
    let mut registry = amas_tools::ToolRegistry::from_config(tools);
    for tool in &gov.extra_tools {
        registry.insert(Arc::clone(tool));
    }
    let audit_key = amas_governance::AuditKey::load_or_create(dir.path()).expect("audit key");
    let runtime = amas_runtime::compose::compose(Composition {
        config: Arc::clone(&config),
        store,
        providers: &providers,
        metrics,
        governance: amas_runtime::compose::Governance {
            tools: registry,
            protector: amas_dataprotect::DataProtector::shared_embedded()
                .expect("embedded data protection loads"),
            policy,
            environment: gov.environment.to_owned(),
            redact_secret: amas_governance::pipeline::DEFAULT_REDACT_SECRET.to_owned(),
            content_safety,
        },
        audit_signer: Arc::new(audit_key.signer()),
        audit_witnesses: Vec::new(),
        workspaces: dir.path().join("workspaces"),
    })
    .expect("runtime composes");
    Harness {
        runtime,
        model,
        journal,
        config,
        _dir: dir,
    }
}

/// The replayer of the production composition (`amas_runtime::compose::replayer`): `policy`
/// asked in `environment`, `tools`, the embedded data protection; `content_safety` stands in
/// for a moderation service (`None`: as the embedded configuration selects).
pub fn replayer(
    config: &Arc<AmasConfig>,
    policy: Arc<dyn amas_policy::PolicyEngine>,
    tools: amas_tools::ToolRegistry,
    environment: &str,
    content_safety: Option<amas_dataprotect::ContentSafety>,
) -> amas_runtime::Replayer {
    amas_runtime::compose::replayer(
        Arc::clone(config),
        amas_runtime::compose::Governance {
            tools,
            protector: amas_dataprotect::DataProtector::shared_embedded()
                .expect("embedded data protection loads"),
            policy,
            environment: environment.to_owned(),
            redact_secret: amas_governance::pipeline::DEFAULT_REDACT_SECRET.to_owned(),
            content_safety,
        },
    )
    .expect("replayer composes")
}

pub async fn harness_with(
    config: AmasConfig,
    dir: tempfile::TempDir,
    model: Arc<FakeModel>,
) -> Harness {
    harness_governed(config, dir, model, &Governance::default()).await
}

/// As [`harness_with`], with more providers next to `fake`.
pub async fn harness_with_providers(
    config: AmasConfig,
    dir: tempfile::TempDir,
    model: Arc<FakeModel>,
    extra: &[(String, Arc<dyn ModelProvider>)],
) -> Harness {
    let gov = Governance {
        extra_providers: extra.to_vec(),
        ..Governance::default()
    };
    harness_governed(config, dir, model, &gov).await
}

pub async fn harness() -> Harness {
    harness_with(
        config(),
        tempfile::tempdir().unwrap(),
        Arc::new(FakeModel::default()),
    )
    .await
}

pub fn spec(task_type: &str) -> TaskSpec {
    let mut parameters = serde_json::Map::new();
    parameters.insert("subject_a".into(), json!("Rust"));
    parameters.insert("subject_b".into(), json!("Go"));
    TaskSpec {
        task_type: task_type.to_owned(),
        title: "Memory safety".to_owned(),
        description: "How languages keep memory safe".to_owned(),
        parameters,
        priority: Priority::DEFAULT,
    }
}

impl Harness {
    pub async fn submit(&self, task_type: &str) -> TaskId {
        self.submit_as(task_type, Principal::local_operator()).await
    }

    pub async fn submit_as(&self, task_type: &str, principal: Principal) -> TaskId {
        self.runtime
            .admission()
            .submit(spec(task_type), principal, None)
            .await
            .expect("submitted")
            .task_id
    }

    /// The task's journal events, in order.
    pub async fn events(&self, task: TaskId) -> Vec<amas_types::JournalEvent> {
        self.journal
            .read(task, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.event)
            .collect()
    }

    /// Waits (bounded) until the task ends and returns its state.
    pub async fn wait(&self, task: TaskId) -> TaskState {
        for _ in 0..400 {
            let state = self
                .runtime
                .reader()
                .state(task)
                .await
                .unwrap()
                .expect("task exists");
            if state.status.is_terminal() {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("task {task} did not end");
    }
}

pub fn assert_status(state: &TaskState, status: TaskStatus) {
    assert_eq!(state.status, status, "task state: {state:#?}");
}

/// A non-admin principal of tenant `acme`.
pub fn submitter() -> Principal {
    Principal {
        sub: "alice".into(),
        roles: vec!["submitter".into()],
        tenant: amas_types::TenantId("acme".into()),
        auth_method: "local_jwt".into(),
        issuer: "amas-local".into(),
    }
}

/// The journal of a `research_report` task whose research step has started: the prefix of a
/// journal left behind by a crash inside that step.
pub fn research_started() -> Vec<amas_types::JournalEvent> {
    use amas_types::JournalEvent;
    vec![
        JournalEvent::TaskSubmitted {
            spec: spec("research_report"),
            principal: Principal::local_operator(),
            trace_id: None,
            parent_span_id: None,
        },
        JournalEvent::TaskStarted,
        JournalEvent::StepStarted {
            step: "research".into(),
            agent: "research".into(),
            input: json!({"topic": "Memory safety", "description": "How languages keep memory safe"}),
        },
    ]
}
