"""An organisation's LRS settings: stored with the password sealed, shown without it."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.models import LrsConfig, XapiStatement
from shared.errors import InvalidValue
from shared.secret_box import seal, unseal


@dataclass(frozen=True, slots=True)
class LrsCredentials:
    """What the sender needs; ``password`` is plaintext, so never log or return this."""

    endpoint: str
    username: str
    password: str
    lms_url: str

    def __repr__(self) -> str:  # keeps the password out of tracebacks and debug logs
        return f"LrsCredentials(endpoint={self.endpoint!r}, username={self.username!r})"


@dataclass(frozen=True, slots=True)
class LrsStatus:
    """An LRS as shown to people: no password, and how its statements fare."""

    endpoint: str
    username: str
    lms_url: str
    updated_at: dt.datetime
    pending: int
    sent: int
    rejected: int
    last_error: str | None


def check_url(value: str, field: str) -> str:
    """An http(s) URL without credentials, query or fragment, without its trailing slash."""
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname
        _ = parts.port  # raises for a port outside 0-65535
    except ValueError:  # e.g. an unclosed IPv6 bracket, a bad port
        host = None
    if host is None or parts.scheme not in ("http", "https"):
        raise InvalidValue(f"{field} must be an http:// or https:// URL", field=field)
    if parts.username is not None or parts.password is not None:
        raise InvalidValue(
            f"{field} must not carry credentials: give the LRS user and password apart",
            field=field,
        )
    if parts.query or parts.fragment:
        raise InvalidValue(f"{field} must have no query or fragment", field=field)
    return value.strip().rstrip("/")


def set_lrs(
    session: Session,
    organisation_id: uuid.UUID,
    *,
    endpoint: str,
    username: str,
    password: str,
    lms_url: str,
    secrets_key: SecretStr | None,
) -> None:
    """Store (or replace) the organisation's LRS; the password is sealed first, under
    ``secrets_key`` (``CLASSPULSE_SECRETS_KEY``)."""
    if not username or ":" in username:
        raise InvalidValue("username must be non-empty and hold no ':'", field="username")
    if not password:
        raise InvalidValue("password must be non-empty", field="password")
    values = {
        "endpoint": check_url(endpoint, "endpoint"),
        "username": username,
        "password_encrypted": seal(password, secrets_key),
        "lms_url": check_url(lms_url, "lms_url"),
    }
    session.execute(
        insert(LrsConfig)
        .values(organisation_id=organisation_id, **values)
        .on_conflict_do_update(
            index_elements=[LrsConfig.organisation_id], set_=values | {"updated_at": func.now()}
        )
    )


def remove_lrs(session: Session, organisation_id: uuid.UUID) -> bool:
    """Forget the organisation's LRS; its unsent statements wait for the next one."""
    gone = (
        session.connection()
        .execute(delete(LrsConfig).where(LrsConfig.organisation_id == organisation_id))
        .rowcount
    )
    return bool(gone)


def credentials(config: LrsConfig, secrets_key: SecretStr | None) -> LrsCredentials:
    """``config`` with its password unsealed under ``secrets_key``."""
    password = unseal(config.password_encrypted, secrets_key)
    return LrsCredentials(config.endpoint, config.username, password, config.lms_url)


def lrs_status(session: Session, organisation_id: uuid.UUID) -> LrsStatus | None:
    config = session.get(LrsConfig, organisation_id)
    if config is None:
        return None
    s = XapiStatement
    mine = s.organisation_id == organisation_id
    counts = session.execute(
        select(
            func.count().filter(s.sent_at.is_(None), s.rejected_at.is_(None)),
            func.count().filter(s.sent_at.is_not(None)),
            func.count().filter(s.rejected_at.is_not(None)),
        ).where(mine)
    ).one()
    last_error = session.scalar(
        select(s.last_error)
        .where(mine, s.sent_at.is_(None), s.last_error.is_not(None))
        .order_by(s.next_attempt_at.desc())
        .limit(1)
    )
    return LrsStatus(
        config.endpoint,
        config.username,
        config.lms_url,
        config.updated_at,
        pending=counts[0],
        sent=counts[1],
        rejected=counts[2],
        last_error=last_error,
    )
