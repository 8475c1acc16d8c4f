"""OpenTelemetry spans for a request: HTTP handler -> raft.propose -> raft.commit ->
raft.apply, with the W3C `traceparent` header carried in and out (a follower that
forwards a write passes its context to the leader).

Off by default, and then free: the node holds `None` instead of a `Tracing`, and
every hook is one `is None` test. Each node has its own `TracerProvider` (never the
global one), so tests can give it an in-memory exporter.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

OTLP_EXPORTER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
_PROPAGATOR = TraceContextTextMapPropagator()


class ProposalTrace:
    """Follows one proposal from the Ready loop: `committed()` when its entry comes
    out committed, `applied()` once applied. Spans are made only then, so a proposal
    that never commits costs nothing more."""

    __slots__ = ("_committed_ns", "_context", "_index", "_started_ns", "_tracer")

    def __init__(self, tracer: trace.Tracer, index: int) -> None:
        self._tracer = tracer
        self._context = otel_context.get_current()  # holds the raft.propose span
        self._index = index
        self._started_ns = time.time_ns()
        self._committed_ns = 0

    def committed(self) -> None:
        self._committed_ns = time.time_ns()

    def applied(self) -> None:
        attributes = {"raft.index": self._index}
        commit = self._tracer.start_span(
            "raft.commit", self._context, start_time=self._started_ns, attributes=attributes
        )
        commit.end(end_time=self._committed_ns)
        apply = self._tracer.start_span(
            "raft.apply", self._context, start_time=self._committed_ns, attributes=attributes
        )
        apply.end()


class Tracing:
    def __init__(self, node_name: str, exporter: SpanExporter, *, batch: bool = True) -> None:
        resource = Resource.create({"service.name": "accord", "service.instance.id": node_name})
        self.provider = TracerProvider(resource=resource)
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("accord")

    @contextmanager
    def server_span(
        self, name: str, headers: Mapping[str, str], attributes: Mapping[str, Any]
    ) -> Iterator[trace.Span]:
        """A SERVER span continuing the caller's trace (from `traceparent`), current
        for the duration of the block."""
        parent = _PROPAGATOR.extract(headers)
        with self.tracer.start_as_current_span(
            name, parent, kind=trace.SpanKind.SERVER, attributes=dict(attributes)
        ) as span:
            yield span

    @contextmanager
    def span(self, name: str, attributes: Mapping[str, Any]) -> Iterator[trace.Span]:
        with self.tracer.start_as_current_span(name, attributes=dict(attributes)) as span:
            yield span

    def proposal(self, term: int, index: int) -> ProposalTrace:
        return ProposalTrace(self.tracer, index)

    @staticmethod
    def inject(headers: MutableMapping[str, str]) -> None:
        """Add `traceparent` (and `tracestate`) for the current span to `headers`."""
        _PROPAGATOR.inject(headers)

    @staticmethod
    def current_trace_id() -> str | None:
        ctx = trace.get_current_span().get_span_context()
        return format(ctx.trace_id, "032x") if ctx.is_valid else None

    def shutdown(self) -> None:
        self.provider.shutdown()


def make_tracing(mode: str, node_name: str) -> Tracing | None:
    """The node's tracing for config `tracing = mode`; None when off."""
    if mode == "off":
        return None
    if mode == "console":
        return Tracing(node_name, ConsoleSpanExporter(service_name=f"accord/{node_name}"))
    if mode == "otlp":
        # The exporter package is optional; the config check already found it.
        exporter: SpanExporter = importlib.import_module(OTLP_EXPORTER).OTLPSpanExporter()
        return Tracing(node_name, exporter)
    raise ValueError(f"unknown tracing mode {mode!r}")
