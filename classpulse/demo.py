"""A demo lesson played by simulated students from real photos and videos.

``run_demo`` opens an organisation (once) and gets an LMS key in the database,
the one step an operator takes there (``classpulse org create``/``keys create``);
then, like any LMS and classroom client, through the ingest API only: a "Demo
class", a lesson marked as a demo that is live now, six consenting students, a
few slide markers and each student's frames, so the teacher dashboard moves
within a minute. ``classpulse demo`` runs it against services
that are already up; ``classpulse up --demo`` prepares the lesson before it
prints its summary (whose dashboard link is the demo's, key included) and plays
it in a background thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer

from classpulse.embedded import private_dir, write_private
from shared.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

#: Real faces shipped with the repository (sources and licences in its README).
MEDIA_DIR = Path(__file__).resolve().parents[1] / "media"
ORGANISATION_NAME = "ClassPulse demo school"
CLASS_EXTERNAL_ID = "demo-class"
CLASS_TITLE = "Demo class"
#: Length of the demo lesson; the simulated students stop when it ends.
LESSON_MINUTES = 60
#: Each simulated student sends one frame this often (a real client sends every 5 s;
#: faster here so the dashboard fills within a minute).
FRAME_PERIOD_SECONDS = 2.0
#: Video time between two sampled frames: the clips are a few seconds long, so they
#: play in slow motion and loop, giving changing faces.
VIDEO_SAMPLE_SECONDS = 0.5
#: Bucket width the demo's dashboard link opens at.
DEMO_BUCKET = "10s"
FRAME_SIZE = (640, 480)
JPEG_QUALITY = 85
#: Media each simulated student "shows": the videos give changing faces, the photos steady ones.
STUDENT_MEDIA = (
    "video_01.mp4",
    "short_hamilton_clip.mp4",
    "video_02.mp4",
    "astronaut.png",
    "obama.jpg",
    "meds-aa-S001-01.jpg",
)
#: A student with the school's permission but not yet its own consent, whose classroom
#: link is printed, to try the page with a webcam.
VISITOR_ID = "demo-visitor"
#: Slide changes posted while the demo runs: (seconds after the start, label).
MARKERS = (
    (0.0, "Slide 1: Introduction"),
    (60.0, "Slide 2: Worked example"),
    (150.0, "Slide 3: Exercises"),
)
REQUEST_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class DemoLesson:
    """What the demo created, with the links a newcomer opens."""

    organisation_id: uuid.UUID
    lms_key: str
    teacher_key: str
    class_id: uuid.UUID
    lesson_id: uuid.UUID
    students: dict[str, str]  # external id -> student token
    dashboard_url: str
    classroom_url: str


# ---------------------------------------------------------------- frames


def fit_frame(image: np.ndarray) -> np.ndarray:
    """Scale a BGR image into 640x480 keeping its proportions (black bars), as a webcam."""
    import cv2

    width, height = FRAME_SIZE
    scale = min(width / image.shape[1], height / image.shape[0])
    new_w, new_h = round(image.shape[1] * scale), round(image.shape[0] * scale)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    left, top = (width - new_w) // 2, (height - new_h) // 2
    return cv2.copyMakeBorder(
        resized,
        top,
        height - new_h - top,
        left,
        width - new_w - left,
        cv2.BORDER_CONSTANT,
        value=(0, 0, 0),
    )


def encode_jpeg(image: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", fit_frame(image), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ConfigError("OpenCV could not encode a demo frame")
    return bytes(data.tobytes())


def sample_media(path: Path) -> list[bytes]:
    """640x480 JPEGs of a photo (one) or a video (one every VIDEO_SAMPLE_SECONDS)."""
    import cv2

    if not path.is_file():
        raise ConfigError(f"demo media {path} not found (the shared media folder is missing)")
    if path.suffix.lower() not in {".mp4", ".avi", ".mov", ".webm"}:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"demo photo {path} could not be read")
        return [encode_jpeg(image)]
    capture = cv2.VideoCapture(str(path))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        step = max(1, round(fps * VIDEO_SAMPLE_SECONDS))
        frames: list[bytes] = []
        index = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            if index % step == 0:
                frames.append(encode_jpeg(image))
            index += 1
    finally:
        capture.release()
    if not frames:
        raise ConfigError(f"demo video {path} has no readable frames")
    return frames


# ---------------------------------------------------------------- set-up


def create_lms_key(
    database_url: str, organisation_name: str = ORGANISATION_NAME
) -> tuple[uuid.UUID, str]:
    """The demo organisation (created once) and a new LMS key for it (plaintext)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return _create_lms_key(database_url, organisation_name)
    except SQLAlchemyError as exc:
        raise ConfigError(
            f"the demo cannot use the database ({type(exc).__name__}): is it running and "
            "migrated (`classpulse migrate`)?"
        ) from None


def _create_lms_key(database_url: str, organisation_name: str) -> tuple[uuid.UUID, str]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from services.ingest.keys import key_created, new_api_key, open_organisation
    from shared.db.engine import make_sync_engine
    from shared.db.models import KeyRole, Organisation

    # The one step no API offers, as an operator takes it with `classpulse org create`
    # (or `keys create` once the organisation exists); all else goes through the API.
    engine = make_sync_engine(database_url)
    try:
        with Session(engine) as session:
            organisation_id = session.scalar(
                select(Organisation.id)
                .where(Organisation.name == organisation_name)
                .order_by(Organisation.created_at)
                .limit(1)
            )
            if organisation_id is None:
                organisation_id, plaintext = open_organisation(
                    session, organisation_name, actor="demo", key_name="demo"
                )
            else:
                key, plaintext = new_api_key(organisation_id, KeyRole.LMS, "demo")
                session.add(key)
                session.add(key_created(key, "demo"))
            session.commit()
    finally:
        engine.dispose()
    return organisation_id, plaintext


def _checked(response: httpx.Response) -> Any:
    if response.is_error:
        raise ConfigError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:300]}"
        )
    return response.json()


def _demo_class(client: httpx.Client) -> uuid.UUID:
    response = client.post(
        "/v1/classes", json={"external_id": CLASS_EXTERNAL_ID, "title": CLASS_TITLE}
    )
    if response.status_code == httpx.codes.CONFLICT:  # an earlier demo run made it
        for row in _checked(client.get("/v1/classes")):
            if row["external_id"] == CLASS_EXTERNAL_ID:
                return uuid.UUID(row["id"])
    return uuid.UUID(_checked(response)["id"])


def set_up_lesson(
    ingest_url: str,
    analytics_url: str,
    database_url: str,
    *,
    students: int = len(STUDENT_MEDIA),
    minutes: int = LESSON_MINUTES,
) -> DemoLesson:
    """Create the demo class, a live demo lesson, consenting students and their tokens."""
    org_id, lms_key = create_lms_key(database_url)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with httpx.Client(
        base_url=ingest_url,
        headers={"Authorization": f"Bearer {lms_key}"},
        timeout=REQUEST_TIMEOUT,
    ) as client:
        class_id = _demo_class(client)
        lesson = _checked(
            client.post(
                f"/v1/classes/{class_id}/lessons",
                json={
                    # No time in the title: the dashboard shows the start in the
                    # viewer's time zone beside it.
                    "title": "DEMO — simulated students",
                    # A few seconds back so that it is live at once, and the
                    # first one-minute bucket of the chart is already filling.
                    "starts_at": (now - dt.timedelta(seconds=5)).isoformat(),
                    "ends_at": (now + dt.timedelta(minutes=minutes)).isoformat(),
                    "is_demo": True,
                },
            )
        )
        lesson_id = uuid.UUID(lesson["id"])
        external_ids = [f"demo-student-{i + 1}" for i in range(students)]
        _checked(
            client.post(
                f"/v1/classes/{class_id}/students",
                json={"external_ids": [*external_ids, VISITOR_ID]},
            )
        )
        tokens: dict[str, str] = {}
        for external_id in [*external_ids, VISITOR_ID]:
            # The school's part of the consent; each student's own part follows.
            _checked(client.put(f"/v1/lessons/{lesson_id}/consents/{external_id}"))
        for external_id in external_ids:
            token = _checked(client.post(f"/v1/lessons/{lesson_id}/students/{external_id}/token"))[
                "token"
            ]
            # A simulated student agrees as the classroom page would, with its own token.
            _checked(
                client.put(
                    f"/v1/lessons/{lesson_id}/consent",
                    headers={"Authorization": f"Bearer {token}"},
                )
            )
            tokens[external_id] = token
        visitor = _checked(client.post(f"/v1/lessons/{lesson_id}/students/{VISITOR_ID}/token"))
        teacher_key = _checked(
            # The demo's LMS lets its teacher drill down to one (simulated) student.
            client.post(
                f"/v1/classes/{class_id}/teacher-keys",
                json={"name": "demo teacher", "per_student": True},
            )
        )["key"]
    return DemoLesson(
        organisation_id=org_id,
        lms_key=lms_key,
        teacher_key=teacher_key,
        class_id=class_id,
        lesson_id=lesson_id,
        students=tokens,
        # 10 s buckets: class charts show closed buckets only, so the first point
        # appears 10 s into the demo rather than a minute.
        dashboard_url=(
            f"{analytics_url.rstrip('/')}/#key={teacher_key}&lesson={lesson_id}"
            f"&bucket={DEMO_BUCKET}"
        ),
        classroom_url=f"{ingest_url.rstrip('/')}{visitor['classroom_url']}",
    )


# ---------------------------------------------------------------- playing


@dataclasses.dataclass
class SimulatedStudent:
    """One student's frames, sent in turn; a refused frame is resent with the same seq."""

    external_id: str
    token: str
    frames: list[bytes]
    next_seq: int = 0
    sent: int = 0
    #: monotonic time before which the server asked us not to send.
    not_before: float = 0.0

    def send(self, client: httpx.Client, lesson_id: uuid.UUID) -> bool:
        """Send the next frame; True when accepted (a retryable refusal keeps its seq)."""
        if time.monotonic() < self.not_before:
            return False
        frame = self.frames[self.next_seq % len(self.frames)]
        response = client.post(
            f"/v1/lessons/{lesson_id}/frames",
            params={"seq": self.next_seq, "captured_at": dt.datetime.now(dt.UTC).isoformat()},
            content=frame,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "image/jpeg"},
        )
        if response.status_code == httpx.codes.ACCEPTED:
            self.next_seq += 1
            self.sent += 1
            return True
        if response.status_code in (429, 503):
            self.not_before = time.monotonic() + float(response.headers.get("Retry-After", "1"))
            return False
        raise ConfigError(
            f"ingest refused a demo frame of {self.external_id}: "
            f"{response.status_code} {response.text[:300]}"
        )


def _post_due_markers(
    client: httpx.Client, lesson: DemoLesson, elapsed: float, posted: set[str]
) -> None:
    for offset, label in MARKERS:
        if elapsed >= offset and label not in posted:
            _checked(
                client.post(
                    f"/v1/lessons/{lesson.lesson_id}/markers",
                    json={
                        "at": dt.datetime.now(dt.UTC).isoformat(),
                        "kind": "slide",
                        "label": label,
                    },
                    headers={"Authorization": f"Bearer {lesson.lms_key}"},
                )
            )
            posted.add(label)
            log.info("demo marker: %s", label)


def play(
    ingest_url: str,
    lesson: DemoLesson,
    students: list[SimulatedStudent],
    *,
    stop: threading.Event,
    duration: float | None = None,
) -> None:
    """Send every student's frames, staggered over FRAME_PERIOD_SECONDS, until stopped."""
    started = time.monotonic()
    posted: set[str] = set()
    gap = FRAME_PERIOD_SECONDS / max(1, len(students))
    with httpx.Client(base_url=ingest_url, timeout=REQUEST_TIMEOUT) as client:
        tick = 0
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if duration is not None and elapsed >= duration:
                break
            _post_due_markers(client, lesson, elapsed, posted)
            student = students[tick % len(students)]
            try:
                student.send(client, lesson.lesson_id)
            except httpx.TransportError as exc:
                log.warning("demo frame not sent (%s); trying again", exc)
            tick += 1
            # Fixed-rate schedule: slow requests do not slow the class down.
            stop.wait(max(0.0, started + tick * gap - time.monotonic()))


def _database_url() -> str:
    from classpulse.stores import database_url

    return database_url()


def demo_links(lesson: DemoLesson) -> str:
    """The two links a newcomer opens, one a line."""
    return (
        f"Teacher dashboard (demo lesson): {lesson.dashboard_url}\n"
        f"Classroom page for a visiting student (your webcam): {lesson.classroom_url}\n"
    )


def prepare_demo(
    ingest_url: str, analytics_url: str, data_dir: Path, *, database_url: str | None = None
) -> DemoLesson:
    """Create the demo lesson and write its links to ``data_dir/demo-links.txt``.

    ``database_url`` defaults to CLASSPULSE_DATABASE_URL, else the running embedded
    PostgreSQL of ``CLASSPULSE_DATA_DIR``.
    """
    lesson = set_up_lesson(ingest_url, analytics_url, database_url or _database_url())
    # The links carry a teacher key and a student token: the owner's alone (and
    # no log line's).
    private_dir(data_dir)
    write_private(data_dir / "demo-links.txt", demo_links(lesson))
    log.info("demo lesson %s is live; its links are in %s", lesson.lesson_id, data_dir)
    return lesson


def play_demo(
    ingest_url: str,
    lesson: DemoLesson,
    *,
    stop: threading.Event | None = None,
    duration: float | None = None,
) -> None:
    """Play the simulated students of ``lesson`` until ``stop``, ``duration`` or its end."""
    media = [sample_media(MEDIA_DIR / name) for name in STUDENT_MEDIA]
    students = [
        SimulatedStudent(external_id, token, media[i % len(media)])
        for i, (external_id, token) in enumerate(lesson.students.items())
    ]
    # Frames after the lesson's end would be refused (409): stop with the lesson.
    lesson_seconds = LESSON_MINUTES * 60.0
    play(
        ingest_url,
        lesson,
        students,
        stop=stop or threading.Event(),
        duration=min(duration, lesson_seconds) if duration is not None else lesson_seconds,
    )
    log.info("demo lesson %s finished", lesson.lesson_id)


def run_demo(
    ingest_url: str,
    analytics_url: str,
    data_dir: Path,
    *,
    stop: threading.Event | None = None,
    duration: float | None = None,
    database_url: str | None = None,
) -> None:
    """Create the demo lesson, print its links, play it until ``stop`` or ``duration``."""
    lesson = prepare_demo(ingest_url, analytics_url, data_dir, database_url=database_url)
    print(demo_links(lesson), flush=True)
    play_demo(ingest_url, lesson, stop=stop, duration=duration)


def demo_command(
    ingest_url: Annotated[str, typer.Option(help="Base URL of the ingest API")] = (
        "http://127.0.0.1:8000"
    ),
    analytics_url: Annotated[str, typer.Option(help="Base URL of the analytics API")] = (
        "http://127.0.0.1:8001"
    ),
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C)")
    ] = None,
    data_dir: Annotated[Path, typer.Option(help="Where demo-links.txt is written")] = Path(
        ".classpulse"
    ),
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar="CLASSPULSE_DATABASE_URL",
            help="PostgreSQL of the running services (the demo creates its organisation there)",
        ),
    ] = None,
) -> None:
    """Play a demo lesson (simulated students, real photos and videos) into running services."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    stop = threading.Event()
    try:
        run_demo(
            ingest_url,
            analytics_url,
            data_dir,
            stop=stop,
            duration=duration,
            database_url=database_url,
        )
    except ConfigError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=2) from None
    except httpx.TransportError as exc:
        typer.echo(f"error: the services did not answer ({exc}); is `classpulse up` running?")
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        stop.set()
        typer.echo("demo stopped")


def register(app: typer.Typer) -> None:
    """Add ``classpulse demo`` to the command."""
    app.command("demo")(demo_command)
