"""Live updates over Server-Sent Events, fed by a notice on the real Redis."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis as redis_lib
from sqlalchemy import Engine, update

from classpulse.harness.factories import SeededLesson, SeedEvent, insert_events
from classpulse.harness.servers import serving
from services.analytics.app import create_app
from services.analytics.config import AnalyticsSettings
from shared.auth import key_prefix
from shared.db.models import ApiKey
from shared.labels import Expression
from shared.schemas import LiveNotice, live_channel
from tests.analytics.conftest import bearer


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs from an SSE line stream."""
    event, data = "message", ""
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif line == "" and data:
            yield event, data
            event, data = "message", ""


def notice(lesson: SeededLesson, student: str, at: dt.datetime, label: str = "happy") -> str:
    """The worker's notice of one ``label`` face of the student's, done, as published."""
    return LiveNotice(
        frame_id=lesson.lesson_id,  # any id: analytics reads only the lesson and time
        lesson_id=lesson.lesson_id,
        student_id=lesson.students[student],
        captured_at=at,
        status="done",
        faces=1,
        labels=[label],
    ).model_dump_json()


def test_a_committed_frame_reaches_the_stream_coalesced(
    api: httpx.Client, lesson: SeededLesson, clean_db: Engine, redis_client: redis_lib.Redis
) -> None:
    url = f"/v1/lessons/{lesson.lesson_id}/live"
    with api.stream(
        "GET", url, params={"bucket": "1m"}, headers=bearer(lesson.teacher_key)
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = sse_events(stream.iter_lines())
        assert next(events)[0] == "ready"

        students = [f"s{i}" for i in range(1, 7)]
        insert_events(
            clean_db,
            lesson.lesson_id,
            # Five of six students face the screen.
            [
                SeedEvent(lesson.students[s], lesson.at(125), Expression.HAPPY, facing=s != "s6")
                for s in students
            ],
        )
        sent = time.monotonic()
        for s in students:  # a burst of notices, pushed at most once a second
            redis_client.publish(live_channel(lesson.lesson_id), notice(lesson, s, lesson.at(125)))

        kind, data = next(events)
        assert kind == "buckets"
        assert time.monotonic() - sent < 3
        (bucket,) = json.loads(data)
        assert bucket["start"] == "2024-05-06T08:02:00Z"
        assert bucket["students_seen"] == 6
        assert bucket["dominant"] == "happy"
        assert bucket["facing_share"] == round(5 / 6, 4)

    timeline = api.get(
        f"/v1/lessons/{lesson.lesson_id}/timeline",
        params={"bucket": "1m", "from": "2024-05-06T08:02:00Z", "to": "2024-05-06T08:03:00Z"},
        headers=bearer(lesson.teacher_key),
    ).json()
    assert timeline["buckets"] == [bucket]


def test_live_and_readiness_answer_503_when_redis_is_down(
    analytics_config, lesson: SeededLesson
) -> None:
    from classpulse.harness.ports import free_port

    no_redis = analytics_config.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    )
    with serving(create_app(no_redis)) as url, httpx.Client(base_url=url, timeout=10) as client:
        live = client.get(
            f"/v1/lessons/{lesson.lesson_id}/live", headers=bearer(lesson.teacher_key)
        )
        assert live.status_code == 503
        assert live.json()["error"]["code"] == "service_unavailable"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"].startswith("unavailable")
        # Everything that reads only PostgreSQL keeps working.
        timeline = client.get(
            f"/v1/lessons/{lesson.lesson_id}/timeline", headers=bearer(lesson.teacher_key)
        )
        assert timeline.status_code == 200


def _live(client: httpx.Client, lesson: SeededLesson) -> Any:
    return client.stream(
        "GET", f"/v1/lessons/{lesson.lesson_id}/live", headers=bearer(lesson.teacher_key)
    )


def test_a_revoked_key_loses_its_open_stream(
    analytics_config: AnalyticsSettings, lesson: SeededLesson, clean_db: Engine
) -> None:
    """``classpulse keys revoke`` ends the key's open streams within one re-check."""
    config = analytics_config.model_copy(update={"live_recheck_seconds": 0.5})
    # A stream that stays open past its key answers nothing more: the read times out.
    with serving(create_app(config)) as url, httpx.Client(base_url=url, timeout=5) as client:
        with _live(client, lesson) as stream:
            events = sse_events(stream.iter_lines())
            assert next(events)[0] == "ready"
            with clean_db.begin() as conn:
                conn.execute(
                    update(ApiKey)
                    .where(ApiKey.prefix == key_prefix(lesson.teacher_key))
                    .values(revoked_at=dt.datetime.now(dt.UTC))
                )
            revoked = time.monotonic()
            kind, data = next(events)
            assert kind == "closed"
            assert json.loads(data) == {"reason": "credentials", "detail": "API key revoked"}
            assert list(events) == []  # and the stream has ended
            assert time.monotonic() - revoked < 3
        # The browser's EventSource reconnects, and is refused.
        assert (
            client.get(
                f"/v1/lessons/{lesson.lesson_id}/live", headers=bearer(lesson.teacher_key)
            ).status_code
            == 401
        )


def test_a_stream_ends_after_its_maximum_lifetime_and_asks_for_a_reconnect(
    analytics_config: AnalyticsSettings, lesson: SeededLesson
) -> None:
    config = analytics_config.model_copy(update={"live_max_seconds": 1.0})
    with serving(create_app(config)) as url, httpx.Client(base_url=url, timeout=5) as client:
        # Timed from before the request: the server's clock starts when it opens the
        # stream, which is after this and before the response reaches the client.
        started = time.monotonic()
        with _live(client, lesson) as stream:
            lines = list(stream.iter_lines())  # before the cap, this read never ended
        lasted = time.monotonic() - started
    assert 1.0 <= lasted < 3
    events = list(sse_events(iter(lines)))
    assert [kind for kind, _ in events] == ["ready", "closed"]
    assert json.loads(events[-1][1]) == {"reason": "max_duration", "detail": None}
    assert "retry: 1000" in lines  # EventSource reconnects after a second


def test_streams_of_one_process_share_one_subscription(
    api: httpx.Client, lesson: SeededLesson, redis_client: redis_lib.Redis
) -> None:
    channel = live_channel(lesson.lesson_id)
    url = f"/v1/lessons/{lesson.lesson_id}/live"
    with contextlib.ExitStack() as streams:
        for _ in range(3):
            stream = streams.enter_context(
                api.stream("GET", url, params={"bucket": "1m"}, headers=bearer(lesson.teacher_key))
            )
            events = sse_events(stream.iter_lines())
            assert next(events)[0] == "ready"
            streams.callback(events.close)
        # Three dashboards, one subscriber: the API process's hub.
        assert redis_client.pubsub_numsub(channel) == [(channel.encode(), 1)]
    deadline = time.monotonic() + 5
    while redis_client.pubsub_numsub(channel) != [(channel.encode(), 0)]:
        assert time.monotonic() < deadline, "the hub kept the channel after the last stream"
        time.sleep(0.1)


def test_a_push_is_logged_with_the_frames_that_caused_it(
    api: httpx.Client,
    lesson: SeededLesson,
    clean_db: Engine,
    redis_client: redis_lib.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"/v1/lessons/{lesson.lesson_id}/live"
    students = [f"s{i}" for i in range(1, 7)]
    insert_events(
        clean_db,
        lesson.lesson_id,
        [SeedEvent(lesson.students[s], lesson.at(125), Expression.HAPPY) for s in students],
    )
    with (
        caplog.at_level(logging.DEBUG, logger="services.analytics.live"),
        api.stream(
            "GET", url, params={"bucket": "1m"}, headers=bearer(lesson.teacher_key)
        ) as stream,
    ):
        events = sse_events(stream.iter_lines())
        assert next(events)[0] == "ready"
        message = notice(lesson, "s1", lesson.at(125))
        redis_client.publish(live_channel(lesson.lesson_id), message)
        assert next(events)[0] == "buckets"
    frame_id = json.loads(message)["frame_id"]
    (pushed,) = [r for r in caplog.records if hasattr(r, "frame_ids")]
    assert pushed.frame_ids == [frame_id]  # type: ignore[attr-defined]
    assert pushed.buckets == ["2024-05-06T08:02:00Z"]  # type: ignore[attr-defined]
