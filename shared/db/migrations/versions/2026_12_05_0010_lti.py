"""The LTI 1.3 tool's tables (issue 24, point 1).

``lti_registrations``: an organisation's platforms (issuer, client id,
deployment ids, endpoints, the platform's keys by URL or value).
``lti_tool_keys``: the tool's RSA keys, the private half encrypted.
``lti_contexts`` and ``lti_resource_links``: which class a course is and which
lesson a placement opens.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lti_registrations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("deployment_ids", postgresql.ARRAY(sa.String(length=200)), nullable=False),
        sa.Column("auth_login_url", sa.String(length=500), nullable=False),
        sa.Column("auth_token_url", sa.String(length=500), nullable=False),
        sa.Column("auth_audience", sa.String(length=500), nullable=True),
        sa.Column("key_set_url", sa.String(length=500), nullable=True),
        sa.Column("key_set", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("school_consent", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_lti_registrations_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_registrations")),
        sa.UniqueConstraint(
            "issuer", "client_id", name=op.f("uq_lti_registrations_issuer_client_id")
        ),
    )
    op.create_index(
        op.f("ix_lti_registrations_organisation_id"), "lti_registrations", ["organisation_id"]
    )
    op.create_table(
        "lti_tool_keys",
        sa.Column("kid", sa.String(length=100), nullable=False),
        sa.Column("public_jwk", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("private_key_encrypted", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_lti_tool_keys")),
    )
    op.create_table(
        "lti_contexts",
        sa.Column("registration_id", sa.Uuid(), nullable=False),
        sa.Column("context_id", sa.String(length=200), nullable=False),
        sa.Column("class_id", sa.Uuid(), nullable=False),
        sa.Column("memberships_url", sa.String(length=1000), nullable=True),
        sa.Column("roster_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["registration_id"],
            ["lti_registrations.id"],
            name=op.f("fk_lti_contexts_registration_id_lti_registrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["classes.id"],
            name=op.f("fk_lti_contexts_class_id_classes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("registration_id", "context_id", name=op.f("pk_lti_contexts")),
    )
    op.create_index(op.f("ix_lti_contexts_class_id"), "lti_contexts", ["class_id"])
    op.create_table(
        "lti_resource_links",
        sa.Column("registration_id", sa.Uuid(), nullable=False),
        sa.Column("resource_link_id", sa.String(length=200), nullable=False),
        sa.Column("lesson_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["registration_id"],
            ["lti_registrations.id"],
            name=op.f("fk_lti_resource_links_registration_id_lti_registrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lesson_id"],
            ["lessons.id"],
            name=op.f("fk_lti_resource_links_lesson_id_lessons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "registration_id", "resource_link_id", name=op.f("pk_lti_resource_links")
        ),
    )
    op.create_index(op.f("ix_lti_resource_links_lesson_id"), "lti_resource_links", ["lesson_id"])


def downgrade() -> None:
    op.drop_table("lti_resource_links")
    op.drop_table("lti_contexts")
    op.drop_table("lti_tool_keys")
    op.drop_table("lti_registrations")
