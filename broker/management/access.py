"""Who may manage what: the management API's authenticator and its roles (docs/tenancy.md).

The request path authenticates in `broker/auth.py`; management calls authenticate here, from
the master key (`general_settings.master_key`) or a database key, looked up by its hash in the
database (management calls may use the database; the request path will not, phase 17b).
Static `switchboard_settings.api_keys` call the API but never manage it.

Roles, LiteLLM's names:
- `proxy_admin`: the master key, and keys of users with that role. Everything.
- `proxy_admin_viewer`: reads everything, changes nothing.
- team admin (a member with role `admin` in a team): that team's keys, members and member
  budgets; its alias, metadata and tags. Not the team's own budget, limits or models (that
  would let a team lift its own cap).
- `internal_user`: its own keys (and keys in teams it belongs to, owned by itself), its own
  user and teams, its own spend.
- `internal_user_viewer`: reads what an internal user may read.
- a key without a user: reads itself (`/key/info`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from broker.auth import presented_key
from workers.db import plain as roles  # the role names, without SQLAlchemy
from workers.errors import AuthenticationFailed, PermissionDenied
from workers.settings.switchboard import ApiKey

if TYPE_CHECKING:
    from workers.db.engine import Database

MASTER = "master key"
KEY_ONLY = "key"
READ_ALL = frozenset({roles.PROXY_ADMIN, roles.PROXY_ADMIN_VIEWER})
READ_ONLY = frozenset({roles.PROXY_ADMIN_VIEWER, roles.INTERNAL_USER_VIEWER, KEY_ONLY})


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated management caller."""

    name: str  # who, in the audit log: the master key, a user id, or a key's alias or name
    role: str
    token: str | None = None  # the calling key's hash; None for the master key
    user_id: str | None = None
    admin_of: frozenset[str] = frozenset()  # teams this caller administers
    member_of: frozenset[str] = frozenset()  # teams this caller belongs to (admin_of included)

    @property
    def is_admin(self) -> bool:
        return self.role == roles.PROXY_ADMIN

    @property
    def reads_all(self) -> bool:
        return self.role in READ_ALL

    def require_admin(self, what: str) -> None:
        if not self.is_admin:
            raise denied(f"only a proxy admin may {what}")

    def require_reader(self, what: str) -> None:
        if not self.reads_all:
            raise denied(f"only a proxy admin or viewer may {what}")

    def require_writer(self, what: str) -> None:
        if self.role in READ_ONLY:
            raise denied(f"the role `{self.role}` is read-only: it may not {what}")

    def may_read_key(self, key: Mapping[str, Any]) -> bool:
        if self.reads_all or key["token"] == self.token:
            return True
        owned = self.user_id is not None and key["user_id"] == self.user_id
        return owned or key["team_id"] in self.admin_of

    def may_manage_key(self, key: Mapping[str, Any]) -> bool:
        if self.is_admin:
            return True
        if self.role in READ_ONLY:
            return False
        owned = self.user_id is not None and key["user_id"] == self.user_id
        return owned or key["team_id"] in self.admin_of

    def may_manage_team(self, team_id: str) -> bool:
        return self.is_admin or team_id in self.admin_of

    def may_read_team(self, team_id: str) -> bool:
        return self.reads_all or team_id in self.member_of

    def may_read_user(self, user_id: str) -> bool:
        return self.reads_all or user_id == self.user_id


def denied(message: str) -> PermissionDenied:
    return PermissionDenied(message, code="management_forbidden")


ADMIN = Principal(name=MASTER, role=roles.PROXY_ADMIN)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ManagementAuth:
    def __init__(self, master_key: str | None, static_keys: Sequence[ApiKey] = ()) -> None:
        self._master = _digest(master_key) if master_key else None
        self._static = {_digest(str(api_key.key)): api_key.alias for api_key in static_keys}

    async def authenticate(self, request: web.Request, database: Database) -> Principal:
        presented = presented_key(request)
        digest = _digest(presented)
        if self._master is not None and hmac.compare_digest(digest, self._master):
            return ADMIN
        if digest in self._static:
            raise denied(
                f"the config's API key `{self._static[digest]}` may call the API but not "
                "manage it; use the master key or a key of a user with a management role"
            )
        from workers.db import keys, teams  # with a database only (issue #22's memory)
        from workers.db import users as user_rows

        async with database.transaction() as conn:
            key = await keys.get(conn, keys.hash_token(presented))
            if key is None:
                raise AuthenticationFailed("invalid API key")
            check_usable(key)
            if key["user_id"] is None:
                return Principal(name=_key_label(key), role=KEY_ONLY, token=key["token"])
            user = await user_rows.get(conn, key["user_id"])
            memberships = await teams.memberships_of(conn, key["user_id"])
        return principal_of(key, user, memberships)


def check_usable(key: Mapping[str, Any]) -> None:
    from workers.db.rows import now

    if key["blocked"]:
        raise AuthenticationFailed(f"API key `{_key_label(key)}` is blocked", code="key_blocked")
    expires = key["expires"]
    if expires is not None and expires <= now():
        raise AuthenticationFailed(
            f"API key `{_key_label(key)}` expired at {expires.isoformat()}", code="key_expired"
        )


def principal_of(
    key: Mapping[str, Any], user: Mapping[str, Any] | None, memberships: Iterable[Mapping[str, Any]]
) -> Principal:
    from workers.db import teams

    memberships = list(memberships)
    return Principal(
        name=key["user_id"],
        # A key naming a user the database does not hold gets the least a user gets.
        role=user["user_role"] if user is not None else roles.INTERNAL_USER_VIEWER,
        token=key["token"],
        user_id=key["user_id"],
        admin_of=frozenset(m["team_id"] for m in memberships if m["role"] == teams.ADMIN),
        member_of=frozenset(m["team_id"] for m in memberships),
    )


def _key_label(key: Mapping[str, Any]) -> str:
    return str(key["key_alias"] or key["key_name"])
