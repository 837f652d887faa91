"""A simulated LTI 1.3 platform that behaves as Moodle 4.5 does, served over real HTTP.

It has its own RSA key and JWKS, starts launches (third-party-initiated login),
answers the tool's OIDC authorisation request with a signed id_token in an
auto-submitted form post, issues OAuth2 client-credentials tokens (checking the
tool's signed assertion against the tool's JWKS), serves a names-and-roles
membership container, and receives deep-linking responses (checked against the
tool's JWKS too).
"""

from __future__ import annotations

import html
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse
from jwt.algorithms import RSAAlgorithm

from classpulse.harness.ports import free_port

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
INSTRUCTOR_ROLES = [
    "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator",
    "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor",
    "http://purl.imsglobal.org/vocab/lis/v2/system/person#Administrator",
]
LEARNER_ROLES = ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"]
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"


def new_key() -> tuple[Any, dict[str, Any]]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = dict(RSAAlgorithm.to_jwk(private.public_key(), as_dict=True))
    jwk.update(kid=uuid.uuid4().hex, alg="RS256", use="sig")
    return private, jwk


def pem(private: Any) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Scenario:
    """One user launching one placement (what Moodle's lti_message_hint stands for)."""

    user_id: str
    roles: list[str]
    message_type: str = "LtiResourceLinkRequest"
    context_id: str = "course-42"
    resource_link_id: str | None = "link-7"
    custom: dict[str, str] = field(default_factory=dict)
    #: Overrides applied to the id_token's claims (bad-input tests).
    claims: dict[str, Any] = field(default_factory=dict)


class Platform:
    def __init__(self, *, deployment_id: str = "1") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = self.url
        self.client_id = "cp-" + uuid.uuid4().hex[:10]
        self.deployment_id = deployment_id
        self.private, self.jwk = new_key()
        self.tool_url = ""
        self.scenarios: dict[str, Scenario] = {}
        self.members: list[dict[str, Any]] = []
        self.tokens: set[str] = set()
        self.token_requests: list[dict[str, Any]] = []
        self.deep_links: list[dict[str, Any]] = []
        self.roster_calls = 0

    # ---- what the tests use ------------------------------------------------------

    def registration(self) -> dict[str, Any]:
        """What an administrator copies from this platform into ClassPulse."""
        return {
            "issuer": self.issuer,
            "client_id": self.client_id,
            "deployment_ids": [self.deployment_id],
            "auth_login_url": f"{self.url}/mod/lti/auth.php",
            "auth_token_url": f"{self.url}/mod/lti/token.php",
            "key_set_url": f"{self.url}/mod/lti/certs.php",
        }

    def add(self, scenario: Scenario) -> str:
        hint = uuid.uuid4().hex
        self.scenarios[hint] = scenario
        return hint

    def start_url(self, hint: str) -> str:
        return f"{self.url}/start/{hint}"

    def course_url(self, hint: str) -> str:
        """A course page that shows the launch in an iframe, as content selection is shown."""
        return f"{self.url}/course/{hint}"

    def login_params(self, hint: str) -> dict[str, str]:
        scenario = self.scenarios[hint]
        return {
            "iss": self.issuer,
            "target_link_uri": f"{self.tool_url}/lti/launch",
            "login_hint": scenario.user_id,
            "lti_message_hint": hint,
            "client_id": self.client_id,
            "lti_deployment_id": self.deployment_id,
        }

    def claims(self, scenario: Scenario, nonce: str) -> dict[str, Any]:
        now = int(time.time())
        body: dict[str, Any] = {
            "nonce": nonce,
            "iat": now,
            "exp": now + 60,
            "iss": self.issuer,
            "aud": self.client_id,
            LTI + "deployment_id": self.deployment_id,
            LTI + "target_link_uri": f"{self.tool_url}/lti/launch",
            "sub": scenario.user_id,
            LTI + "lis": {"person_sourcedid": "", "course_section_sourcedid": ""},
            LTI + "roles": scenario.roles,
            LTI + "context": {
                "id": scenario.context_id,
                "label": "M7B",
                "title": "Maths 7B",
                "type": ["CourseSection"],
            },
            LTI + "launch_presentation": {
                "locale": "en",
                "document_target": "window",
                "return_url": f"{self.url}/mod/lti/return.php",
            },
            LTI + "ext": {"user_username": "ann", "lms": "moodle-2"},
            LTI + "tool_platform": {
                "product_family_code": "moodle",
                "version": "2024100700",
                "guid": "moodle.example.org",
                "name": "Test Moodle",
                "description": "Test Moodle",
            },
            LTI + "version": "1.3.0",
            LTI + "message_type": scenario.message_type,
            LTI + "custom": scenario.custom,
            # Moodle sends these when its privacy settings allow: ClassPulse must not keep them.
            "given_name": "Ann",
            "family_name": "Example",
            "name": "Ann Example",
            "email": "ann@example.org",
            "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice": {
                "context_memberships_url": f"{self.url}/nrps/{scenario.context_id}",
                "service_versions": ["1.0", "2.0"],
            },
        }
        if scenario.message_type == "LtiResourceLinkRequest" and scenario.resource_link_id:
            body[LTI + "resource_link"] = {"title": "Fractions", "id": scenario.resource_link_id}
        if scenario.message_type == "LtiDeepLinkingRequest":
            body["https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"] = {
                "deep_link_return_url": f"{self.url}/mod/lti/contentitem_return.php",
                "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["frame", "iframe", "window"],
                "accept_copy_advice": False,
                "accept_multiple": True,
                "accept_unsigned": False,
                "auto_create": False,
                "can_confirm": False,
                "title": "",
                "text": "",
            }
        body.update(scenario.claims)
        return {k: v for k, v in body.items() if v is not None}

    def sign(self, claims: dict[str, Any], *, key: Any = None, kid: str | None = None) -> str:
        return jwt.encode(
            claims,
            pem(key or self.private),
            algorithm="RS256",
            headers={"kid": kid or self.jwk["kid"]},
        )

    def id_token(self, hint: str, nonce: str) -> str:
        return self.sign(self.claims(self.scenarios[hint], nonce))

    def tool_keys(self) -> dict[str, Any]:
        return httpx.get(f"{self.tool_url}/lti/jwks", timeout=10).json()

    def verify_from_tool(self, token: str, audience: str) -> dict[str, Any]:
        """A JWT the tool signed, checked against the tool's published JWKS."""
        header = jwt.get_unverified_header(token)
        keys = {k["kid"]: k for k in self.tool_keys()["keys"]}
        public = RSAAlgorithm.from_jwk(keys[header["kid"]])
        return dict(jwt.decode(token, public, algorithms=["RS256"], audience=audience))  # type: ignore[arg-type]

    # ---- the server --------------------------------------------------------------

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/mod/lti/certs.php")
        async def certs() -> dict[str, Any]:
            return {"keys": [self.jwk]}

        @app.get("/start/{hint}")
        async def start(hint: str) -> HTMLResponse:
            # Moodle starts a launch with an auto-submitted form to the tool's login URL.
            return _autopost(f"{self.tool_url}/lti/login", self.login_params(hint))

        @app.get("/course/{hint}")
        async def course(hint: str) -> HTMLResponse:
            start = html.escape(f"/start/{hint}")
            return HTMLResponse(f'<iframe name="tool" src="{start}" width="900" height="600">')

        @app.get("/mod/lti/auth.php")
        async def auth(request: Request) -> HTMLResponse:
            q = request.query_params
            hint = q.get("lti_message_hint", "")
            scenario = self.scenarios.get(hint)
            if (
                scenario is None
                or q.get("client_id") != self.client_id
                or q.get("redirect_uri") != f"{self.tool_url}/lti/launch"
                or q.get("response_type") != "id_token"
                or q.get("scope") != "openid"
                or q.get("response_mode") != "form_post"
                or q.get("login_hint") != scenario.user_id
            ):
                return HTMLResponse("invalid authentication request", status_code=400)
            token = self.sign(self.claims(scenario, q["nonce"]))
            return _autopost(q["redirect_uri"], {"id_token": token, "state": q["state"]})

        @app.post("/mod/lti/token.php")
        async def token(
            grant_type: str = Form(),
            client_assertion_type: str = Form(),
            client_assertion: str = Form(),
            scope: str = Form(),
        ) -> JSONResponse:
            try:
                claims = self.verify_from_tool(client_assertion, f"{self.url}/mod/lti/token.php")
            except (jwt.InvalidTokenError, KeyError):
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            if (
                grant_type != "client_credentials"
                or client_assertion_type != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                or claims.get("iss") != self.client_id
                or claims.get("sub") != self.client_id
            ):
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            access = secrets.token_urlsafe(24)
            self.tokens.add(access)
            self.token_requests.append({"scope": scope, "claims": claims})
            return JSONResponse(
                {"access_token": access, "token_type": "Bearer", "expires_in": 3600, "scope": scope}
            )

        @app.get("/nrps/{context_id}")
        async def memberships(
            context_id: str, authorization: str = Header(""), accept: str = Header("")
        ) -> JSONResponse:
            if authorization.removeprefix("Bearer ") not in self.tokens:
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            if "application/vnd.ims.lti-nrps.v2.membershipcontainer+json" not in accept:
                return JSONResponse({"error": "not acceptable"}, status_code=406)
            self.roster_calls += 1
            return JSONResponse(
                {
                    "id": f"{self.url}/nrps/{context_id}",
                    "context": {"id": context_id, "label": "M7B", "title": "Maths 7B"},
                    "members": self.members,
                },
                media_type="application/vnd.ims.lti-nrps.v2.membershipcontainer+json",
            )

        @app.post("/mod/lti/contentitem_return.php")
        async def deep_link_return(JWT: str = Form()) -> HTMLResponse:  # noqa: N803
            claims = self.verify_from_tool(JWT, self.issuer)
            self.deep_links.append(claims)
            return HTMLResponse("<p id='placed'>placed</p>")

        return app


def _autopost(action: str, fields: dict[str, str]) -> HTMLResponse:
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in fields.items()
    )
    return HTMLResponse(
        f'<form id="f" method="post" action="{html.escape(action)}">{inputs}</form>'
        "<script>document.getElementById('f').submit()</script>"
    )
