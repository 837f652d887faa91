"""``classpulse lti add|list|remove|urls``: an organisation's LTI 1.3 platforms (LMSs).

The same registrations as ``/v1/lti/registrations``; what goes where in Moodle
and Canvas is in docs/integration.md.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated

import typer

from classpulse.admin_commands import _fail, _session
from shared.errors import ClassPulseError, ConfigError

lti_app = typer.Typer(
    help="LTI 1.3 platforms (Moodle, Canvas …) that launch ClassPulse for an organisation.",
    no_args_is_help=True,
)

OrgOption = Annotated[uuid.UUID, typer.Option(help="Organisation id")]


@lti_app.command("add")
def add_command(
    org: OrgOption,
    issuer: Annotated[str, typer.Option(help="Platform ID / issuer, exactly as the LMS shows")],
    client_id: Annotated[str, typer.Option(help="Client ID the LMS gave ClassPulse")],
    deployment_id: Annotated[list[str], typer.Option(help="Deployment ID (repeat for several)")],
    auth_login_url: Annotated[str, typer.Option(help="Authentication request URL")],
    auth_token_url: Annotated[str, typer.Option(help="Access token URL")],
    key_set_url: Annotated[str | None, typer.Option(help="Public keyset URL")] = None,
    key_set_file: Annotated[
        Path | None, typer.Option(help="The platform's JWKS as a file, where it has no URL")
    ] = None,
    auth_audience: Annotated[str | None, typer.Option(help="Token audience, if not the URL")] = (
        None
    ),
    school_consent: Annotated[
        bool,
        typer.Option(help="The school grants its part of consent for launching students"),
    ] = False,
) -> None:
    """Register a platform: its launches create this organisation's classes and lessons."""
    from pydantic import ValidationError

    from services.lti.registrations import RegistrationIn, add_registration
    from shared.db.models import AuditEntry, Organisation

    try:
        body = RegistrationIn(
            issuer=issuer,
            client_id=client_id,
            deployment_ids=deployment_id,
            auth_login_url=auth_login_url,
            auth_token_url=auth_token_url,
            auth_audience=auth_audience,
            key_set_url=key_set_url,
            key_set=json.loads(key_set_file.read_text()) if key_set_file else None,
            school_consent=school_consent,
        )
    except (ValidationError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    try:
        with _session() as session:
            if session.get(Organisation, org) is None:
                raise ConfigError(f"organisation {org} does not exist")
            row = add_registration(session, org, body)
            session.add(AuditEntry(actor="cli", action="lti.register", subject=f"lti:{row.id}"))
            session.commit()
            registration_id = row.id
    except ClassPulseError as exc:
        raise _fail(exc) from None
    typer.echo(f"registration: {registration_id} ({issuer}, client {client_id})")


@lti_app.command("list")
def list_command(org: OrgOption) -> None:
    """The organisation's platforms."""
    from services.lti.registrations import list_registrations

    try:
        with _session() as session:
            rows = list_registrations(session, org)
            lines = [
                f"{r.id}  {r.issuer}  client {r.client_id}  deployments "
                f"{','.join(r.deployment_ids)}  keys {r.key_set_url or 'given'}"
                f"{'  school consent' if r.school_consent else ''}"
                for r in rows
            ]
    except ClassPulseError as exc:
        raise _fail(exc) from None
    typer.echo("\n".join(lines) if lines else f"organisation {org} has no LTI platform")


@lti_app.command("remove")
def remove_command(
    org: OrgOption,
    registration: Annotated[uuid.UUID, typer.Argument(help="Registration id (lti list)")],
) -> None:
    """Forget a platform: its launches stop; classes and lessons stay."""
    from services.lti.registrations import remove_registration
    from shared.db.models import AuditEntry

    try:
        with _session() as session:
            removed = remove_registration(session, org, registration)
            if removed:
                session.add(
                    AuditEntry(actor="cli", action="lti.unregister", subject=f"lti:{registration}")
                )
            session.commit()
    except ClassPulseError as exc:
        raise _fail(exc) from None
    if not removed:
        typer.echo(f"error: organisation {org} has no registration {registration}", err=True)
        raise typer.Exit(code=2)
    typer.echo(f"registration {registration} removed")


@lti_app.command("urls")
def urls_command(
    tool_url: Annotated[
        str | None,
        typer.Option(help="The ingest API's public URL (default CLASSPULSE_LTI_TOOL_URL)"),
    ] = None,
) -> None:
    """The URLs to enter in the LMS for ClassPulse."""
    from services.lti.routes import tool_urls
    from shared.settings import LtiSettings, load

    try:
        base = tool_url or load(LtiSettings).lti_tool_url
    except ClassPulseError as exc:
        raise _fail(exc) from None
    if not base:
        typer.echo("error: give --tool-url or set CLASSPULSE_LTI_TOOL_URL", err=True)
        raise typer.Exit(code=2)
    urls = tool_urls(base.rstrip("/"))
    typer.echo(f"tool URL (target link URI):  {urls.tool_url}")
    typer.echo(f"initiate login URL:          {urls.login_url}")
    typer.echo(f"redirection URI(s):          {', '.join(urls.redirect_urls)}")
    typer.echo(f"public keyset URL (JWKS):    {urls.jwks_url}")
    typer.echo(f"deep linking URL:            {urls.deep_linking_url}")


def register(app: typer.Typer) -> None:
    """Add the ``lti`` group to the ``classpulse`` command."""
    app.add_typer(lti_app, name="lti")
