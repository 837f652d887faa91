"""Short-lived, single-use tickets for the links a browser cannot give a header.

EventSource and download links cannot send ``Authorization``; a key in their
URL ends up in browser history and proxy logs. Instead the page, holding the
key, asks ``POST /v1/tickets`` for a ticket bound to one purpose (one lesson's
live stream, or one lesson's export) and puts that in the URL as ``?ticket=``.
A ticket lives ``TICKET_SECONDS`` in Redis (in memory only), works once, and
stands for the key that obtained it: a revoked key's ticket fails, and a live
stream keeps re-checking that key.
"""

from __future__ import annotations

import enum
import uuid

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.analytics.deps import ResourcesDep, SessionDep
from services.analytics.errors import json_error_responses
from services.analytics.ticket_store import TICKET_SECONDS, issue, redeem
from services.api.credentials import AuthorizationHeader
from shared.access import authenticate, bearer_token, require_lesson_access

router = APIRouter(prefix="/v1/tickets", tags=["tickets"])


class TicketPurpose(enum.StrEnum):
    """What a ticket opens: the lesson's ``/live`` stream or its ``/export``."""

    LIVE = "live"
    EXPORT = "export"


class TicketIn(BaseModel):
    purpose: TicketPurpose
    lesson_id: uuid.UUID


class TicketOut(BaseModel):
    ticket: str = Field(description="Pass as `?ticket=` on the link; works once")
    purpose: TicketPurpose
    lesson_id: uuid.UUID
    expires_in: int = Field(description="Seconds the ticket can be used")


@router.post(
    "",
    summary="A single-use ticket for one lesson's live stream or export link",
    responses=json_error_responses(400, 401, 403, 404, 422),
)
async def create_ticket(
    body: TicketIn,
    session: SessionDep,
    resources: ResourcesDep,
    authorization: AuthorizationHeader = None,
) -> TicketOut:
    """Exchange the key of the ``Authorization`` header for a ticket that opens
    ``/v1/lessons/{lesson_id}/live`` (purpose ``live``) or ``/export`` (``export``) once,
    within 60 seconds, as ``?ticket=``. Keys in URLs (``?access_token=``) are refused."""
    credential = bearer_token(authorization)
    principal = await authenticate(
        session, credential, resources.settings.token_secret.get_secret_value()
    )
    await require_lesson_access(session, principal, body.lesson_id)
    ticket = await issue(resources.redis, credential, body.purpose, body.lesson_id)
    return TicketOut(
        ticket=ticket, purpose=body.purpose, lesson_id=body.lesson_id, expires_in=TICKET_SECONDS
    )


#: What an LTI instructor launch's ticket opens (``services.lti.routes``).
DASHBOARD_PURPOSE = "dashboard"


class DashboardTicketIn(BaseModel):
    ticket: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")
    lesson_id: uuid.UUID


class DashboardSessionOut(BaseModel):
    credential: str = Field(
        description="The launch's teacher session: send as `Authorization: Bearer` "
        "(class-level reads of the launch's class; expires like a student token)"
    )
    lesson_id: uuid.UUID


@router.post(
    "/dashboard",
    summary="Exchange an LMS launch's single-use ticket for the dashboard's teacher session",
    responses=json_error_responses(400, 401, 422),
)
async def redeem_dashboard_ticket(
    body: DashboardTicketIn, resources: ResourcesDep
) -> DashboardSessionOut:
    """An instructor's LTI launch opens ``/dashboard#ticket=…&lesson=…``; the page trades
    the ticket (once, within 60 seconds) for the session, so no credential stays in a URL."""
    credential = await redeem(resources.redis, body.ticket, DASHBOARD_PURPOSE, str(body.lesson_id))
    return DashboardSessionOut(credential=credential, lesson_id=body.lesson_id)
