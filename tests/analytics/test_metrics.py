"""Analytics' /metrics: open live streams, errors by code, requests by route template."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from classpulse.harness.factories import SeededLesson
from tests.analytics.conftest import bearer
from tests.analytics.test_live import sse_events


def sample(api: httpx.Client, name: str, **labels: str) -> float:
    answer = api.get("/metrics")
    assert answer.status_code == 200
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


def test_metrics_count_open_streams_and_refusals_by_code(
    api: httpx.Client, lesson: SeededLesson
) -> None:
    streams = {"kind": "sse"}
    before = sample(api, "classpulse_open_connections", **streams)
    url = f"/v1/lessons/{lesson.lesson_id}/live"
    with api.stream("GET", url, headers=bearer(lesson.teacher_key)) as stream:
        # Kept referenced: a discarded line iterator closes the stream.
        events = sse_events(stream.iter_lines())
        assert next(events)[0] == "ready"
        assert sample(api, "classpulse_open_connections", **streams) == before + 1
    deadline = time.monotonic() + 5
    while sample(api, "classpulse_open_connections", **streams) != before:
        assert time.monotonic() < deadline, "a closed stream is still counted"
        time.sleep(0.2)

    refused = {"handler": "/v1/lessons/{lesson}/timeline", "status": "401", "code": "unauthorized"}
    errors = sample(api, "classpulse_api_errors_total", **refused)
    assert api.get(f"/v1/lessons/{lesson.lesson_id}/timeline").status_code == 401
    assert sample(api, "classpulse_api_errors_total", **refused) == errors + 1
    text = api.get("/metrics").text
    assert str(lesson.lesson_id) not in text
    assert lesson.teacher_key not in text
