"""Masked sources: each table as ad-hoc SQL may see it, masked inside PostgreSQL.

Ad-hoc SQL never reads a table. Every reference to one is replaced, inside the statement, by a
subquery over a view in schema ``querygate_masked`` that shows each protected column only as
the caller's rule shows it: the masked value, NULL for ``omit`` and ``mask.null``; a ``deny``
column is not there at all. Every expression, filter, join, error, row count and timing of the
statement is then computed from what the caller may see, never from the value behind it.

The views belong to the gateway's role and read the tables with its privileges. The
statement itself runs as ``querygate_adhoc`` (``SET LOCAL ROLE``), a role that may read these
views and nothing else: no table, not querygate's schema, no key. So a reference the rewrite
missed fails with a permission error instead of reading a value, and PostgreSQL's statistics
views hold nothing of the protected columns for it.

One view per table, with one column per form any ad-hoc role may see: the column itself where
some role may see it in clear (and for untagged columns), ``name#mask.last4`` and the like for
masks. ``mask.hash`` is an HMAC computed in the database under a key kept in
``querygate_masked.mask_keys``, which only the gateway's role can read; it gives the same value
as the gateway's own ``mask.hash`` for text, numbers and dates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import sqlglot
from psycopg import sql
from sqlglot import exp

from querygate.lineage import Relation, Schema
from querygate.policy import UNCLASSIFIED, Classification, Role, column_verdict, mask_hash

MASKED_SCHEMA = "querygate_masked"
ADHOC_ROLE = "querygate_adhoc"
_LOCK = 0x71676164  # pg_advisory_xact_lock key while the views are rebuilt ("qgad")

_DATES = ("date", "timestamp without time zone", "timestamp with time zone")
_KEY = ("(SELECT k.{part} FROM querygate_masked.mask_keys k WHERE k.purpose = '{purpose}')")
_HMAC = ("'h:' || pg_catalog.rtrim(pg_catalog.translate(pg_catalog.encode("
         "pg_catalog.substr(pg_catalog.sha256(" + _KEY.format(part="opad", purpose="{purpose}") +
         " || pg_catalog.sha256(" + _KEY.format(part="ipad", purpose="{purpose}") +
         " || pg_catalog.convert_to({{t}}, 'UTF8'))), 1, 16), 'base64'), '+/', '-_'), '=')")
_MASKS = {
    "mask.full": "CASE WHEN {c} IS NULL THEN NULL ELSE '****' END",
    "mask.last4": "CASE WHEN {c} IS NULL THEN NULL WHEN pg_catalog.length({t}) > 4 "
                  "THEN '****' || pg_catalog.right({t}, 4) ELSE '****' END",
    "mask.email": "CASE WHEN {c} IS NULL THEN NULL WHEN {t} ~ '^.+@[^@]+$' THEN "
                  "pg_catalog.left({t}, 1) || '***@' || pg_catalog.substring({t}, '@([^@]+)$') "
                  "ELSE '****' END",
    "mask.year": "CASE WHEN {c} IS NULL THEN NULL WHEN {t} ~ '^[0-9]{{4}}' "
                 "THEN pg_catalog.left({t}, 4) ELSE '****' END",
    "mask.hash": _HMAC.format(purpose="mask.hash"),
    # never shown: compared with the keyed hash of a literal, for ``match`` (equality only)
    "match": _HMAC.format(purpose="match"),
}
_YEAR_OF_DATE = "pg_catalog.date_part('year', {c})::integer"
_NULLS = ("omit", "mask.null")


def source_decision(decision: str, tags: tuple[str, ...] = ()) -> str:
    """What a column holds at its source under ``decision``: ``match`` shows nothing, and a
    column added since the lock is not read at all (so no view depends on it)."""
    if UNCLASSIFIED in tags:
        return "mask.null"
    return "mask.full" if decision == "match" else decision


def view_column(column: str, decision: str) -> str:
    """The view's column for one form of a table column."""
    return column if decision == "allow" else f"{column}#{decision}"


def _expression(column: str, kind: str, decision: str) -> str:
    c = sql.Identifier(column).as_string(None)
    t = f"{c}::text"
    if decision == "allow":
        return c
    if decision == "mask.year" and kind in _DATES:
        return _YEAR_OF_DATE.format(c=c)
    return _MASKS[decision].format(c=c, t=t)


@dataclass(frozen=True)
class MaskedView:
    """One table's view: its columns, each a form (``allow`` or a mask) of a table column."""

    relation: Relation
    forms: tuple[tuple[str, str], ...]  # (column, decision)

    @property
    def name(self) -> str:
        return self.relation.qualified

    def ddl(self) -> str:
        kinds = {c.name: c.type for c in self.relation.columns}
        select = ", ".join(
            f"{_expression(col, kinds[col], d)} AS {sql.Identifier(view_column(col, d)).as_string(None)}"
            for col, d in self.forms) or ""
        target = sql.Identifier(MASKED_SCHEMA, self.name).as_string(None)
        table = sql.Identifier(self.relation.schema, self.relation.name).as_string(None)
        return f"CREATE VIEW {target} AS SELECT {select} FROM {table}"


def masked_views(schema: Schema, classification: Classification,
                 roles: Sequence[Role]) -> list[MaskedView]:
    """The view of every table, with the forms any of ``roles`` (the ad-hoc roles) may see."""
    views = []
    for relation in sorted(schema.relations.values(), key=lambda r: r.qualified):
        if relation.is_view:
            continue  # views are expanded into their tables
        forms: list[tuple[str, str]] = []
        for column in relation.columns:
            tags = classification.tags_of(f"{relation.qualified}.{column.name}")
            raw = {column_verdict([r], tags).decision for r in roles}
            decisions = {source_decision(d, tags) for d in raw}
            if "match" in raw and UNCLASSIFIED not in tags:
                decisions.add("match")
            forms += [(column.name, d) for d in sorted(decisions)
                      if d not in _NULLS and d != "deny"]
        views.append(MaskedView(relation, tuple(forms)))
    return views


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer padded keys, so the database computes HMACs with
    sha256() alone (RFC 2104): the same digests as Python's ``hmac``."""
    block = key if len(key) <= 64 else hashlib.sha256(key).digest()
    block = block.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


@dataclass
class MaskedSources:
    """What the rewrite puts in place of each table, per decision vector (cached)."""

    views: Mapping[str, MaskedView]
    match_key: bytes = b""
    _cache: dict[tuple[str, tuple[str, ...]], exp.Select] = field(default_factory=dict)
    _texts: dict[int, str] = field(default_factory=dict)  # id of a cached subquery -> its SQL

    def matchable(self, relation: Relation, column: str, classification: Classification,
                  roles: Sequence[Role]) -> bool:
        """Whether holders of ``roles`` may compare ``column`` for equality (``match``)."""
        tags = classification.tags_of(f"{relation.qualified}.{column}")
        return UNCLASSIFIED not in tags and column_verdict(roles, tags).decision == "match"

    def relation_for(self, relation: Relation, classification: Classification,
                     roles: Sequence[Role],
                     matches: Mapping[str, Sequence[str]] | None = None) -> exp.Select | None:
        """The subquery that stands for ``relation`` for holders of ``roles``; None when
        the table has no view (the gateway cannot read it). ``matches``: column -> literals
        it must equal (one of), compared inside as keyed hashes."""
        subquery = self._relation(relation, classification, roles)
        if subquery is None or not matches:
            return subquery
        for column, literals in matches.items():
            form = exp.column(view_column(column, "match"), quoted=True)
            hashes = [exp.Literal.string(str(mask_hash(v, self.match_key))) for v in literals]
            subquery = subquery.where(exp.In(this=form, expressions=hashes), copy=False)
        return subquery

    def relation_sql(self, relation: Relation, classification: Classification,
                     roles: Sequence[Role]) -> str | None:
        """``relation_for`` as SQL text, cached: what a splice puts in the caller's text."""
        subquery = self._relation(relation, classification, roles, copy=False)
        if subquery is None:
            return None
        key = id(subquery)
        text = self._texts.get(key)
        if text is None:
            text = self._texts[key] = subquery.sql(dialect="postgres", normalize_functions=False)
        return text

    def _relation(self, relation: Relation, classification: Classification,
                  roles: Sequence[Role], copy: bool = True) -> exp.Select | None:
        view = self.views.get(relation.qualified)
        if view is None:
            return None
        tags = [classification.tags_of(f"{relation.qualified}.{c.name}")
                for c in relation.columns]
        decisions = tuple(source_decision(column_verdict(roles, t).decision, t) for t in tags)
        key = (relation.qualified, decisions)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = _subquery(view, decisions)
        return cached.copy() if copy else cached


def _subquery(view: MaskedView, decisions: tuple[str, ...]) -> exp.Select:
    """A deny column is left out; a form the view lacks (a view older than the policy) is
    still named, so PostgreSQL refuses the statement without reading anything."""
    parts = []
    for column, decision in zip(view.relation.columns, decisions, strict=True):
        name = sql.Identifier(column.name).as_string(None)
        if decision == "deny":
            continue
        if decision in _NULLS:
            parts.append(f"CAST(NULL AS {column.type}) AS {name}")
        else:
            form = sql.Identifier(view_column(column.name, decision)).as_string(None)
            parts.append(f"{form} AS {name}")
    target = sql.Identifier(MASKED_SCHEMA, view.name).as_string(None)
    text = f"SELECT {', '.join(parts) or ''} FROM {target}"
    parsed = sqlglot.parse_one(text, read="postgres")
    assert isinstance(parsed, exp.Select)
    return parsed


class NotPrepared(Exception):
    """The database lacks what ad-hoc SQL needs; the message says what to run."""


_STATE = """
SELECT (SELECT pg_catalog.pg_get_userbyid(n.nspowner) = current_user
        FROM pg_catalog.pg_namespace n WHERE n.nspname = 'querygate_masked'),
       EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'querygate_adhoc')
       AND pg_catalog.pg_has_role(current_user, 'querygate_adhoc', 'MEMBER'),
       pg_catalog.obj_description('querygate_masked'::regnamespace, 'pg_namespace'),
       (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c WHERE c.relkind = 'v'
        AND c.relnamespace = 'querygate_masked'::regnamespace)
"""


def fingerprint(views: Sequence[MaskedView], key: bytes) -> str:
    body = json.dumps([[v.name, v.ddl()] for v in views])
    keyed = hmac.new(key, b"querygate masked sources", hashlib.sha256).hexdigest()[:16]
    return "querygate masked sources " + hashlib.sha256((body + keyed).encode()).hexdigest()


async def sync(conn: psycopg.AsyncConnection[Any], views: Sequence[MaskedView],
               key: bytes, readable: set[str], match_key: bytes = b"") -> list[str]:
    """Create or refresh the views and their grants, in one transaction; what was done."""
    wanted = fingerprint(views, key + match_key)
    async with conn.transaction():
        await conn.execute("SET TRANSACTION READ WRITE")
        await conn.execute("SELECT pg_catalog.pg_advisory_xact_lock(%s)", (_LOCK,))
        row = await (await conn.execute(
            "SELECT to_regnamespace('querygate_masked') IS NOT NULL")).fetchone()
        if not row or not row[0]:
            raise NotPrepared("schema querygate_masked does not exist")
        state = await (await conn.execute(_STATE)).fetchone()
        assert state is not None
        owner, member, comment, present = state
        if not owner:
            raise NotPrepared("schema querygate_masked does not belong to the gateway's role")
        if not member:
            raise NotPrepared("the gateway's role may not SET ROLE querygate_adhoc")
        kept = [v for v in views if v.name in readable]
        if comment == wanted and present == len(kept):
            return []
        done = await _rebuild(conn, kept, {"mask.hash": key, "match": match_key or key})
        await conn.execute(sql.SQL("COMMENT ON SCHEMA querygate_masked IS {}").format(
            sql.Literal(wanted)))
    return done


async def _rebuild(conn: psycopg.AsyncConnection[Any], views: Sequence[MaskedView],
                   keys: Mapping[str, bytes]) -> list[str]:
    old = await (await conn.execute(
        "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relkind = 'v' "
        "AND c.relnamespace = 'querygate_masked'::regnamespace")).fetchall()
    for (name,) in old:
        await conn.execute(sql.SQL("DROP VIEW {}").format(sql.Identifier(MASKED_SCHEMA, name)))
    await conn.execute("CREATE TABLE IF NOT EXISTS querygate_masked.mask_keys ("
                       "purpose text PRIMARY KEY, ipad bytea NOT NULL, opad bytea NOT NULL)")
    await conn.execute("REVOKE ALL ON querygate_masked.mask_keys FROM PUBLIC")
    for purpose, key in keys.items():
        ipad, opad = hmac_pads(key)
        await conn.execute("INSERT INTO querygate_masked.mask_keys VALUES (%s, %s, %s) "
                           "ON CONFLICT (purpose) DO UPDATE SET ipad = excluded.ipad, "
                           "opad = excluded.opad", (purpose, ipad, opad))
    await conn.execute("GRANT USAGE ON SCHEMA querygate_masked TO querygate_adhoc")
    for view in views:
        await conn.execute(view.ddl().encode())
        await conn.execute(sql.SQL("GRANT SELECT ON {} TO querygate_adhoc").format(
            sql.Identifier(MASKED_SCHEMA, view.name)))
    return [f"ad-hoc: {len(views)} masked view(s) in schema querygate_masked, "
            f"{len(old)} replaced"]


async def readable_tables(conn: psycopg.AsyncConnection[Any], schema: Schema) -> set[str]:
    """The tables the gateway's role may read, by ``schema.table``."""
    oids = {r.oid: r.qualified for r in schema.relations.values() if not r.is_view}
    rows = await (await conn.execute(
        "SELECT o FROM unnest(%s::oid[]) o WHERE pg_catalog.has_table_privilege(o, 'SELECT')",
        (list(oids),))).fetchall()
    return {oids[int(o)] for (o,) in rows}
