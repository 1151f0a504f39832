//! W3C Trace Context: a caller's `traceparent` becomes the parent of the request's span, a task
//! continues the trace of the request that submitted it, and outbound HTTP carries ours.

use std::collections::HashMap;
use std::future::Future;

use opentelemetry::Context;
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::logging::current_span_context;

/// The W3C header naming the caller's trace and span.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header carrying vendor trace state along with `traceparent`.
pub const TRACESTATE: &str = "tracestate";

/// A caller's trace context, from its `traceparent` (and `tracestate`) header.
#[derive(Clone, Debug)]
pub struct RemoteParent(Context);

impl RemoteParent {
    /// `None` when `traceparent` is absent or not a valid W3C value; the spec says to ignore an
    /// invalid one and start a new trace, never to fail the request.
    #[must_use]
    pub fn from_headers(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        let mut carrier = HashMap::new();
        carrier.insert(TRACEPARENT.to_owned(), traceparent?.to_owned());
        if let Some(state) = tracestate {
            carrier.insert(TRACESTATE.to_owned(), state.to_owned());
        }
        let cx = TraceContextPropagator::new().extract(&carrier);
        cx.span().span_context().is_valid().then_some(Self(cx))
    }

    /// Runs `fut` with the caller's context current: the first span it opens (with no tracing
    /// parent of its own) becomes a child of the caller's span, in the caller's trace.
    pub fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        fut.with_context(self.0)
    }
}

/// The 16-hex id of the current traced span, or `None` outside any traced span.
#[must_use]
pub fn current_span_id() -> Option<String> {
    current_span_context().map(|c| c.span_id().to_string())
}

/// Makes `span` (not yet entered) a child of span `parent_span_id` of trace `trace_id`: how a
/// task, run later and elsewhere, continues the trace of the request that submitted it. Without
/// a parent span id (journals written before it was recorded) the span still joins the trace,
/// under a parent id derived from the trace id. Invalid ids leave `span` a root.
pub fn continue_trace(span: &tracing::Span, trace_id: &str, parent_span_id: Option<&str>) {
    let Ok(trace) = TraceId::from_hex(trace_id) else {
        return;
    };
    let parent = match parent_span_id.map(SpanId::from_hex) {
        Some(Ok(id)) => id,
        Some(Err(_)) => return,
        None => SpanId::from_hex(&trace_id[trace_id.len().saturating_sub(16)..])
            .unwrap_or(SpanId::INVALID),
    };
    let context = SpanContext::new(
        trace,
        parent,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    if context.is_valid() {
        // Fails only when the span has already started or is not traced: it stays a root.
        let _ = span.set_parent(Context::new().with_remote_span_context(context));
    }
}

/// The W3C headers (`traceparent`, and `tracestate` when there is one) naming the current span,
/// for outbound HTTP requests; empty outside any traced span.
#[must_use]
pub fn outbound_headers() -> Vec<(&'static str, String)> {
    let Some(context) = current_span_context() else {
        return Vec::new();
    };
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(
        &Context::new().with_remote_span_context(context),
        &mut carrier,
    );
    let mut headers = Vec::with_capacity(2);
    for name in [TRACEPARENT, TRACESTATE] {
        if let Some(value) = carrier.remove(name).filter(|v| !v.is_empty()) {
            headers.push((name, value));
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_traceparents_are_accepted() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(RemoteParent::from_headers(Some(good), None).is_some());
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01x",
        ] {
            assert!(
                RemoteParent::from_headers(Some(bad), None).is_none(),
                "{bad:?} must be ignored"
            );
        }
        assert!(RemoteParent::from_headers(None, Some("k=v")).is_none());
    }

    fn provider() -> opentelemetry_sdk::trace::SdkTracerProvider {
        opentelemetry_sdk::trace::SdkTracerProvider::builder().build()
    }

    fn filter() -> tracing_subscriber::EnvFilter {
        tracing_subscriber::EnvFilter::try_new("info").unwrap()
    }

    /// A span opened under a caller's context joins the caller's trace as its child, and what
    /// goes out names that span.
    #[test]
    fn the_callers_trace_is_continued_and_propagated() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let provider = provider();
        let subscriber = crate::logging::build_subscriber(&provider, true, filter(), std::io::sink);
        let (trace, headers) = tracing::subscriber::with_default(subscriber, || {
            let parent = RemoteParent::from_headers(Some(caller), Some("vendor=x")).unwrap();
            runtime.block_on(parent.scope(async {
                let span = tracing::info_span!("http.request");
                let _entered = span.enter();
                (crate::current_trace_id(), outbound_headers())
            }))
        });
        assert_eq!(trace.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        let traceparent = &headers[0];
        assert_eq!(traceparent.0, TRACEPARENT);
        assert!(
            traceparent
                .1
                .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{headers:?}"
        );
        assert!(!traceparent.1.contains("00f067aa0ba902b7"), "a new span id");
    }

    /// A task's span continues the journaled trace under the submitting request's span.
    #[test]
    fn a_task_span_continues_the_journaled_trace() {
        let provider = provider();
        let subscriber = crate::logging::build_subscriber(&provider, true, filter(), std::io::sink);
        let (trace, span_id) = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("amas.task");
            continue_trace(
                &span,
                "4bf92f3577b34da6a3ce929d0e0e4736",
                Some("00f067aa0ba902b7"),
            );
            let _entered = span.enter();
            (crate::current_trace_id(), current_span_id())
        });
        assert_eq!(trace.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_ne!(span_id.as_deref(), Some("00f067aa0ba902b7"));
        let subscriber = crate::logging::build_subscriber(&provider, true, filter(), std::io::sink);
        let root = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("amas.task");
            continue_trace(&span, "not-hex", None);
            let _entered = span.enter();
            crate::current_trace_id()
        });
        assert!(root.is_some_and(|t| t != "4bf92f3577b34da6a3ce929d0e0e4736"));
    }

    #[test]
    fn nothing_to_propagate_outside_spans() {
        assert!(outbound_headers().is_empty());
        assert_eq!(current_span_id(), None);
    }
}
