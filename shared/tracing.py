"""OpenTelemetry traces of a frame, on only where an OTLP endpoint is configured.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)
set, each process calls ``init_tracing`` at start-up (each API's app factory,
each worker process after its fork): spans go in batches to that
endpoint over OTLP/HTTP (protobuf), configured by OpenTelemetry's standard
variables (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*`` …).
Without it nothing is installed: ``span`` hands back one shared do-nothing
context manager and ``inject`` returns at once.

A frame's trace: ingest's request span (FastAPI instrumentation) → ``enqueue
frame`` (producer; its context rides in the task message's headers) → the
worker's ``run/classpulse.process_frame`` (Celery instrumentation) → ``decode``,
``detect``, ``classify``, ``write`` and ``live notice``. Each ClassPulse span
carries the frame id (``classpulse.frame_id``); none carries a credential: the
instrumentations record no header and no request body, and ClassPulse's own
spans only ids.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

#: Attribute naming the frame a span concerns.
FRAME_ID = "classpulse.frame_id"
#: Where the standard variables say spans go (either turns tracing on).
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
#: Paths whose requests make no span: scrapes and probes would drown the frames.
UNTRACED_URLS = "/metrics,/healthz,/readyz"

Kind = Literal["internal", "producer", "consumer"]

_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_owner_pid: int | None = None
_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()


def configured() -> bool:
    """Whether the environment asks for traces (an OTLP endpoint, the SDK not disabled)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(os.environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def enabled() -> bool:
    """Whether this process exports spans (``init_tracing`` ran here and tracing is configured)."""
    return _tracer is not None and _owner_pid == os.getpid()


def init_tracing(service: str) -> TracerProvider | None:
    """Export this process's spans over OTLP/HTTP if configured; None (nothing done) if not.

    Once per process: a forked child (Celery's prefork pool) calls it again and
    gets its own exporter thread. ``service`` names the service unless
    ``OTEL_SERVICE_NAME`` does.
    """
    global _provider, _tracer, _owner_pid
    if not configured():
        return None
    if enabled():
        return _provider
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME over this default.
    attributes = (
        {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"classpulse-{service}"}
    )
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(_redactor())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if _provider is None:
        # The global provider can be set once per process; a forked child keeps
        # its parent's, whose exporter thread did not survive the fork.
        trace.set_tracer_provider(provider)
    _provider, _owner_pid = provider, os.getpid()
    _tracer = provider.get_tracer("classpulse")
    return provider


def _redact_attributes(span: Any, *_: object) -> None:
    """Redact credential query parameters in a recording span's attributes (the URL of a
    classroom WebSocket carries ``?token=``), as the logs do (``shared.logs.redact``)."""
    from shared.logs import redact

    for name, value in dict(getattr(span, "attributes", None) or {}).items():
        if isinstance(value, str) and (clean := redact(value)) != value:
            span.set_attribute(name, clean)


def _redactor() -> Any:
    """A span processor that redacts the attributes a span starts with."""
    from opentelemetry.sdk.trace import SpanProcessor

    class RedactCredentials(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            _redact_attributes(span)

    return RedactCredentials()


def shutdown() -> None:
    """Send the spans still waiting and stop exporting (process exit)."""
    global _tracer
    if enabled() and _provider is not None:
        _provider.shutdown()
    _tracer = None


def span(
    name: str, *, frame_id: uuid.UUID | str | None = None, kind: Kind = "internal"
) -> contextlib.AbstractContextManager[Any]:
    """A span around a block, child of the current one; a shared no-op when tracing is off."""
    if not enabled():
        return _NOTHING
    return _span(name, frame_id, kind)


@contextlib.contextmanager
def _span(name: str, frame_id: uuid.UUID | str | None, kind: Kind) -> Iterator[Any]:
    from opentelemetry.trace import SpanKind

    assert _tracer is not None  # enabled()
    attributes = {FRAME_ID: str(frame_id)} if frame_id is not None else None
    with _tracer.start_as_current_span(
        name, kind=SpanKind[kind.upper()], attributes=attributes
    ) as current:
        yield current


def mark_frame(frame_id: uuid.UUID | str) -> None:
    """Put the frame id on the current span (an HTTP request's, a task run's)."""
    if enabled():
        from opentelemetry import trace

        trace.get_current_span().set_attribute(FRAME_ID, str(frame_id))


def inject(carrier: MutableMapping[str, Any]) -> None:
    """Add the current trace context to ``carrier`` (a task message's headers)."""
    if enabled():
        from opentelemetry import propagate

        propagate.inject(carrier)


def instrument_app(app: Any) -> None:
    """A span per request of a FastAPI ``app`` (not /metrics or the probes), if tracing is on."""
    if not enabled():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        excluded_urls=UNTRACED_URLS,
        # The request's attributes (its URL with the query) are set after the span started.
        server_request_hook=_redact_attributes,
        # The per-message receive/send spans of the ASGI instrumentation add nothing here.
        exclude_spans=["receive", "send"],
    )


def instrument_celery() -> None:
    """Spans for Celery task runs (context from the message headers) and publishes."""
    if not enabled():
        return
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=_provider)
