"""Gauges ingest reads from its stores when ``/metrics`` is scraped: how long the
frame queue is and how old its oldest frame, the two figures to scale workers on."""

from __future__ import annotations

import datetime as dt

from fastapi import FastAPI
from sqlalchemy import func, select

from services.ingest.deps import IngestResources
from shared import metrics
from shared.db.models import Frame, FrameStatus


async def refresh_queue_metrics(app: FastAPI) -> None:
    """Set the queue length (broker) and the oldest queued frame's age (PostgreSQL)."""
    resources: IngestResources = app.state.resources
    metrics.QUEUE_LENGTH.set(await resources.queue.length())
    # One index lookup: frames (status, received_at).
    query = select(func.min(Frame.received_at)).where(Frame.status == FrameStatus.QUEUED)
    async with resources.engine.connect() as conn:
        oldest = await conn.scalar(query)
    age = (dt.datetime.now(dt.UTC) - oldest).total_seconds() if oldest is not None else 0.0
    metrics.OLDEST_QUEUED_SECONDS.set(max(0.0, age))
