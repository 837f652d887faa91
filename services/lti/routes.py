"""The LTI 1.3 tool's endpoints, mounted on the ingest API.

Protocol endpoints (browsers and platforms; not in the OpenAPI document):

- ``GET|POST /lti/login``: OIDC third-party-initiated login; redirects to the
  platform's authorisation endpoint with a state (cookie) and a nonce (Redis).
- ``POST /lti/launch``: the platform's id_token (form post). An instructor
  opens the teacher dashboard of the course's class and the placement's lesson
  with a short-lived teacher session behind a single-use ticket; a learner opens
  the classroom page (consent step) with a student token for this launch. A
  deep-linking request from an instructor shows the placement form.
- ``POST /lti/deep-link``: the placement form; answers the platform with a
  signed ``LtiDeepLinkingResponse``.
- ``GET /lti/jwks``: the tool's public keys.

The state cookie must come back on the platform's cross-site form post, so it
is ``SameSite=None; Secure``: LTI needs HTTPS (browsers treat only
``localhost`` as secure without it).

Management (``/v1/lti``, an LMS key of the organisation): registrations and a
roster sync.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import logging
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Mapping
from http.cookies import SimpleCookie
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from redis import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from services.analytics import ticket_store
from services.analytics.tickets import DASHBOARD_PURPOSE
from services.ingest.config import IngestSettings
from services.ingest.deps import LmsDep, ResourcesDep, SessionDep
from services.ingest.errors import error_responses
from services.lti import adapter, provision, tool_keys
from services.lti.registrations import (
    RegistrationIn,
    RegistrationOut,
    add_registration,
    as_platform,
    list_registrations,
    remove_registration,
)
from shared.auth import issue_student_token, issue_teacher_session
from shared.db.lti_models import LtiContext, LtiRegistration
from shared.db.models import AuditEntry, Lesson, SchoolClass
from shared.errors import (
    AuthError,
    ConfigError,
    Forbidden,
    InvalidValue,
    NotFound,
    ServiceUnavailable,
)

logger = logging.getLogger("classpulse.lti")
DEEP_LINKING_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"

_AUTOSUBMIT_JS = "document.getElementById('placement').submit();\n"


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # pylti1p3 is synchronous: its nonces and launches go through a blocking client,
    # used only from worker threads.
    settings: IngestSettings = app.state.resources.settings
    app.state.lti_redis = Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        yield
    finally:
        app.state.lti_redis.close()


protocol = APIRouter(prefix="/lti", include_in_schema=False)
management = APIRouter(
    prefix="/v1/lti",
    tags=["LTI 1.3 (LMS key)"],
    responses=error_responses(400, 401, 403, 422),
)


def _tool_url(request: Request, settings: IngestSettings) -> str:
    return (settings.lti_tool_url or str(request.base_url)).rstrip("/")


def _dashboard_url(request: Request, settings: IngestSettings) -> str:
    if settings.lti_dashboard_url:
        return settings.lti_dashboard_url.rstrip("/")
    parts = urllib.parse.urlsplit(_tool_url(request, settings))
    host = parts.hostname or "127.0.0.1"
    netloc = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{netloc}:{settings.analytics_port}"


async def _params(request: Request) -> dict[str, str]:
    params = dict(request.query_params.items())
    if request.method == "POST":
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


async def _registrations(session: AsyncSession, issuer: str | None) -> list[LtiRegistration]:
    if not issuer:
        return []
    return list(
        await session.scalars(select(LtiRegistration).where(LtiRegistration.issuer == issuer))
    )


async def _tool_key(session: AsyncSession, settings: IngestSettings) -> adapter.ToolKey:
    try:
        key = await tool_keys.current_key(session, settings.secrets_key)
    except ConfigError as exc:
        raise ServiceUnavailable(f"the LTI tool is not configured: {exc.message}") from None
    await session.commit()
    return key


def _set_cookies(response: Response, cookies: list[adapter.CookieToSet]) -> None:
    """Set pylti1p3's state cookies: sent back on the platform's cross-site POST to
    /lti/launch (``SameSite=None; Secure``) and ``Partitioned``.

    A launch inside the LMS's iframe (content selection always is) makes the tool a
    third party of the course page, and browsers that block third-party cookies
    (Safari, private windows, Chrome where set) drop an unpartitioned one: the
    launch then fails with "State not found". A partitioned cookie is kept for
    that course page's frames only. Browsers without partitioned cookies ignore
    the attribute. Starlette sets it only on Python 3.14 and newer.
    """
    for cookie in cookies:
        jar: SimpleCookie = SimpleCookie()
        jar[cookie.name] = cookie.value
        attributes = jar[cookie.name]
        attributes["path"] = "/lti/"
        attributes["secure"] = True
        attributes["httponly"] = True
        attributes["samesite"] = "none"
        if cookie.max_age is not None:
            attributes["max-age"] = cookie.max_age
        header = jar.output(header="").strip() + "; Partitioned"
        response.raw_headers.append((b"set-cookie", header.encode("latin-1")))


@protocol.api_route("/login", methods=["GET", "POST"])
async def login(request: Request, session: SessionDep, resources: ResourcesDep) -> Response:
    settings = resources.settings
    params = await _params(request)
    platforms = [as_platform(r) for r in await _registrations(session, params.get("iss"))]
    key = await _tool_key(session, settings)
    try:
        redirect = await run_in_threadpool(
            adapter.login,
            params,
            dict(request.cookies),
            secure=request.url.scheme == "https",
            platforms=platforms,
            tool_key=key,
            redis=request.app.state.lti_redis,
            launch_url=f"{_tool_url(request, settings)}/lti/launch",
        )
    except adapter.LtiRefused as exc:
        raise AuthError(f"LTI login refused: {exc.reason}") from None
    response = RedirectResponse(redirect.url, status_code=status.HTTP_302_FOUND)
    _set_cookies(response, redirect.cookies)
    return response


def _registration_of(rows: list[LtiRegistration], claims: Mapping[str, Any]) -> LtiRegistration:
    aud = claims.get("aud")
    client_id = aud[0] if isinstance(aud, list) and aud else aud
    for row in rows:
        if row.issuer == claims.get("iss") and row.client_id == client_id:
            return row
    raise AuthError("LTI launch refused: registration not found")  # pylti1p3 found it: a race


@protocol.post("/launch")
async def launch(request: Request, session: SessionDep, resources: ResourcesDep) -> Response:
    settings = resources.settings
    params = await _params(request)
    rows = await _registrations(session, adapter.unverified_issuer(params))
    key = await _tool_key(session, settings)
    try:
        valid = await run_in_threadpool(
            adapter.validate_launch,
            params,
            dict(request.cookies),
            secure=request.url.scheme == "https",
            platforms=[as_platform(r) for r in rows],
            tool_key=key,
            redis=request.app.state.lti_redis,
        )
    except adapter.LtiRefused as exc:
        raise AuthError(f"LTI launch refused: {exc.reason}") from None
    registration = _registration_of(rows, valid.claims)
    if valid.is_deep_link:
        if not valid.is_instructor:
            raise Forbidden("deep linking places ClassPulse in a course: instructors only")
        school_class = await provision.class_for_context(session, registration, valid.claims)
        await session.commit()
        return _placement_form(valid.launch_id, school_class.title, _return_origin(valid.claims))
    if valid.is_instructor:
        return await _instructor(
            request, session, settings, registration, valid, resources.redis, key
        )
    if valid.is_learner:
        return await _learner(request, session, settings, registration, valid)
    raise Forbidden("ClassPulse opens for a course's instructors and learners only")


async def _class_and_lesson(
    session: AsyncSession,
    settings: IngestSettings,
    registration: LtiRegistration,
    valid: adapter.ValidatedLaunch,
) -> tuple[SchoolClass, Lesson]:
    """The launch's class and the lesson its placement opens, created on first sight."""
    school_class = await provision.class_for_context(session, registration, valid.claims)
    lesson = await provision.lesson_for_launch(
        session, registration, school_class, valid.claims, settings.lti_lesson_minutes
    )
    return school_class, lesson


async def _instructor(
    request: Request,
    session: AsyncSession,
    settings: IngestSettings,
    registration: LtiRegistration,
    valid: adapter.ValidatedLaunch,
    redis: Any,
    key: adapter.ToolKey,
) -> Response:
    school_class, lesson = await _class_and_lesson(session, settings, registration, valid)
    await session.commit()
    await _sync_roster(session, registration, school_class.id, key)
    credential = issue_teacher_session(
        settings.token_secret.get_secret_value(),
        organisation_id=school_class.organisation_id,
        class_id=school_class.id,
        ttl_seconds=settings.token_ttl_seconds,
    )
    ticket = await ticket_store.issue(redis, credential, DASHBOARD_PURPOSE, lesson.id)
    fragment = urllib.parse.urlencode({"ticket": ticket, "lesson": str(lesson.id)})
    return RedirectResponse(
        f"{_dashboard_url(request, settings)}/dashboard#{fragment}",
        status_code=status.HTTP_303_SEE_OTHER,
    )


async def _learner(
    request: Request,
    session: AsyncSession,
    settings: IngestSettings,
    registration: LtiRegistration,
    valid: adapter.ValidatedLaunch,
) -> Response:
    external_id = provision.learner_id(valid.claims)
    if external_id is None:
        raise InvalidValue("LTI launch refused: an anonymous launch has no student id (sub)")
    school_class, lesson = await _class_and_lesson(session, settings, registration, valid)
    students = await provision.enrol(session, school_class, [external_id])
    student_id = students[external_id]
    await provision.school_consent(session, registration, school_class, student_id)
    await session.commit()
    token = issue_student_token(
        settings.token_secret.get_secret_value(),
        student_id=student_id,
        lesson_id=lesson.id,
        ttl_seconds=settings.token_ttl_seconds,
    )
    return RedirectResponse(
        f"{_tool_url(request, settings)}/classroom/{lesson.id}#token={token}",
        status_code=status.HTTP_303_SEE_OTHER,
    )


async def _sync_roster(
    session: AsyncSession,
    registration: LtiRegistration,
    class_id: uuid.UUID,
    key: adapter.ToolKey,
) -> int | None:
    """Enrol the course's learners from the platform's roster; None without a roster service.

    A platform that fails leaves the roster as it was (logged without any token)."""
    context = await session.scalar(
        select(LtiContext).where(
            LtiContext.registration_id == registration.id, LtiContext.class_id == class_id
        )
    )
    if context is None or not context.memberships_url:
        return None
    try:
        members = await run_in_threadpool(
            adapter.roster, as_platform(registration), key, context.memberships_url
        )
    except adapter.LtiRefused as exc:
        logger.warning("roster sync of class %s failed: %s", class_id, exc.reason)
        return None
    school_class = await session.get(SchoolClass, class_id)
    assert school_class is not None
    enrolled = await provision.enrol(session, school_class, provision.learners(members))
    context.roster_synced_at = dt.datetime.now(dt.UTC)
    await session.commit()
    return len(enrolled)


def _return_origin(claims: Mapping[str, Any]) -> str:
    """The origin of the platform's deep-link return URL: the LMS's own pages."""
    settings = claims.get(DEEP_LINKING_SETTINGS) or {}
    parts = urllib.parse.urlsplit(str(settings.get("deep_link_return_url", "")))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidValue("LTI launch refused: the deep-linking request has no return URL")
    return f"{parts.scheme}://{parts.netloc}"


def _page(body: str, *, form_action: str = "'self'", framed_by: str = "'none'") -> HTMLResponse:
    # The placement pages open inside the LMS's content-selection dialog (an iframe):
    # that LMS may frame them (frame-ancestors overrides the X-Frame-Options header).
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"form-action {form_action}; base-uri 'none'; frame-ancestors {framed_by}"
    )
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>ClassPulse</title></head><body>" + body + "</body></html>"
    )
    return HTMLResponse(document, headers={"Content-Security-Policy": policy})


def _placement_form(launch_id: str, class_title: str, lms_origin: str) -> HTMLResponse:
    return _page(
        f"<h1>Place a ClassPulse lesson in {html.escape(class_title)}</h1>"
        '<form method="post" action="/lti/deep-link">'
        f'<input type="hidden" name="launch_id" value="{html.escape(launch_id)}">'
        '<p><label>Title <input name="title" required maxlength="300" '
        'value="ClassPulse lesson"></label></p>'
        '<p><label>Minutes <input name="minutes" type="number" min="1" max="1440" '
        'value="60" required></label></p>'
        '<p><button type="submit">Add to the course</button></p></form>',
        framed_by=lms_origin,
    )


@protocol.post("/deep-link")
async def deep_link(
    request: Request,
    session: SessionDep,
    resources: ResourcesDep,
    launch_id: Annotated[str, Form(max_length=100)],
    title: Annotated[str, Form(min_length=1, max_length=300)],
    minutes: Annotated[int, Form(ge=1, le=24 * 60)],
) -> Response:
    """Create the lesson the instructor placed and send the platform the signed response."""
    settings = resources.settings
    stored = adapter.RedisStorage(request.app.state.lti_redis)
    claims = await run_in_threadpool(stored.get_value, launch_id)
    if not isinstance(claims, dict):
        raise AuthError("this placement form expired or was used: start again from the LMS")
    rows = await _registrations(session, claims.get("iss"))
    key = await _tool_key(session, settings)
    try:
        valid = await run_in_threadpool(
            adapter.restore_launch,
            launch_id,
            secure=request.url.scheme == "https",
            platforms=[as_platform(r) for r in rows],
            tool_key=key,
            redis=request.app.state.lti_redis,
        )
    except adapter.LtiRefused as exc:
        raise AuthError(f"LTI deep linking refused: {exc.reason}") from None
    if not valid.is_deep_link or not valid.is_instructor:
        raise Forbidden("deep linking places ClassPulse in a course: instructors only")
    registration = _registration_of(rows, valid.claims)
    # One placement per form: the launch is used up before anything is created.
    if not await run_in_threadpool(stored.take, launch_id):
        raise AuthError("this placement form was used already: start again from the LMS")
    school_class = await provision.class_for_context(session, registration, valid.claims)
    lesson = await provision.new_lesson(session, school_class, title, minutes)
    return_url, token = await run_in_threadpool(
        valid.deep_link_response,
        title=title,
        url=f"{_tool_url(request, settings)}/lti/launch",
        custom={provision.LESSON_PARAMETER: str(lesson.id)},
    )
    session.add(
        AuditEntry(
            actor=f"lti:{registration.id}",
            action="lti.deep_link",
            subject=f"lesson:{lesson.id}",
            details={"class_id": str(school_class.id)},
        )
    )
    await session.commit()
    origin = urllib.parse.urlsplit(return_url)
    return _page(
        f'<form id="placement" method="post" action="{html.escape(return_url)}">'
        f'<input type="hidden" name="JWT" value="{html.escape(token)}">'
        '<noscript><button type="submit">Return to the course</button></noscript></form>'
        '<script src="/lti/autosubmit.js"></script>',
        form_action=f"{origin.scheme}://{origin.netloc}",
        framed_by=_return_origin(valid.claims),
    )


@protocol.get("/autosubmit.js")
async def autosubmit() -> Response:
    return Response(_AUTOSUBMIT_JS, media_type="text/javascript")


@protocol.get("/jwks")
async def jwks(session: SessionDep, resources: ResourcesDep) -> dict[str, Any]:
    """The tool's public keys (JWKS), which platforms verify its messages with."""
    await _tool_key(session, resources.settings)
    return await tool_keys.key_set(session)


# Management: the organisation's LMS key.


class ToolUrlsOut(BaseModel):
    """What an LMS administrator enters for ClassPulse (docs/integration.md)."""

    tool_url: str = Field(description="Tool URL / target link URI")
    login_url: str = Field(description="Initiate login URL (OIDC login initiation)")
    redirect_urls: list[str] = Field(description="Redirection URI(s)")
    jwks_url: str = Field(description="Public keyset URL of the tool")
    deep_linking_url: str = Field(description="Content selection / deep linking URL")


def tool_urls(tool_url: str) -> ToolUrlsOut:
    launch = f"{tool_url}/lti/launch"
    return ToolUrlsOut(
        tool_url=launch,
        login_url=f"{tool_url}/lti/login",
        redirect_urls=[launch],
        jwks_url=f"{tool_url}/lti/jwks",
        deep_linking_url=launch,
    )


@management.get("/tool", summary="The URLs to enter in the LMS for ClassPulse")
async def get_tool_urls(
    request: Request, principal: LmsDep, resources: ResourcesDep
) -> ToolUrlsOut:
    return tool_urls(_tool_url(request, resources.settings))


@management.get("/registrations", summary="The organisation's LTI platform registrations")
async def get_registrations(principal: LmsDep, session: SessionDep) -> list[RegistrationOut]:
    org = principal.organisation_id
    assert org is not None
    rows = await session.run_sync(lambda s: list_registrations(s, org))
    return [RegistrationOut.model_validate(r) for r in rows]


@management.post(
    "/registrations",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(409),
    summary="Register an LMS (issuer, client id, deployments, endpoints, keys)",
)
async def post_registration(
    body: RegistrationIn, principal: LmsDep, session: SessionDep
) -> RegistrationOut:
    org = principal.organisation_id
    assert org is not None
    row = await session.run_sync(lambda s: add_registration(s, org, body))
    session.add(
        AuditEntry(
            actor=f"{principal.kind.value}:{principal.key_id}",
            action="lti.register",
            subject=f"lti:{row.id}",
            details={"issuer": body.issuer, "client_id": body.client_id},
        )
    )
    out = RegistrationOut.model_validate(row)
    await session.commit()
    return out


@management.delete(
    "/registrations/{registration_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404),
    summary="Remove a registration: launches from that platform stop",
)
async def delete_registration(
    registration_id: uuid.UUID, principal: LmsDep, session: SessionDep
) -> Response:
    org = principal.organisation_id
    assert org is not None
    if not await session.run_sync(lambda s: remove_registration(s, org, registration_id)):
        raise NotFound(f"registration {registration_id} not found", field="registration")
    session.add(
        AuditEntry(
            actor=f"{principal.kind.value}:{principal.key_id}",
            action="lti.unregister",
            subject=f"lti:{registration_id}",
        )
    )
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class RosterOut(BaseModel):
    class_id: uuid.UUID
    enrolled: int = Field(description="Learners of the course's roster now enrolled")


@management.post(
    "/classes/{class_id}/roster",
    responses=error_responses(404, 409, 503),
    summary="Enrol a course's learners from the LMS (names and roles service)",
    description="Pseudonymous ids (LTI `sub`) only: no name or e-mail address is stored.",
)
async def sync_roster(
    class_id: uuid.UUID, principal: LmsDep, session: SessionDep, resources: ResourcesDep
) -> RosterOut:
    school_class = await session.get(SchoolClass, class_id)
    if school_class is None or school_class.organisation_id != principal.organisation_id:
        raise NotFound(f"class {class_id} not found", field="class")
    context = await session.scalar(select(LtiContext).where(LtiContext.class_id == class_id))
    if context is None or not context.memberships_url:
        raise InvalidValue(
            "this class has no LMS roster service: an instructor launch from an LMS with "
            "names and roles provisioning records it",
            field="class",
        )
    registration = await session.get(LtiRegistration, context.registration_id)
    assert registration is not None
    key = await _tool_key(session, resources.settings)
    enrolled = await _sync_roster(session, registration, class_id, key)
    if enrolled is None:
        raise ServiceUnavailable("the LMS's names and roles service failed: try again later")
    return RosterOut(class_id=class_id, enrolled=enrolled)


router = APIRouter(lifespan=_lifespan)
router.include_router(protocol)
router.include_router(management)
