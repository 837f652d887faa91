"""The two APIs' OpenAPI documents, read without a server or the environment.

The apps are made for their documents only, with settings that point nowhere:
making an app connects to nothing (its lifespan, which would, never runs).
"""

from __future__ import annotations

from typing import Any, Literal

from services.analytics.app import create_app as create_analytics
from services.analytics.config import AnalyticsSettings
from services.ingest.app import create_app as create_ingest
from services.ingest.config import IngestSettings

UNUSED_STORES: dict[str, Any] = {
    "database_url": "postgresql://127.0.0.1:1/unused",
    "redis_url": "redis://127.0.0.1:1/0",
    "token_secret": "unused-secret-of-at-least-32-bytes",
}


def openapi(service: Literal["ingest", "analytics"]) -> dict[str, Any]:
    """The OpenAPI document of ``service``, as its ``/openapi.json`` serves it."""
    if service == "ingest":
        return create_ingest(IngestSettings(**UNUSED_STORES)).openapi()
    return create_analytics(AnalyticsSettings(**UNUSED_STORES)).openapi()
