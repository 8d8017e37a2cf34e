"""Virtual keys: their hash, their display name, and the queries on `api_keys`.

A key is stored only as LiteLLM's hash (`litellm.proxy._types.hash_token`: the SHA-256 of the
key's UTF-8 bytes, hex), so the tokens of a LiteLLM database import as they are and the keys
their owners hold work unchanged.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workers.db import rows
from workers.db.rows import Row
from workers.db.tables import api_keys

KEY_PREFIX = "sk-"
# LiteLLM's generated keys: "sk-" + secrets.token_urlsafe(16).
KEY_RANDOM_BYTES = 16
HASH = re.compile(r"^[0-9a-f]{64}$")


def hash_token(key: str) -> str:
    """LiteLLM's `hash_token`, exactly: what `api_keys.token` holds for `key`."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def display_name(key: str) -> str:
    """LiteLLM's abbreviated `key_name`: enough to recognise a key, never to use it."""
    return f"sk-...{key[-4:]}"


def token_of(key_or_hash: str) -> str:
    """The hash named by a key (`sk-...`) or by its hash (64 hex digits, as /key/list shows)."""
    return key_or_hash if HASH.match(key_or_hash) else hash_token(key_or_hash)


async def get(conn: AsyncConnection, token: str, *, for_update: bool = False) -> Row | None:
    return await rows.get(conn, api_keys, token, for_update=for_update)


async def get_by_alias(conn: AsyncConnection, alias: str) -> Row | None:
    return await rows.fetch_one(conn, sa.select(api_keys).where(api_keys.c.key_alias == alias))


async def find(conn: AsyncConnection, key_hash_or_alias: str) -> Row | None:
    """A key named by itself, its hash or its alias (the CLI takes any of the three)."""
    if key_hash_or_alias.startswith(KEY_PREFIX) or HASH.match(key_hash_or_alias):
        found = await get(conn, token_of(key_hash_or_alias))
        if found is not None:
            return found
    return await get_by_alias(conn, key_hash_or_alias)


async def names(conn: AsyncConnection, tokens: Iterable[str]) -> dict[str, Row]:
    """The alias and display name of each key in `tokens` (by hash): what a report shows
    for the few keys it names, without the caller listing every key."""
    statement = sa.select(api_keys.c.token, api_keys.c.key_alias, api_keys.c.key_name).where(
        api_keys.c.token.in_(list(tokens))
    )
    return {row["token"]: row for row in await rows.fetch_all(conn, statement)}


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> Row:
    return await rows.insert(conn, api_keys, values)


async def update(conn: AsyncConnection, token: str, values: dict[str, Any]) -> Row | None:
    return await rows.update(conn, api_keys, token, values)


async def delete(conn: AsyncConnection, tokens: Iterable[str]) -> list[Row]:
    return await rows.delete(conn, api_keys, tokens)


async def delete_owned(
    conn: AsyncConnection, *, team_ids: Iterable[str] = (), user_ids: Iterable[str] = ()
) -> list[Row]:
    """Delete the keys of these teams or users (a team or user going away takes its keys)."""
    owned = sa.or_(api_keys.c.team_id.in_(list(team_ids)), api_keys.c.user_id.in_(list(user_ids)))
    return await rows.fetch_all(conn, sa.delete(api_keys).where(owned).returning(*api_keys.c))


def filtered(
    *,
    user_id: str | None = None,
    team_ids: Iterable[str] | None = None,
    organization_id: str | None = None,
    key_alias: str | None = None,
    token: str | None = None,
    min_budget_percent: int | None = None,
) -> sa.Select[Any]:
    statement = sa.select(api_keys)
    if min_budget_percent is not None:
        # Keys with a budget that spent at least that share of it (the console's "near
        # their limit"): a filter the database applies, however many keys there are.
        statement = statement.where(
            api_keys.c.max_budget > 0,
            api_keys.c.spend * 100 >= api_keys.c.max_budget * min_budget_percent,
        )
    if user_id is not None:
        statement = statement.where(api_keys.c.user_id == user_id)
    if team_ids is not None:
        statement = statement.where(api_keys.c.team_id.in_(list(team_ids)))
    if organization_id is not None:
        statement = statement.where(api_keys.c.organization_id == organization_id)
    if key_alias is not None:
        statement = statement.where(api_keys.c.key_alias == key_alias)
    if token is not None:
        statement = statement.where(api_keys.c.token == token)
    return statement


async def list_page(
    conn: AsyncConnection,
    statement: sa.Select[Any],
    *,
    page: int,
    size: int,
    by_budget_used: bool = False,
) -> tuple[list[Row], int]:
    """A page of `statement`'s keys, oldest first; `by_budget_used`: the keys that used
    the most of their budget first (only keys with a budget may be listed so)."""
    order: list[sa.ColumnElement[Any]] = [api_keys.c.created_at, api_keys.c.token]
    if by_budget_used:
        order = [(api_keys.c.spend / api_keys.c.max_budget).desc(), api_keys.c.token]
    return await rows.page(conn, statement, order, number=page, size=size)


async def owned_by(
    conn: AsyncConnection, *, user_id: str | None = None, team_id: str | None = None
) -> list[Row]:
    statement = filtered(user_id=user_id, team_ids=None if team_id is None else [team_id])
    return await rows.fetch_all(conn, statement.order_by(api_keys.c.created_at))


async def scan(conn: AsyncConnection, *, after: str = "", limit: int = 500) -> list[Row]:
    """Every key, `limit` at a time in token order from `after`: what refills a cold mirror
    of the keys (issue #17, phase 17b) without holding them all in one result."""
    statement = (
        sa.select(api_keys).where(api_keys.c.token > after).order_by(api_keys.c.token).limit(limit)
    )
    return await rows.fetch_all(conn, statement)
