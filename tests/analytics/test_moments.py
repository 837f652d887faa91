"""Moments found in bucket series built by hand (pure functions, no database)."""

from __future__ import annotations

import datetime as dt

from services.analytics.moments import MarkerPoint, MomentKind, find_moments, marker_in_force
from shared.labels import LABELS

T0 = dt.datetime(2024, 5, 6, 8, 0, tzinfo=dt.UTC)


def bucket(minute: float, *, sad: float = 0.0, face: float = 1.0, suppressed: bool = False) -> dict:
    shares = dict.fromkeys(LABELS, 0.0)
    shares["sad"], shares["neutral"] = sad, 1.0 - sad
    return {
        "start": T0 + dt.timedelta(minutes=minute),
        "face_share": face,
        "expressions": None if suppressed else shares,
    }


def test_a_negative_rise_is_tied_to_the_marker_in_force() -> None:
    series = [bucket(m, sad=0.6 if 4 <= m < 7 else 0.1) for m in range(12)]
    markers = [
        MarkerPoint(T0, "Slide 1"),
        MarkerPoint(T0 + dt.timedelta(minutes=3, seconds=30), "Slide 3"),
    ]

    (moment,) = find_moments(series, 60, markers)

    assert moment.kind == MomentKind.NEGATIVE_RISE
    assert (moment.start, moment.end) == (
        T0 + dt.timedelta(minutes=4),
        T0 + dt.timedelta(minutes=7),
    )
    assert moment.marker == "Slide 3"
    assert round(moment.value, 3) == 0.6
    assert round(moment.baseline, 3) == 0.1
    assert "Slide 3" in moment.as_dict()["description"]


def test_a_short_blip_is_not_a_moment_at_fine_buckets() -> None:
    # 10 s buckets: a 30 s rise is shorter than the one-minute minimum.
    series = [bucket(i / 6, sad=0.9 if 10 <= i < 13 else 0.0) for i in range(40)]
    assert find_moments(series, 10) == []
    longer = [bucket(i / 6, sad=0.9 if 10 <= i < 16 else 0.0) for i in range(40)]
    assert [m.kind for m in find_moments(longer, 10)] == [MomentKind.NEGATIVE_RISE]


def test_a_presence_drop_and_suppressed_buckets_break_runs() -> None:
    series = [bucket(m, face=0.3 if m in (2, 3, 5, 6) else 0.95) for m in range(10)]
    series[4] = bucket(4, face=0.95, suppressed=True)
    series[4]["face_share"] = None  # nothing known about minute 4

    moments = find_moments(series, 60)

    assert [(m.kind, m.start.minute, m.end.minute) for m in moments] == [
        (MomentKind.PRESENCE_DROP, 2, 4),
        (MomentKind.PRESENCE_DROP, 5, 7),
    ]


def test_a_flat_lesson_has_no_moments() -> None:
    assert find_moments([bucket(m, sad=0.2) for m in range(30)], 60) == []


def test_marker_in_force_is_the_last_one_not_after() -> None:
    markers = [MarkerPoint(T0, "A"), MarkerPoint(T0 + dt.timedelta(minutes=5), "B")]
    assert marker_in_force(markers, T0 - dt.timedelta(seconds=1)) is None
    assert marker_in_force(markers, T0 + dt.timedelta(minutes=5)).label == "B"
    assert marker_in_force(markers, T0 + dt.timedelta(minutes=4, seconds=59)).label == "A"
