"""The analytics application: ``uvicorn services.analytics.app:create_app --factory``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis

from services.analytics import (
    export,
    live,
    routes_lessons,
    routes_summary,
    routes_timeline,
    routes_xapi,
    tickets,
)
from services.analytics.config import AnalyticsSettings
from services.analytics.deps import AnalyticsResources
from services.analytics.errors import install_error_handlers
from services.api import health
from services.api.docs import install_docs
from services.api.live_hub import LiveHub
from services.api.logs import redact_server_logs
from services.api.metrics import install_metrics
from services.api.security import SecurityHeaders
from shared import tracing
from shared.db.engine import async_session_factory, make_async_engine
from shared.logs import configure_logging
from shared.palette import palette
from shared.settings import load

STATIC_DIR = Path(__file__).resolve().parent / "static"
DASHBOARD_PAGE = STATIC_DIR / "dashboard.html"
#: Seconds a readiness probe waits for each store.
READY_TIMEOUT = 2.0


def _open(settings: AnalyticsSettings) -> AnalyticsResources:
    engine = make_async_engine(settings.database_url, pool_size=10, max_overflow=10)
    # No socket_timeout: live streams block on pub/sub reads with their own timeout.
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=READY_TIMEOUT)
    return AnalyticsResources(
        settings=settings,
        engine=engine,
        sessions=async_session_factory(engine),
        redis=redis,
        live_hub=LiveHub(redis),
    )


def create_app(settings: AnalyticsSettings | None = None) -> FastAPI:
    """The analytics app on ``settings``; by default (``--factory``) they are read here, once,
    when uvicorn makes the app at start-up, and serve both the logs and the lifespan."""
    config = settings if settings is not None else load(AnalyticsSettings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = _open(config)
        app.state.resources = resources
        try:
            yield
        finally:
            await resources.live_hub.close()
            await resources.redis.aclose()
            await resources.engine.dispose()

    app = FastAPI(
        title="ClassPulse analytics API",
        version="1",
        summary="Timelines of the facial expressions students display during online lessons, "
        "summaries, moments, exports, live updates and the teacher dashboard.",
        description="Every figure describes **displayed expressions** as a classifier "
        "labels them, never what a person feels.",
        lifespan=lifespan,
        # Served offline by install_docs.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_docs(app)
    install_metrics(app)
    tracing.init_tracing("analytics")
    tracing.instrument_app(app)
    app.add_middleware(SecurityHeaders)
    redact_server_logs()
    # Now, not at start-up, so that uvicorn's first lines are in the format too.
    configure_logging("analytics", config)
    app.include_router(routes_lessons.router)
    app.include_router(routes_timeline.router)
    app.include_router(routes_summary.router)
    app.include_router(routes_xapi.router)
    app.include_router(live.router)
    app.include_router(export.router)
    app.include_router(tickets.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    app.include_router(health.router)

    @app.get("/", include_in_schema=False)
    @app.get("/dashboard", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(DASHBOARD_PAGE, media_type="text/html")

    @app.get("/palette.json", include_in_schema=False)
    async def dashboard_palette() -> JSONResponse:
        # The charts' colours, shared with `classpulse analyze --report`.
        return JSONResponse(palette())

    return app
