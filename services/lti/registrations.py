"""Platform registrations of an organisation: what its LMS told it, and what to tell it.

Used by the API (``/v1/lti/registrations``, with ``session.run_sync``) and the
``classpulse lti`` command alike. These functions never commit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.lti.adapter import PlatformRegistration
from shared.db.lti_models import LtiRegistration
from shared.errors import Conflict

#: An http(s) URL without NUL or whitespace; kept exactly as given (an issuer must
#: match the id_token's ``iss`` character for character).
URL_PATTERN = r"^https?://[^\s\x00]+$"
_ID_PATTERN = r"^[^\x00]+$"


class RegistrationIn(BaseModel):
    """What the platform's administrator copies from the LMS into ClassPulse."""

    model_config = ConfigDict(extra="forbid")
    issuer: str = Field(
        max_length=500,
        pattern=URL_PATTERN,
        description="Platform ID / issuer (`iss`), e.g. https://moodle.example.org",
    )
    client_id: str = Field(min_length=1, max_length=200, pattern=_ID_PATTERN)
    deployment_ids: list[str] = Field(
        min_length=1,
        max_length=50,
        description="Deployment ids launches may come from",
    )
    auth_login_url: str = Field(
        max_length=500, pattern=URL_PATTERN, description="Authentication request URL (OIDC)"
    )
    auth_token_url: str = Field(
        max_length=500, pattern=URL_PATTERN, description="Access token URL (OAuth2)"
    )
    auth_audience: str | None = Field(
        None, max_length=500, pattern=_ID_PATTERN, description="Token audience, if not the URL"
    )
    key_set_url: str | None = Field(
        None, max_length=500, pattern=URL_PATTERN, description="Public keyset URL (JWKS)"
    )
    key_set: dict[str, Any] | None = Field(
        None, description="The platform's JWKS itself, where it publishes no URL"
    )
    school_consent: bool = Field(
        False,
        description="The school grants its part of each launching student's consent "
        "(the student still agrees on the classroom page)",
    )

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if (self.key_set_url is None) == (self.key_set is None):
            raise ValueError("give exactly one of key_set_url and key_set")
        if self.key_set is not None and not isinstance(self.key_set.get("keys"), list):
            raise ValueError("key_set must be a JWKS: {'keys': [...]}")
        for deployment in self.deployment_ids:
            if not deployment or len(deployment) > 200 or "\x00" in deployment:
                raise ValueError("a deployment id has 1 to 200 characters and no NUL")
        return self


class RegistrationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    organisation_id: uuid.UUID
    issuer: str
    client_id: str
    deployment_ids: list[str]
    auth_login_url: str
    auth_token_url: str
    auth_audience: str | None
    key_set_url: str | None
    key_set: dict[str, Any] | None
    school_consent: bool
    created_at: dt.datetime


def add_registration(
    session: Session, organisation_id: uuid.UUID, body: RegistrationIn
) -> LtiRegistration:
    """A new registration; ``Conflict`` if this issuer and client id are registered."""
    row = LtiRegistration(id=uuid.uuid4(), organisation_id=organisation_id, **body.model_dump())
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise Conflict(
            f"issuer {body.issuer!r} with client id {body.client_id!r} is registered already",
            field="client_id",
        ) from None
    session.refresh(row)
    return row


def list_registrations(session: Session, organisation_id: uuid.UUID) -> list[LtiRegistration]:
    return list(
        session.scalars(
            select(LtiRegistration)
            .where(LtiRegistration.organisation_id == organisation_id)
            .order_by(LtiRegistration.created_at)
        )
    )


def remove_registration(
    session: Session, organisation_id: uuid.UUID, registration_id: uuid.UUID
) -> bool:
    """Forget a registration (launches from it stop); its classes and lessons stay."""
    result = session.execute(
        delete(LtiRegistration).where(
            LtiRegistration.id == registration_id,
            LtiRegistration.organisation_id == organisation_id,
        )
    )
    return bool(getattr(result, "rowcount", 0))


def as_platform(row: LtiRegistration) -> PlatformRegistration:
    return PlatformRegistration(
        issuer=row.issuer,
        client_id=row.client_id,
        deployment_ids=tuple(row.deployment_ids),
        auth_login_url=row.auth_login_url,
        auth_token_url=row.auth_token_url,
        auth_audience=row.auth_audience,
        key_set_url=row.key_set_url,
        key_set=row.key_set,
    )
