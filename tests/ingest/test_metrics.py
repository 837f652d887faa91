"""Ingest's /metrics: frames accepted and refused by reason, the queue, requests by route."""

from __future__ import annotations

import time

import httpx
import redis as redis_lib
from prometheus_client.parser import text_string_to_metric_families

from shared.schemas import FRAME_QUEUE
from tests.ingest.conftest import World, frame_params

FRAMES = "/v1/lessons/{lesson_id}/frames"


def scrape(client: httpx.Client) -> tuple[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """The metrics text and every sample by (name, labels)."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }
    return answer.text, samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_frames_by_outcome_and_read_the_queue(
    base_url: str, world: World, photo: bytes, redis_client: redis_lib.Redis
) -> None:
    token = world.token()
    with httpx.Client(base_url=base_url) as client:
        _, before = scrape(client)
        url = f"/v1/lessons/{world.lesson_id}/frames"
        auth = {"Authorization": f"Bearer {token}"}
        for seq in (1, 2):
            accepted = client.post(
                url,
                params=frame_params(seq),
                content=photo,
                headers={**auth, "Content-Type": "image/jpeg"},
            )
            assert accepted.status_code == 202
        refused = client.post(
            url, params=frame_params(3), content=b"GIF89a" + bytes(64), headers=auth
        )
        assert refused.status_code == 415
        # Refused by the intake itself: no consent.
        nocon = {"Authorization": f"Bearer {world.token('nocon')}", "Content-Type": "image/jpeg"}
        assert (
            client.post(url, params=frame_params(1), content=photo, headers=nocon).status_code
            == 451
        )
        # The same seq again: answered from the first frame, not counted again.
        again = client.post(
            url,
            params=frame_params(1),
            content=photo,
            headers={**auth, "Content-Type": "image/jpeg"},
        )
        assert again.status_code == 202
        time.sleep(0.1)
        text, after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("classpulse_frames_accepted_total") == 2
    assert delta("classpulse_frames_refused_total", code="consent_required") == 1
    assert (
        delta(
            "classpulse_api_errors_total",
            handler=FRAMES,
            status="415",
            code="unsupported_media_type",
        )
        == 1
    )
    # Requests are counted by route template: no lesson id becomes a label.
    assert delta("classpulse_http_requests_total", handler=FRAMES, method="POST", status="202") == 3
    assert value(after, "classpulse_queue_length") == redis_client.llen(FRAME_QUEUE) == 2
    assert value(after, "classpulse_oldest_queued_frame_age_seconds") > 0
    assert str(world.lesson_id) not in text
    assert token not in text
    assert world.lms_key not in text
