"""Only face crops leave the device: the classroom page in crop mode and its fallback.

Chromium's fake webcam plays video_01.mp4 (a face in every frame). The page
runs the workers' BlazeFace in WebAssembly, served by ingest like every other
file it loads; what it sends is recorded and measured, and
the real worker stores the faces. With the detector's model missing, the page
says so and sends whole frames.
"""

from __future__ import annotations

import base64
import json
import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, text

from shared import face_crops
from tests.e2e.conftest import ARTIFACTS, Stack
from tests.e2e.test_classroom_e2e import (
    FRAME_TIMEOUT,
    Lesson,
    classroom_state,
    frame_rows,
    lesson,  # noqa: F401  (fixture)
    organisation,  # noqa: F401  (fixture)
    page_factory,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.slow

#: Frames each test waits for; a longer measurement of the page's detection time
#: sets it through the environment (docs/benchmarks.md, "Face crops in the browser").
FRAMES = int(os.environ.get("CLASSPULSE_E2E_CROP_FRAMES", "6"))
JPEG_MAGIC = b"\xff\xd8\xff"
#: A face-crops body of one face: about 8 bytes, 300 of JSON and a 96x96 gray PNG.
MAX_CROPS_BODY = 16_000


# Records every body the page hands to WebSocket.send or fetch (POST), before any
# page script runs: Playwright reports neither binary socket messages nor Blob
# request bodies reliably, so the bytes are taken where the page gives them away.
RECORD_SENT = """
(() => {
  window.__sent = [];
  const keep = async (body) => {
    const bytes = new Uint8Array(await new Response(body).arrayBuffer());
    let text = "";
    for (const b of bytes) text += String.fromCharCode(b);
    window.__sent.push(btoa(text));
  };
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (typeof data !== "string") keep(data);
    return send.call(this, data);
  };
  const fetch = window.fetch;
  window.fetch = (url, init) => {
    if (init && init.method === "POST" && init.body) keep(init.body);
    return fetch(url, init);
  };
})();
"""


def record_traffic(page: Any, origin: str) -> list[str]:
    """Requests to any origin but ClassPulse's; the bodies sent are in window.__sent."""
    elsewhere: list[str] = []
    page.add_init_script(RECORD_SENT)
    page.on(
        "request",
        lambda r: None if r.url.startswith((origin, "data:", "blob:")) else elsewhere.append(r.url),
    )
    return elsewhere


def sent_bodies(page: Any) -> list[bytes]:
    return [base64.b64decode(b) for b in page.evaluate("() => window.__sent")]


def face_events(engine: Engine, lesson_id: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(
                text("SELECT count(*) FROM face_events WHERE lesson_id = :l AND kind = 'face'"),
                {"l": lesson_id},
            )
        )


def media_types(engine: Engine, lesson_id: Any) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT DISTINCT media_type FROM frames WHERE lesson_id = :l"), {"l": lesson_id}
        )
        return {r[0] for r in rows}


@dataclass
class Student:
    """A student enrolled in the lesson and its page, whose traffic is recorded."""

    student_id: Any
    page: Any
    #: Requests the page made to any origin but ClassPulse's.
    elsewhere: list[str]


@pytest.fixture
def student(
    lesson: Lesson,  # noqa: F811
    stack: Stack,
    page_factory: Callable[..., Any],  # noqa: F811
    worker: None,
) -> Callable[[str, str], Student]:
    """Enrols a student by name and opens a recording page for it, the worker running."""

    def enrol(name: str, page_name: str) -> Student:
        student_id = lesson.enrol(name)
        page = page_factory(page_name)
        return Student(student_id, page, record_traffic(page, stack.ingest_url))

    return enrol


def share(engine: Engine, live: Lesson, student: Student, url: str) -> dict[str, Any]:
    page = student.page
    page.goto(url)
    page.get_by_role("button", name=re.compile("I agree")).click()
    deadline = time.monotonic() + FRAME_TIMEOUT + FRAMES
    while time.monotonic() < deadline:
        rows = frame_rows(engine, live.lesson_id, student.student_id)
        if len([r for r in rows if r.status == "done"]) >= FRAMES:
            break
        # Waiting through Playwright lets it deliver the page's events meanwhile.
        page.wait_for_timeout(250)
    else:
        raise AssertionError(f"timed out waiting for {FRAMES} processed frames")
    state = classroom_state(page)
    page.get_by_role("button", name="Stop", exact=True).click()
    return state


@pytest.mark.parametrize("transport", ["websocket", "http"])
def test_only_face_crops_leave_the_page(
    lesson: Lesson,  # noqa: F811
    sync_engine: Engine,
    student: Callable[[str, str], Student],
    transport: str,
) -> None:
    crops = student("e2e-crops", f"classroom-crops-{transport}")
    page, elsewhere = crops.page, crops.elsewhere
    state = share(
        sync_engine,
        lesson,
        crops,
        lesson.classroom_url("e2e-crops", interval="1", transport=transport),
    )

    sent = sent_bodies(page)
    assert state["mode"] == "crops"
    assert state["transport"] == transport
    # The consent text promised crops (it is hidden once sharing starts).
    assert page.evaluate("() => document.getElementById('crop-note').hidden") is False
    assert "only a small crop of each face" in page.locator("#mode").inner_text()
    assert elsewhere == [], "the page loads nothing from any other origin"
    assert len(sent) >= FRAMES
    assert all(body.startswith(face_crops.MAGIC) for body in sent), "no whole frame is sent"
    with_faces = [b for b in sent if len(face_crops.unpack(b)[0].faces) > 0]
    assert len(with_faces) >= FRAMES // 2, "video_01 shows a face in every frame"
    assert max(len(b) for b in sent) <= MAX_CROPS_BODY
    for body in with_faces:
        meta, strip = face_crops.unpack(body)
        assert (meta.frame_width, meta.frame_height) == (640, 480)
        assert strip.startswith(b"\x89PNG")
    assert media_types(sync_engine, lesson.lesson_id) <= {"crops.v1/png", "crops.v1/none"}
    assert face_events(sync_engine, lesson.lesson_id) > 0
    detect_ms = state["detectMs"]
    figures = {
        "bodies": len(sent),
        "bytes_p50": statistics.median(len(b) for b in sent),
        "bytes_max": max(len(b) for b in sent),
        "bytes_with_face_p50": statistics.median(len(b) for b in with_faces),
        # The first frame also compiles the model: reported apart.
        "detect_ms_first": round(detect_ms[0], 1),
        "detect_ms_p50": round(statistics.median(detect_ms[1:]), 1),
        "detect_ms_p95": round(sorted(detect_ms[1:])[int(0.95 * (len(detect_ms) - 2))], 1),
    }
    (ARTIFACTS / f"classroom-crops-{transport}.json").write_text(json.dumps(figures, indent=2))
    print(f"\ncrop mode over {transport}: {figures}")


def test_without_the_detector_the_page_says_so_and_sends_whole_frames(
    lesson: Lesson,  # noqa: F811
    sync_engine: Engine,
    student: Callable[[str, str], Student],
) -> None:
    fallback = student("e2e-fallback", "classroom-fallback")
    page = fallback.page
    page.route("**/detector-models/**", lambda route: route.fulfill(status=404, body="gone"))
    state = share(sync_engine, lesson, fallback, lesson.classroom_url("e2e-fallback", interval="1"))

    sent = sent_bodies(page)
    assert state["mode"] == "frames"
    assert "could not be loaded" in page.locator("#mode").inner_text()
    assert sent
    assert all(body.startswith(JPEG_MAGIC) for body in sent)
    assert media_types(sync_engine, lesson.lesson_id) == {"image/jpeg"}
    assert face_events(sync_engine, lesson.lesson_id) > 0
    figures = {"bodies": len(sent), "bytes_p50": statistics.median(len(b) for b in sent)}
    (ARTIFACTS / "classroom-frames.json").write_text(json.dumps(figures, indent=2))
    print(f"\nwhole frames: {figures}")


def test_a_detector_failing_mid_lesson_turns_the_page_to_whole_frames_and_says_so(
    lesson: Lesson,  # noqa: F811
    sync_engine: Engine,
    student: Callable[[str, str], Student],
) -> None:
    breaks = student("e2e-breaks", "classroom-breaks")
    page = breaks.page
    page.goto(lesson.classroom_url("e2e-breaks", interval="1"))
    page.get_by_role("button", name=re.compile("I agree")).click()
    page.wait_for_function("() => window.classroom.acked >= 2", timeout=FRAME_TIMEOUT * 1000)
    assert classroom_state(page)["mode"] == "crops"
    page.evaluate(
        "() => { window.ClassPulseVision.alignedCrop = () => { throw new Error('broken'); }; }"
    )
    page.wait_for_function("() => window.classroom.mode === 'frames'", timeout=10_000)
    acked = classroom_state(page)["acked"]
    page.wait_for_function(f"() => window.classroom.acked >= {acked + 2}", timeout=15_000)
    page.get_by_role("button", name="Stop", exact=True).click()

    assert "stopped working (broken)" in page.locator("#mode").inner_text()
    sent = sent_bodies(page)
    assert sent[0].startswith(face_crops.MAGIC)
    assert sent[-1].startswith(JPEG_MAGIC)
    assert {"crops.v1/png", "image/jpeg"} <= media_types(sync_engine, lesson.lesson_id)
    assert frame_rows(sync_engine, lesson.lesson_id, breaks.student_id)


def test_with_client_detection_off_the_page_loads_no_detector_and_sends_frames(
    lesson: Lesson,  # noqa: F811
    sync_engine: Engine,
    student: Callable[[str, str], Student],
) -> None:
    frames = student("e2e-frames", "classroom-frames")
    page = frames.page
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))

    def without_client_detection(route: Any) -> None:
        # /me as ingest answers it with CLASSPULSE_CLIENT_DETECTION=false.
        answer = route.fetch()
        body = answer.json()
        body["client_detection"] = None
        route.fulfill(response=answer, json=body)

    page.route("**/me", without_client_detection)
    state = share(sync_engine, lesson, frames, lesson.classroom_url("e2e-frames", interval="1"))

    sent = sent_bodies(page)
    assert state["mode"] == "frames"
    assert page.locator("#mode").inner_text() == "Whole camera images are sent."
    assert page.evaluate("() => document.getElementById('crop-note').hidden") is True
    assert all(body.startswith(JPEG_MAGIC) for body in sent)
    # A deployment of whole frames never downloads the runtime or the model.
    assert not [u for u in requested if "onnxruntime" in u or "detector-models" in u]
    assert media_types(sync_engine, lesson.lesson_id) == {"image/jpeg"}
