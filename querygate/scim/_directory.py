"""SCIM provisioning against the directory: people, groups, and the roles groups give.

A person provisioned here is ``managed_by = 'scim'``: their roles are the
``role_map`` of the groups they are in, recomputed whenever a group changes.
Deactivation (``active: false``) suspends them through the same offboarding
path as the command line: tokens, sign-in sessions and grants revoked, running
queries cancelled, at once. DELETE offboards them; rows are never removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from querygate.errors import ScimError
from querygate.identity import Offboarding, ScimSettings, new_id, offboard, writing
from querygate.scim._model import (
    boolean,
    display_name,
    email_of,
    flatten,
    group_resource,
    list_response,
    member_path,
    operations,
    parse_filter,
    user_resource,
)

Conn = psycopg.AsyncConnection[Any]
Rows = tuple[list[dict[str, Any]], int]
BY = "scim"
MAX_PAGE = 200
_USERS = """
SELECT u.id, u.email, u.display_name, u.external_id, u.status, u.created_at, u.updated_at,
  (SELECT coalesce(json_agg(json_build_array(g.id, g.display_name) ORDER BY g.display_name), '[]')
   FROM querygate.scim_groups g WHERE u.id = ANY(g.members) AND g.deleted_at IS NULL) AS groups
FROM querygate.users u WHERE u.scim_deleted_at IS NULL AND u.kind = 'person'
"""
_GROUPS = """
SELECT g.id, g.display_name, g.external_id, g.created_at, g.updated_at,
  (SELECT coalesce(json_agg(json_build_array(u.id, u.email) ORDER BY u.email), '[]')
   FROM querygate.users u WHERE u.id = ANY(g.members)) AS members
FROM querygate.scim_groups g WHERE g.deleted_at IS NULL
"""
USER_FILTERS = {"userName": "email", "externalId": "external_id", "id": "id",
                "emails.value": "email"}
GROUP_FILTERS = {"displayName": "display_name", "externalId": "external_id", "id": "id"}


@dataclass
class Changes:
    """What one SCIM request changed, for the audit log."""

    actions: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    offboardings: list[Offboarding] = field(default_factory=list)

    def add(self, action: str, **context: str) -> None:
        self.actions.append((action, context))


class ScimDirectory:
    def __init__(self, settings: ScimSettings, base: str = "/scim/v2") -> None:
        self.settings, self.base = settings, base

    async def _rows(self, conn: Conn, query: str, alias: str,
                    where: tuple[str, str] | None, start: int, count: int) -> Rows:
        clause: sql.Composable = sql.SQL("")
        args: list[str] = []
        if where is not None:
            clause = sql.SQL(" AND {} = %s").format(sql.Identifier(alias, where[0]))
            args = [where[1].lower() if where[0] == "email" else where[1]]
        statement = sql.SQL(query) + clause
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.SQL("SELECT count(*) AS n FROM ({}) AS q").format(statement), args)
            total = (await cur.fetchone() or {"n": 0})["n"]
            await cur.execute(statement + sql.SQL(" ORDER BY 1 LIMIT %s OFFSET %s"),
                              [*args, count, start - 1])
            return await cur.fetchall(), int(total)

    async def list_users(self, conn: Conn, query: Mapping[str, str]) -> dict[str, Any]:
        start, count = _page(query)
        rows, total = await self._rows(conn, _USERS, "u",
                                       parse_filter(query.get("filter"), USER_FILTERS), start, count)
        return list_response([user_resource(r, self.base) for r in rows], total, start)

    async def get_user(self, conn: Conn, user_id: str) -> dict[str, Any]:
        rows, _ = await self._rows(conn, _USERS, "u", ("id", user_id), 1, 1)
        if not rows:
            raise ScimError(404, f"no user {user_id[:40]}")
        return user_resource(rows[0], self.base)

    async def create_user(self, conn: Conn, body: Mapping[str, Any],
                          changes: Changes) -> dict[str, Any]:
        email, user_id = email_of(body), new_id("usr")
        active = boolean(body.get("active", True))
        async with writing(conn):
            cur = await conn.execute(
                "INSERT INTO querygate.users (id, email, kind, roles, status, managed_by, "
                "display_name, external_id) VALUES (%s, %s, 'person', '{}', %s, 'scim', %s, %s) "
                "ON CONFLICT (email) DO NOTHING",
                (user_id, email, "active" if active else "suspended", display_name(body),
                 _text(body.get("externalId"))))
            if cur.rowcount == 0:
                raise ScimError(409, f"{email} already exists; find it with a userName filter",
                                "uniqueness")
        changes.add("scim.create_user", user=user_id, email=email)
        return await self.get_user(conn, user_id)

    async def replace_user(self, conn: Conn, user_id: str,
                           body: Mapping[str, Any], changes: Changes) -> dict[str, Any]:
        await self.get_user(conn, user_id)
        pairs = [("userName", email_of(body)), ("displayName", display_name(body)),
                 ("externalId", body.get("externalId"))]
        if "active" in body:
            pairs.append(("active", body["active"]))
        return await self._apply(conn, user_id, pairs, changes)

    async def patch_user(self, conn: Conn, user_id: str,
                         body: Mapping[str, Any], changes: Changes) -> dict[str, Any]:
        await self.get_user(conn, user_id)
        pairs: list[tuple[str, Any]] = []
        for op, path, value in operations(body):
            pairs += [(p, None if op == "remove" else v) for p, v in flatten(path, value)]
        return await self._apply(conn, user_id, pairs, changes)

    async def _apply(self, conn: Conn, user_id: str,
                     pairs: Iterable[tuple[str, Any]], changes: Changes) -> dict[str, Any]:
        columns: dict[str, Any] = {}
        active: bool | None = None
        for path, value in pairs:
            key = path.strip().lower()
            if key == "active":
                active = boolean(value)
            elif key == "username" or key.startswith("emails"):
                if value is not None:
                    columns["email"] = email_of({"userName": value} if isinstance(value, str)
                                                else {"emails": value})
            elif key in ("displayname", "name.formatted"):
                columns["display_name"] = _text(value)
            elif key == "externalid":
                columns["external_id"] = _text(value)
        await self._update(conn, user_id, columns)
        if active is not None:
            await self._set_active(conn, user_id, active, changes)
        return await self.get_user(conn, user_id)

    async def _update(self, conn: Conn, user_id: str,
                      columns: Mapping[str, Any]) -> None:
        sets = [sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns]
        statement = sql.SQL("UPDATE querygate.users SET managed_by = 'scim', updated_at = now(){} "
                            "WHERE id = %s").format(sql.SQL("").join(sql.SQL(", ") + s for s in sets))
        try:
            async with writing(conn):
                await conn.execute(statement, [*columns.values(), user_id])
        except psycopg.errors.UniqueViolation:
            raise ScimError(409, "another user already has that userName", "uniqueness") from None

    async def _set_active(self, conn: Conn, user_id: str, active: bool,
                          changes: Changes) -> None:
        row = await (await conn.execute("SELECT email, status FROM querygate.users WHERE id = %s",
                                        (user_id,))).fetchone()
        assert row is not None
        email, status = row
        if not active and status == "active":
            changes.offboardings.append(await offboard(conn, email, by=BY, status="suspended"))
            changes.add("scim.deactivate", user=user_id, email=email)
        elif active and status == "suspended":  # an administrator's offboarding is not undone here
            async with writing(conn):
                await conn.execute("UPDATE querygate.users SET status = 'active', updated_at = now(), "
                                   "status_changed_by = %s, status_changed_at = now() WHERE id = %s",
                                   (BY, user_id))
            changes.add("scim.reactivate", user=user_id, email=email)

    async def delete_user(self, conn: Conn, user_id: str,
                          changes: Changes) -> None:
        resource = await self.get_user(conn, user_id)
        changes.offboardings.append(await offboard(conn, resource["userName"], by=BY))
        async with writing(conn):
            await conn.execute("UPDATE querygate.users SET scim_deleted_at = now() WHERE id = %s",
                               (user_id,))
            await conn.execute("UPDATE querygate.scim_groups SET members = array_remove(members, %s), "
                               "updated_at = now() WHERE %s = ANY(members)", (user_id, user_id))
        changes.add("scim.delete_user", user=user_id, email=resource["userName"])

    # Groups ---------------------------------------------------------------------------------

    async def list_groups(self, conn: Conn, query: Mapping[str, str]) -> dict[str, Any]:
        start, count = _page(query)
        rows, total = await self._rows(conn, _GROUPS, "g",
                                       parse_filter(query.get("filter"), GROUP_FILTERS), start, count)
        members = "members" not in query.get("excludedAttributes", "")
        return list_response([group_resource(r, self.base, members=members) for r in rows],
                             total, start)

    async def get_group(self, conn: Conn, group_id: str,
                        members: bool = True) -> dict[str, Any]:
        rows, _ = await self._rows(conn, _GROUPS, "g", ("id", group_id), 1, 1)
        if not rows:
            raise ScimError(404, f"no group {group_id[:40]}")
        return group_resource(rows[0], self.base, members=members)

    async def create_group(self, conn: Conn, body: Mapping[str, Any],
                           changes: Changes) -> dict[str, Any]:
        name = _text(body.get("displayName"))
        if not name:
            raise ScimError(400, "displayName is required", "invalidValue")
        group_id, members = new_id("grp"), _member_ids(body.get("members"))
        try:
            async with writing(conn):
                await conn.execute("INSERT INTO querygate.scim_groups (id, display_name, external_id, "
                                   "members) VALUES (%s, %s, %s, %s)",
                                   (group_id, name, _text(body.get("externalId")), members))
                await self._sync_roles(conn, members, changes)
        except psycopg.errors.UniqueViolation:
            raise ScimError(409, f"a group named {name} already exists", "uniqueness") from None
        return await self.get_group(conn, group_id)

    async def replace_group(self, conn: Conn, group_id: str,
                            body: Mapping[str, Any], changes: Changes) -> dict[str, Any]:
        await self.get_group(conn, group_id)
        ops: list[tuple[str, str | None, Any]] = [
               ("replace", "displayName", body.get("displayName")),
               ("replace", "members", body.get("members") or [])]
        return await self._group_ops(conn, group_id, ops, changes)

    async def patch_group(self, conn: Conn, group_id: str,
                          body: Mapping[str, Any], changes: Changes) -> dict[str, Any]:
        await self.get_group(conn, group_id)
        ops: list[tuple[str, str | None, Any]] = []
        for op, path, value in operations(body):
            if path is None and op != "remove":  # Okta: {"op": "replace", "value": {...}}
                ops += [(op, p, v) for p, v in flatten(None, value)]
            else:
                ops.append((op, path, value))
        return await self._group_ops(conn, group_id, ops, changes)

    async def _group_ops(self, conn: Conn, group_id: str,
                         ops: list[tuple[str, str | None, Any]], changes: Changes) -> dict[str, Any]:
        async with writing(conn):
            row = await (await conn.execute(
                "SELECT display_name, members FROM querygate.scim_groups WHERE id = %s FOR UPDATE",
                (group_id,))).fetchone()
            assert row is not None
            name, before = row[0], list(row[1])
            members = list(before)
            for op, path, value in ops:
                name, members = _group_op(op, path, value, name, members)
            await conn.execute("UPDATE querygate.scim_groups SET display_name = %s, members = %s, "
                               "updated_at = now() WHERE id = %s", (name, members, group_id))
            await self._sync_roles(conn, sorted(set(before) | set(members)), changes)
        return await self.get_group(conn, group_id)

    async def delete_group(self, conn: Conn, group_id: str,
                           changes: Changes) -> None:
        await self.get_group(conn, group_id)
        async with writing(conn):
            cur = await conn.execute("UPDATE querygate.scim_groups SET deleted_at = now() "
                                     "WHERE id = %s RETURNING members", (group_id,))
            row = await cur.fetchone()
            await self._sync_roles(conn, list(row[0]) if row else [], changes)

    async def _sync_roles(self, conn: Conn, user_ids: list[str],
                          changes: Changes) -> None:
        """Recompute the roles of SCIM-managed people from their groups (in the caller's transaction)."""
        cur = await conn.execute(
            "SELECT u.id, u.email, u.roles, coalesce(array_agg(g.display_name) FILTER "
            "(WHERE g.id IS NOT NULL), '{}') FROM querygate.users u LEFT JOIN querygate.scim_groups g "
            "ON u.id = ANY(g.members) AND g.deleted_at IS NULL "
            "WHERE u.id = ANY(%s) AND u.managed_by = 'scim' GROUP BY u.id", (user_ids,))
        for user_id, email, roles, groups in await cur.fetchall():
            wanted = sorted({self.settings.role_map[g] for g in groups if g in self.settings.role_map})
            if wanted != list(roles):
                await conn.execute("UPDATE querygate.users SET roles = %s, updated_at = now() "
                                   "WHERE id = %s", (wanted, user_id))
                changes.add("scim.roles", user=user_id, email=email, roles=",".join(wanted),
                            before=",".join(roles))


def _group_op(op: str, path: str | None, value: Any, name: str,
              members: list[str]) -> tuple[str, list[str]]:
    """One group operation applied to (display name, members)."""
    key = (path or "").strip().lower()
    removed = member_path(path) if path else None
    if removed is not None and op == "remove":
        return name, [m for m in members if m != removed]
    if key == "displayname":
        return _text(value) or name, members
    if key == "members" or (key == "" and op == "remove"):
        ids = _member_ids(value)
        if op == "add":
            return name, members + [i for i in ids if i not in members]
        if op == "remove":
            return name, [] if value is None else [m for m in members if m not in ids]
        return name, ids
    if key in ("externalid", "id"):
        return name, members
    raise ScimError(400, f"unsupported path {str(path)[:64]!r} on a group", "invalidPath")


def _member_ids(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScimError(400, "members must be a list of {\"value\": id}", "invalidValue")
    ids = [m.get("value") for m in value if isinstance(m, dict)]
    return list(dict.fromkeys(str(i) for i in ids if isinstance(i, str) and i))


def _text(value: object) -> str | None:
    return value.strip()[:200] or None if isinstance(value, str) else None


def _page(query: Mapping[str, str]) -> tuple[int, int]:
    try:
        start = max(1, int(query.get("startIndex", "1")))
        count = min(MAX_PAGE, max(0, int(query.get("count", "100"))))
    except ValueError:
        raise ScimError(400, "startIndex and count must be integers", "invalidValue") from None
    return start, count
