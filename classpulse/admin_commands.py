"""``classpulse org …`` and ``classpulse keys …``: organisations and their API keys.

Keys are printed once when created; only their SHA-256 is stored, so a lost
key is revoked and replaced, never recovered.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.errors import ClassPulseError, ConfigError

org_app = typer.Typer(help="Organisations (schools, LMS tenants).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of an organisation.", no_args_is_help=True)


@contextmanager
def _session() -> Iterator[Session]:
    """One session on the database (:func:`classpulse.stores.database_url`); the command
    commits."""
    from classpulse.stores import database_url
    from shared.db.engine import make_sync_engine

    engine = make_sync_engine(database_url())
    try:
        with Session(engine, expire_on_commit=False) as session:
            yield session
    finally:
        engine.dispose()


def _fail(exc: ClassPulseError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(code=2)


@org_app.command("create")
def create_org(
    name: Annotated[str, typer.Argument(help="Display name of the organisation")],
) -> None:
    """Create an organisation and its first LMS API key (printed once)."""
    from services.ingest.keys import open_organisation

    try:
        with _session() as session:
            organisation_id, plaintext = open_organisation(session, name, actor="cli")
            session.commit()
    except ClassPulseError as exc:
        raise _fail(exc) from None
    typer.echo(f"organisation: {organisation_id}")
    typer.echo(f"LMS API key (shown once, store it now): {plaintext}")


@keys_app.command("create")
def create_key(
    org: Annotated[uuid.UUID, typer.Option(help="Organisation id")],
    teacher_class: Annotated[
        uuid.UUID | None, typer.Option(help="Make a teacher key for this class instead")
    ] = None,
    name: Annotated[str, typer.Option(help="A label to recognise the key by")] = "",
    per_student: Annotated[
        bool | None,
        typer.Option(
            "--per-student/--no-per-student",
            help="May the key read per-student data (student timelines, per-student summary "
            "rows, event exports)? Default: yes for an LMS key, no for a teacher key",
        ),
    ] = None,
) -> None:
    """Create an LMS key (or a teacher key with --teacher-class); printed once."""
    from services.ingest.keys import key_created, new_api_key
    from shared.db.models import KeyRole, Organisation, SchoolClass

    role = KeyRole.TEACHER if teacher_class else KeyRole.LMS
    try:
        with _session() as session:
            if session.get(Organisation, org) is None:
                raise ConfigError(f"organisation {org} does not exist")
            if teacher_class is not None:
                school_class = session.get(SchoolClass, teacher_class)
                if school_class is None or school_class.organisation_id != org:
                    raise ConfigError(f"class {teacher_class} is not a class of {org}")
            key, plaintext = new_api_key(
                org, role, name or role.value, teacher_class, per_student=per_student
            )
            session.add(key)
            session.add(key_created(key, "cli"))
            session.commit()
    except ClassPulseError as exc:
        raise _fail(exc) from None
    scope = "with" if key.per_student else "without"
    typer.echo(
        f"{role.value} API key {key.prefix}, {scope} per-student access "
        f"(shown once, store it now): {plaintext}"
    )


@keys_app.command("revoke")
def revoke_key(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (cp_<prefix>_…)")],
) -> None:
    """Revoke a key at once; requests with it get 401 from then on."""
    from shared.db.models import ApiKey, AuditEntry

    try:
        with _session() as session:
            key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
            if key is None:
                raise ConfigError(f"no API key with prefix {prefix!r}")
            if key.revoked_at is None:
                key.revoked_at = dt.datetime.now(dt.UTC)
                session.add(AuditEntry(actor="cli", action="key.revoke", subject=f"key:{prefix}"))
            session.commit()
    except ClassPulseError as exc:
        raise _fail(exc) from None
    typer.echo(f"revoked {prefix}")


@keys_app.command("list")
def list_keys(org: Annotated[uuid.UUID, typer.Option(help="Organisation id")]) -> None:
    """List an organisation's keys (prefix, role, class, name, per-student or class-only,
    created, revoked); never secrets."""
    from shared.db.models import ApiKey

    try:
        with _session() as session:
            keys = list(
                session.scalars(
                    select(ApiKey).where(ApiKey.organisation_id == org).order_by(ApiKey.created_at)
                )
            )
    except ClassPulseError as exc:
        raise _fail(exc) from None
    for key in keys:
        revoked = key.revoked_at.isoformat() if key.revoked_at else "active"
        access = "per-student" if key.per_student else "class-only"
        typer.echo(
            f"{key.prefix}\t{key.role.value}\t{key.class_id or '-'}\t{key.name}\t{access}\t"
            f"{key.created_at.isoformat()}\t{revoked}"
        )


def register(app: typer.Typer) -> None:
    """Add the ``org`` and ``keys`` groups to the ``classpulse`` command."""
    app.add_typer(org_app, name="org")
    app.add_typer(keys_app, name="keys")
