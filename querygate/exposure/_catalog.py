"""What PostgreSQL's catalogs say about who may read what: roles, memberships, privileges,
views, SECURITY DEFINER functions and default privileges, read once into a ``Snapshot``."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from querygate.exposure._quiet import quiet_sqlglot

PUBLIC = 0
"""The grantee oid ``aclexplode`` gives PUBLIC."""


@dataclass(frozen=True)
class Role:
    oid: int
    name: str
    superuser: bool
    inherit: bool
    login: bool
    bypassrls: bool
    valid_until: dt.datetime | None
    createrole: bool = False
    replication: bool = False
    password: bool | None = None  # None: not readable without superuser
    connected: tuple[str, ...] = ()  # pg_stat_activity: "since … from …" per open session
    hba: tuple[str, ...] = ()  # pg_hba.conf methods that apply to the role


@dataclass(frozen=True)
class Edge:
    """``GRANT granted TO member``, with PostgreSQL 16's per-grant INHERIT and SET options."""

    member: int
    granted: int
    inherit: bool
    set: bool


@dataclass(frozen=True)
class Column:
    table: int  # pg_class oid
    attnum: int
    schema: str
    relname: str
    name: str
    tags: tuple[str, ...]
    owner: int
    rls: bool

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.relname}.{self.name}"


@dataclass(frozen=True)
class Relation:
    """A view or materialized view, with the columns it reads and who may select it."""

    oid: int
    schema: str
    name: str
    kind: str  # 'v' or 'm'
    owner: int
    invoker: bool  # security_invoker: the caller's own privileges apply
    reads: frozenset[tuple[int, int]]  # (relation oid, attnum)
    readers: frozenset[int]  # SELECT grantees on the view or any of its columns (0: PUBLIC)
    shown: frozenset[str] | None = None  # column names its select lists use (None: unknown)
    tables: frozenset[int] = frozenset()  # the relations it reads
    whole_row: bool = False  # a select list returns a whole row (row_to_json(c.*), c.*)


@dataclass(frozen=True)
class Definer:
    """A SECURITY DEFINER function: its signature, owner, body and who may execute it."""

    oid: int
    signature: str
    owner: int
    body: str
    reads: frozenset[tuple[int, int]]  # from pg_depend (BEGIN ATOMIC bodies)
    executors: frozenset[int]


@dataclass(frozen=True)
class DefaultGrant:
    """``ALTER DEFAULT PRIVILEGES FOR ROLE creator [IN SCHEMA schema] GRANT SELECT ON TABLES``."""

    creator: int
    schema: str | None  # None: every schema
    grantee: int


@dataclass
class Snapshot:
    roles: dict[int, Role]
    edges: list[Edge]
    columns: list[Column]
    missing: list[str]  # classified tables or columns the database does not have
    table_grants: dict[int, set[int]] = field(default_factory=dict)  # table -> grantees
    column_grants: dict[tuple[int, int], set[int]] = field(default_factory=dict)
    relations: list[Relation] = field(default_factory=list)
    definers: list[Definer] = field(default_factory=list)
    defaults: list[DefaultGrant] = field(default_factory=list)
    parts: dict[Column, list[Column]] = field(default_factory=dict)  # partitions, children
    version: int = 0
    database: str = ""

    def every_column(self) -> list[Column]:
        """The classified columns and the same columns of their partitions and children."""
        return [*self.columns, *(c for parts in self.parts.values() for c in parts)]

    def named(self, name: str) -> Role | None:
        return next((r for r in self.roles.values() if r.name == name), None)


_ROLES = """
SELECT oid, rolname, rolsuper, rolinherit, rolcanlogin, rolbypassrls, rolvaliduntil, rolcreaterole,
       rolreplication
FROM pg_catalog.pg_roles
"""
_EDGES_16 = """
SELECT member, roleid, inherit_option, set_option FROM pg_catalog.pg_auth_members
"""
# Before PostgreSQL 16 the member's INHERIT attribute decides, and any member may SET ROLE.
_EDGES_15 = """
SELECT m.member, m.roleid, r.rolinherit, true
FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles r ON r.oid = m.member
"""
_COLUMNS = """
SELECT c.oid, a.attnum, n.nspname, c.relname, a.attname, c.relowner, c.relrowsecurity
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = %s AND c.relname = %s AND a.attname = ANY(%s)
"""
_PARTS = """
WITH RECURSIVE tree(parent, child) AS (
    SELECT inhparent, inhrelid FROM pg_catalog.pg_inherits
    UNION
    SELECT tree.parent, i.inhrelid FROM tree JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.child
)
SELECT tree.parent, c.oid, a.attnum, n.nspname, c.relname, a.attname, c.relowner, c.relrowsecurity
FROM tree
JOIN pg_catalog.pg_class c ON c.oid = tree.child
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE tree.parent = ANY(%s) AND a.attname = ANY(%s)
"""
_TABLE_GRANTS = """
SELECT c.oid, acl.grantee
FROM pg_catalog.pg_class c,
     aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) acl
WHERE acl.privilege_type = 'SELECT' AND acl.grantee <> c.relowner
"""
_COLUMN_GRANTS = """
SELECT a.attrelid, a.attnum, acl.grantee
FROM pg_catalog.pg_attribute a, aclexplode(a.attacl) acl
WHERE a.attacl IS NOT NULL AND acl.privilege_type = 'SELECT' AND a.attnum > 0
"""
_VIEWS = """
SELECT v.oid, n.nspname, v.relname, v.relkind, v.relowner, pg_get_viewdef(v.oid),
       coalesce(v.reloptions @> ARRAY['security_invoker=true'], false)
         OR coalesce(v.reloptions @> ARRAY['security_invoker=on'], false),
       coalesce(array_agg(DISTINCT ARRAY[d.refobjid::bigint, d.refobjsubid::bigint])
                FILTER (WHERE d.refobjsubid > 0), '{}'),
       coalesce(array_agg(DISTINCT d.refobjid::bigint) FILTER (WHERE d.refobjsubid = 0), '{}')
FROM pg_catalog.pg_class v
JOIN pg_catalog.pg_namespace n ON n.oid = v.relnamespace
JOIN pg_catalog.pg_rewrite rw ON rw.ev_class = v.oid
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = rw.oid
     AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> v.oid
WHERE v.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
GROUP BY v.oid, n.nspname, v.relname, v.relkind, v.relowner, v.reloptions
"""
_DEFINERS = """
SELECT p.oid, p.oid::regprocedure::text, p.proowner, coalesce(p.prosrc, ''),
       coalesce((SELECT array_agg(ARRAY[d.refobjid::bigint, d.refobjsubid::bigint])
                 FROM pg_catalog.pg_depend d
                 WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
                   AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjsubid > 0),
                '{}'),
       (SELECT array_agg(acl.grantee) FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) acl
        WHERE acl.privilege_type = 'EXECUTE' AND acl.grantee <> p.proowner)
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
_DEFAULTS = """
SELECT d.defaclrole, n.nspname, acl.grantee
FROM pg_catalog.pg_default_acl d
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace,
     aclexplode(d.defaclacl) acl
WHERE d.defaclobjtype = 'r' AND acl.privilege_type = 'SELECT'
"""
_PASSWORDS = "SELECT oid, rolpassword IS NOT NULL FROM pg_catalog.pg_authid"
_SESSIONS = """
SELECT usename, backend_start, coalesce(host(client_addr), 'local socket'), datname
FROM pg_catalog.pg_stat_activity WHERE usename IS NOT NULL AND backend_type = 'client backend'
ORDER BY backend_start
"""
_HBA = """
SELECT user_name, type || ' ' || auth_method FROM pg_catalog.pg_hba_file_rules
WHERE error IS NULL ORDER BY line_number
"""


def read_snapshot(conn: psycopg.Connection[Any], classified: Mapping[str, Mapping[str, tuple[str, ...]]]
                  ) -> Snapshot:
    """Read the catalogs for ``classified`` (``schema.table`` → column → tags)."""
    version = conn.info.server_version
    roles = {row[0]: Role(*row) for row in conn.execute(_ROLES)}
    edges = [Edge(*row) for row in conn.execute(_EDGES_16 if version >= 160000 else _EDGES_15)]
    columns, missing = _columns(conn, classified)
    snap = Snapshot(roles, edges, columns, missing, version=version,
                    database=str(conn.info.dbname))
    by_name = {(c.table, c.name): c for c in columns}
    for parent, *rest in conn.execute(_PARTS, (sorted({c.table for c in columns}),
                                               sorted({c.name for c in columns}))):
        oid, attnum, nsp, rel, att, owner, rls = rest
        top = by_name.get((parent, att))
        if top is not None:
            snap.parts.setdefault(top, []).append(Column(oid, attnum, nsp, rel, att, top.tags,
                                                         owner, rls))
    for table, grantee in conn.execute(_TABLE_GRANTS):
        snap.table_grants.setdefault(table, set()).add(grantee)
    for table, attnum, grantee in conn.execute(_COLUMN_GRANTS):
        snap.column_grants.setdefault((table, attnum), set()).add(grantee)
    snap.relations = [_relation(snap, row) for row in conn.execute(_VIEWS)]
    snap.definers = [Definer(oid, sig, owner, body, _pairs(deps), frozenset(execs or ()))
                     for oid, sig, owner, body, deps, execs in conn.execute(_DEFINERS)]
    snap.defaults = [DefaultGrant(*row) for row in conn.execute(_DEFAULTS)]
    _login_details(conn, snap)
    return snap


def _columns(conn: psycopg.Connection[Any], classified: Mapping[str, Mapping[str, tuple[str, ...]]]
             ) -> tuple[list[Column], list[str]]:
    found: list[Column] = []
    missing: list[str] = []
    for table, tagged in classified.items():
        schema, _, relname = table.partition(".")
        names = [c for c, tags in tagged.items() if tags]
        rows = conn.execute(_COLUMNS, (schema, relname, names)).fetchall()
        seen = {row[4] for row in rows}
        missing += [f"{table}.{c}" for c in names if c not in seen]
        found += [Column(oid, attnum, nsp, rel, att, tuple(tagged[att]), owner, rls)
                  for oid, attnum, nsp, rel, att, owner, rls in rows]
    return found, missing


def _pairs(rows: list[list[int]]) -> frozenset[tuple[int, int]]:
    return frozenset((int(a), int(b)) for a, b in rows)


def _relation(snap: Snapshot, row: tuple[Any, ...]) -> Relation:
    oid, schema, name, kind, owner, definition, invoker, deps, tables = row
    readers = set(snap.table_grants.get(oid, ()))
    for (table, _), grantees in snap.column_grants.items():
        if table == oid:
            readers |= grantees
    shown, whole_row = _shown(definition or "")
    return Relation(oid, schema, name, kind, owner, bool(invoker), _pairs(deps),
                    frozenset(readers), shown, frozenset(int(t) for t in tables), whole_row)


def _shown(definition: str) -> tuple[frozenset[str] | None, bool]:
    """The column names a view's select lists use (a column only in WHERE is not shown), None
    when the definition does not parse; and whether a select list returns a whole row
    (PostgreSQL expands a plain ``*`` when the view is made, so a star left is a row)."""
    try:
        with quiet_sqlglot():
            tree = sqlglot.parse_one(definition, dialect="postgres")
    except SqlglotError:
        return None, False
    if tree is None:
        return None, False
    names: set[str] = set()
    whole_row = False
    for select in tree.find_all(exp.Select):
        for item in select.expressions:
            whole_row = whole_row or item.find(exp.Star) is not None
            names |= {c.name.lower() for c in item.find_all(exp.Column)}
    return frozenset(names), whole_row


def _login_details(conn: psycopg.Connection[Any], snap: Snapshot) -> None:
    """Passwords, open sessions and pg_hba.conf methods, where this login may read them."""
    passwords: dict[int, bool] = {}
    hba: list[tuple[list[str], str]] = []
    with conn.transaction():
        try:
            with conn.transaction():
                passwords = dict(conn.execute(_PASSWORDS).fetchall())
            with conn.transaction():
                hba = [(list(users or ()), method) for users, method in conn.execute(_HBA)]
        except psycopg.errors.InsufficientPrivilege:
            pass
    sessions: dict[str, list[str]] = {}
    for user, since, addr, db in conn.execute(_SESSIONS):
        sessions.setdefault(user, []).append(
            f"connected now to {db} since {since:%Y-%m-%d %H:%M:%S%z} from {addr}")
    for oid, role in list(snap.roles.items()):
        methods = tuple(dict.fromkeys(m for users, m in hba if _hba_applies(snap, role, users)))
        snap.roles[oid] = dataclasses.replace(role, password=passwords.get(oid),
                                              connected=tuple(sessions.get(role.name, ())),
                                              hba=methods)


def _hba_applies(snap: Snapshot, role: Role, users: list[str]) -> bool:
    for user in users:
        if user in ("all", role.name):
            return True
        if user.startswith("+"):
            group = snap.named(user[1:])
            if group is not None and any(e.member == role.oid and e.granted == group.oid
                                         for e in snap.edges):
                return True
    return False
