"""The ingest application: ``uvicorn services.ingest.app:create_app --factory``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.api import health
from services.api.docs import install_docs
from services.api.live_hub import LiveHub
from services.api.logs import redact_server_logs
from services.api.metrics import install_metrics
from services.api.security import SecurityHeaders
from services.ingest import (
    routes_classroom,
    routes_frames,
    routes_lrs,
    routes_setup,
    routes_students,
    ws,
)
from services.ingest.config import IngestSettings
from services.ingest.deps import IngestResources
from services.ingest.errors import install_error_handlers
from services.ingest.queue import FrameQueue, producer_app
from services.ingest.queue_metrics import refresh_queue_metrics
from services.ingest.ratelimit import AdmissionLimits, FrameAdmission
from services.ingest.tokens import StudentTokens
from services.lti import routes as lti_routes
from shared import tracing
from shared.client_detection import PAGE_MODEL_FILES
from shared.db.engine import async_session_factory, make_async_engine, with_driver
from shared.errors import NotFound
from shared.logs import configure_logging
from shared.settings import DETECTOR_MODELS_DIR, load

STATIC_DIR = Path(__file__).resolve().parent / "static"
CLASSROOM_PAGE = STATIC_DIR / "classroom.html"
#: Seconds a readiness probe waits for each store.
READY_TIMEOUT = 2.0
#: PostgreSQL connections of the frame path per ingest process.
FRAME_POOL_SIZE = 32


def make_frames_engine(database_url: str) -> AsyncEngine:
    """The frame path's pool: autocommit, no pre-ping.

    Commits stay synchronous: a 202 promises the frame is recorded, so its row
    must survive a database crash as its queue message does. No pre-ping: a
    dead connection fails the request with 503 and the pool is reset, instead
    of every request paying a round trip.
    """
    return create_async_engine(
        with_driver(database_url, "asyncpg"),
        # A fixed pool: under load, requests wait for a connection (then 503 after
        # pool_timeout) rather than open and close overflow connections.
        pool_size=FRAME_POOL_SIZE,
        max_overflow=0,
        pool_timeout=5,
        isolation_level="AUTOCOMMIT",
    )


async def _open(settings: IngestSettings) -> IngestResources:
    engine = make_async_engine(settings.database_url, pool_size=5, max_overflow=10)
    redis = Redis.from_url(
        settings.redis_url, socket_timeout=READY_TIMEOUT, socket_connect_timeout=READY_TIMEOUT
    )
    limits = AdmissionLimits(
        rate_per_second=settings.student_rate_per_second,
        queue_limit=settings.queue_limit,
        frame_ttl_seconds=settings.frame_ttl_seconds,
    )
    return IngestResources(
        settings=settings,
        engine=engine,
        frames_engine=make_frames_engine(settings.database_url),
        sessions=async_session_factory(engine),
        redis=redis,
        admission=FrameAdmission(redis, limits),
        queue=FrameQueue(redis, producer_app(settings.redis_url)),
        tokens=StudentTokens(settings.token_secret.get_secret_value()),
    )


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    """The ingest app on ``settings``; by default (``--factory``) they are read here, once,
    when uvicorn makes the app at start-up, and serve both the logs and the lifespan."""
    config = settings if settings is not None else load(IngestSettings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = await _open(config)
        app.state.resources = resources
        app.state.live_hub = LiveHub(resources.redis)
        try:
            yield
        finally:
            await app.state.live_hub.close()
            await resources.redis.aclose()
            resources.queue.close()
            await resources.frames_engine.dispose()
            await resources.engine.dispose()

    app = FastAPI(
        title="ClassPulse ingest API",
        version="1",
        summary="Frames from classroom clients in; set-up of classes, lessons, students, consents.",
        lifespan=lifespan,
        # Served offline by install_docs.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_docs(app)
    install_metrics(app, refresh_queue_metrics)
    tracing.init_tracing("ingest")
    tracing.instrument_app(app)
    app.add_middleware(SecurityHeaders)
    redact_server_logs()
    # Now, not at start-up, so that uvicorn's first lines are in the format too.
    configure_logging("ingest", config)
    app.include_router(routes_setup.router)
    app.include_router(routes_students.router)
    app.include_router(routes_lrs.router)
    app.include_router(lti_routes.router)
    app.include_router(routes_classroom.router)
    app.include_router(routes_frames.router)
    app.include_router(ws.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")

    app.include_router(health.router)

    @app.get("/classroom/{lesson_id}", include_in_schema=False)
    async def classroom(lesson_id: str) -> FileResponse:
        if not CLASSROOM_PAGE.is_file():
            raise NotFound("the classroom page is not installed")
        return FileResponse(CLASSROOM_PAGE, media_type="text/html")

    @app.get(routes_classroom.MODEL_PATH + "{name}", include_in_schema=False)
    async def detector_model(name: str) -> FileResponse:
        # The workers' own BlazeFace weights, so the page detects as they do.
        if name not in PAGE_MODEL_FILES or not (DETECTOR_MODELS_DIR / name).is_file():
            raise NotFound("no such detector model")
        return FileResponse(DETECTOR_MODELS_DIR / name, media_type="application/octet-stream")

    return app
