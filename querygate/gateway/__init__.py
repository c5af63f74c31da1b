"""The call path: one package, read top to bottom.

Every front door (``api``, ``console``, ``pgwire``, ``mcp``, ``cli``, the in-process
``querygate.open``) hands a call to ``Gateway`` and nothing else::

    Gateway.call / .export / .sql                                          (_gateway)
      │ authenticate ─ the token checked against the directory now      (identity)
      │ admit ──────── function, typed parameters, plan per role set    (_analysis, policy)
      │               ad-hoc: checked, planned, rewritten onto masks    (_adhoc, adhoc)
      │ guards ─────── before_run, then before_release with subjects     (_guards, guards)
      │ run ────────── READ ONLY, bound parameters, row cap              (execute)
      │ origin check ─ PostgreSQL's column origins vs. the lineage       (_analysis)
      │ mask ───────── per column, on the fetched rows                   (policy)
      │ event ──────── drafted along the way, finished with the subjects (_record)
      │ audit commit ─ group commit; nothing leaves before it            (audit)
      ▼ result ─────── rows, fields, receipt; or a spooled export        (_results)

Front doors reach the stores through named doors (``directory``, ``audit_log``, ``record``,
``report``, ``readiness``), never through the pools.
"""

from querygate.gateway._adhoc import (
    ADHOC_FUNCTION,
    MAX_SQL_CHARS,
    AdhocSetting,
    AdhocStatement,
    adhoc_roles,
    prepare_adhoc,
)
from querygate.gateway._analysis import (
    AnalysedFunction,
    CatalogAnalysis,
    analyse_catalog,
    analysed_function,
)
from querygate.gateway._gateway import Gateway
from querygate.gateway._guards import build_guards
from querygate.gateway._open import InProcess, open_gateway
from querygate.gateway._ready import NOT_CONFIGURED, Readiness
from querygate.gateway._record import MAX_REASON_CHARS, RefusalBudget
from querygate.gateway._results import CallResult, Export

__all__ = [
    "ADHOC_FUNCTION",
    "MAX_REASON_CHARS",
    "MAX_SQL_CHARS",
    "NOT_CONFIGURED",
    "AdhocSetting",
    "AdhocStatement",
    "AnalysedFunction",
    "CallResult",
    "CatalogAnalysis",
    "Export",
    "Gateway",
    "InProcess",
    "Readiness",
    "RefusalBudget",
    "adhoc_roles",
    "analyse_catalog",
    "analysed_function",
    "build_guards",
    "open_gateway",
    "prepare_adhoc",
]
