"""OpenTelemetry traces through real processes into a real OTLP/HTTP receiver.

The receiver is a small HTTP server in the test that takes what OpenTelemetry's
OTLP/HTTP exporter posts to ``/v1/traces`` and decodes it with the protocol's
own protobuf messages (opentelemetry-proto). Ingest and a Celery worker run as
processes with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at it: one frame gives
one trace from ingest's request to the worker's live notice, and no credential
appears in any span.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from classpulse.harness.factories import TOKEN_SECRET
from classpulse.harness.processes import stop
from shared import tracing
from tests.reliability.conftest import SECRETS_KEY, Realm, bearer, jpeg
from tests.reliability.processes import Scratch, ingest_process, scratch_worker, service_process

pytestmark = pytest.mark.slow


class Receiver(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver on a free loopback port: keeps every span posted."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.spans)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/v1/traces":
            self.send_error(404)
            return
        request = ExportTraceServiceRequest.FromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        {
                            "service": resource.get("service.name"),
                            "resource": resource,
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_id": span.parent_span_id.hex(),
                            "attributes": {a.key: _value(a.value) for a in span.attributes},
                        }
                    )
        with self.server.lock:
            self.server.spans.extend(spans)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_one_frame_is_one_trace_from_ingest_to_the_live_notice_without_credentials(
    realm: Realm, receiver: Receiver, pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    scratch = Scratch(tmp_path / "scratch", tmp_path)
    env = scratch.env(
        pg_url,
        redis_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        # Spans leave every 100 ms instead of every 5 s.
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    token = realm.token("s1")
    worker = scratch_worker(scratch, env, "traced")
    try:
        with ingest_process(scratch, env) as url:
            answer = httpx.post(
                f"{url}/v1/lessons/{realm.a.lesson_id}/frames",
                # A credential in the query too, as a classroom WebSocket's URL carries one.
                params={"seq": "1", "captured_at": _now(), "token": token},
                content=jpeg("obama.jpg"),
                headers={**bearer(token), "Content-Type": "image/jpeg"},
                timeout=30,
            )
            assert answer.status_code == 202, answer.text
            frame_id = answer.json()["frame_id"]
            spans = _wait_for_trace(receiver, frame_id, worker, scratch.logs / "traced.log")
        with service_process("analytics", scratch, env) as analytics_url:
            # A teacher reading the timeline: the analytics API traces its requests too.
            timeline = httpx.get(
                f"{analytics_url}/v1/lessons/{realm.a.lesson_id}/timeline",
                # A ticket in the query too, as SSE and export links carry one.
                params={"ticket": "ticket-value-never-traced"},
                headers=bearer(realm.a.teacher_key),
                timeout=30,
            )
            assert timeline.status_code == 200, timeline.text
            read = _wait_for_span(receiver, "classpulse-analytics")
    finally:
        stop(worker)

    assert read["attributes"]["http.route"] == "/v1/lessons/{lesson}/timeline"
    assert "ticket=[redacted]" in repr(read["attributes"])
    trace_ids = {s["trace_id"] for s in spans}
    assert len(trace_ids) == 1, spans
    by_name = {s["name"]: s for s in spans}
    request = next(s for s in spans if s["service"] == "classpulse-ingest" and not s["parent_id"])
    assert request["attributes"][tracing.FRAME_ID] == frame_id
    enqueue, run = by_name["enqueue frame"], by_name["run/classpulse.process_frame"]
    assert enqueue["service"] == "classpulse-ingest"
    assert run["service"] == "classpulse-worker"
    # Ingest's request → enqueue → the worker's run (its context came in the message headers).
    assert enqueue["parent_id"] == request["span_id"]
    assert run["parent_id"] == enqueue["span_id"]
    for stage in ("decode", "analyze", "write", "live notice"):
        assert by_name[stage]["service"] == "classpulse-worker", stage
    assert by_name["detect"]["parent_id"] == by_name["analyze"]["span_id"]
    assert by_name["classify"]["parent_id"] == by_name["analyze"]["span_id"]
    for mine in (request, enqueue, run, by_name["live notice"]):
        assert mine["attributes"][tracing.FRAME_ID] == frame_id

    # No credential in any span or resource attribute of any process.
    secrets = [
        token,
        TOKEN_SECRET,
        SECRETS_KEY.get_secret_value(),
        realm.a.lms_key,
        realm.a.teacher_key,
        "lrs-password",
        "ticket-value-never-traced",
    ]
    seen = repr([(s["attributes"], s["resource"]) for s in receiver.snapshot()])
    assert "token=[redacted]" in seen  # the request's URL was recorded, redacted
    for secret in secrets:
        assert secret not in seen


def test_without_an_endpoint_tracing_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in tracing.ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not tracing.configured()
    assert tracing.init_tracing("test") is None
    assert not tracing.enabled()
    # One shared do-nothing context manager, and nothing added to a message's headers.
    assert tracing.span("a", frame_id="x") is tracing.span("b")
    headers: dict[str, Any] = {}
    tracing.inject(headers)
    assert headers == {}


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat()


def _wait_for_trace(
    receiver: Receiver, frame_id: str, worker: Any, log: Path, timeout: float = 60
) -> list[dict[str, Any]]:
    """Every span of the trace that carries ``frame_id``, once the worker's last one came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = receiver.snapshot()
        with contextlib.suppress(StopIteration):
            first = next(s for s in spans if s["attributes"].get(tracing.FRAME_ID) == frame_id)
            trace = [s for s in spans if s["trace_id"] == first["trace_id"]]
            names = {s["name"] for s in trace}
            if {"enqueue frame", "live notice", "run/classpulse.process_frame"} <= names:
                return trace
        assert worker.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"no whole trace for {frame_id}: {receiver.snapshot()}")


def _wait_for_span(receiver: Receiver, service: str, timeout: float = 30) -> dict[str, Any]:
    """The first request span (no parent) ``service`` exported."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for span in receiver.snapshot():
            if span["service"] == service and not span["parent_id"]:
                return span
        time.sleep(0.2)
    raise AssertionError(f"no span of {service}: {receiver.snapshot()}")
