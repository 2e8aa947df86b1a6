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
import os
import socket
import sys
import threading
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
                                                   extra_fields={"a.b": 1}), "ns", "https://idp.example.com")
        self.assertEqual(ev["userID"], "ana")
        self.assertEqual(ev["email"], "ana@example.com")
        self.assertEqual(ev["namespace"], "ns")
        self.assertEqual(ev["claims"], {"a": {"b": 1}, "team_ids": ["t1"], "email": "ana@example.com"})


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
        # GENERIC_USER_EXTRA_ATTRIBUTES=resource_access.litellm.roles,groups
        user = CustomOpenID(id="kc-ana", email="kc-ana@example.com", provider="generic", team_ids=["team-a"],
                            extra_fields={"resource_access.litellm.roles": ["litellm-admin", "uma_authorization"],
                                          "groups": ["/ai/platform"]})
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


if __name__ == "__main__":
    unittest.main()
