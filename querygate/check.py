"""``querygate check``: the plan a reviewer reads in a pull request.

For each function: its output columns with their base-column sources and
tags, the tagged columns its predicates read, the data subjects it returns;
then the role × function × column decision matrix. Before all that, what is
wrong in the sections only ``serve`` reads (``purpose:``, the roles'
``requires_reason``, ``purpose`` and ``limits``, ``limits:``, ``detect:``,
``alerts:``, ``identity:``, ``checkpoints:``), found by the parsers ``serve``
runs, and each purpose check's SQL prepared against the live database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from querygate.adhoc import ADHOC_ROLE, MASKED_SCHEMA, masked_views
from querygate.audit import CheckpointConfig
from querygate.detect import load_settings as detect_settings
from querygate.errors import ProjectError, QuerygateError
from querygate.gateway import CatalogAnalysis, build_guards
from querygate.identity import identity_settings
from querygate.policy import plan
from querygate.project import CONFIG_NAME, Project, line_of
from querygate.purpose import load_requirements, prepare_check


def section_problems(project: Project) -> list[ProjectError]:
    """Every error ``serve`` would stop at in the guards' and the detector's settings."""
    problems: list[ProjectError] = []
    build_guards(project, problems)
    detect_settings(project, problems)
    try:
        identity_settings(project)
    except ProjectError as exc:
        problems.append(exc)
    try:
        CheckpointConfig.from_project(project)
    except ProjectError as exc:
        problems.append(exc)
    except QuerygateError as exc:  # its message names the file; the line is the section's
        where = str(project.root / CONFIG_NAME)
        problems.append(ProjectError(exc.message.removeprefix(f"{where}: "), path=where,
                                     line=line_of(project.raw, "checkpoints")))
    return problems


async def purpose_problems(conn: psycopg.AsyncConnection[Any],
                           project: Project) -> list[ProjectError]:
    """Each valid purpose check's SQL, prepared as the purpose guard binds it."""
    checks, _, _ = load_requirements(project, [])  # the invalid ones are in section_problems
    section = project.section("purpose")
    found = []
    for name, check in checks.items():
        why = await prepare_check(conn, check)
        if why is not None:
            found.append(ProjectError(f"purpose check {name!r}: {why}",
                                      path=str(project.root / CONFIG_NAME),
                                      line=line_of(section.get(name), "sql")))
    return found


def _problem(exc: ProjectError) -> dict[str, str]:
    """``file`` as functions show theirs (path:line), ``message`` without it."""
    where = exc.path or CONFIG_NAME
    at = where if exc.line is None else f"{where}:{exc.line}"
    return {"file": at, "message": exc.message.removeprefix(f"{at}: ")}


def report(project: Project, analysis: CatalogAnalysis,
           config: Sequence[ProjectError] = ()) -> dict[str, Any]:
    """The ``check --json`` object (docs/contracts.md, "check --json"); ``config`` holds the problems
    of querygate.yaml outside any function, reported in the order of their lines."""
    analysed, problems = analysis.functions, analysis.problems
    functions = []
    for name in project.catalog:
        fn = analysed.get(name)
        functions.append({
            "name": name,
            "file": f"{project.catalog[name].path}:{project.catalog[name].line}",
            "columns": [{"name": c.name, "sources": sorted(c.sources), "tags": list(c.tags)}
                        for c in (fn.columns if fn else ())],
            "filters": [{"source": s, "tags": list(t)} for s, t in (fn.filters if fn else {}).items()],
            "subjects": [{"type": c.subject, "column": c.name}
                         for c in (fn.columns if fn else ()) if c.subject],
            "problems": list(problems.get(name, [])),
            "notes": list(fn.notes if fn else ()),
        })
    decisions: dict[str, dict[str, dict[str, str]]] = {}
    refused: dict[str, dict[str, str]] = {}
    for role_name, role in project.roles.items():
        decisions[role_name] = {}
        for name, fn in analysed.items():
            p = plan(name, fn.columns, dict(fn.filters), [role])
            if not p.granted_by:
                continue
            if p.refusal is not None:
                refused.setdefault(role_name, {})[name] = p.refusal.reason
                continue
            decisions[role_name][name] = {c.spec.name: c.decision for c in p.columns}
    notes = [] if analysis.locked else [
        "no querygate.lock: columns added to tables later cannot be told apart from approved "
        "ones; run `querygate check --lock` to approve the schema as it is"]
    ordered = sorted(config, key=lambda p: (p.line is None, p.line or 0))
    return {"functions": functions, "decisions": decisions, "refused": refused, "notes": notes,
            "problems": [_problem(p) for p in ordered], "adhoc": _adhoc(project, analysis)}


def _adhoc(project: Project, analysis: CatalogAnalysis) -> dict[str, Any]:
    """What ad-hoc SQL may read: the masked views the gateway keeps, and the role's grants."""
    roles = [r for r in project.roles.values() if r.options.get("adhoc") is True]
    views = masked_views(analysis.schema, analysis.classification, roles) if roles else []
    return {
        "roles": [r.name for r in roles],
        "database_role": ADHOC_ROLE,
        "functions": list(project.raw.get("adhoc_functions") or []),
        "grants": [f"GRANT SELECT ON {MASKED_SCHEMA}.\"{v.name}\" TO {ADHOC_ROLE}"
                   for v in views],
        "views": {v.name: [c if d == "allow" else f"{c}#{d}" for c, d in v.forms]
                  for v in views},
    }


def _render_adhoc(adhoc: Mapping[str, Any]) -> list[str]:
    if not adhoc.get("roles"):
        return []
    out = [f"ad-hoc SQL (roles {', '.join(adhoc['roles'])}) runs as {adhoc['database_role']}, "
           f"which may read only these masked views in {MASKED_SCHEMA}:"]
    for table, forms in adhoc["views"].items():
        masked = [f for f in forms if "#" in f]
        out.append(f"  {table:<30} {len(forms)} column(s); masked: {', '.join(masked) or '-'}")
    if adhoc.get("functions"):
        out.append(f"  functions beyond the built-in allowlist: {', '.join(adhoc['functions'])}")
    out.append("")
    return out


def has_errors(result: Mapping[str, Any]) -> bool:
    return bool(result.get("problems")) or any(f["problems"] for f in result["functions"])


def render(result: Mapping[str, Any]) -> str:
    """The same report, for a person."""
    out: list[str] = [f"PROBLEM: {p['file']}: {p['message']}" for p in result.get("problems", [])]
    if out:
        out.append("")
    for fn in result["functions"]:
        out.append(f"function {fn['name']}  ({fn['file']})")
        for problem in fn["problems"]:
            out.append(f"  PROBLEM: {problem}")
        for note in fn["notes"]:
            out.append(f"  note: {note}")
        for col in fn["columns"]:
            tags = ", ".join(col["tags"]) or "-"
            out.append(f"  {col['name']:<22} ← {', '.join(col['sources']) or '(no base column)'}"
                       f"  [{tags}]")
        tagged = [f for f in fn["filters"] if f["tags"]]
        for flt in tagged:
            out.append(f"  filters on {flt['source']}  [{', '.join(flt['tags'])}]")
        for subject in fn["subjects"]:
            out.append(f"  returns subject {subject['type']} via column {subject['column']}")
        out.append("")
    for note in result.get("notes", []):
        out.append(f"NOTE: {note}")
    out += _render_adhoc(result.get("adhoc") or {})
    out.append("decisions (role × function × column; columns in clear are not listed)")
    for role, functions in result["decisions"].items():
        out.append(f"  {role}:")
        for name, columns in functions.items():
            shown = {c: d for c, d in columns.items() if d != "allow"}
            detail = ", ".join(f"{c}={d}" for c, d in shown.items()) or "all columns in clear"
            out.append(f"    {name:<28} {detail}")
        for name, why in result["refused"].get(role, {}).items():
            out.append(f"    {name:<28} REFUSED: {why}")
    return "\n".join(out)
