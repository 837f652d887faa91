"""``/metrics`` of an API: HTTP figures by route template, and ClassPulse's own.

prometheus-fastapi-instrumentator counts requests and times them by method,
route template (never a raw path, so no id becomes a label) and status. The
domain figures live in ``shared.metrics``; an API may refresh gauges read from
its stores (queue length, oldest queued frame) just before each scrape. The
endpoint has no credential: serve it to the monitoring network only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator

from shared import metrics

log = logging.getLogger(__name__)

#: Refreshes gauges from the app's stores before a scrape.
Refresh = Callable[[FastAPI], Awaitable[None]]
#: Not timed: scrapes and probes would drown the API's own traffic.
UNTIMED = ["/metrics", "/healthz", "/readyz"]


def install_metrics(app: FastAPI, refresh: Refresh | None = None) -> None:
    """Time ``app``'s requests and serve ``GET /metrics``."""
    # One registry per app in a single process (tests create many apps); in
    # multiprocess mode the samples go to files and every registry reads them all.
    own = CollectorRegistry()
    Instrumentator(
        should_group_status_codes=False,
        excluded_handlers=UNTIMED,
        registry=own,
    ).instrument(app, metric_namespace="classpulse")

    @app.get("/metrics", include_in_schema=False)
    async def scrape(request: Request) -> Response:
        if refresh is not None:
            try:
                await refresh(request.app)
            except Exception as exc:  # a store down must not hide the other figures
                log.warning("metrics: gauges not refreshed: %s", type(exc).__name__)
        body = generate_latest(metrics.registry())
        if not metrics.multiprocess():
            body += generate_latest(own)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
