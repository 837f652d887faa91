"""The demo lesson against the running processes: real media through the real ingest API."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from classpulse.demo import STUDENT_MEDIA, run_demo, sample_media
from tests.conftest import MEDIA
from tests.e2e.conftest import ARTIFACTS, Stack

pytestmark = pytest.mark.slow

DEMO_SECONDS = 10.0


def test_media_are_sampled_into_webcam_sized_jpegs() -> None:
    import cv2
    import numpy as np

    video = sample_media(MEDIA / "video_01.mp4")  # 3 s: a frame every 0.5 s
    photo = sample_media(MEDIA / "biden.jpg")  # tall portrait: fitted with bars
    assert len(video) == 6
    assert len(photo) == 1
    for data in (video[0], photo[0]):
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        assert image.shape == (480, 640, 3)
    assert video[0] != video[-1], "video samples change over time"


def test_demo_plays_simulated_students_into_a_labelled_lesson(
    stack: Stack,
    worker: None,
    sync_engine: Engine,
    browser: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLASSPULSE_DATABASE_URL", stack.database_url)
    run_demo(stack.ingest_url, stack.analytics_url, tmp_path, duration=DEMO_SECONDS)

    links = (tmp_path / "demo-links.txt").read_text()
    # The link opens 10 s buckets: the first closed bucket shows 10 s into the demo.
    match = re.search(r"/#key=(cp_\S+)&lesson=([0-9a-f-]{36})&bucket=10s", links)
    assert match, links
    assert stack.analytics_url in links
    assert f"{stack.ingest_url}/classroom/" in links
    lesson_id = uuid.UUID(match.group(2))
    with sync_engine.connect() as conn:
        title, is_demo = conn.execute(
            text("SELECT title, is_demo FROM lessons WHERE id = :l"), {"l": lesson_id}
        ).one()
        per_student: dict[str, int] = dict(
            conn.execute(
                text(
                    "SELECT s.external_id, count(*) FROM frames f JOIN students s "
                    "ON s.id = f.student_id WHERE f.lesson_id = :l GROUP BY s.external_id"
                ),
                {"l": lesson_id},
            ).all()
        )
        markers = conn.scalars(
            text("SELECT label FROM lesson_markers WHERE lesson_id = :l"), {"l": lesson_id}
        ).all()
    assert is_demo
    assert title.startswith("DEMO")
    # One frame per student every 2 s: five each in 10 s, from all six (fewer when
    # a loaded machine slows the requests down).
    assert sorted(per_student) == [f"demo-student-{i}" for i in range(1, len(STUDENT_MEDIA) + 1)]
    assert all(n >= 2 for n in per_student.values()), per_student
    assert "Slide 1: Introduction" in markers

    def processed() -> tuple[int, int]:
        with sync_engine.connect() as conn:
            return conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE status <> 'queued'), "
                    "count(*) FROM frames WHERE lesson_id = :l"
                ),
                {"l": lesson_id},
            ).one()

    deadline = time.monotonic() + 60
    while processed()[0] < processed()[1] and time.monotonic() < deadline:
        time.sleep(0.5)
    with sync_engine.connect() as conn:
        classified = conn.scalar(
            text(
                "SELECT count(DISTINCT student_id) FROM face_events "
                "WHERE lesson_id = :l AND confidence IS NOT NULL"
            ),
            {"l": lesson_id},
        )
    # The photos and video_01 show a face in every frame, each classified: labelled, or
    # (the default model is unsure of meds-aa-S001-01.jpg) reported uncertain.
    assert classified >= 4

    # The teacher's link opens the lesson, labelled as a demo, with points on the chart
    # (six students: enough for the class view to show expression shares).
    dashboard_url = re.search(r"Teacher dashboard \(demo lesson\): (\S+)", links)
    assert dashboard_url
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    try:
        page.goto(dashboard_url.group(1))
        page.locator("#demo-badge").wait_for(state="visible", timeout=15_000)
        assert page.locator("#lesson-title").inner_text().startswith("DEMO")
        page.wait_for_function("() => window.classpulse.points() > 0", timeout=15_000)
        page.screenshot(path=str(ARTIFACTS / "demo-dashboard.png"), full_page=True)
    finally:
        page.close()
