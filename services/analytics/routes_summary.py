"""Lesson summary: distribution, face presence, students, per-marker segments, moments."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter

from services.analytics.deps import ClassLessonDep, ResourcesDep, SessionDep
from services.analytics.errors import READ_ERRORS
from services.analytics.moments import MarkerPoint, find_moments
from services.analytics.params import BucketQuery, SmoothQuery
from services.analytics.queries.lessons import lesson_info
from services.analytics.queries.summary import (
    lesson_markers,
    lesson_totals,
    segment_counts,
    student_totals,
)
from services.analytics.queries.timeline import timeline_buckets
from services.analytics.schemas import Summary
from services.analytics.window import Bucket, class_window
from shared.access import may_read_students

router = APIRouter(prefix="/v1/lessons", tags=["summary"])


@router.get(
    "/{lesson}/summary",
    summary="Lesson summary with moments where the displayed expressions shift",
    responses=READ_ERRORS,
)
async def lesson_summary(
    access: ClassLessonDep,
    session: SessionDep,
    resources: ResourcesDep,
    bucket: BucketQuery = Bucket.M1,
    smooth: SmoothQuery = 0,
) -> Summary:
    """The displayed-expression distribution, face presence and share facing the screen
    of the lesson so far, per-student summaries, the mix between consecutive markers
    (segments), and **moments**: spans where the class's negative or happy share
    rises, or face presence or the share facing the screen drops (``facing_drop``: the
    class turned away), markedly against the lesson median, each tied to the marker in
    force. ``bucket`` is the resolution moments are looked for at.

    Class figures (totals, segments) are sums of the buckets the class timeline of
    that grid shows: closed buckets only, none with fewer students than the minimum
    group size, expression and facing counts only from buckets that show those shares;
    segments start at the bucket of their marker. The per-student rows are for keys
    with the per-student permission only (``per_student`` says whether they were
    given)."""
    lesson_id, k = access.lesson.id, resources.settings.min_group_size
    window = class_window(access.lesson, bucket.seconds)
    per_student = may_read_students(access.principal)
    markers = await lesson_markers(session, lesson_id)
    buckets = await timeline_buckets(session, lesson_id, window, min_group_size=k, smooth=smooth)
    moments = find_moments(buckets, bucket.seconds, [MarkerPoint(m.at, m.label) for m in markers])
    totals = await lesson_totals(session, lesson_id, window, min_group_size=k, smooth=smooth)
    students = (
        await student_totals(session, lesson_id, window, smooth=smooth) if per_student else []
    )
    segments = await segment_counts(session, lesson_id, window, min_group_size=k, smooth=smooth)
    return Summary.model_validate(
        {
            "lesson": lesson_info(access.lesson, access.school_class, dt.datetime.now(dt.UTC)),
            "bucket": bucket.value,
            "smooth": smooth,
            "min_group_size": k,
            "totals": totals.stats(k),
            "per_student": per_student,
            "students": [
                {"student_id": sid, "external_id": ext, **counts.stats(None)}
                for sid, ext, counts in students
            ],
            "markers": [{"at": m.at, "kind": m.kind, "label": m.label} for m in markers],
            "segments": [
                {"marker": label, "kind": kind, "start": s, "end": e, **counts.stats(k)}
                for label, kind, s, e, counts in segments
            ],
            "moments": [m.as_dict() for m in moments],
        }
    )
