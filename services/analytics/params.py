"""Query parameters shared by the timeline, summary, live and export endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Query

from services.analytics.window import Bucket

#: Longest smoothing window offered (frames per student).
MAX_SMOOTH = 30

BucketQuery = Annotated[
    Bucket,
    Query(
        description="Bucket width; buckets start at the lesson start plus whole widths "
        "(a fixed grid)"
    ),
]
FromQuery = Annotated[
    dt.datetime | None,
    Query(
        alias="from",
        description="Window start, ISO 8601 with an offset (default: the lesson start); "
        "class views move it back to the start of its bucket",
    ),
]
ToQuery = Annotated[
    dt.datetime | None,
    Query(
        alias="to",
        description="Window end, exclusive, ISO 8601 with an offset "
        "(default: the lesson end, or now during the lesson); class views move it on to "
        "the end of its bucket and never past the start of the bucket still open",
    ),
]
SmoothQuery = Annotated[
    int,
    Query(
        ge=0,
        le=MAX_SMOOTH,
        description="Smooth each student's displayed expression over their last N frames "
        "(0 or 1: off)",
    ),
]
