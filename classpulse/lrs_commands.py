"""``classpulse lrs set|show|remove``: an organisation's Learning Record Store.

The password is read from a hidden prompt or ``CLASSPULSE_LRS_PASSWORD``, never
from an argument (arguments show in ``ps`` and shell histories), stored
encrypted under ``CLASSPULSE_SECRETS_KEY``, and never printed.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from classpulse.admin_commands import _fail, _session
from shared.errors import ClassPulseError, ConfigError

lrs_app = typer.Typer(
    help="The Learning Record Store an organisation's xAPI statements go to.",
    no_args_is_help=True,
)

OrgOption = Annotated[uuid.UUID, typer.Option(help="Organisation id")]


def _require_org(session: Session, org: uuid.UUID) -> None:
    from shared.db.models import Organisation

    if session.get(Organisation, org) is None:
        raise ConfigError(f"organisation {org} does not exist")


@lrs_app.command("set")
def set_lrs_command(
    org: OrgOption,
    endpoint: Annotated[str, typer.Option(help="The LRS's xAPI base URL, e.g. https://lrs/xAPI")],
    username: Annotated[str, typer.Option(help="Basic-auth user of the LRS")],
    lms_url: Annotated[
        str, typer.Option(help="The LMS's URL: the homePage of each student's xAPI account")
    ],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            envvar="CLASSPULSE_LRS_PASSWORD",
            help="Basic-auth password (prompted, or CLASSPULSE_LRS_PASSWORD)",
        ),
    ],
) -> None:
    """Send the organisation's xAPI statements to this LRS (replaces any earlier one)."""
    from services.xapi.lrs_config import set_lrs
    from shared.db.models import AuditEntry
    from shared.settings import SecretsSettings, load

    try:
        secrets_key = load(SecretsSettings).secrets_key
        with _session() as session:
            _require_org(session, org)
            set_lrs(
                session,
                org,
                endpoint=endpoint,
                username=username,
                password=password,
                lms_url=lms_url,
                secrets_key=secrets_key,
            )
            session.add(AuditEntry(actor="cli", action="lrs.set", subject=f"org:{org}"))
            session.commit()
    except ClassPulseError as exc:
        raise _fail(exc) from None
    typer.echo(
        f"LRS of {org} set: {endpoint.rstrip('/')} (user {username}; password stored encrypted)"
    )


@lrs_app.command("show")
def show_lrs_command(org: OrgOption) -> None:
    """The organisation's LRS (never its password) and how its statements fare."""
    from services.xapi.lrs_config import lrs_status

    try:
        with _session() as session:
            _require_org(session, org)
            status = lrs_status(session, org)
    except ClassPulseError as exc:
        raise _fail(exc) from None
    if status is None:
        typer.echo(f"organisation {org} has no LRS: its statements are not sent")
        raise typer.Exit(code=1)
    typer.echo(f"endpoint:   {status.endpoint}")
    typer.echo(f"username:   {status.username}")
    typer.echo("password:   set (stored encrypted, never shown)")
    typer.echo(f"LMS URL:    {status.lms_url}")
    typer.echo(f"updated:    {status.updated_at.isoformat()}")
    typer.echo(
        f"statements: {status.pending} waiting, {status.sent} sent, {status.rejected} rejected"
    )
    if status.last_error:
        typer.echo(f"last error: {status.last_error}")


@lrs_app.command("remove")
def remove_lrs_command(org: OrgOption) -> None:
    """Stop sending: forget the LRS and its credentials; waiting statements stay for the
    next LRS set."""
    from services.xapi.lrs_config import remove_lrs
    from shared.db.models import AuditEntry

    try:
        with _session() as session:
            _require_org(session, org)
            removed = remove_lrs(session, org)
            if removed:
                session.add(AuditEntry(actor="cli", action="lrs.remove", subject=f"org:{org}"))
            session.commit()
    except ClassPulseError as exc:
        raise _fail(exc) from None
    typer.echo(f"LRS of {org} removed" if removed else f"organisation {org} had no LRS")


def register(app: typer.Typer) -> None:
    """Add the ``lrs`` group to the ``classpulse`` command."""
    app.add_typer(lrs_app, name="lrs")
