"""One round of the xAPI beat task: build finished lessons, send what waits, purge.

Each lesson is built in a transaction of its own, and each organisation's LRS
is sent to apart, so one bad lesson or one unreachable LRS holds up no other.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from services.xapi.lrs_config import LrsCredentials, credentials
from services.xapi.outbox import build_lesson, lessons_ready, purge_old
from services.xapi.sender import lrs_client, send_pending
from shared.db.models import LrsConfig
from shared.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Round:
    lessons_built: int
    sent: int
    rejected: int
    deferred: int
    purged: int


def deliver(
    engine: Engine,
    *,
    secrets_key: SecretStr | None,
    settle: dt.timedelta,
    retention: dt.timedelta,
    now: dt.datetime | None = None,
    client_for: Callable[[LrsCredentials], httpx.Client] = lrs_client,
) -> Round:
    """Build, send, purge once. ``secrets_key`` opens the stored LRS passwords;
    ``settle``: how long after its end a lesson may still receive frames (the clock
    skew allowed); ``retention``: how long data is kept."""
    now = now or dt.datetime.now(dt.UTC)
    with Session(engine) as session:
        ready = lessons_ready(session, now, settle=settle, retention=retention)
    built = 0
    for lesson_id in ready:
        try:
            with Session(engine) as session:
                build_lesson(session, lesson_id, now)
                session.commit()
            built += 1
        except Exception:  # one bad lesson must not hold up the others
            log.exception("xAPI statements of lesson %s not built; next round retries", lesson_id)
    with Session(engine) as session:
        purged = purge_old(session, now - retention)
        session.commit()
        configs = list(session.scalars(select(LrsConfig)))
    sent = rejected = deferred = 0
    for config in configs:
        try:
            creds = credentials(config, secrets_key)
        except ConfigError as exc:
            log.error("LRS of organisation %s not used: %s", config.organisation_id, exc.message)
            continue
        try:
            with client_for(creds) as client, Session(engine) as session:
                report = send_pending(session, config.organisation_id, client, now)
        except Exception:  # nor one organisation's LRS the other organisations'
            log.exception("xAPI statements of organisation %s not sent", config.organisation_id)
            continue
        sent, rejected, deferred = (
            sent + report.sent,
            rejected + report.rejected,
            deferred + report.deferred,
        )
    return Round(built, sent, rejected, deferred, purged)
