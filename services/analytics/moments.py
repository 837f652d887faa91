"""Moments: spans where the class's displayed expressions, presence or head direction
shift markedly.

Pure functions over a bucket series (no SQL, no HTTP). Each signal is compared
with its median over the lesson; consecutive buckets past a threshold form a
moment, which is tied to the lesson marker (slide or topic) in force when it
starts: the answer to "which part of the lesson was hard to follow".
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.labels import Expression

#: Expressions counted as "negative" displayed expressions.
NEGATIVE = tuple(
    e.label for e in (Expression.ANGRY, Expression.DISGUST, Expression.FEAR, Expression.SAD)
)
#: Rise of the negative share over its lesson median that makes a moment (absolute share).
NEGATIVE_RISE = 0.15
#: Rise of the happy share over its median that makes a moment.
HAPPY_RISE = 0.2
#: Drop of face presence under its median that makes a moment.
PRESENCE_DROP = 0.2
#: Drop of the facing-the-screen share under its median that makes a moment ("the
#: class turned away"): as for presence, a fifth of the class's faces.
FACING_DROP = 0.2
#: A shift must last this long to count, so one noisy bucket is not a moment.
MIN_MOMENT_SECONDS = 60


class MomentKind(StrEnum):
    NEGATIVE_RISE = "negative_rise"
    HAPPY_RISE = "happy_rise"
    PRESENCE_DROP = "presence_drop"
    FACING_DROP = "facing_drop"


@dataclass(frozen=True, slots=True)
class MarkerPoint:
    at: dt.datetime
    label: str


@dataclass(frozen=True, slots=True)
class Moment:
    kind: MomentKind
    start: dt.datetime
    end: dt.datetime
    #: Mean of the signal over the moment, and its lesson median.
    value: float
    baseline: float
    marker: str | None
    marker_at: dt.datetime | None

    @property
    def change(self) -> float:
        return self.value - self.baseline

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "start": self.start,
            "end": self.end,
            "value": round(self.value, 4),
            "baseline": round(self.baseline, 4),
            "change": round(self.change, 4),
            "marker": self.marker,
            "marker_at": self.marker_at,
            "description": describe(self),
        }


Signal = Callable[[Mapping[str, Any]], float | None]


def negative_share(bucket: Mapping[str, Any]) -> float | None:
    shares = bucket.get("expressions")
    return None if shares is None else sum(shares[label] for label in NEGATIVE)


def happy_share(bucket: Mapping[str, Any]) -> float | None:
    shares = bucket.get("expressions")
    return None if shares is None else float(shares[Expression.HAPPY.label])


def face_share(bucket: Mapping[str, Any]) -> float | None:
    value = bucket.get("face_share")
    return None if value is None else float(value)


def facing_share(bucket: Mapping[str, Any]) -> float | None:
    value = bucket.get("facing_share")
    return None if value is None else float(value)


#: kind -> (signal, threshold, +1 for a rise / -1 for a drop)
RULES: dict[MomentKind, tuple[Signal, float, int]] = {
    MomentKind.NEGATIVE_RISE: (negative_share, NEGATIVE_RISE, 1),
    MomentKind.HAPPY_RISE: (happy_share, HAPPY_RISE, 1),
    MomentKind.PRESENCE_DROP: (face_share, PRESENCE_DROP, -1),
    MomentKind.FACING_DROP: (facing_share, FACING_DROP, -1),
}


def marker_in_force(markers: Sequence[MarkerPoint], at: dt.datetime) -> MarkerPoint | None:
    """The last marker at or before ``at`` (markers sorted by time)."""
    current = None
    for marker in markers:
        if marker.at > at:
            break
        current = marker
    return current


def find_moments(
    buckets: Sequence[Mapping[str, Any]],
    step_seconds: int,
    markers: Sequence[MarkerPoint] = (),
) -> list[Moment]:
    """Moments of every kind in a bucket series (``start`` plus shares), by start time.

    Buckets without a value (suppressed or empty) break a run.
    """
    min_run = max(1, math.ceil(MIN_MOMENT_SECONDS / step_seconds))
    found: list[Moment] = []
    for kind, (signal, threshold, direction) in RULES.items():
        values = [signal(b) for b in buckets]
        known = [v for v in values if v is not None]
        if len(known) < 2:
            continue
        baseline = statistics.median(known)
        run: list[int] = []
        for i, value in enumerate([*values, None]):  # a trailing None closes the last run
            if value is not None and direction * (value - baseline) >= threshold:
                run.append(i)
                continue
            if len(run) >= min_run:
                start = buckets[run[0]]["start"]
                marker = marker_in_force(markers, start)
                found.append(
                    Moment(
                        kind=kind,
                        start=start,
                        end=buckets[run[-1]]["start"] + dt.timedelta(seconds=step_seconds),
                        value=statistics.fmean(values[j] or 0.0 for j in run),
                        baseline=baseline,
                        marker=marker.label if marker else None,
                        marker_at=marker.at if marker else None,
                    )
                )
            run = []
    return sorted(found, key=lambda m: (m.start, m.kind.value))


_PHRASES = {
    MomentKind.NEGATIVE_RISE: "more negative displayed expressions (angry, disgust, fear, sad)",
    MomentKind.HAPPY_RISE: "more happy displayed expressions",
    MomentKind.PRESENCE_DROP: "fewer faces in front of the screen",
    MomentKind.FACING_DROP: "fewer faces turned towards the screen (the class turned away)",
}


def describe(moment: Moment) -> str:
    """One readable sentence for the dashboard."""
    where = f" during “{moment.marker}”" if moment.marker else ""
    return (
        f"{_PHRASES[moment.kind]}{where}: {moment.value:.0%} against "
        f"{moment.baseline:.0%} over the lesson"
    )
