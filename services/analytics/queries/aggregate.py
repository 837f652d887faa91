"""The one aggregation every view shares: counts per group, first per student, then per group.

Grouping twice (per group and student, then per group) gives "students seen"
without ``count(DISTINCT …)``, and the per-student level doubles as the student
timeline. A frame is counted by its ``face_index = 0`` row: the worker writes
either faces 0..n-1 or one ``no_face`` row with index 0, so each frame has
exactly one such row. The same row says whether the frame's face had a head
pose (``posed_frames``) and faced the screen (``facing_frames``). A face the
classifier was too unsure of has a confidence and no label (``uncertain``).

The queries are SQLAlchemy Core built from the tables of ``shared.db.models``;
the column lists below are the pieces every query module composes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    FrameClause,
    FrameClauseType,
    FromClause,
    Integer,
    Interval,
    SmallInteger,
    Subquery,
    Uuid,
    and_,
    bindparam,
    case,
    cast,
    func,
    select,
)

from services.analytics.window import TimeWindow
from shared.db.models import EventKind, FaceEvent
from shared.labels import LABELS, NUM_CLASSES

#: ``timestamp with time zone``: a bare Python datetime would bind as one without.
TIMESTAMPTZ = DateTime(timezone=True)
#: Columns per expression label, in ``shared.labels`` order.
LABEL_COLUMNS = tuple(f"l{i}" for i in range(NUM_CLASSES))
#: How many query shapes (smoothing, one student, rollup) keep their built statement.
SHAPES_KEPT = 64

# The queries' parameters. Each statement is built once per shape and run with a
# dict of values (``window_params``), so a request does not rebuild and re-key it.
LESSON = bindparam("lesson", type_=Uuid())
STUDENT = bindparam("student", type_=Uuid())
#: The window ``[t0, t1)``.
T0 = bindparam("t0", type_=TIMESTAMPTZ)
T1 = bindparam("t1", type_=TIMESTAMPTZ)
#: The bucket grid: buckets start at ``origin + k * step``.
STEP = bindparam("step", type_=Interval())
ORIGIN = bindparam("origin", type_=TIMESTAMPTZ)
#: The smallest group shown (k-anonymity).
K = bindparam("k", type_=Integer())


def window_params(lesson_id: uuid.UUID, window: TimeWindow) -> dict[str, Any]:
    """Values of the lesson, window and grid parameters."""
    return {
        "lesson": lesson_id,
        "t0": window.start,
        "t1": window.end,
        "step": window.interval,
        "origin": window.origin,
    }


def bucket_of(at: ColumnElement[dt.datetime]) -> ColumnElement[dt.datetime]:
    """The start of the grid's bucket holding ``at``."""
    return func.date_bin(STEP, at, ORIGIN, type_=TIMESTAMPTZ)


def per_student_columns(e: FromClause) -> list[ColumnElement[Any]]:
    """Per (group, student) counts over events ``e``, to group by the group key and
    ``e.student_id``."""
    c = e.c
    frame = c.face_index == 0  # the frame's one row (see the module docstring)
    return [
        c.student_id,
        func.count().filter(frame).label("frames"),
        func.count().filter(and_(frame, c.kind == EventKind.FACE)).label("face_frames"),
        func.count(c.label).label("labelled"),
        *(func.count().filter(c.label == i).label(name) for i, name in enumerate(LABEL_COLUMNS)),
        func.sum(c.confidence).filter(c.label.is_not(None)).label("confidence_sum"),
        func.count().filter(and_(frame, c.facing.is_not(None))).label("posed_frames"),
        func.count().filter(and_(frame, c.facing)).label("facing_frames"),
        func.count().filter(and_(c.label.is_(None), c.confidence.is_not(None))).label("uncertain"),
    ]


def group_columns(p: FromClause) -> list[ColumnElement[Any]]:
    """Per-group sums over per-student rows ``p`` (as :func:`per_student_columns` makes)."""
    c = p.c

    def total(name: str) -> ColumnElement[Any]:
        return cast(func.sum(c[name]), BigInteger).label(name)

    return [
        func.count(c.student_id).label("students_seen"),
        func.count().filter(c.labelled > 0).label("students_labelled"),
        total("frames"),
        total("face_frames"),
        total("labelled"),
        *(total(name) for name in LABEL_COLUMNS),
        func.sum(c.confidence_sum).label("confidence_sum"),
        func.count().filter(c.posed_frames > 0).label("students_posed"),
        total("posed_frames"),
        total("facing_frames"),
        total("uncertain"),
    ]


@lru_cache(maxsize=SHAPES_KEPT)
def events_source(*, smooth: int, one_student: bool) -> Subquery:
    """The lesson's events in ``[t0, t1)`` (of ``student`` with ``one_student``) as a
    subquery ``e``; with ``smooth`` > 1 labels are smoothed.

    Smoothing averages each student's last ``smooth`` labelled probability
    vectors (a window over their own frames) and relabels with the argmax, so a
    single odd frame does not flip a student's displayed expression.
    """
    e = FaceEvent.__table__.alias("e")
    where = [e.c.lesson_id == LESSON, e.c.captured_at >= T0, e.c.captured_at < T1]
    if one_student:
        where.append(e.c.student_id == STUDENT)
    keys = (e.c.captured_at, e.c.student_id, e.c.face_index, e.c.kind)
    if smooth <= 1:
        return select(*keys, e.c.label, e.c.confidence, e.c.facing).where(*where).subquery("e")
    # One frame object for all seven windows: one bound offset, so PostgreSQL sees one
    # window and computes the averages in a single pass.
    last = FrameClause(smooth - 1, None, FrameClauseType.PRECEDING, FrameClauseType.CURRENT)
    averages = (
        func.avg(case((e.c.label.is_not(None), e.c.probabilities[i + 1])))
        .over(partition_by=e.c.student_id, order_by=e.c.captured_at, rows=last)
        .label(f"p{i}")
        for i in range(NUM_CLASSES)
    )
    s = select(*keys, e.c.label, e.c.facing, e.c.confidence, *averages).where(*where).subquery("s")
    vector = [s.c[f"p{i}"] for i in range(NUM_CLASSES)]
    top = func.greatest(*vector)
    # The first index holding the largest average (ties go to the lower index).
    argmax = cast(case(*((p, i) for i, p in enumerate(vector)), value=top), SmallInteger)
    return select(
        s.c.captured_at,
        s.c.student_id,
        s.c.face_index,
        s.c.kind,
        case((s.c.label.is_(None), None), else_=argmax).label("label"),
        case((s.c.label.is_(None), s.c.confidence), else_=top).label("confidence"),
        s.c.facing,
    ).subquery("e")


@dataclass(frozen=True, slots=True)
class GroupCounts:
    """Raw counts of one group (a bucket, a segment, a student, the lesson)."""

    students_seen: int
    students_labelled: int
    frames: int
    face_frames: int
    labelled: int
    label_counts: tuple[int, ...]
    confidence_sum: float
    #: Students with a posed face, frames whose face had a head pose, and of
    #: those the frames facing the screen (``shared.vision.pose``).
    students_posed: int = 0
    posed_frames: int = 0
    facing_frames: int = 0
    #: Faces classified but too unsure for a label.
    uncertain: int = 0

    @classmethod
    def from_row(cls, row: Any) -> GroupCounts:
        """From a row carrying the :func:`group_columns` (NULLs of empty groups become 0)."""
        m = row._mapping
        return cls(
            students_seen=int(m["students_seen"] or 0),
            students_labelled=int(m["students_labelled"] or 0),
            frames=int(m["frames"] or 0),
            face_frames=int(m["face_frames"] or 0),
            labelled=int(m["labelled"] or 0),
            label_counts=tuple(int(m[f"l{i}"] or 0) for i in range(NUM_CLASSES)),
            confidence_sum=float(m["confidence_sum"] or 0.0),
            students_posed=int(m["students_posed"] or 0),
            posed_frames=int(m["posed_frames"] or 0),
            facing_frames=int(m["facing_frames"] or 0),
            uncertain=int(m["uncertain"] or 0),
        )

    def stats(self, min_group_size: int | None) -> dict[str, Any]:
        """The group's figures; with ``min_group_size`` (k), only what rests on k students.

        A group with fewer than k students seen is ``suppressed``: it carries no
        figure at all, not even counts, so nothing about those few students can be
        read off or subtracted out. Expression figures (shares, dominant, mean
        confidence) need k students with a labelled face as well; face presence
        and the counts need k students seen (so they survive when inference is
        switched off and nobody has a label). The facing share needs k students
        whose face had a head pose, as expressions need k labelled.
        """
        k = min_group_size or 0
        if self.students_seen < k:
            return dict.fromkeys(FIGURES) | {"suppressed": True}
        face_share = round(self.face_frames / self.frames, 4) if self.frames else None
        expressions: dict[str, float] | None = None
        dominant: str | None = None
        confidence: float | None = None
        if self.labelled and self.students_labelled >= k:
            expressions = {
                label: round(count / self.labelled, 4)
                for label, count in zip(LABELS, self.label_counts, strict=True)
            }
            dominant = LABELS[max(range(NUM_CLASSES), key=lambda i: self.label_counts[i])]
            confidence = round(self.confidence_sum / self.labelled, 4)
        # Under the rule of the expression shares: unsure faces are expression figures.
        classified = self.labelled + self.uncertain
        uncertain_share = None
        if classified and self.students_labelled >= k:
            uncertain_share = round(self.uncertain / classified, 4)
        facing_share = None
        if self.posed_frames and self.students_posed >= k:
            facing_share = round(self.facing_frames / self.posed_frames, 4)
        return {
            "students_seen": self.students_seen,
            "frames": self.frames,
            "faces_labelled": self.labelled,
            "faces_uncertain": self.uncertain,
            "uncertain_share": uncertain_share,
            "face_share": face_share,
            "facing_share": facing_share,
            "expressions": expressions,
            "dominant": dominant,
            "mean_confidence": confidence,
            "suppressed": False,
        }


#: Every figure of a group; a suppressed group has them all null.
FIGURES = (
    "students_seen",
    "frames",
    "faces_labelled",
    "faces_uncertain",
    "uncertain_share",
    "face_share",
    "facing_share",
    "expressions",
    "dominant",
    "mean_confidence",
)
