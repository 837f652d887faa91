"""The one aggregation every view shares: counts per group, first per student, then per group.

Grouping twice (per group and student, then per group) gives "students seen"
without ``count(DISTINCT …)``, and the per-student level doubles as the student
timeline. A frame is counted by its ``face_index = 0`` row: the worker writes
either faces 0..n-1 or one ``no_face`` row with index 0, so each frame has
exactly one such row. The same row says whether the frame's face had a head
pose (``posed_frames``) and faced the screen (``facing_frames``). A face the
classifier was too unsure of has a confidence and no label (``uncertain``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.labels import LABELS, NUM_CLASSES

_LABEL_COUNTS = ",\n    ".join(
    f"count(*) FILTER (WHERE e.label = {i}) AS l{i}" for i in range(NUM_CLASSES)
)
#: Per (group, student) counts over events ``e`` with a group key expression.
PER_STUDENT_COLUMNS = f"""
    e.student_id,
    count(*) FILTER (WHERE e.face_index = 0) AS frames,
    count(*) FILTER (WHERE e.face_index = 0 AND e.kind = 'face') AS face_frames,
    count(e.label) AS labelled,
    {_LABEL_COUNTS},
    sum(e.confidence) FILTER (WHERE e.label IS NOT NULL) AS confidence_sum,
    count(*) FILTER (WHERE e.face_index = 0 AND e.facing IS NOT NULL) AS posed_frames,
    count(*) FILTER (WHERE e.face_index = 0 AND e.facing) AS facing_frames,
    count(*) FILTER (WHERE e.label IS NULL AND e.confidence IS NOT NULL) AS uncertain"""

_LABEL_SUMS = ", ".join(f"sum(p.l{i})::bigint AS l{i}" for i in range(NUM_CLASSES))
#: Per-group sums over a ``per_student`` relation ``p``.
GROUP_COLUMNS = f"""
    count(p.student_id) AS students_seen,
    count(*) FILTER (WHERE p.labelled > 0) AS students_labelled,
    sum(p.frames)::bigint AS frames,
    sum(p.face_frames)::bigint AS face_frames,
    sum(p.labelled)::bigint AS labelled,
    {_LABEL_SUMS},
    sum(p.confidence_sum) AS confidence_sum,
    count(*) FILTER (WHERE p.posed_frames > 0) AS students_posed,
    sum(p.posed_frames)::bigint AS posed_frames,
    sum(p.facing_frames)::bigint AS facing_frames,
    sum(p.uncertain)::bigint AS uncertain"""

#: Events of one lesson in ``[:t0, :t1)``, optionally of one student.
_FILTER = "e.lesson_id = :lesson AND e.captured_at >= :t0 AND e.captured_at < :t1"


def events_source(*, smooth: int, one_student: bool) -> str:
    """A subquery of the lesson's events; with ``smooth`` > 1 labels are smoothed.

    Smoothing averages each student's last ``smooth`` labelled probability
    vectors (a window over their own frames) and relabels with the argmax, so a
    single odd frame does not flip a student's displayed expression.
    """
    where = _FILTER + (" AND e.student_id = :student" if one_student else "")
    if smooth <= 1:
        return f"""(SELECT e.captured_at, e.student_id, e.face_index, e.kind, e.label,
                e.confidence, e.facing FROM face_events e WHERE {where})"""
    averages = ", ".join(
        f"avg(CASE WHEN e.label IS NOT NULL THEN e.probabilities[{i + 1}] END) OVER w AS p{i}"
        for i in range(NUM_CLASSES)
    )
    vector = ", ".join(f"s.p{i}" for i in range(NUM_CLASSES))
    # The first index holding the largest average (ties go to the lower index).
    argmax = (
        f"CASE greatest({vector}) "
        + " ".join(f"WHEN s.p{i} THEN {i}" for i in range(NUM_CLASSES))
        + " END::smallint"
    )
    return f"""(SELECT s.captured_at, s.student_id, s.face_index, s.kind,
            CASE WHEN s.label IS NULL THEN NULL ELSE {argmax} END AS label,
            CASE WHEN s.label IS NULL THEN s.confidence ELSE greatest({vector}) END AS confidence,
            s.facing
        FROM (SELECT e.captured_at, e.student_id, e.face_index, e.kind, e.label, e.facing,
                     e.confidence, {averages}
              FROM face_events e WHERE {where}
              WINDOW w AS (PARTITION BY e.student_id ORDER BY e.captured_at
                           ROWS BETWEEN {int(smooth) - 1} PRECEDING AND CURRENT ROW)) s)"""


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
        """From a row carrying the ``GROUP_COLUMNS`` (NULLs of empty groups become 0)."""
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
