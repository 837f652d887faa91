"""Tables of the LTI 1.3 tool (``services.lti``; migration 0010).

A platform registration is one LMS (issuer) and the client id it gave
ClassPulse, owned by one organisation: launches from it create that
organisation's classes, lessons and students. The tool's own RSA key signs
what ClassPulse sends platforms (deep-linking responses, service-token
requests); its private half is stored encrypted under
``CLASSPULSE_SECRETS_KEY`` and never returned or logged. Contexts (courses) and
resource links map to classes and lessons; nothing about a person but the
pseudonymous LTI ``sub`` (``students.external_id``) is ever stored.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, created_at_column


class LtiRegistration(Base):
    """One platform (LMS) registration of an organisation."""

    __tablename__ = "lti_registrations"
    __table_args__ = (UniqueConstraint("issuer", "client_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    #: The platform's ``iss`` (Moodle: its wwwroot; Canvas: https://canvas.instructure.com).
    issuer: Mapped[str] = mapped_column(String(500))
    #: The client id the platform gave the tool (the id_token's ``aud``).
    client_id: Mapped[str] = mapped_column(String(200))
    #: Deployment ids accepted from this platform (``…/claim/deployment_id``).
    deployment_ids: Mapped[list[str]] = mapped_column(ARRAY(String(200)))
    #: The platform's OIDC authorisation endpoint (where the login redirects).
    auth_login_url: Mapped[str] = mapped_column(String(500))
    #: The platform's OAuth2 token endpoint (service calls: names and roles).
    auth_token_url: Mapped[str] = mapped_column(String(500))
    #: ``aud`` of the token request when the platform wants another than its token URL.
    auth_audience: Mapped[str | None] = mapped_column(String(500))
    #: The platform's public keys: a JWKS URL, or the key set itself.
    key_set_url: Mapped[str | None] = mapped_column(String(500))
    key_set: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    #: The school grants its part of consent for students launching from here
    #: (the student still agrees on the classroom page).
    school_consent: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[dt.datetime] = created_at_column()


class LtiToolKey(Base):
    """The tool's RSA key; the newest signs, all are published in the JWKS."""

    __tablename__ = "lti_tool_keys"
    kid: Mapped[str] = mapped_column(String(100), primary_key=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONB)
    #: PEM of the private key, Fernet-encrypted (``shared.secret_box``).
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = created_at_column()


class LtiContext(Base):
    """An LMS course seen through one registration: its class and roster service."""

    __tablename__ = "lti_contexts"
    registration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lti_registrations.id", ondelete="CASCADE"), primary_key=True
    )
    context_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    class_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("classes.id", ondelete="CASCADE"), index=True
    )
    #: The platform's names-and-roles endpoint for this course, when it offers one.
    memberships_url: Mapped[str | None] = mapped_column(String(1000))
    roster_synced_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = created_at_column()


class LtiResourceLink(Base):
    """A placement of ClassPulse in a course and the lesson it opens now."""

    __tablename__ = "lti_resource_links"
    registration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lti_registrations.id", ondelete="CASCADE"), primary_key=True
    )
    resource_link_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    lesson_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lessons.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = created_at_column()
