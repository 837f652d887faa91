"""LTI 1.3 launches from a simulated Moodle: what they open and create, and what they refuse.

Every id_token is signed by the platform's own key and checked by pylti1p3 against
the platform's JWKS, served over HTTP; bad input leaves every row count as it was.
"""

from __future__ import annotations

import time
import urllib.parse
import uuid

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.lti.conftest import Tool, counts, launch, login, post_launch
from tests.lti.platform import INSTRUCTOR_ROLES, LEARNER_ROLES, Platform, Scenario, new_key

LTI = "https://purl.imsglobal.org/spec/lti/claim/"


def fragment(location: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).fragment))


def test_instructor_launch_opens_the_dashboard_with_a_single_use_ticket(
    tool: Tool, platform: Platform, clean_db: Engine
) -> None:
    platform.members = [
        {"status": "Active", "user_id": "u-ann", "name": "Ann Example", "email": "ann@example.org",
         "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"]},
        {"status": "Active", "user_id": "u-bo", "roles": ["Learner"]},
        {"status": "Inactive", "user_id": "u-gone", "roles": ["Learner"]},
        {"status": "Active", "user_id": "u-teach", "roles": ["Instructor"]},
    ]  # fmt: skip
    answer = launch(tool, platform, Scenario("u-teach", INSTRUCTOR_ROLES))
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(f"{tool.analytics_url}/dashboard#")
    assert "cp_" not in location  # no key in the URL: a ticket
    parts = fragment(location)
    with clean_db.connect() as conn:
        lesson = conn.execute(
            text("SELECT l.id, l.title, c.external_id, c.title AS class_title FROM lessons l JOIN classes c "
                 "ON c.id = l.class_id")
        ).one()  # fmt: skip
        students = set(conn.execute(text("SELECT external_id FROM students")).scalars())
        names = conn.execute(
            text("SELECT count(*) FROM students WHERE external_id LIKE '%Ann%' "
                 "OR external_id LIKE '%@%'")
        ).scalar_one()  # fmt: skip
    assert parts["lesson"] == str(lesson.id)
    assert (lesson.title, lesson.external_id, lesson.class_title) == (
        "Fractions",
        "course-42",
        "Maths 7B",
    )
    # The roster: learners by pseudonymous id; the inactive one and the instructor are not.
    assert students == {"u-ann", "u-bo"}
    assert names == 0
    assert platform.roster_calls == 1
    assert platform.token_requests[0]["scope"].endswith("contextmembership.readonly")

    # The dashboard trades the ticket once for a teacher session of this class.
    redeem = {"ticket": parts["ticket"], "lesson_id": parts["lesson"]}
    session = httpx.post(f"{tool.analytics_url}/v1/tickets/dashboard", json=redeem)
    assert session.status_code == 200, session.text
    credential = session.json()["credential"]
    again = httpx.post(f"{tool.analytics_url}/v1/tickets/dashboard", json=redeem)
    assert again.status_code == 401
    auth = {"Authorization": f"Bearer {credential}"}
    lessons = httpx.get(f"{tool.analytics_url}/v1/lessons", headers=auth).json()["lessons"]
    assert [item["id"] for item in lessons] == [parts["lesson"]]
    summary = httpx.get(f"{tool.analytics_url}/v1/lessons/{parts['lesson']}/summary", headers=auth)
    assert summary.status_code == 200
    # Class-level only: one student's data needs the per-student permission.
    student = httpx.get(
        f"{tool.analytics_url}/v1/lessons/{parts['lesson']}/students/u-ann/timeline",
        headers=auth,
    )
    assert student.status_code == 403

    # A second launch of the placement opens the same lesson; nothing new is created.
    before = counts(clean_db)
    second = launch(tool, platform, Scenario("u-teach", INSTRUCTOR_ROLES))
    assert fragment(second.headers["location"])["lesson"] == parts["lesson"]
    assert counts(clean_db) == before


def test_learner_launch_opens_the_classroom_with_a_token_for_this_launch(
    tool: Tool, platform: Platform, clean_db: Engine
) -> None:
    answer = launch(tool, platform, Scenario("u-learner-1", LEARNER_ROLES))
    assert answer.status_code == 303, answer.text
    location = urllib.parse.urlsplit(answer.headers["location"])
    lesson_id = location.path.rsplit("/", 1)[-1]
    assert location.path == f"/classroom/{lesson_id}"
    token = fragment(answer.headers["location"])["token"]
    me = httpx.get(
        f"{tool.url}/v1/lessons/{lesson_id}/me", headers={"Authorization": f"Bearer {token}"}
    ).json()
    # The registration grants the school's part; the student's own is the page's step.
    assert me["student_external_id"] == "u-learner-1"
    assert (me["school_permission"], me["own_consent"], me["lesson_live"]) == (True, False, True)
    with clean_db.connect() as conn:
        enrolled = conn.execute(
            text("SELECT s.external_id FROM students s JOIN enrolments e ON e.student_id = s.id")
        ).scalars().all()  # fmt: skip
    assert enrolled == ["u-learner-1"]


def test_deep_linking_places_a_lesson_signed_by_the_tool(
    tool: Tool, platform: Platform, clean_db: Engine
) -> None:
    answer = launch(
        tool,
        platform,
        Scenario("u-teach", INSTRUCTOR_ROLES, message_type="LtiDeepLinkingRequest",
                 resource_link_id=None),
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    # Moodle's and Canvas's content selection is a dialog with an iframe: the LMS may frame it.
    assert f"frame-ancestors {platform.url}" in answer.headers["content-security-policy"]
    page = answer.text
    launch_id = page.split('name="launch_id" value="', 1)[1].split('"', 1)[0]
    form = {"launch_id": launch_id, "title": "Quiz day", "minutes": "45"}
    placed = httpx.post(f"{tool.url}/lti/deep-link", data=form)
    assert placed.status_code == 200, placed.text
    assert f"form-action {platform.url}" in placed.headers["content-security-policy"]
    assert f"frame-ancestors {platform.url}" in placed.headers["content-security-policy"]
    token = placed.text.split('name="JWT" value="', 1)[1].split('"', 1)[0]
    # The platform checks the response against the tool's JWKS, as Moodle does.
    claims = platform.verify_from_tool(token, platform.issuer)
    assert claims["iss"] == platform.client_id
    assert claims[LTI + "message_type"] == "LtiDeepLinkingResponse"
    assert claims[LTI + "deployment_id"] == platform.deployment_id
    (item,) = claims["https://purl.imsglobal.org/spec/lti-dl/claim/content_items"]
    assert item["type"] == "ltiResourceLink"
    assert item["title"] == "Quiz day"
    lesson_id = item["custom"]["classpulse_lesson"]
    with clean_db.connect() as conn:
        minutes = conn.execute(
            text("SELECT extract(epoch FROM ends_at - starts_at) / 60 FROM lessons WHERE id = :l"),
            {"l": lesson_id},
        ).scalar_one()
    assert minutes == 45
    # The form works once.
    assert httpx.post(f"{tool.url}/lti/deep-link", data=form).status_code == 401

    # A learner launching the placed link lands in that lesson.
    learner = launch(
        tool, platform,
        Scenario("u-l2", LEARNER_ROLES, resource_link_id="placed-1",
                 custom={"classpulse_lesson": lesson_id}),
    )  # fmt: skip
    assert urllib.parse.urlsplit(learner.headers["location"]).path == f"/classroom/{lesson_id}"


def test_roster_sync_on_request(tool: Tool, platform: Platform, clean_db: Engine) -> None:
    answer = launch(tool, platform, Scenario("u-teach", INSTRUCTOR_ROLES))
    assert answer.status_code == 303
    with clean_db.connect() as conn:
        class_id = conn.execute(text("SELECT id FROM classes")).scalar_one()
    platform.members = [
        {"status": "Active", "user_id": "u-new", "email": "new@example.org", "roles": ["Learner"]}
    ]
    synced = httpx.post(f"{tool.url}/v1/lti/classes/{class_id}/roster", headers=tool.lms)
    assert synced.status_code == 200, synced.text
    assert synced.json()["enrolled"] == 1
    with clean_db.connect() as conn:
        students = conn.execute(text("SELECT external_id FROM students")).scalars().all()
    assert students == ["u-new"]
    # A platform that refuses the token leaves the roster as it was: 503, said plainly.
    platform.members = [{"status": "Active", "user_id": "u-other", "roles": ["Learner"]}]
    platform.client_id = "changed"  # the platform no longer knows the tool's client id
    refused = httpx.post(f"{tool.url}/v1/lti/classes/{class_id}/roster", headers=tool.lms)
    assert refused.status_code == 503
    assert "names and roles" in refused.json()["error"]["message"]
    with clean_db.connect() as conn:
        after = conn.execute(text("SELECT external_id FROM students")).scalars().all()
    assert after == ["u-new"]


def test_tool_jwks_and_urls(tool: Tool, platform: Platform) -> None:
    keys = httpx.get(f"{tool.url}/lti/jwks").json()["keys"]
    assert len(keys) == 1
    assert (keys[0]["kty"], keys[0]["alg"]) == ("RSA", "RS256")
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(keys[0])  # public half only
    urls = httpx.get(f"{tool.url}/v1/lti/tool", headers=tool.lms).json()
    assert urls["login_url"] == f"{tool.url}/lti/login"
    assert urls["redirect_urls"] == [f"{tool.url}/lti/launch"]
    assert urls["jwks_url"] == f"{tool.url}/lti/jwks"
    listed = httpx.get(f"{tool.url}/v1/lti/registrations", headers=tool.lms).json()
    assert [r["issuer"] for r in listed] == [platform.issuer]
    duplicate = httpx.post(
        f"{tool.url}/v1/lti/registrations", json=platform.registration(), headers=tool.lms
    )
    assert duplicate.status_code == 409


# ---- bad input: 401/403, a clear message, nothing created ---------------------------


def _refused(answer: httpx.Response, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert words.lower() in answer.json()["error"]["message"].lower(), answer.text


def _bad_launch(tool: Tool, platform: Platform, **claims: object) -> httpx.Response:
    hint = platform.add(Scenario("u-bad", LEARNER_ROLES, claims=dict(claims)))
    started = login(tool, platform, hint)
    return post_launch(tool, platform.id_token(hint, started.nonce), started.state, started.cookies)


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"iss": "https://evil.example.org"}, "registration not found"),
        ({"aud": "someone-else"}, "registration not found"),
        ({LTI + "deployment_id": "99"}, "unable to find deployment"),
        ({"exp": int(time.time()) - 120, "iat": int(time.time()) - 200}, "expired"),
        ({LTI + "version": "1.1"}, "version"),
    ],
    ids=["issuer", "audience", "deployment", "expired", "version"],
)
def test_bad_claims_are_refused_and_create_nothing(
    tool: Tool, platform: Platform, clean_db: Engine, claims: dict[str, object], words: str
) -> None:
    before = counts(clean_db)
    _refused(_bad_launch(tool, platform, **claims), 401, words)
    assert counts(clean_db) == before


@pytest.mark.parametrize("roles", [INSTRUCTOR_ROLES, LEARNER_ROLES], ids=["instructor", "learner"])
def test_a_launch_without_a_course_is_refused_and_creates_nothing(
    tool: Tool, platform: Platform, clean_db: Engine, roles: list[str]
) -> None:
    before = counts(clean_db)
    no_course = {LTI + "context": {"title": "Maths 7B"}}
    answer = launch(tool, platform, Scenario("u-bad", roles, claims=no_course))
    # Both launches provision the class and lesson the same way, with the same refusal.
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == {
        "code": "validation_error",
        "message": "LTI launch refused: the launch names no course (its context claim has no id)",
        "field": None,
    }
    assert counts(clean_db) == before


@pytest.mark.parametrize("sub", ["\x00\x00", "  ", "\x00 \x00"], ids=["nul", "spaces", "both"])
def test_a_learner_launch_without_a_usable_student_id_is_refused(
    tool: Tool, platform: Platform, clean_db: Engine, sub: str
) -> None:
    before = counts(clean_db)
    answer = launch(tool, platform, Scenario(sub, LEARNER_ROLES))
    assert answer.status_code == 422, answer.text
    assert "anonymous launch has no student id" in answer.json()["error"]["message"]
    assert counts(clean_db) == before


def test_a_platform_registered_with_its_keyset_inline_and_no_school_consent(
    tool: Tool, platform: Platform, clean_db: Engine
) -> None:
    """A platform that publishes no keyset URL is registered with its JWKS itself; without
    ``school_consent`` a learner's launch enrols them but grants nothing on the school's
    behalf: the LMS (or the school) must still give its part."""
    removed = httpx.delete(
        f"{tool.url}/v1/lti/registrations/{tool.registration_id}", headers=tool.lms
    )
    assert removed.status_code == 204
    inline = {**platform.registration(), "key_set": {"keys": [platform.jwk]}}
    del inline["key_set_url"]
    added = httpx.post(f"{tool.url}/v1/lti/registrations", json=inline, headers=tool.lms)
    assert added.status_code == 201, added.text
    assert (added.json()["key_set_url"], added.json()["school_consent"]) == (None, False)

    answer = launch(tool, platform, Scenario("u-learner-2", LEARNER_ROLES))
    assert answer.status_code == 303, answer.text
    lesson_id = urllib.parse.urlsplit(answer.headers["location"]).path.rsplit("/", 1)[-1]
    student = {"Authorization": f"Bearer {fragment(answer.headers['location'])['token']}"}
    me = httpx.get(f"{tool.url}/v1/lessons/{lesson_id}/me", headers=student).json()
    assert (me["student_external_id"], me["school_permission"]) == ("u-learner-2", False)
    with clean_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM consents")).scalar_one() == 0

    # A token signed by another key is refused against the inline keyset too.
    hint = platform.add(Scenario("u-learner-3", LEARNER_ROLES))
    started = login(tool, platform, hint)
    forged_key, _ = new_key()
    forged = platform.sign(platform.claims(platform.scenarios[hint], started.nonce), key=forged_key)
    _refused(post_launch(tool, forged, started.state, started.cookies), 401, "signature")


def test_a_long_student_id_is_cut_as_the_roster_cuts_it(
    tool: Tool, platform: Platform, clean_db: Engine
) -> None:
    # Cut at 200 characters, the cut end loses its spaces: the id the launch enrols.
    answer = launch(tool, platform, Scenario("a" * 199 + " tail", LEARNER_ROLES))
    assert answer.status_code == 303, answer.text
    with clean_db.connect() as conn:
        assert conn.execute(text("SELECT external_id FROM students")).scalars().all() == ["a" * 199]


def test_wrong_nonce_signature_state_and_replay_are_refused(
    tool: Tool, platform: Platform, clean_db: Engine
) -> None:
    before = counts(clean_db)
    hint = platform.add(Scenario("u-bad", LEARNER_ROLES))

    started = login(tool, platform, hint)
    _refused(post_launch(tool, platform.id_token(hint, "not-the-nonce"), started.state,
                         started.cookies), 401, "invalid nonce")  # fmt: skip

    started = login(tool, platform, hint)
    forged_key, _ = new_key()
    forged = platform.sign(platform.claims(platform.scenarios[hint], started.nonce), key=forged_key)
    _refused(post_launch(tool, forged, started.state, started.cookies), 401, "signature")

    started = login(tool, platform, hint)
    token = platform.id_token(hint, started.nonce)
    _refused(post_launch(tool, token, started.state, {}), 401, "state not found")
    assert counts(clean_db) == before

    # The good launch works once; the same id_token again is a replay.
    started = login(tool, platform, hint)
    token = platform.id_token(hint, started.nonce)
    assert post_launch(tool, token, started.state, started.cookies).status_code == 303
    after = counts(clean_db)
    _refused(post_launch(tool, token, started.state, started.cookies), 401, "invalid nonce")
    assert counts(clean_db) == after


def test_unknown_registration_is_refused_at_login(
    tool: Tool, platform: Platform, clean_db: Engine
) -> None:
    before = counts(clean_db)
    params = platform.login_params(platform.add(Scenario("u-x", LEARNER_ROLES)))
    answer = httpx.post(f"{tool.url}/lti/login", data={**params, "iss": "https://unknown.example"})
    _refused(answer, 401, "registration")
    answer = httpx.post(f"{tool.url}/lti/login", data={**params, "client_id": "nope"})
    _refused(answer, 401, "registration")
    # A removed registration: its platform's launches stop.
    removed = httpx.delete(
        f"{tool.url}/v1/lti/registrations/{tool.registration_id}", headers=tool.lms
    )
    assert removed.status_code == 204
    _refused(httpx.post(f"{tool.url}/lti/login", data=params), 401, "registration")
    assert counts(clean_db) == before


def test_learner_cannot_use_the_instructors_deep_link(
    tool: Tool, platform: Platform, clean_db: Engine
) -> None:
    before = counts(clean_db)
    answer = launch(
        tool, platform,
        Scenario("u-learner", LEARNER_ROLES, message_type="LtiDeepLinkingRequest",
                 resource_link_id=None),
    )  # fmt: skip
    _refused(answer, 403, "instructors only")
    # Nor the placement form of an instructor's launch with a made-up or learner launch id.
    forged = {"launch_id": f"lti1p3-launch-{uuid.uuid4()}", "title": "x", "minutes": "5"}
    _refused(httpx.post(f"{tool.url}/lti/deep-link", data=forged), 401, "expired")
    assert counts(clean_db) == before
    assert platform.deep_links == []
