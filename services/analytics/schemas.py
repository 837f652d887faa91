"""Response shapes of the analytics API (not database rows, not queue messages)."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, Field

from shared.labels import LABELS

_SHARES = f"Share of each displayed expression ({', '.join(LABELS)}) among labelled faces"


_NULL_WHEN_SUPPRESSED = "; null when suppressed"


class GroupStats(BaseModel):
    """Figures of one group of frames (a bucket, a segment, a student, the lesson).

    In class-level views a group with fewer students than the minimum group size
    is ``suppressed`` and carries no figure at all (every field below is null).
    """

    students_seen: int | None = Field(
        description="Students with at least one frame in the group" + _NULL_WHEN_SUPPRESSED
    )
    frames: int | None = Field(description="Frames processed" + _NULL_WHEN_SUPPRESSED)
    faces_labelled: int | None = Field(
        description="Faces with a displayed expression label" + _NULL_WHEN_SUPPRESSED
    )
    faces_uncertain: int | None = Field(
        description="Faces the classifier was too unsure of to label (top probability under "
        "the model's threshold): counted here and in `uncertain_share`, left out of "
        "`expressions`" + _NULL_WHEN_SUPPRESSED
    )
    uncertain_share: float | None = Field(
        description="Share of the classified faces that were too uncertain for a label "
        "(`faces_uncertain` over `faces_labelled` plus `faces_uncertain`); null when no face "
        "was classified, when fewer students than the minimum group size had a labelled face "
        "(class views), or when suppressed"
    )
    face_share: float | None = Field(
        description="Share of frames with a face (time spent in front of the screen); "
        "null when there were no frames" + _NULL_WHEN_SUPPRESSED
    )
    facing_share: float | None = Field(
        description="Facing the screen: share of the frames with a face whose head was turned "
        "towards the screen (head yaw within 25 and pitch within 25 degrees, estimated from the "
        "face detector's keypoints). It says where heads point, not where eyes look, and is no "
        "measure of attention or engagement. Null when no face had a head pose (the Haar "
        "detector gives none), when fewer students than the minimum group size had one (class "
        "views), or when suppressed"
    )
    expressions: dict[str, float] | None = Field(
        description=_SHARES + "; null when no face was labelled, when fewer students than "
        "the minimum group size had a labelled face (class views), or when suppressed"
    )
    dominant: str | None = Field(
        description="Most frequent displayed expression (null whenever `expressions` is)"
    )
    mean_confidence: float | None = Field(
        description="Mean classifier confidence of the labels (null whenever `expressions` is)"
    )
    suppressed: bool = Field(
        description="True when fewer students than the minimum group size were seen (empty "
        "groups included): the group carries no figures, only its time and this flag, so "
        "that no class view exposes, or lets one subtract out, a small group of students"
    )


class TimelineBucket(GroupStats):
    start: dt.datetime = Field(description="Bucket start, ISO 8601 UTC")


class Timeline(BaseModel):
    lesson_id: uuid.UUID
    bucket: str
    bucket_seconds: int
    start: dt.datetime = Field(
        description="Window start (inclusive), UTC; in class views the start of the bucket "
        "holding `from`"
    )
    end: dt.datetime = Field(
        description="Window end (exclusive), UTC; in class views the end of the bucket "
        "holding `to`, or the start of the bucket still open (never shown before it closes)"
    )
    min_group_size: int | None = Field(description="Suppression threshold (null: not applied)")
    smooth: int = Field(description="Frames in each student's smoothing window (0: off)")
    buckets: list[TimelineBucket]


class LabelledPoint(BaseModel):
    captured_at: dt.datetime
    label: str = Field(description="Displayed expression")
    confidence: float | None


class StudentTimeline(Timeline):
    student_id: uuid.UUID
    external_id: str
    points: list[LabelledPoint] = Field(description="Every labelled face of the student")


class LessonInfo(BaseModel):
    id: uuid.UUID
    title: str
    class_id: uuid.UUID
    class_title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    is_demo: bool
    is_live: bool


class LessonList(BaseModel):
    lessons: list[LessonInfo]


class Marker(BaseModel):
    at: dt.datetime
    kind: str
    label: str


class Segment(GroupStats):
    """The expression mix between two consecutive markers."""

    marker: str | None = Field(description="Marker label (null before the first marker)")
    kind: str | None
    start: dt.datetime
    end: dt.datetime


class StudentSummary(GroupStats):
    student_id: uuid.UUID
    external_id: str


class MomentOut(BaseModel):
    kind: str = Field(
        description="negative_rise, happy_rise, presence_drop or facing_drop (the class "
        "turned away from the screen)"
    )
    start: dt.datetime
    end: dt.datetime
    value: float = Field(description="Mean of the signal over the moment")
    baseline: float = Field(description="Median of the signal over the lesson")
    change: float
    marker: str | None = Field(description="Marker in force when the moment starts")
    marker_at: dt.datetime | None
    description: str


class Summary(BaseModel):
    lesson: LessonInfo
    bucket: str = Field(description="Bucket width the moments were found at")
    smooth: int
    min_group_size: int
    totals: GroupStats
    per_student: bool = Field(
        description="Whether the key may read per-student data; false: `students` is empty "
        "(the key lacks the per-student permission, which the LMS grants)"
    )
    students: list[StudentSummary] = Field(
        description="Per-student figures, for keys with the per-student permission only"
    )
    markers: list[Marker]
    segments: list[Segment]
    moments: list[MomentOut]


class FrameStats(BaseModel):
    """Every frame ingest acknowledged is in exactly one status: they sum to ``accepted``."""

    lesson_id: uuid.UUID
    accepted: int = Field(description="Frames ingest acknowledged for the lesson")
    by_status: dict[str, int] = Field(description="Frames per status (queued/done/failed/expired)")
    failed_by_reason: dict[str, int]
