//! The process-wide tracing set-up: logs on stderr (JSON or compact) that carry the W3C trace id
//! of the span they happen in, OpenTelemetry spans with real trace ids, and OTLP export when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::dispatcher::WeakDispatch;
use tracing::{Dispatch, Event, Subscriber, span};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::fmt::format::{Format, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

/// The instrumentation scope of every span AMAS creates.
const TRACER_NAME: &str = "amas";
const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    #[error("tracing is already initialised in this process")]
    AlreadyInitialized,
    #[error("invalid log filter {directives:?}: {reason}")]
    Filter { directives: String, reason: String },
    #[error("{OTLP_ENDPOINT_ENV} is set but init_tracing was called outside a Tokio runtime")]
    NoRuntime,
    #[error("cannot build the OTLP span exporter: {0}")]
    Exporter(String),
    #[error("cannot install the global subscriber: {0}")]
    Install(String),
}

/// Keeps the tracer provider alive; dropping it flushes pending spans and shuts export down.
/// Hold it in `main` until the process is about to exit.
#[must_use = "dropping the guard shuts tracing export down"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard").finish_non_exhaustive()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Nothing useful can be done with a failed flush at exit, and logging is going away.
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, replaces `default_filter`.
///
/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are exported over OTLP/gRPC in batches; this
/// must then be called inside a Tokio runtime that outlives the returned guard.
///
/// # Errors
/// A second call in the same process, an invalid filter, or an exporter that cannot be built.
pub fn init_tracing(
    service: &str,
    json: bool,
    default_filter: &str,
) -> Result<TelemetryGuard, TracingError> {
    if INITIALIZED.swap(true, Ordering::SeqCst) {
        return Err(TracingError::AlreadyInitialized);
    }
    let built = log_filter(default_filter).and_then(|filter| {
        let provider = tracer_provider(service)?;
        Ok((filter, provider))
    });
    let (filter, provider) = match built {
        Ok(parts) => parts,
        Err(err) => {
            // Nothing was installed: a corrected second attempt may proceed.
            INITIALIZED.store(false, Ordering::SeqCst);
            return Err(err);
        }
    };
    let subscriber = build_subscriber(&provider, json, filter, std::io::stderr);
    if let Err(err) = tracing::subscriber::set_global_default(subscriber) {
        let _ = provider.shutdown();
        return Err(TracingError::Install(err.to_string()));
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(TelemetryGuard { provider })
}

/// The 32-hex W3C trace id of the current span, or `None` outside any traced span.
#[must_use]
pub fn current_trace_id() -> Option<String> {
    current_span_context().map(|c| c.trace_id().to_string())
}

/// The OpenTelemetry span context of the nearest traced span around the caller, if any.
pub(crate) fn current_span_context() -> Option<SpanContext> {
    tracing::dispatcher::get_default(|dispatch| {
        let current = dispatch.current_span();
        let id = current.id()?;
        span_context_in_scope(dispatch, id)
    })
}

fn log_filter(default_filter: &str) -> Result<EnvFilter, TracingError> {
    let directives = match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => env,
        _ => default_filter.to_owned(),
    };
    EnvFilter::try_new(&directives).map_err(|err| TracingError::Filter {
        reason: err.to_string(),
        directives,
    })
}

fn tracer_provider(service: &str) -> Result<SdkTracerProvider, TracingError> {
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let endpoint_set = std::env::var(OTLP_ENDPOINT_ENV).is_ok_and(|v| !v.trim().is_empty());
    if !endpoint_set {
        // No exporter: spans still get real trace ids for logs, journal and audit records.
        return Ok(builder.build());
    }
    // The tonic channel spawns onto the current runtime; without one it would panic.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(TracingError::NoRuntime);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|err| TracingError::Exporter(err.to_string()))?;
    Ok(builder.with_batch_exporter(exporter).build())
}

/// The whole subscriber, apart from where it is installed: tests build it with their own writer.
///
/// Log verbosity and span recording are filtered separately, so a quiet `RUST_LOG=warn` still
/// gives info-level spans (tasks, steps, requests) their trace ids and exports them.
pub(crate) fn build_subscriber<W>(
    provider: &SdkTracerProvider,
    json: bool,
    filter: EnvFilter,
    writer: W,
) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let dispatch = Arc::new(OnceLock::new());
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(TRACER_NAME))
        .with_filter(span_filter());
    // Boxed because the JSON and compact layers are different types; one filter wraps either.
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .fmt_fields(JsonFields::new())
            .event_format(TraceIdFormat {
                inner: Format::default()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true),
                json: true,
                dispatch: dispatch.clone(),
            })
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .event_format(TraceIdFormat {
                inner: Format::default().compact().with_ansi(false),
                json: false,
                dispatch: dispatch.clone(),
            })
            .boxed()
    };
    Registry::default()
        .with(otel)
        .with(fmt.with_filter(filter))
        .with(DispatchCapture(dispatch))
}

/// Spans worth a trace: info and above, minus the crates that carry OTLP export itself, which
/// would otherwise trace their own exports in a loop.
fn span_filter() -> Targets {
    Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("h2", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("hyper_util", LevelFilter::OFF)
        .with_target("tonic", LevelFilter::OFF)
        .with_target("tower", LevelFilter::OFF)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("opentelemetry_sdk", LevelFilter::OFF)
        .with_target("opentelemetry_otlp", LevelFilter::OFF)
}

/// The span context of the nearest span, from `leaf` upwards, that OpenTelemetry is tracing.
/// Spans below the span filter have no OTel data, so their traced ancestor answers for them.
fn span_context_in_scope(dispatch: &Dispatch, leaf: &span::Id) -> Option<SpanContext> {
    let registry = dispatch.downcast_ref::<Registry>()?;
    let span = registry.span(leaf)?;
    span.scope().find_map(|s| {
        let cx = tracing_opentelemetry::get_otel_context(&s.id(), dispatch)?;
        let context = cx.span().span_context().clone();
        context.is_valid().then_some(context)
    })
}

/// Hands the formatter the dispatcher it runs in: inside an event callback the thread's
/// default dispatcher is not reachable, and the OTel context lookup needs it.
struct DispatchCapture(Arc<OnceLock<WeakDispatch>>);

impl<S: Subscriber> Layer<S> for DispatchCapture {
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.0.set(subscriber.downgrade());
    }
}

/// Wraps a standard formatter and adds `trace_id` and `span_id` (of the nearest traced span) to
/// its line: top-level JSON members, or trailing `trace_id= span_id=` in compact mode. Lines
/// outside any traced span carry neither.
struct TraceIdFormat<F> {
    inner: F,
    json: bool,
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl<S, N, F> FormatEvent<S, N> for TraceIdFormat<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let leaf = ctx
            .event_scope()
            .and_then(|mut scope| scope.next())
            .map(|s| s.id());
        let context = leaf.and_then(|id| {
            let dispatch = self.dispatch.get()?.upgrade()?;
            span_context_in_scope(&dispatch, &id)
        });
        match context {
            Some(c) => writer.write_str(&with_ids(&line, c.trace_id(), c.span_id(), self.json)),
            None => writer.write_str(&line),
        }
    }
}

/// Splices the trace and span ids into one formatted line; hex needs no escaping in either
/// format.
fn with_ids(line: &str, trace_id: TraceId, span_id: SpanId, json: bool) -> String {
    let body = line.trim_end_matches('\n');
    if json && let Some(object) = body.strip_suffix('}') {
        return format!("{object},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}\n");
    }
    format!("{body} trace_id={trace_id} span_id={span_id}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Collects what the subscriber writes, so the test can read the log lines back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    fn json_lines(captured: &Captured) -> Vec<serde_json::Value> {
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn spans_get_trace_ids_that_appear_in_json_log_lines() {
        let provider = SdkTracerProvider::builder().build();
        let captured = Captured::default();
        let filter = EnvFilter::try_new("debug").unwrap();
        let subscriber = build_subscriber(&provider, true, filter, captured.clone());

        let (outer_id, inner_id) = tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before any span");
            let task = tracing::info_span!("task", task.id = "t-1");
            let _task = task.enter();
            let outer = current_trace_id().unwrap();
            // A debug span is below the span filter: it inherits its traced parent's id.
            let detail = tracing::debug_span!("detail");
            let _detail = detail.enter();
            tracing::info!(step = "plan", "Step started.");
            (outer, current_trace_id().unwrap())
        });

        assert_eq!(outer_id.len(), 32);
        assert!(
            outer_id
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(outer_id, "0".repeat(32));
        assert_eq!(inner_id, outer_id);

        let lines = json_lines(&captured);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].get("trace_id").is_none());
        let line = &lines[1];
        assert_eq!(line["trace_id"], outer_id.as_str());
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["message"], "Step started.");
        assert_eq!(line["fields"]["step"], "plan");
        assert_eq!(line["spans"][0]["task.id"], "t-1");
        assert!(line["timestamp"].is_string());
        assert!(line["target"].is_string());
    }

    #[test]
    fn compact_lines_end_with_the_trace_id() {
        let provider = SdkTracerProvider::builder().build();
        let captured = Captured::default();
        let filter = EnvFilter::try_new("info").unwrap();
        let subscriber = build_subscriber(&provider, false, filter, captured.clone());
        let trace_id = tracing::subscriber::with_default(subscriber, || {
            let _span = tracing::info_span!("request").entered();
            tracing::info!("Request accepted.");
            current_trace_id().unwrap()
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("Request accepted."), "{text}");
        assert!(
            text.trim_end()
                .rsplit_once(" span_id=")
                .is_some_and(|(head, span)| {
                    head.ends_with(&format!(" trace_id={trace_id}")) && span.len() == 16
                }),
            "{text}"
        );
    }

    #[test]
    fn separate_root_spans_are_separate_traces() {
        let provider = SdkTracerProvider::builder().build();
        let filter = EnvFilter::try_new("info").unwrap();
        let subscriber = build_subscriber(&provider, true, filter, Captured::default());
        let (a, b) = tracing::subscriber::with_default(subscriber, || {
            let a = tracing::info_span!("a").in_scope(current_trace_id);
            let b = tracing::info_span!("b").in_scope(current_trace_id);
            (a, b)
        });
        assert_ne!(a.unwrap(), b.unwrap());
    }

    #[test]
    fn no_trace_id_outside_spans() {
        let provider = SdkTracerProvider::builder().build();
        let filter = EnvFilter::try_new("info").unwrap();
        let subscriber = build_subscriber(&provider, true, filter, Captured::default());
        assert_eq!(
            tracing::subscriber::with_default(subscriber, current_trace_id),
            None
        );
    }

    #[test]
    fn ids_are_spliced_into_both_formats() {
        let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let span = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        assert_eq!(
            with_ids("{\"level\":\"INFO\"}\n", trace, span, true),
            "{\"level\":\"INFO\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"span_id\":\"00f067aa0ba902b7\"}\n"
        );
        assert_eq!(
            with_ids("INFO amas: hello\n", trace, span, false),
            "INFO amas: hello trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7\n"
        );
    }

    #[test]
    fn log_lines_name_the_nearest_traced_span() {
        let provider = SdkTracerProvider::builder().build();
        let captured = Captured::default();
        let filter = EnvFilter::try_new("debug").unwrap();
        let subscriber = build_subscriber(&provider, true, filter, captured.clone());
        let (task_span, step_span) = tracing::subscriber::with_default(subscriber, || {
            let task = tracing::info_span!("task").entered();
            tracing::info!("Task started.");
            let task_span = current_span_context().unwrap().span_id();
            let step = tracing::info_span!("step").entered();
            // Below the span filter: the line names the traced span around it.
            let detail = tracing::debug_span!("detail").entered();
            tracing::info!("Step started.");
            let step_span = current_span_context().unwrap().span_id();
            drop((detail, step, task));
            (task_span, step_span)
        });
        assert_ne!(task_span, step_span);
        assert_ne!(task_span, SpanId::INVALID);
        let lines = json_lines(&captured);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["span_id"], task_span.to_string().as_str());
        assert_eq!(lines[1]["span_id"], step_span.to_string().as_str());
        assert_eq!(lines[0]["trace_id"], lines[1]["trace_id"]);
    }

    #[test]
    fn second_init_is_an_error_not_a_panic() {
        // The only test touching the global subscriber; the others use scoped subscribers.
        let first = init_tracing("amas-test", true, "warn");
        let second = init_tracing("amas-test", true, "warn");
        assert!(first.is_ok());
        assert!(matches!(second, Err(TracingError::AlreadyInitialized)));
        drop(first);
    }
}
