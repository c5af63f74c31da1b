"""Ad-hoc SQL under the same rules: one read-only statement, analysed, masked and audited.

Only roles with ``adhoc: true`` may send it. A statement that cannot be
analysed, takes parameters, or calls a function that changes the session
(``set_config``, ``dblink``, …) is refused before it reaches PostgreSQL, and
PostgreSQL runs it through the extended protocol, which accepts one statement.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

from querygate.analysis import AnalysedFunction, analysed_function
from querygate.catalog import Function, placeholders
from querygate.errors import BadParameters, PolicyDenied
from querygate.identity import Identity
from querygate.lineage import LineageError, analyze
from querygate.policy import Plan, plan

if TYPE_CHECKING:
    from querygate.gateway import Gateway

ADHOC_FUNCTION = "adhoc_sql"
MAX_SQL_CHARS = 20_000
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


def prepare_adhoc(gateway: Gateway, who: Identity, text: object) -> tuple[AnalysedFunction, Plan]:
    """The analysed statement and the caller's plan for it, or the reason it is refused."""
    project = gateway.project
    roles = [project.roles[r] for r in who.roles
             if r in project.roles and project.roles[r].options.get("adhoc") is True]
    if not roles:
        raise PolicyDenied("adhoc not granted", "none of your roles has adhoc: true")
    sql = _validated(text)
    try:
        analysis = analyze(sql, gateway.schema)
    except LineageError as exc:
        raise BadParameters(f"the SQL cannot be analysed: {exc.message}", parameter="sql") from None
    effects = [n for n in analysis.problems if n.startswith("calls ")]
    if effects:
        raise PolicyDenied("adhoc: statement with effects", "; ".join(effects))
    function = Function(ADHOC_FUNCTION, "", (), sql, sql.replace("%", "%%"), "<adhoc>", 1)
    analysed = analysed_function(function, analysis, [c.name for c in analysis.columns],
                                 gateway.schema, gateway.classification)
    granted = [dataclasses.replace(r, functions=("*",)) for r in roles]
    decided = plan(ADHOC_FUNCTION, analysed.columns, dict(analysed.filters), granted)
    decided.ensure_allowed()
    return analysed, decided
