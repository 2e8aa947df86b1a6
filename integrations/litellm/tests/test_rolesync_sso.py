"""Tests of the LiteLLM handler. The integration tests post to a real rolesync
login server: run them through `go test ./internal/login -run LiteLLMHandler`,
which starts the server, creates the RoleMappings and sets ROLESYNC_TEST_*.
Stand-ins exist only for LiteLLM's types (CustomOpenID below, shaped like the
pydantic model; SSOUserDefinedValues and LitellmUserRoles in standins/), and
litellm_writes() repeats, line for line in what it reads, what LiteLLM's
ui_sso.py does with the object after the hook."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import socket
import sys
import threading
import time
import unittest
from typing import Any, Optional

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "standins"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import rolesync_sso  # noqa: E402
from litellm.proxy._types import LitellmUserRoles  # noqa: E402  (the stand-in)


class CustomOpenID:
    """Stand-in for LiteLLM's CustomOpenID (litellm/proxy/management_endpoints/
    types.py): fastapi_sso's OpenID (id, email, first_name, last_name,
    display_name, picture, provider) plus team_ids, user_role (a
    LitellmUserRoles or None) and extra_fields. Like the pydantic model it is,
    it refuses to set a field it does not declare (pydantic v2 raises
    ValueError: object has no field)."""

    _fields = ("id", "email", "first_name", "last_name", "display_name", "picture", "provider",
               "team_ids", "user_role", "extra_fields")

    def __init__(self, team_ids: Optional[list[str]] = None, **values: Any) -> None:
        for name in self._fields:
            object.__setattr__(self, name, None)
        object.__setattr__(self, "team_ids", list(team_ids or []))
        for name, value in values.items():
            setattr(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._fields:
            raise ValueError(f'"CustomOpenID" object has no field "{name}"')
        object.__setattr__(self, name, value)


_VALID_ROLES = {r.value for r in LitellmUserRoles}


def litellm_writes(result: Any) -> dict[str, Any]:
    """What LiteLLM's ui_sso.py takes from the object after the hook:
    _build_sso_user_update_data's update of an existing row (user_role when
    it is a valid role, an enum turned into its value), the role
    _get_user_email_and_id_from_result reads for generic SSO
    (GENERIC_USER_ROLE_ATTRIBUTE, default "role"), and the teams
    add_user_to_teams_from_sso_response adds (result.team_ids)."""
    update: dict[str, Any] = {}
    sso_role = getattr(result, "user_role", None)
    if sso_role is not None:
        sso_role = sso_role.value if isinstance(sso_role, LitellmUserRoles) else sso_role
        if sso_role in _VALID_ROLES:
            update["user_role"] = sso_role
    return {
        "update": update,
        "generic_role": getattr(result, os.environ.get("GENERIC_USER_ROLE_ATTRIBUTE") or "role", None),
        "teams": getattr(result, "team_ids", []),
    }


class NestClaims(unittest.TestCase):
    def test_dotted_names_become_nested_objects(self) -> None:
        got = rolesync_sso.nest_claims({
            "resource_access.litellm.roles": ["litellm-admin"],
            "resource_access.account.roles": ["view-profile"],
            "groups": ["/ai/team-a"],
            "realm_access.roles": ["offline_access"],
            "missing": None,
        })
        self.assertEqual(got, {
            "resource_access": {"litellm": {"roles": ["litellm-admin"]}, "account": {"roles": ["view-profile"]}},
            "groups": ["/ai/team-a"],
            "realm_access": {"roles": ["offline_access"]},
        })

    def test_a_value_and_a_longer_name_keep_both(self) -> None:
        got = rolesync_sso.nest_claims({"org": "acme", "org.unit": "ai"})
        self.assertEqual(got, {"org": "acme", "org.unit": "ai"})

    def test_event_carries_team_ids_id_and_email(self) -> None:
        ev = rolesync_sso.build_event(CustomOpenID(id="ana", email="ana@example.com", team_ids=["t1"],
                                                   extra_fields={"a.b": 1, "email_verified": True}), "ns", "https://idp.example.com")
        self.assertEqual(ev["userID"], "ana")
        self.assertEqual(ev["email"], "ana@example.com")
        self.assertEqual(ev["namespace"], "ns")
        self.assertEqual(ev["claims"], {"a": {"b": 1}, "email_verified": True, "team_ids": ["t1"], "email": "ana@example.com"})

    def test_unverified_email_binds_nothing(self) -> None:
        env = dict(os.environ)
        try:
            os.environ.pop("ROLESYNC_TRUST_EMAIL", None)
            for extra in ({}, {"email_verified": False}, {"email_verified": "false"}):
                ev = rolesync_sso.build_event(CustomOpenID(id="x", email="\u212aim@example.com", extra_fields=extra), "ns", "https://i")
                self.assertNotIn("email", ev, f"an unverified email was sent as the binding email ({extra})")
                self.assertEqual(ev["claims"]["email"], "\u212aim@example.com", "the email claim must stay")
            ev = rolesync_sso.build_event(CustomOpenID(id="x", email="kim@example.com", extra_fields={"email_verified": "true"}), "ns", "https://i")
            self.assertEqual(ev["email"], "kim@example.com")
            os.environ["ROLESYNC_TRUST_EMAIL"] = "true"
            ev = rolesync_sso.build_event(CustomOpenID(id="x", email="kim@example.com", extra_fields={}), "ns", "https://i")
            self.assertEqual(ev["email"], "kim@example.com")
        finally:
            os.environ.clear()
            os.environ.update(env)


def need(name: str) -> str:
    v = os.environ.get(name)
    if not v:
        raise RuntimeError(f"{name} is not set: run these tests through "
                           "`go test ./internal/login -run LiteLLMHandler` (it starts the login server)")
    return v


class AgainstTheLoginServer(unittest.TestCase):
    """The handler against the real login server."""

    def setUp(self) -> None:
        self.env = dict(os.environ)
        os.environ.update({
            "ROLESYNC_URL": need("ROLESYNC_TEST_URL"),
            "ROLESYNC_NAMESPACE": need("ROLESYNC_TEST_NAMESPACE"),
            "ROLESYNC_SECRET_FILE": need("ROLESYNC_TEST_SECRET_FILE"),
        })
        os.environ.pop("ROLESYNC_FAIL_OPEN", None)

    def tearDown(self) -> None:
        os.environ.clear()
        os.environ.update(self.env)

    def login(self, issuer_var: str, user: CustomOpenID) -> Any:
        os.environ["ROLESYNC_ISSUER"] = need(issuer_var)
        return asyncio.run(rolesync_sso.custom_sso_handler(user))

    def test_keycloak_shaped_login_gets_the_mapped_role(self) -> None:
        # GENERIC_USER_EXTRA_ATTRIBUTES=resource_access.litellm.roles,groups,email_verified
        user = CustomOpenID(id="kc-ana", email="kc-ana@example.com", provider="generic", team_ids=["team-a"],
                            extra_fields={"resource_access.litellm.roles": ["litellm-admin", "uma_authorization"],
                                          "groups": ["/ai/platform"], "email_verified": True})
        got = self.login("ROLESYNC_TEST_KEYCLOAK_ISSUER", user)
        self.assertEqual(got["user_role"], "proxy_admin")
        self.assertEqual(got["user_id"], "kc-ana")
        self.assertEqual(got["user_email"], "kc-ana@example.com")
        # The mapping's team rule (/ai/(.+) -> ai-$1) decides LiteLLM's team_ids,
        # and LiteLLM's own per-login writes now say what rolesync says.
        self.assertEqual(litellm_writes(user), {"update": {"user_role": "proxy_admin"}, "generic_role": "proxy_admin",
                                                "teams": ["ai-platform"]})
        self.assertIs(user.user_role, LitellmUserRoles.PROXY_ADMIN)

    def test_litellm_role_and_teams_from_the_idp_are_replaced(self) -> None:
        # The IdP said proxy_admin (LiteLLM's GENERIC_USER_ROLE_ATTRIBUTE) and
        # team-x; rolesync grants internal_user and, its mappings owning teams,
        # no team at all: LiteLLM must write exactly that, the empty list included.
        os.environ["GENERIC_USER_ROLE_ATTRIBUTE"] = "user_role"
        # The group "/ai/" matches the role rule (glob /ai/*) but not the team rule (regex /ai/(.+)).
        user = CustomOpenID(id="kc-bea", email="kc-bea@example.com", team_ids=["team-x", "ai-admins"],
                            user_role=LitellmUserRoles.PROXY_ADMIN, extra_fields={"groups": ["/ai/"]})
        got = self.login("ROLESYNC_TEST_KEYCLOAK_ISSUER", user)
        self.assertEqual(got["user_role"], "internal_user")
        writes = litellm_writes(user)
        self.assertEqual(writes["update"], {"user_role": "internal_user"})
        self.assertEqual(writes["teams"], [], "team_ids must be exactly rolesync's grants, none here")

    def test_the_default_role_attribute_is_set_too(self) -> None:
        # GENERIC_USER_ROLE_ATTRIBUTE unset: LiteLLM reads result.role, a name
        # CustomOpenID does not declare; the handler still sets it.
        os.environ.pop("GENERIC_USER_ROLE_ATTRIBUTE", None)
        user = CustomOpenID(id="kc-cai", extra_fields={"groups": ["/ai/search"]})
        self.login("ROLESYNC_TEST_KEYCLOAK_ISSUER", user)
        self.assertEqual(litellm_writes(user)["generic_role"], "internal_user")
        self.assertEqual(litellm_writes(user)["teams"], ["ai-search"])

    def test_teams_are_left_to_litellm_where_no_mapping_owns_teams(self) -> None:
        user = CustomOpenID(id="8b3c4d5e-0000-4c55-9e0a-3f2b1c4d5e6f", provider="microsoft", team_ids=["entra-group"],
                            extra_fields={"roles": ["LiteLLM.Admin"]})
        self.login("ROLESYNC_TEST_ENTRA_ISSUER", user)
        self.assertEqual(litellm_writes(user), {"update": {"user_role": "proxy_admin"}, "generic_role": "proxy_admin",
                                                "teams": ["entra-group"]})

    def test_entra_shaped_login_gets_the_mapped_role(self) -> None:
        # Entra: app roles in "roles", group object ids in "groups", the user's object id as LiteLLM's id
        user = CustomOpenID(id="6f1e2c3a-0b1d-4c55-9e0a-3f2b1c4d5e6f", email="bo@contoso.com", provider="microsoft",
                            extra_fields={"roles": ["LiteLLM.Viewer"],
                                          "groups": ["0c9e6f5a-1111-4a2b-8c3d-222233334444"],
                                          "tid": "9188040d-6c67-4c5b-b112-36a304b66dad"})
        got = self.login("ROLESYNC_TEST_ENTRA_ISSUER", user)
        self.assertEqual(got["user_role"], "proxy_admin_viewer")

    def test_entra_group_without_app_role(self) -> None:
        user = CustomOpenID(id="7a2b3c4d-0000-4c55-9e0a-3f2b1c4d5e6f", email="cy@contoso.com", provider="microsoft",
                            extra_fields={"groups": ["0c9e6f5a-1111-4a2b-8c3d-222233334444"]})
        self.assertEqual(self.login("ROLESYNC_TEST_ENTRA_ISSUER", user)["user_role"], "internal_user")

    def test_denied_login_is_refused(self) -> None:
        user = CustomOpenID(id="kc-mallory", email="mallory@example.com",
                            extra_fields={"resource_access.litellm.roles": ["nothing"], "groups": ["/elsewhere"]})
        with self.assertRaises(rolesync_sso.LoginRefused) as cm:
            self.login("ROLESYNC_TEST_KEYCLOAK_ISSUER", user)
        self.assertEqual(cm.exception.status_code, 403)

    def test_wrong_secret_is_refused_not_answered(self) -> None:
        os.environ.pop("ROLESYNC_SECRET_FILE")
        os.environ["ROLESYNC_SECRET"] = "a-secret-rolesync-does-not-know-0123456789"
        user = CustomOpenID(id="kc-ana", extra_fields={"resource_access.litellm.roles": ["litellm-admin"]})
        with self.assertRaises(rolesync_sso.LoginRefused) as cm:
            self.login("ROLESYNC_TEST_KEYCLOAK_ISSUER", user)
        self.assertNotEqual(cm.exception.status_code, 200)


class _Answer500(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"error":"boom","reason":"InternalError"}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class WhenRolesyncCannotDecide(unittest.TestCase):
    """Timeouts, 5xx and an unreachable server fail closed by default."""

    def setUp(self) -> None:
        self.env = dict(os.environ)
        os.environ.update({"ROLESYNC_NAMESPACE": "ns", "ROLESYNC_ISSUER": "https://idp.example.com",
                           "ROLESYNC_SECRET": "s" * 40, "ROLESYNC_TIMEOUT": "0.5"})
        os.environ.pop("ROLESYNC_FAIL_OPEN", None)
        self.user = CustomOpenID(id="u1", team_ids=["g-team"], extra_fields={"groups": ["g"]})

    def tearDown(self) -> None:
        os.environ.clear()
        os.environ.update(self.env)

    def run_handler(self) -> Any:
        return asyncio.run(rolesync_sso.custom_sso_handler(self.user))

    def assert_closed_then_open(self) -> None:
        with self.assertRaises(rolesync_sso.LoginRefused) as cm:
            self.run_handler()
        self.assertEqual(cm.exception.status_code, 503)
        self.assertEqual(litellm_writes(self.user)["teams"], ["g-team"], "a refused login changed the object")
        os.environ["ROLESYNC_FAIL_OPEN"] = "true"
        self.assertEqual(self.run_handler()["user_role"], "internal_user_viewer")
        # Let through with the least privilege: LiteLLM writes the least role and adds no team.
        self.assertEqual(litellm_writes(self.user)["update"], {"user_role": "internal_user_viewer"})
        self.assertEqual(litellm_writes(self.user)["teams"], [])

    def test_unreachable(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ["ROLESYNC_URL"] = f"http://127.0.0.1:{port}"
        self.assert_closed_then_open()

    def test_server_error(self) -> None:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer500)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            os.environ["ROLESYNC_URL"] = f"http://127.0.0.1:{srv.server_address[1]}"
            self.assert_closed_then_open()
        finally:
            srv.shutdown()
            srv.server_close()

    def test_timeout_does_not_block_the_event_loop(self) -> None:
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections, never answers
        os.environ["ROLESYNC_URL"] = f"http://127.0.0.1:{silent.getsockname()[1]}"
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.02)
                ticks += 1

        async def both() -> None:
            t = asyncio.create_task(ticker())
            try:
                await rolesync_sso.custom_sso_handler(self.user)
            finally:
                t.cancel()

        try:
            with self.assertRaises(rolesync_sso.LoginRefused) as cm:
                asyncio.run(both())
            self.assertEqual(cm.exception.status_code, 503)
            # 0.5 s of waiting for rolesync: the loop kept running other work.
            self.assertGreater(ticks, 5, "the handler blocked LiteLLM's event loop")
        finally:
            silent.close()


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers what the test class sets: a status, headers and a body, sent
    in pieces `drip` seconds apart."""
    status = 200
    headers: dict[str, str] = {}
    body = b"{}"
    drip = 0.0
    hits = 0

    def do_POST(self) -> None:  # noqa: N802
        type(self).hits += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(self.status)
        for k, v in self.headers_out().items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        if not self.drip:
            self.wfile.write(self.body)
            return
        try:
            for i in range(len(self.body)):
                self.wfile.write(self.body[i:i + 1])
                self.wfile.flush()
                time.sleep(self.drip)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up: the point
            pass

    def headers_out(self) -> dict[str, str]:
        return dict(type(self).headers)

    def log_message(self, *args: Any) -> None:
        pass


class TrustsNothingItDidNotCheck(unittest.TestCase):
    """The handler refuses (fail closed, fail-open or not) answers it cannot
    trust: an unknown role, a 200 saying denied, too many teams, a redirect,
    and an answer that takes longer than ROLESYNC_TIMEOUT in total."""

    def setUp(self) -> None:
        self.env = dict(os.environ)
        os.environ.update({"ROLESYNC_NAMESPACE": "ns", "ROLESYNC_ISSUER": "https://idp.example.com",
                           "ROLESYNC_SECRET": "s" * 40, "ROLESYNC_TIMEOUT": "1"})
        os.environ.pop("ROLESYNC_FAIL_OPEN", None)
        self.handler = type("H", (_Scripted,), {"headers": {"Content-Type": "application/json"}})
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        os.environ["ROLESYNC_URL"] = f"http://127.0.0.1:{self.srv.server_address[1]}"
        self.user = CustomOpenID(id="u1", team_ids=["g-team"], extra_fields={"groups": ["g"]})

    def tearDown(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()
        os.environ.clear()
        os.environ.update(self.env)

    def answer(self, status: int, body: Any, **extra: Any) -> None:
        self.handler.status = status
        self.handler.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        for k, v in extra.items():
            setattr(self.handler, k, v)

    def refused(self, status: int, says: str) -> None:
        for fail_open in ("", "true"):
            os.environ["ROLESYNC_FAIL_OPEN"] = fail_open
            with self.assertRaises(rolesync_sso.LoginRefused) as cm:
                asyncio.run(rolesync_sso.custom_sso_handler(self.user))
            self.assertEqual(cm.exception.status_code, status, cm.exception.detail)
            self.assertIn(says, cm.exception.detail)
            self.assertEqual(litellm_writes(self.user)["teams"], ["g-team"], "a refused login changed the object")
            self.assertIsNone(self.user.user_role, "a refused login set a role")

    def test_a_good_answer_is_used(self) -> None:
        self.answer(200, {"userID": "u1", "role": "internal_user", "denied": False, "teamsManaged": True, "teams": [{"team": "t1"}]})
        self.assertEqual(asyncio.run(rolesync_sso.custom_sso_handler(self.user))["user_role"], "internal_user")
        self.assertEqual(litellm_writes(self.user)["teams"], ["t1"])

    def test_unknown_role(self) -> None:
        for role in ("org_admin", "team", "PROXY_ADMIN", "", None, ["proxy_admin"]):
            self.answer(200, {"role": role, "denied": False})
            self.refused(502, "role")

    def test_200_saying_denied(self) -> None:
        self.answer(200, {"role": "proxy_admin", "denied": True, "reason": "NoMatch"})
        self.refused(403, "denied")

    def test_200_without_denied(self) -> None:
        self.answer(200, {"role": "proxy_admin"})
        self.refused(502, "denied")

    def test_too_many_teams(self) -> None:
        teams = [{"team": f"t{i}"} for i in range(rolesync_sso.MAX_TEAMS + 1)]
        self.answer(200, {"role": "internal_user", "denied": False, "teamsManaged": True, "teams": teams})
        self.refused(502, "teams")
        self.answer(200, {"role": "internal_user", "denied": False, "teamsManaged": True, "teams": [{"team": "x" * 300}]})
        self.refused(502, "team")

    def test_redirect_is_never_followed(self) -> None:
        self.handler.hits = 0
        target = os.environ["ROLESYNC_URL"] + "/elsewhere"
        for status in (301, 302, 307, 308):
            self.answer(status, b"", headers={"Location": target})
            self.refused(502, "redirect")
        self.assertEqual(self.handler.hits, 8, "a redirect was followed")

    def test_slow_answer_past_the_deadline(self) -> None:
        # Each byte arrives within any per-read timeout; the whole answer
        # takes about 15 s, far past ROLESYNC_TIMEOUT=1.
        self.answer(200, {"role": "internal_user", "denied": False, "pad": "x" * 20}, drip=0.25)
        os.environ["ROLESYNC_FAIL_OPEN"] = ""
        start = time.monotonic()
        with self.assertRaises(rolesync_sso.LoginRefused) as cm:
            asyncio.run(rolesync_sso.custom_sso_handler(self.user))
        took = time.monotonic() - start
        self.assertEqual(cm.exception.status_code, 503)
        # A generous bound (the answer alone takes 15 s): the call was cut off.
        self.assertLess(took, 7, "the deadline did not cut the answer off")
        self.assertIsNone(self.user.user_role)


if __name__ == "__main__":
    unittest.main()
