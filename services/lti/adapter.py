"""A thin, typed adapter over pylti1p3's core for Starlette requests.

pylti1p3 validates everything LTI 1.3 asks of a tool (the OIDC login's
registration lookup, state and nonce, the id_token's signature against the
platform's keys, its expiry, issuer, audience and deployment, the message's
claims) and builds what the tool sends back (deep-linking response JWTs,
service-token requests). It is synchronous (``requests``), so the routes call
these functions in a worker thread. Nothing here validates a token itself:
this module only hands pylti1p3 the request's parameters and cookies, the
registrations and the tool key, and a Redis store for its nonces and launches.

Replay protection: pylti1p3 only checks that a nonce exists; this store
consumes it (GETDEL), so an id_token is accepted once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import requests
from pylti1p3.cookie import CookieService
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.deployment import Deployment
from pylti1p3.exception import LtiException, LtiServiceException, OIDCException
from pylti1p3.launch_data_storage.base import LaunchDataStorage
from pylti1p3.message_launch import MessageLaunch
from pylti1p3.names_roles import NamesRolesProvisioningService
from pylti1p3.oidc_login import OIDCLogin
from pylti1p3.redirect import Redirect
from pylti1p3.registration import Registration
from pylti1p3.request import Request
from pylti1p3.service_connector import ServiceConnector
from pylti1p3.session import SessionService
from pylti1p3.tool_config.abstract import ToolConfAbstract
from redis import Redis

#: Seconds a login's nonce, and a launch's data (deep-linking form), stay usable.
LAUNCH_SECONDS = 600
#: Seconds a platform's JWKS is cached (a platform that rotates keys waits this long).
JWKS_CACHE_SECONDS = 300
#: Seconds a platform gets to answer a key-set, token or roster request.
HTTP_TIMEOUT = 10.0
_REDIS_PREFIX = "classpulse:lti:"
_NONCE_MARK = "-nonce-"
_USER_AGENT = "ClassPulse-LTI"

MESSAGE_TYPE = "https://purl.imsglobal.org/spec/lti/claim/message_type"


class LtiRefused(Exception):
    """pylti1p3 refused a login or launch; ``reason`` is its message, safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PlatformRegistration:
    """What pylti1p3 needs of one registration (a row of ``lti_registrations``)."""

    issuer: str
    client_id: str
    deployment_ids: Sequence[str]
    auth_login_url: str
    auth_token_url: str
    auth_audience: str | None
    key_set_url: str | None
    key_set: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class ToolKey:
    """The tool's RSA key as PEM text; never logged."""

    kid: str
    private_pem: str = field(repr=False)
    public_pem: str


@dataclass(frozen=True, slots=True)
class CookieToSet:
    name: str
    value: str
    max_age: int | None


class _Request(Request):
    def __init__(self, params: Mapping[str, str], cookies: Mapping[str, str], secure: bool):
        self._params = params
        self.cookies = cookies
        self._secure = secure

    @property
    def session(self) -> None:
        # The launch data live in Redis (RedisStorage), not in a framework session.
        return None

    def is_secure(self) -> bool:
        return self._secure

    def get_param(self, key: str) -> str:
        return self._params.get(key, "")


class _Cookies(CookieService):
    """Reads the request's ``lti1p3-*`` cookies; collects those to set on the answer."""

    def __init__(self, request: _Request) -> None:
        self._request = request
        self.to_set: list[CookieToSet] = []

    def _name(self, name: str) -> str:
        return f"{self._cookie_prefix}-{name}"

    def get_cookie(self, name: str) -> str | None:
        return self._request.cookies.get(self._name(name))

    def set_cookie(self, name: str, value: str | int, exp: int | None = 3600) -> None:
        self.to_set.append(CookieToSet(self._name(name), str(value), exp))


class _Redirect(Redirect[str]):
    def __init__(self, url: str) -> None:
        self._url = url

    def do_redirect(self) -> str:
        return self._url

    def do_js_redirect(self) -> str:
        return self._url

    def set_redirect_url(self, location: str) -> None:
        self._url = location

    def get_redirect_url(self) -> str:
        return self._url


class RedisStorage(LaunchDataStorage[Any]):
    """pylti1p3's nonces, states and launch data in Redis, each with a TTL.

    No session cookie: the state cookie already binds the launch to the browser
    that logged in, and nonces are random and single-use.
    """

    def __init__(self, redis: Redis) -> None:
        super().__init__()
        self._redis = redis

    def get_session_cookie_name(self) -> str | None:
        return None

    def can_set_keys_expiration(self) -> bool:
        return True

    def _key(self, key: str) -> str:
        return _REDIS_PREFIX + self._prepare_key(key)

    def get_value(self, key: str) -> Any:
        raw = self._redis.get(self._key(key))
        return None if raw is None else json.loads(raw)

    def set_value(self, key: str, value: Any, exp: int | None = None) -> None:
        self._redis.set(self._key(key), json.dumps(value), ex=exp or LAUNCH_SECONDS)

    def take(self, key: str) -> bool:
        """Use a value up: True for the one caller that removed it."""
        return self._redis.getdel(self._key(key)) is not None

    def check_value(self, key: str) -> bool:
        if _NONCE_MARK in key:
            # Used up by the first launch that presents it: a replayed id_token fails here.
            return self._redis.getdel(self._key(key)) is not None
        return bool(self._redis.exists(self._key(key)))


class _ToolConf(ToolConfAbstract[_Request]):
    """The registrations of one issuer (loaded by the caller) and the tool key."""

    def __init__(self, platforms: Sequence[PlatformRegistration], tool_key: ToolKey) -> None:
        self._platforms = list(platforms)
        self._key = tool_key
        # Instance-level: the base class keeps this mapping on the class.
        self.issuers_relation_types = {}
        for platform in self._platforms:
            self.set_iss_has_many_clients(platform.issuer)

    def _registration(self, platform: PlatformRegistration) -> Registration:
        registration = Registration()
        registration.set_issuer(platform.issuer)
        registration.set_client_id(platform.client_id)
        registration.set_auth_login_url(platform.auth_login_url)
        registration.set_auth_token_url(platform.auth_token_url)
        if platform.auth_audience:
            registration.set_auth_audience(platform.auth_audience)
        registration.set_key_set_url(platform.key_set_url)
        registration.set_key_set(cast(Any, platform.key_set))
        registration.set_tool_private_key(self._key.private_pem)
        registration.set_tool_public_key(self._key.public_pem)
        return registration

    def _find(self, iss: str, client_id: str | None) -> PlatformRegistration | None:
        for platform in self._platforms:
            if platform.issuer == iss and (client_id is None or platform.client_id == client_id):
                return platform
        return None

    def find_registration_by_issuer(self, iss: str, *args: Any, **kwargs: Any) -> Registration:
        platform = self._find(iss, None)
        return self._registration(platform) if platform else cast(Registration, None)

    def find_registration_by_params(
        self, iss: str, client_id: str, *args: Any, **kwargs: Any
    ) -> Registration:
        # pylti1p3 tests the answer for falsiness: None means "not registered".
        platform = self._find(iss, client_id or None)
        return self._registration(platform) if platform else cast(Registration, None)

    def find_deployment(self, iss: str, deployment_id: str) -> Deployment | None:
        platform = self._find(iss, None)
        return _deployment(platform, deployment_id)

    def find_deployment_by_params(
        self, iss: str, deployment_id: str, client_id: str, *args: Any, **kwargs: Any
    ) -> Deployment | None:
        return _deployment(self._find(iss, client_id), deployment_id)


def _deployment(platform: PlatformRegistration | None, deployment_id: str) -> Deployment | None:
    if platform is None or deployment_id not in platform.deployment_ids:
        return None
    return Deployment().set_deployment_id(deployment_id)


def _http() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = _USER_AGENT
    # requests has no session-wide timeout; every call pylti1p3 makes goes through request().
    original = session.request

    def request_with_timeout(method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        return original(method, url, **kwargs)

    # A wrapper with requests' own signature would repeat its sixteen parameters.
    session.request = request_with_timeout  # type: ignore[method-assign, assignment]
    return session


def _flow_parts(
    params: Mapping[str, str],
    cookies: Mapping[str, str],
    secure: bool,
    platforms: Sequence[PlatformRegistration],
    tool_key: ToolKey,
) -> tuple[_Request, _ToolConf, SessionService, _Cookies]:
    """What a pylti1p3 login or launch takes first, in its order: the request, the
    registrations with the tool key, and the session and cookie services over the request."""
    request = _Request(params, cookies, secure)
    return request, _ToolConf(platforms, tool_key), SessionService(request), _Cookies(request)


class _Login(OIDCLogin[_Request, _ToolConf, SessionService, _Cookies, str]):
    def get_redirect(self, url: str) -> Redirect[str]:
        return _Redirect(url)


class _Launch(MessageLaunch[_Request, _ToolConf, SessionService, _Cookies]):
    def _get_request_param(self, key: str) -> str:
        return self._request.get_param(key)


@dataclass(frozen=True, slots=True)
class LoginRedirect:
    url: str
    cookies: list[CookieToSet]


def login(
    params: Mapping[str, str],
    cookies: Mapping[str, str],
    *,
    secure: bool,
    platforms: Sequence[PlatformRegistration],
    tool_key: ToolKey,
    redis: Redis,
    launch_url: str,
) -> LoginRedirect:
    """The OIDC login initiation: where to send the browser, and the state cookie to set."""
    request, tool_conf, session_service, cookie_service = _flow_parts(
        params, cookies, secure, platforms, tool_key
    )
    flow = _Login(request, tool_conf, session_service, cookie_service)
    flow.set_launch_data_storage(RedisStorage(redis))
    flow.set_launch_data_lifetime(LAUNCH_SECONDS)
    try:
        url = flow.redirect(launch_url)
    except (OIDCException, LtiException) as exc:
        raise LtiRefused(str(exc)) from None
    return LoginRedirect(url, cookie_service.to_set)


@dataclass(frozen=True, slots=True)
class ValidatedLaunch:
    """A launch pylti1p3 accepted: its id, claims and the helpers that act on it."""

    launch_id: str
    claims: Mapping[str, Any]
    _launch: _Launch = field(repr=False)

    @property
    def is_deep_link(self) -> bool:
        return bool(self._launch.is_deep_link_launch())

    @property
    def is_resource_link(self) -> bool:
        return bool(self._launch.is_resource_launch())

    @property
    def is_instructor(self) -> bool:
        """Instructor, teaching assistant, content developer or administrator."""
        launch = self._launch
        return bool(
            launch.check_teacher_access()
            or launch.check_teaching_assistant_access()
            or launch.check_designer_access()
            or launch.check_staff_access()
        )

    @property
    def is_learner(self) -> bool:
        return bool(self._launch.check_student_access())

    def deep_link_response(
        self, *, title: str, url: str, custom: Mapping[str, str]
    ) -> tuple[str, str]:
        """The platform's deep-link return URL and the signed ``LtiDeepLinkingResponse``
        placing one resource link."""
        resource = DeepLinkResource().set_url(url).set_title(title).set_custom_params(dict(custom))
        deep_link = self._launch.get_deep_link()
        settings = self.claims["https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"]
        token: str = deep_link.get_response_jwt([resource])
        return str(settings["deep_link_return_url"]), token


def roster(
    platform: PlatformRegistration, tool_key: ToolKey, memberships_url: str
) -> list[tuple[str, list[str]]]:
    """``(user_id, roles)`` of a course's active members, from the platform's names-and-roles
    service with a client-credentials token that a JWT signed by the tool key obtains."""
    registration = _ToolConf([platform], tool_key)._registration(platform)
    connector = ServiceConnector(registration, _http())
    service = NamesRolesProvisioningService(connector, {"context_memberships_url": memberships_url})
    try:
        members = service.get_members()
    except LtiServiceException as exc:
        # The platform's answer, not ours to repeat (it may echo the assertion).
        status = exc.response.status_code
        raise LtiRefused(f"the names and roles service answered {status}") from None
    except (LtiException, requests.RequestException, ValueError, KeyError) as exc:
        raise LtiRefused(f"the names and roles service failed ({type(exc).__name__})") from None
    return [
        (str(m["user_id"]), [str(r) for r in m.get("roles", [])])
        for m in members
        if "user_id" in m and m.get("status", "Active") == "Active"
    ]


def _launch_object(
    params: Mapping[str, str],
    cookies: Mapping[str, str],
    secure: bool,
    platforms: Sequence[PlatformRegistration],
    tool_key: ToolKey,
    redis: Redis,
) -> _Launch:
    storage = RedisStorage(redis)
    launch = _Launch(
        *_flow_parts(params, cookies, secure, platforms, tool_key),
        launch_data_storage=storage,
        requests_session=_http(),
    )
    launch.set_launch_data_lifetime(LAUNCH_SECONDS)
    launch.set_public_key_caching(storage, cache_lifetime=JWKS_CACHE_SECONDS)
    return launch


def validate_launch(
    params: Mapping[str, str],
    cookies: Mapping[str, str],
    *,
    secure: bool,
    platforms: Sequence[PlatformRegistration],
    tool_key: ToolKey,
    redis: Redis,
) -> ValidatedLaunch:
    """Validate an id_token POSTed to the launch URL; ``LtiRefused`` says why not."""
    launch = _launch_object(params, cookies, secure, platforms, tool_key, redis)
    try:
        claims = dict(launch.get_launch_data())
    except (LtiException, OIDCException) as exc:
        raise LtiRefused(str(exc)) from None
    except requests.RequestException as exc:
        problem = type(exc).__name__
        raise LtiRefused(f"the platform's key set could not be fetched ({problem})") from None
    return ValidatedLaunch(launch.get_launch_id(), claims, launch)


def restore_launch(
    launch_id: str,
    *,
    secure: bool,
    platforms: Sequence[PlatformRegistration],
    tool_key: ToolKey,
    redis: Redis,
) -> ValidatedLaunch:
    """A launch validated earlier (within ``LAUNCH_SECONDS``), from its id."""
    try:
        launch = _Launch.from_cache(
            launch_id,
            *_flow_parts({}, {}, secure, platforms, tool_key),
            launch_data_storage=RedisStorage(redis),
            requests_session=_http(),
        )
        claims = dict(launch.get_launch_data())
    except (LtiException, OIDCException) as exc:
        raise LtiRefused(str(exc)) from None
    return ValidatedLaunch(launch_id, claims, cast(_Launch, launch))


def unverified_issuer(params: Mapping[str, str]) -> str | None:
    """The ``iss`` a launch's id_token names, to load that issuer's registrations before
    pylti1p3 validates the token (this is a lookup key, not a check)."""
    import jwt

    token = params.get("id_token", "")
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    iss = claims.get("iss") if isinstance(claims, dict) else None
    return iss if isinstance(iss, str) else None


def jwk_of(public_pem: str) -> dict[str, Any]:
    """The public JWK (``kid`` the RFC 7638 thumbprint, ``alg`` RS256) as pylti1p3 signs."""
    return dict(Registration.get_jwk(public_pem))


def message_type(claims: Mapping[str, Any]) -> str:
    return str(claims.get(MESSAGE_TYPE, ""))
