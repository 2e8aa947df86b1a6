"""LiteLLM custom SSO handler that asks rolesync for the user's role.

LiteLLM calls it after its own OAuth/OIDC flow (``general_settings:
custom_sso: rolesync_sso.custom_sso_handler``) with a ``CustomOpenID``: the
user's ``id``, ``email``, ``team_ids`` and ``extra_fields``, a flat dict keyed
by the dotted claim names listed in ``GENERIC_USER_EXTRA_ATTRIBUTES``. LiteLLM
keeps no raw claims and no token, so this handler rebuilds the nested claims
from ``extra_fields`` (``resource_access.litellm.roles`` becomes
``{"resource_access": {"litellm": {"roles": ...}}}``), adds ``team_ids``,
signs a login event with the namespace's HMAC secret and posts it to
rolesync's login server. It returns the role rolesync decided (LiteLLM uses it
for a new user's row and the UI session), refuses the login when rolesync
denies it (403), and fails closed when rolesync cannot be reached or answers
5xx, unless ROLESYNC_FAIL_OPEN is set.

LiteLLM also writes from the object it passed in, after this hook, at every
login (litellm/proxy/management_endpoints/ui_sso.py, auth_callback ->
get_user_info_from_db): ``_build_sso_user_update_data`` writes
``result.user_role`` into an EXISTING user's row whenever it is a valid role,
and ``add_user_to_teams_from_sso_response`` adds the user to every team in
``result.team_ids``. So the handler makes that object say what rolesync says:
``user_role`` (and the attribute GENERIC_USER_ROLE_ATTRIBUTE names, default
``role``, which ``_get_user_email_and_id_from_result`` reads for generic SSO)
becomes rolesync's role, and, when the namespace's mappings manage teams
(``teamsManaged`` in the answer), ``team_ids`` becomes exactly rolesync's
grants, an empty list included. Note LiteLLM's
``ui_access_mode: {type: restricted_sso_group}`` checks ``result.team_ids``
after this hook (``verify_user_in_restricted_sso_group``): with teams managed
by rolesync, the restricted group must be one of the teams rolesync grants, or
use a strict RoleMapping (onNoMatch: Deny) instead of restricted_sso_group.

Standard library only (Python 3.11+); the HTTP call runs in a worker thread
(asyncio.to_thread) so LiteLLM's event loop never blocks.

Settings (environment):
  ROLESYNC_URL          base URL of the login server, e.g.
                        https://rolesync-login.rolesync-system.svc:8443
  ROLESYNC_NAMESPACE    the namespace of the RoleMappings and ProxyUsers
  ROLESYNC_SECRET_FILE  file whose first non-comment line is the HMAC secret
                        (or ROLESYNC_SECRET, the secret itself)
  ROLESYNC_ISSUER       the identity provider's issuer URL (the issuer your
                        RoleMappings' spec.issuer names)
  ROLESYNC_CA_FILE      CA bundle of the login server's certificate (https)
  ROLESYNC_TIMEOUT      seconds the whole call to rolesync may take, connect
                        to last byte (default 5): a deadline, not a per-read
                        timeout, so a server that answers byte by byte is cut
                        off too
  ROLESYNC_FAIL_OPEN    "true": when rolesync is unreachable, too slow or
                        answers 5xx, let the login through as
                        internal_user_viewer (the least role) instead of
                        refusing it (default false)
  ROLESYNC_TRUST_EMAIL  "true": LiteLLM's email of the user is verified by the
                        identity provider even though no email_verified claim
                        says so (default false: the email is sent as the
                        binding email only when extra_fields carries
                        email_verified true; list email_verified in
                        GENERIC_USER_EXTRA_ATTRIBUTES)

The handler trusts nothing it did not check: an answer is used only when it
is a 200 JSON object (at most 1 MiB) whose role is one rolesync grants, that
is not denied, and whose team list holds at most MAX_TEAMS team ids (strings
of at most 256 characters). Anything else -- a redirect (never followed), a
200 saying denied, an unknown role, too many teams -- refuses the login (502),
fail-open or not.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from datetime import datetime, timezone
from typing import Any

from litellm.proxy._types import LitellmUserRoles, SSOUserDefinedValues

try:  # LiteLLM runs on FastAPI: a refused login becomes an error page with this status.
    from fastapi import HTTPException as _Base
except ImportError:  # outside LiteLLM (tests)

    class _Base(Exception):  # type: ignore[no-redef]
        def __init__(self, status_code: int, detail: str) -> None:
            super().__init__(detail)
            self.status_code, self.detail = status_code, detail


LEAST_ROLE = "internal_user_viewer"
# The roles rolesync grants (api/v1 Role): any other answer is refused.
ROLES = frozenset({"proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"})
# At most this many teams in an answer, each id at most 256 characters.
MAX_TEAMS = 1000
_MAX_TEAM_ID = 256
_MAX_ANSWER = 1 << 20
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class LoginRefused(_Base):
    """rolesync refused the login: denied (403), or undecided while failing closed (502/503)."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(status_code=status_code, detail=detail)


def _refuse(status: int, message: str) -> LoginRefused:
    return LoginRefused(status, message)


def nest_claims(extra_fields: dict[str, Any] | None) -> dict[str, Any]:
    """Rebuild nested claims from LiteLLM's flat extra_fields.

    ``{"resource_access.litellm.roles": ["admin"], "groups": ["a"]}`` becomes
    ``{"resource_access": {"litellm": {"roles": ["admin"]}}, "groups": ["a"]}``.
    A name that is both a value and a prefix of another keeps the value
    under its own full name (never silently dropped).
    """
    claims: dict[str, Any] = {}
    for name in sorted(extra_fields or {}, key=lambda n: n.count(".")):
        value = (extra_fields or {})[name]
        if value is None:
            continue
        node = claims
        parts = name.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                if child is not None:  # a value already sits here: keep both
                    node = None
                    break
                child = node[part] = {}
            node = child
        if node is None:
            claims[name] = value
        else:
            node[parts[-1]] = value
    return claims


def _settings() -> dict[str, Any]:
    env = os.environ
    secret = env.get("ROLESYNC_SECRET", "")
    if not secret and env.get("ROLESYNC_SECRET_FILE"):
        secret = secret_for(env["ROLESYNC_SECRET_FILE"], env.get("ROLESYNC_NAMESPACE", ""))
    missing = [k for k in ("ROLESYNC_URL", "ROLESYNC_NAMESPACE", "ROLESYNC_ISSUER") if not env.get(k)]
    if not secret:
        missing.append("ROLESYNC_SECRET_FILE or ROLESYNC_SECRET")
    if missing:
        raise RuntimeError("rolesync_sso: not configured: set " + ", ".join(missing))
    return {
        "url": env["ROLESYNC_URL"].rstrip("/") + "/v1/namespaces/" + env["ROLESYNC_NAMESPACE"] + "/login-events",
        "namespace": env["ROLESYNC_NAMESPACE"],
        "issuer": env["ROLESYNC_ISSUER"],
        "secret": secret.encode(),
        "ca": env.get("ROLESYNC_CA_FILE") or None,
        "timeout": float(env.get("ROLESYNC_TIMEOUT", "5")),
        "fail_open": env.get("ROLESYNC_FAIL_OPEN", "").lower() in ("1", "true", "yes"),
    }


def secret_for(path: str, namespace: str) -> str:
    """The first secret of a rolesync secrets file valid for namespace: a
    line "<secret>" (every namespace) or "<namespace>: <secret>"."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            ns, sep, rest = line.partition(": ")
            if sep and _DNS_LABEL.match(ns):
                if ns == namespace:
                    return rest.strip()
                continue
            return line
    return ""


def build_event(result: Any, namespace: str, issuer: str) -> dict[str, Any]:
    """The login event for LiteLLM's CustomOpenID ``result``."""
    claims = nest_claims(getattr(result, "extra_fields", None))
    team_ids = getattr(result, "team_ids", None)
    if team_ids:
        claims["team_ids"] = list(team_ids)
    email = getattr(result, "email", None)
    if email:
        claims.setdefault("email", email)
    verified = claims.get("email_verified")
    trusted = os.environ.get("ROLESYNC_TRUST_EMAIL", "").lower() in ("1", "true", "yes")
    if not (trusted or verified is True or (isinstance(verified, str) and verified.lower() == "true")):
        email = None  # a claim mappings may read, never the address that binds a LiteLLM row
    event = {
        "id": str(uuid.uuid4()),
        "time": datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "userID": result.id,
        "issuer": issuer,
        "namespace": namespace,
        "claims": claims,
    }
    if email:
        event["email"] = email
    return event


def sign(secret: bytes, body: bytes, t: int) -> str:
    """The Rolesync-Signature header of body, signed at unix time t."""
    mac = hmac.new(secret, str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _abort(socks: list[socket.socket]) -> None:
    """Cut a call off at its deadline: a blocked read returns at once."""
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _post(url: str, body: bytes, signature: str, ca: str | None, timeout: float) -> tuple[int, dict[str, Any]]:
    """POST body and return the status and the JSON object answered. The
    whole call, connect to last byte, ends by timeout seconds (TimeoutError);
    redirects are never followed (http.client returns them as they are)."""
    u = urllib.parse.urlsplit(url)
    path = u.path + ("?" + u.query if u.query else "")
    if u.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            u.hostname or "", u.port or 443, timeout=timeout, context=ssl.create_default_context(cafile=ca))
    else:
        conn = http.client.HTTPConnection(u.hostname or "", u.port or 80, timeout=timeout)
    deadline = time.monotonic() + timeout
    socks: list[socket.socket] = []  # the connection's socket, once connected
    timer = threading.Timer(timeout, _abort, (socks,))
    timer.daemon = True
    timer.start()
    try:
        conn.connect()  # bounded by timeout itself
        if conn.sock is not None:
            # Kept here: http.client drops conn.sock once the answer says
            # it closes the connection, while the answer is still read from it.
            socks.append(conn.sock)
        if time.monotonic() >= deadline:
            _abort(socks)
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", "Rolesync-Signature": signature})
        resp = conn.getresponse()
        data = resp.read(_MAX_ANSWER + 1)
        if time.monotonic() >= deadline:
            raise TimeoutError("rolesync answered after the deadline")
        if len(data) > _MAX_ANSWER:
            raise ValueError("answer larger than 1 MiB")
        try:
            answer = json.loads(data or b"{}")
        except ValueError:
            answer = {}
        return resp.status, answer if isinstance(answer, dict) else {}
    except OSError:
        if time.monotonic() >= deadline:
            raise TimeoutError("rolesync did not answer within the deadline") from None
        raise
    finally:
        timer.cancel()
        conn.close()


def check_answer(answer: dict[str, Any]) -> str | None:
    """Why a 200 answer must not be used, or None when it may."""
    if answer.get("denied") is not False:
        return "the answer says denied" if answer.get("denied") else "the answer has no denied: false"
    role = answer.get("role")
    if not isinstance(role, str) or role not in ROLES:
        return "the answer's role is not one rolesync grants"
    teams = answer.get("teams")
    if teams is None:
        return None
    if not isinstance(teams, list) or len(teams) > MAX_TEAMS:
        return f"the answer's teams are not a list of at most {MAX_TEAMS}"
    for t in teams:
        team = t.get("team") if isinstance(t, dict) else None
        if not isinstance(team, str) or not team or len(team) > _MAX_TEAM_ID:
            return "the answer names a team that is not a team id"
    return None


async def ask_rolesync(result: Any) -> dict[str, Any]:
    """Post the login and return rolesync's answer; raise LoginRefused
    (wrapped for LiteLLM) when the login must not proceed."""
    s = _settings()
    if not getattr(result, "id", None):
        raise _refuse(403, "rolesync: the identity provider gave no user id")
    body = json.dumps(build_event(result, s["namespace"], s["issuer"]), separators=(",", ":")).encode()
    signature = sign(s["secret"], body, int(time.time()))
    try:
        # _post ends itself at the deadline; wait_for is the backstop.
        status, answer = await asyncio.wait_for(
            asyncio.to_thread(_post, s["url"], body, signature, s["ca"], s["timeout"]), s["timeout"] + 1)
    except (OSError, ValueError, asyncio.TimeoutError) as err:  # unreachable, too slow, TLS, too large
        status, answer = 0, {"error": type(err).__name__}
    if status == 200:
        why = check_answer(answer)
        if why is None:
            return answer
        if answer.get("denied") is True:
            raise _refuse(403, "Login denied by rolesync: " + str(answer.get("reason", "")))
        raise _refuse(502, "rolesync's answer was refused: " + why)
    if 300 <= status < 400:
        raise _refuse(502, f"rolesync answered a redirect ({status}); redirects are never followed")
    if status == 403:
        raise _refuse(403, "Login denied by rolesync: " + str(answer.get("reason", "")))
    if (status == 0 or status >= 500) and s["fail_open"]:
        return {"role": LEAST_ROLE, "failOpen": True}
    raise _refuse(503 if status == 0 or status >= 500 else 502,
                  f"rolesync could not decide this login ({status or 'unreachable'} {answer.get('reason', '')}); try again")


def _set(obj: Any, name: str, value: Any) -> None:
    """Set an attribute on LiteLLM's object. CustomOpenID is a pydantic model:
    assigning a declared field works; a name it does not declare (the
    GENERIC_USER_ROLE_ATTRIBUTE one) is refused by pydantic's __setattr__, so
    it is stored on the instance directly, where LiteLLM's getattr finds it."""
    try:
        setattr(obj, name, value)
    except (AttributeError, TypeError, ValueError):
        object.__setattr__(obj, name, value)


def _role_value(role: str) -> Any:
    """The role as LiteLLM's CustomOpenID.user_role holds it (its enum)."""
    try:
        return LitellmUserRoles(role)
    except ValueError:
        return role


def apply_answer(result: Any, role: str, teams: list[str] | None) -> None:
    """Make LiteLLM's own per-login writes agree with rolesync: the role on
    the object (user_role and the GENERIC_USER_ROLE_ATTRIBUTE attribute), and,
    when teams is not None, team_ids exactly."""
    _set(result, "user_role", _role_value(role))
    attr = os.environ.get("GENERIC_USER_ROLE_ATTRIBUTE") or "role"
    if attr != "user_role":
        _set(result, attr, role)
    if teams is not None:
        _set(result, "team_ids", list(teams))


async def custom_sso_handler(userIDPInfo: Any) -> SSOUserDefinedValues:  # noqa: N803 - LiteLLM's name
    """LiteLLM's custom_sso hook."""
    answer = await ask_rolesync(userIDPInfo)
    role = answer.get("role")
    if not isinstance(role, str) or role not in ROLES:
        role = LEAST_ROLE  # only a fail-open answer gets here without a checked role
    teams: list[str] | None = None
    if answer.get("failOpen"):
        teams = []  # let through with the least privilege: no role above the least, no team
    elif answer.get("teamsManaged"):
        teams = [t["team"] for t in answer.get("teams") or [] if isinstance(t, dict) and t.get("team")]
    apply_answer(userIDPInfo, role, teams)
    values = SSOUserDefinedValues(
        models=[],
        user_id=userIDPInfo.id,
        user_email=getattr(userIDPInfo, "email", None),
        user_role=role,
        max_budget=None,
        budget_duration=None,
    )
    return values
