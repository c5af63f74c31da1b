"""Preparing one ad-hoc statement: checked, analysed, planned, and rewritten onto masked sources.

Only roles with ``adhoc: true`` may send it. The text must be one read-only query with no
parameters and no block comments. Its functions must be on the allowlist, its relations the
project's tables and views. Lineage still decides each output column's ``fields`` entry and
the data subjects; the values themselves are masked at the source (``_masked``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlglot import exp

from querygate.adhoc import (
    Allowlist,
    MaskedSources,
    Matches,
    NotPrepared,
    TableRef,
    allowlist,
    masked_views,
    needs_tree,
    readable_tables,
    rewrite,
    spliced,
    sync,
    table_refs,
)
from querygate.catalog import Function, placeholders
from querygate.errors import BadParameters, PolicyDenied
from querygate.gateway._analysis import AnalysedFunction, CatalogAnalysis, analysed_function
from querygate.identity import Identity
from querygate.lineage import LineageError, Relation, Schema, analyze, parse_query
from querygate.policy import Classification, Plan, Role, plan
from querygate.project import Project

log = logging.getLogger("querygate.gateway")

ADHOC_FUNCTION = "adhoc_sql"
MAX_SQL_CHARS = 20_000
MAX_NODES = 20_000  # sqlglot nodes in one statement: the analysis stays in milliseconds
_POSITIONAL = re.compile(r"\$[0-9]")


def _validated(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise BadParameters("sql must be a non-empty string", parameter="sql")
    if len(text) > MAX_SQL_CHARS or "\x00" in text:
        raise BadParameters(f"sql must be at most {MAX_SQL_CHARS} characters of text",
                            parameter="sql")
    if "/*" in text:
        raise BadParameters("block comments are not accepted in ad-hoc SQL", parameter="sql")
    try:
        named = placeholders(text)
    except ValueError:
        raise BadParameters("the SQL does not tokenize", parameter="sql") from None
    if named or _POSITIONAL.search(text):
        raise BadParameters("ad-hoc SQL takes no parameters; write a named function for that",
                            parameter="sql")
    return text.strip().rstrip(";").rstrip()


@dataclass(frozen=True)
class AdhocSetting:
    """What the gateway knows for ad-hoc SQL: the live schema, tags, allowlist, sources."""

    schema: Schema
    classification: Classification
    allowlist: Allowlist
    sources: MaskedSources | None  # None: the database is not prepared (``unprepared`` says why)
    unprepared: str | None = None


@dataclass(frozen=True)
class AdhocStatement:
    analysed: AnalysedFunction
    plan: Plan
    sql: str  # the rewritten statement PostgreSQL runs


def adhoc_roles(who: Identity, roles: dict[str, Role]) -> list[Role]:
    return [roles[r] for r in who.roles
            if r in roles and roles[r].options.get("adhoc") is True]


def prepare_adhoc(setting: AdhocSetting, who: Identity, roles: dict[str, Role],
                  text: object) -> AdhocStatement:
    """The checked, planned and rewritten statement, or the reason it is refused."""
    granted = adhoc_roles(who, roles)
    if not granted:
        raise PolicyDenied("adhoc not granted", "none of your roles has adhoc: true")
    sql = _validated(text)
    sources = setting.sources
    try:
        statement = parse_query(sql)
        if sum(1 for _ in statement.walk()) > MAX_NODES:
            raise BadParameters("the statement is too large to analyse", parameter="sql")
        setting.allowlist.check(statement)
        # what the rewrite needs is taken before the analysis changes the tree in place
        refs = None if sources is None else _table_refs(statement, setting)
        matchable = None if sources is None else (
            lambda r, c: sources.matchable(r, c, setting.classification, granted))
        pristine = statement.copy() if refs is None or matchable is None or needs_tree(
            statement, setting.schema, refs, matchable) else None
        analysis = analyze(sql, setting.schema, statement)
    except LineageError as exc:
        raise BadParameters(f"the SQL cannot be analysed: {exc.message}", parameter="sql") from None
    except RecursionError:
        raise BadParameters("the statement is nested too deeply", parameter="sql") from None
    function = Function(ADHOC_FUNCTION, "", (), sql, sql.replace("%", "%%"), "<adhoc>", 1)
    analysed = analysed_function(function, analysis, [c.name for c in analysis.columns],
                                 setting.schema, setting.classification)
    decided = plan(ADHOC_FUNCTION, analysed.columns, dict(analysed.filters),
                   [dataclasses.replace(r, functions=("*",)) for r in granted],
                   masked_at_source=True)
    decided.ensure_allowed()
    if sources is None:
        raise PolicyDenied("adhoc: database not prepared", setting.unprepared or "")
    if refs is None:  # a relation the rewrite refuses although the analysis knew it
        assert pristine is not None
        refs = table_refs(pristine, setting.schema)
    return AdhocStatement(analysed, decided,
                          _rewritten(setting, sources, granted, sql, refs, pristine))


def _table_refs(statement: exp.Expr, setting: AdhocSetting) -> list[TableRef] | None:
    """The tables named, or None to let the analysis name an unknown one (a 422)."""
    try:
        return table_refs(statement, setting.schema)
    except PolicyDenied:
        return None


def _rewritten(setting: AdhocSetting, sources: MaskedSources, granted: Sequence[Role],
               sql: str, refs: list[TableRef], pristine: exp.Expr | None) -> str:
    classification = setting.classification

    def source(r: Relation, m: Matches) -> exp.Select | None:
        return sources.relation_for(r, classification, granted, m)

    try:
        if pristine is None:
            return spliced(sql, refs, setting.schema,
                           lambda r: sources.relation_sql(r, classification, granted),
                           source, setting.allowlist)
        rewrite(pristine, setting.schema, source, setting.allowlist,
                lambda r, c: sources.matchable(r, c, classification, granted))
    except LineageError as exc:
        raise BadParameters(f"a view cannot be analysed: {exc.message}", parameter="sql") from None
    return pristine.sql(dialect="postgres", normalize_functions=False, copy=False)


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A key of its own for one purpose (mask hashes, match, audited parameters)."""
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


async def adhoc_setting(conn: psycopg.AsyncConnection[Any], project: Project,
                         analysis: CatalogAnalysis) -> AdhocSetting:
    """The allowlist and the masked sources, refreshed in the database when the project's
    tags or ad-hoc roles changed; without ad-hoc roles, nothing is touched."""
    roles = [r for r in project.roles.values() if r.options.get("adhoc") is True]
    allow = allowlist(project.raw.get("adhoc_functions") or [])
    if not roles:
        return AdhocSetting(analysis.schema, analysis.classification, allow, None,
                            "no role of this project has adhoc: true")
    allow, dropped = await allow.verified(conn)
    allow.warm()
    for problem in dropped:
        log.warning("%s; it is not allowed in ad-hoc SQL", problem)
    views = masked_views(analysis.schema, analysis.classification, roles)
    try:
        readable = await readable_tables(conn, analysis.schema)
        await sync(conn, views, derive_key(project.secret_key, "mask.hash"), readable,
                         derive_key(project.secret_key, "match"))
    except NotPrepared as exc:
        why = f"{exc}: run `querygate setup --admin-url URL` once to prepare ad-hoc SQL"
        log.warning("ad-hoc SQL is off: %s", why)
        return AdhocSetting(analysis.schema, analysis.classification, allow, None, why)
    sources = MaskedSources({v.name: v for v in views if v.name in readable},
                                  derive_key(project.secret_key, "match"))
    return AdhocSetting(analysis.schema, analysis.classification, allow, sources)
