"""``querygate check``: the plan a reviewer reads in a pull request.

For each function: its output columns with their base-column sources and
tags, the tagged columns its predicates read, the data subjects it returns;
then the role × function × column decision matrix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from querygate.analysis import CatalogAnalysis
from querygate.policy import plan
from querygate.project import Project


def report(project: Project, analysis: CatalogAnalysis) -> dict[str, Any]:
    """The ``check --json`` object (PRODUCT.md, "check --json")."""
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
    return {"functions": functions, "decisions": decisions, "refused": refused, "notes": notes}


def has_errors(result: Mapping[str, Any]) -> bool:
    return any(f["problems"] for f in result["functions"])


def render(result: Mapping[str, Any]) -> str:
    """The same report, for a person."""
    out: list[str] = []
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
