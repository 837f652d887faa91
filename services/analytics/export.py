"""Exports of a lesson as CSV or JSON, streamed so a long lesson never sits in memory.

``what=timeline`` gives the class timeline's buckets (the same values as
``/timeline``); ``what=events`` gives every face event (per-student data: keys
with the per-student permission only), read through a server-side cursor in
batches. CSV cells that a spreadsheet would run as a
formula (an LMS id such as ``=HYPERLINK(…)`` or ``@cmd``) are written as text.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import text

from services.analytics.deps import AnalyticsResources, ClassLessonDep, ResourcesDep, SessionDep
from services.analytics.errors import READ_ERRORS
from services.analytics.params import BucketQuery, FromQuery, SmoothQuery, ToQuery
from services.analytics.queries.timeline import timeline_buckets
from services.analytics.schemas import TimelineBucket
from services.analytics.window import Bucket, TimeWindow, class_window, lesson_window
from shared.access import check_per_student_access
from shared.labels import LABELS, UNCERTAIN

router = APIRouter(prefix="/v1/lessons", tags=["export"])
#: Rows fetched from the server-side cursor at a time.
BATCH_ROWS = 2000


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


class ExportWhat(StrEnum):
    TIMELINE = "timeline"
    EVENTS = "events"


TIMELINE_COLUMNS = (
    "start",
    "students_seen",
    "frames",
    "faces_labelled",
    "faces_uncertain",
    "uncertain_share",
    "face_share",
    "facing_share",
    "suppressed",
    "dominant",
    "mean_confidence",
    *(f"share_{label}" for label in LABELS),
)
EVENT_COLUMNS = (
    "captured_at",
    "student_id",
    "external_id",
    "frame_id",
    "face_index",
    "kind",
    "quality",
    "label",
    "confidence",
    *(f"p_{label}" for label in LABELS),
    "model_version",
    "yaw",
    "pitch",
    "facing",
)
#: First characters that make a spreadsheet read a cell as a formula: OWASP's list
#: (=, +, -, @, tab, carriage return) with line feed, and the full-width forms of
#: the first four, which some spreadsheets accept as well.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
_PROBABILITIES = ", ".join(f"e.probabilities[{i + 1}]" for i in range(len(LABELS)))
_EVENTS_SQL = f"""
SELECT e.captured_at, e.student_id, s.external_id, e.frame_id, e.face_index, e.kind::text,
       e.quality::text, e.label, e.confidence, {_PROBABILITIES}, e.model_version,
       e.yaw, e.pitch, e.facing
FROM face_events e JOIN students s ON s.id = e.student_id
WHERE e.lesson_id = :lesson AND e.captured_at >= :t0 AND e.captured_at < :t1
ORDER BY e.captured_at, e.student_id, e.face_index"""


def timeline_record(bucket: dict[str, Any]) -> dict[str, Any]:
    """A timeline bucket as the JSON export and the timeline endpoint show it."""
    return TimelineBucket.model_validate(bucket).model_dump(mode="json")


def timeline_row(record: dict[str, Any]) -> list[Any]:
    """A JSON timeline record as a flat CSV row (empty cells for nulls)."""
    shares = record["expressions"] or {}
    figures = TIMELINE_COLUMNS[: -len(LABELS)]
    values = [record[c] for c in figures] + [shares.get(label) for label in LABELS]
    return ["" if v is None else v for v in values]


def event_record(row: Sequence[Any]) -> dict[str, Any]:
    """One face event row (in ``EVENT_COLUMNS`` order) as JSON-ready values."""
    values = list(row)
    label_at = EVENT_COLUMNS.index("label")
    if values[label_at] is not None:
        values[label_at] = LABELS[values[label_at]]
    record = dict(zip(EVENT_COLUMNS, values, strict=True))
    if record["label"] is None and record[f"p_{LABELS[0]}"] is not None:
        record["label"] = UNCERTAIN  # classified, too unsure for a label
    record["captured_at"] = record["captured_at"].isoformat()
    record["student_id"] = str(record["student_id"])
    record["frame_id"] = str(record["frame_id"])
    for angle in ("yaw", "pitch"):  # degrees, good to a few: one decimal is plenty
        if record[angle] is not None:
            record[angle] = round(float(record[angle]), 1)
    return record


def neutralise(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text, never runs (OWASP, CSV injection).

    Text starting with a formula character gets a leading apostrophe, which
    spreadsheets show as the start of a text cell; numbers are left as they are.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_lines(rows: Iterable[Sequence[Any]]) -> str:
    """Data rows: formula-like text neutralised and every text cell quoted, so that a
    spreadsheet splitting on ``;`` (some locales) cannot start a cell inside one."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerows([neutralise(v) for v in row] for row in rows)
    return out.getvalue()


def _csv_header(columns: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(columns)
    return out.getvalue()


async def _as_csv(header: Sequence[str], rows: AsyncIterator[list[Any]]) -> AsyncIterator[str]:
    yield _csv_header(header)
    batch: list[list[Any]] = []
    async for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            yield _csv_lines(batch)
            batch = []
    if batch:
        yield _csv_lines(batch)


async def _as_json(records: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    yield "["
    first = True
    async for record in records:
        yield ("" if first else ",\n") + json.dumps(record)
        first = False
    yield "]\n"


async def _timeline_records(
    resources: AnalyticsResources, lesson_id: uuid.UUID, window: TimeWindow, smooth: int
) -> AsyncIterator[dict[str, Any]]:
    async with resources.sessions() as session:
        buckets = await timeline_buckets(
            session,
            lesson_id,
            window,
            min_group_size=resources.settings.min_group_size,
            smooth=smooth,
        )
    for bucket in buckets:
        yield timeline_record(bucket)


async def _event_records(
    resources: AnalyticsResources, lesson_id: uuid.UUID, window: TimeWindow
) -> AsyncIterator[dict[str, Any]]:
    params = {"lesson": lesson_id, "t0": window.start, "t1": window.end}
    async with resources.sessions() as session:
        result = await session.stream(
            text(_EVENTS_SQL).execution_options(yield_per=BATCH_ROWS), params
        )
        async for row in result:
            yield event_record(row)


async def _csv_rows(
    records: AsyncIterator[dict[str, Any]], columns: Sequence[str], what: ExportWhat
) -> AsyncIterator[list[Any]]:
    async for record in records:
        if what == ExportWhat.TIMELINE:
            yield timeline_row(record)
        else:
            yield ["" if record[c] is None else record[c] for c in columns]


@router.get(
    "/{lesson}/export",
    summary="Export the class timeline or every face event as CSV or JSON (streamed)",
    responses={
        200: {
            "description": "The download, in the requested format",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        },
        **READ_ERRORS,
    },
)
async def export_lesson(
    access: ClassLessonDep,
    session: SessionDep,
    resources: ResourcesDep,
    format: Annotated[ExportFormat, Query(description="csv or json")] = ExportFormat.CSV,
    what: Annotated[
        ExportWhat,
        Query(
            description="timeline (class buckets) or events (every face event; needs the "
            "per-student permission)"
        ),
    ] = ExportWhat.TIMELINE,
    bucket: BucketQuery = Bucket.M1,
    start: FromQuery = None,
    end: ToQuery = None,
    smooth: SmoothQuery = 0,
) -> StreamingResponse:
    """A download of displayed-expression data. Timeline rows hold the same values as
    ``/timeline``: whole, closed buckets of the lesson's grid, suppressed ones with no
    figures (empty cells). Events hold each face's student, label (``uncertain`` where
    the model's top probability was under its threshold), confidence and seven
    probabilities: per-student data, for keys with the per-student permission
    only (403 otherwise). Events also hold the head's ``yaw`` and ``pitch`` (degrees)
    and the ``facing`` call, timeline rows the ``facing_share``: where heads point, not
    attention. Browsers pass a single-use ticket (``POST /v1/tickets``) as
    ``?ticket=``."""
    lesson_id = access.lesson.id
    if what == ExportWhat.TIMELINE:
        window = class_window(access.lesson, bucket.seconds, start, end)
        records = _timeline_records(resources, lesson_id, window, smooth)
        columns: Sequence[str] = TIMELINE_COLUMNS
    else:
        check_per_student_access(access.principal)
        window = lesson_window(access.lesson, bucket.seconds, start, end)
        records = _event_records(resources, lesson_id, window)
        columns = EVENT_COLUMNS
    # The stream reads with a session of its own; release this one now.
    await session.close()
    if format == ExportFormat.CSV:
        body = _as_csv(columns, _csv_rows(records, columns, what))
        media_type = "text/csv; charset=utf-8"
    else:
        body = _as_json(records)
        media_type = "application/json"
    filename = f"lesson-{lesson_id}-{what.value}.{format.value}"
    return StreamingResponse(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
