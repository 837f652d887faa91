"""Send an organisation's waiting statements to its LRS in batches, retrying what fails.

Each batch is locked (``FOR UPDATE SKIP LOCKED``) while it is sent, so two
senders never send the same statements; it is marked sent only once the LRS
accepted it. If the process dies between the LRS's answer and the commit, the
batch goes again with the same statement ids, which an xAPI LRS keeps once
(xAPI 1.0.3: a statement id already stored with the same content is ignored).
An unreachable or failing LRS (connection errors, 408, 429, 5xx) leaves the
statements waiting with a growing delay; a statement the LRS refuses on its
own (another 4xx) is set aside as rejected with the LRS's reason, not retried.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.xapi.lrs_config import LrsCredentials
from services.xapi.outbox import consenting
from services.xapi.statements import XAPI_VERSION
from shared.db.models import Lesson, XapiStatement

log = logging.getLogger(__name__)

#: Statements per POST: well under common LRS request limits.
BATCH_SIZE = 50
#: Retry delays: 30 s doubling to at most an hour, each drawn in [half, full] (jitter).
RETRY_FIRST_SECONDS = 30
RETRY_MAX_SECONDS = 3600
#: Statuses that say "later", not "never".
TRANSIENT_STATUSES = frozenset({408, 425, 429})
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class SendReport:
    sent: int = 0
    rejected: int = 0
    deferred: int = 0


def retry_delay(attempts: int) -> dt.timedelta:
    """Wait before attempt ``attempts + 1``."""
    full = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** max(attempts - 1, 0))
    return dt.timedelta(seconds=random.uniform(full / 2, full))


def lrs_client(creds: LrsCredentials) -> httpx.Client:
    """An HTTP client for the LRS: basic auth, the xAPI version header, a timeout."""
    return httpx.Client(
        base_url=creds.endpoint + "/",
        auth=httpx.BasicAuth(creds.username, creds.password),
        headers={"X-Experience-API-Version": XAPI_VERSION},
        timeout=REQUEST_TIMEOUT_SECONDS,
    )


def _post(client: httpx.Client, bodies: list[dict[str, Any]]) -> tuple[str, str | None]:
    """("sent" | "retry" | "reject", reason) of one POST; no credential in the reason."""
    try:
        response = client.post("statements", json=bodies)
    except httpx.HTTPError as exc:
        # The class name only: messages may repeat the request's URL.
        return "retry", type(exc).__name__
    if response.status_code in (200, 204):
        return "sent", None
    if response.status_code in TRANSIENT_STATUSES or response.status_code >= 500:
        return "retry", f"HTTP {response.status_code}"
    if 300 <= response.status_code < 400:
        # Not followed (credentials would go along): the endpoint is to be set right.
        where = response.headers.get("location", "elsewhere").split("?")[0]
        return "retry", f"HTTP {response.status_code}: the LRS endpoint moved to {where}"
    if response.status_code in (401, 403):
        # Our credentials, not the statements: they wait until the LRS is set right.
        return "retry", f"HTTP {response.status_code}: the LRS refused the credentials"
    # The LRS's reason for refusing a statement (its validation message) is kept.
    return "reject", f"HTTP {response.status_code}: {response.text[:200]}"


def _mark(
    session: Session, ids: list[uuid.UUID], now: dt.datetime, outcome: str, reason: str | None
) -> None:
    s = XapiStatement
    where = s.id.in_(ids)
    if outcome == "sent":
        session.execute(update(s).where(where).values(sent_at=now, last_error=None))
    elif outcome == "reject":
        session.execute(update(s).where(where).values(rejected_at=now, last_error=reason))
    else:
        for row in session.scalars(select(s).where(where)):
            row.attempts += 1
            row.last_error = reason
            row.next_attempt_at = now + retry_delay(row.attempts)


def _still_consented(session: Session, batch: list[XapiStatement]) -> list[XapiStatement]:
    """The batch less the statements of students who withdrew since they were built,
    which are deleted: withdrawal stops processing, sending included."""
    kept = []
    for row in batch:
        class_id = session.scalar(select(Lesson.class_id).where(Lesson.id == row.lesson_id))
        if class_id is not None and consenting(session, row.student_id, class_id, row.lesson_id):
            kept.append(row)
        else:
            session.delete(row)
    return kept


def send_pending(
    session: Session,
    organisation_id: uuid.UUID,
    client: httpx.Client,
    now: dt.datetime,
    *,
    max_batches: int = 20,
) -> SendReport:
    """Send due statements of one organisation, batch by batch, until none is due, a
    batch must wait, or ``max_batches`` went. Commits after each batch."""
    sent = rejected = deferred = 0
    s = XapiStatement
    for _ in range(max_batches):
        batch = list(
            session.scalars(
                select(s)
                .where(
                    s.organisation_id == organisation_id,
                    s.sent_at.is_(None),
                    s.rejected_at.is_(None),
                    s.next_attempt_at <= now,
                )
                .order_by(s.created_at, s.id)
                .limit(BATCH_SIZE)
                .with_for_update(skip_locked=True)
            )
        )
        if not batch:
            break
        batch = _still_consented(session, batch)
        if not batch:
            session.commit()
            continue
        outcome, reason = _post(client, [row.body for row in batch])
        if outcome == "reject" and len(batch) > 1:
            # One bad statement refuses the whole batch: find it by sending each alone.
            for row in batch:
                one, why = _post(client, [row.body])
                _mark(session, [row.id], now, one, why)
                sent += one == "sent"
                rejected += one == "reject"
                deferred += one == "retry"
                if one == "retry":  # the LRS went away: the rest waits for the next round
                    outcome, reason = one, why
                    break
        else:
            _mark(session, [row.id for row in batch], now, outcome, reason)
            count = len(batch)
            sent += count if outcome == "sent" else 0
            rejected += count if outcome == "reject" else 0
            deferred += count if outcome == "retry" else 0
        session.commit()
        if outcome == "retry":
            log.warning("LRS of organisation %s: %s; statements wait", organisation_id, reason)
            break
    return SendReport(sent, rejected, deferred)
