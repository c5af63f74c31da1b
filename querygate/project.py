"""A project folder: ``querygate.yaml`` and ``queries/*.sql``, validated with file and line."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from querygate.catalog import Catalog, load_catalog
from querygate.errors import ProjectError
from querygate.policy import DECISIONS, Classification, Role, TableClass
from querygate.settings import Settings, load_settings

CONFIG_NAME = "querygate.yaml"
SECTIONS = ("database", "audit", "secret_key", "settings", "classification", "roles", "identity",
            "limits", "detect", "alerts", "checkpoints", "purpose", "adhoc_functions",
            "exposure", "postgres")
ROLE_KEYS = ("functions", "fields", "adhoc", "requires_reason", "purpose", "limits", "approvers",
             "break_glass", "description")
GUARDED = ("purpose", "limits", "detect", "alerts")  # read by serve's guards and detector
ENV_DATABASE_URL = "QUERYGATE_DATABASE_URL"


@dataclass(frozen=True)
class Project:
    root: Path
    database_url: str
    audit_url: str | None
    secret_key: bytes
    classification: Classification
    roles: Mapping[str, Role]
    catalog: Catalog
    settings: Settings
    raw: Mapping[str, Any]  # the whole querygate.yaml, for the sections other modules read

    def section(self, name: str) -> Mapping[str, Any]:
        """A top-level section such as ``identity:`` (empty when absent)."""
        value = self.raw.get(name) or {}
        return value if isinstance(value, Mapping) else {}


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line of every mapping key."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = _Lines()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = key_node.start_mark.line + 1
    return mapping


class _Lines(dict[Any, Any]):
    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def line_of(mapping: object, key: object) -> int | None:
    """The line of ``key`` in a mapping read from querygate.yaml (None for any other mapping)."""
    return mapping.lines.get(key) if isinstance(mapping, _Lines) else None


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """``; did you mean 'x'?`` when ``word`` is a near miss of one of ``choices``, else ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_key(what: str, key: object, known: Iterable[str]) -> str:
    """The message for a key that ``what`` does not have, with the nearest known one."""
    names = list(known)
    return f"{what}: unknown key {key!r}{did_you_mean(key, names)} (known: {', '.join(names)})"


Problems = list[ProjectError] | None
"""Where a section's parser puts what it finds wrong: None raises the first (serve), a list
gathers them all (check)."""


@contextmanager
def gathering(problems: Problems) -> Iterator[None]:
    """A ``ProjectError`` inside is raised as usual, or, given a list, added to it and passed over."""
    try:
        yield
    except ProjectError as exc:
        if problems is None:
            raise
        problems.append(exc)


def resolve_secret(value: object, *, what: str, path: str, line: int | None) -> str | None:
    """``$env:NAME`` and ``$file:PATH`` indirection for secrets; plain strings as they are."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProjectError(f"{what} must be a string", path=path, line=line)
    if value.startswith("$env:"):
        name = value[5:]
        resolved = os.environ.get(name)
        if not resolved:
            raise ProjectError(
                f"{what} comes from ${{{name}}}, which is not set in the environment",
                path=path, line=line,
            )
        return resolved
    if value.startswith("$file:"):
        try:
            return Path(value[6:]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ProjectError(f"{what}: cannot read {value[6:]}: {exc.strerror}",
                               path=path, line=line) from None
    return value


def load_project(root: Path) -> Project:
    """Load and validate the project in ``root``."""
    config = root / CONFIG_NAME
    where = str(config)
    try:
        raw = yaml.load(config.read_text(encoding="utf-8"), Loader=_LineLoader)  # noqa: S506
    except FileNotFoundError:
        raise ProjectError(
            f"no {CONFIG_NAME} here; pass --project DIR or create one with `querygate init DIR`",
            path=str(root),
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ProjectError(f"invalid YAML: {getattr(exc, 'problem', exc)}", path=where,
                           line=mark.line + 1 if mark else None) from None
    if not isinstance(raw, dict):
        raise ProjectError("must be a YAML mapping", path=where)
    for key in raw:
        if key not in SECTIONS:
            raise ProjectError(f"unknown section {key!r}{did_you_mean(key, SECTIONS)} (known "
                               f"sections: {', '.join(SECTIONS)})", path=where, line=line_of(raw, key))
    for name in GUARDED:
        if raw.get(name) is not None and not isinstance(raw[name], Mapping):
            hint = "; to turn the detector off, write detect: {enabled: false}" \
                if name == "detect" else ""
            raise ProjectError(f"{name}: must be a mapping of settings, not {raw[name]!r}{hint}",
                               path=where, line=line_of(raw, name))
    _adhoc_functions(raw, where)
    catalog = load_catalog(root / "queries")
    classification = _classification(raw.get("classification") or {}, where)
    roles = _roles(raw.get("roles") or {}, where, catalog, classification)
    database = raw.get("database") or {}
    audit = raw.get("audit") or {}
    url = os.environ.get(ENV_DATABASE_URL) or resolve_secret(
        database.get("url"), what="database.url", path=where, line=line_of(database, "url"))
    if not url:
        raise ProjectError(f"database.url is not set (or set {ENV_DATABASE_URL})", path=where)
    key = resolve_secret(raw.get("secret_key"), what="secret_key", path=where,
                         line=line_of(raw, "secret_key"))
    if not key or len(key) < 16:
        raise ProjectError(
            "secret_key must be set to at least 16 characters (it keys mask.hash and the "
            "HMACs of sensitive parameters); use $env:NAME or $file:PATH",
            path=where, line=line_of(raw, "secret_key"),
        )
    return Project(
        root=root,
        database_url=url,
        audit_url=resolve_secret(audit.get("url"), what="audit.url", path=where,
                                 line=line_of(audit, "url")),
        secret_key=key.encode("utf-8"),
        classification=classification,
        roles=roles,
        catalog=catalog,
        settings=load_settings(raw.get("settings"), path=where),
        raw=raw,
    )


_FUNCTION_NAME = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")


def _adhoc_functions(raw: Mapping[str, Any], where: str) -> None:
    """``adhoc_functions``: names ad-hoc SQL may call beyond the built-in allowlist."""
    names = raw.get("adhoc_functions")
    if names is None:
        return
    if not isinstance(names, list):
        raise ProjectError("adhoc_functions: must be a list of function names (name or "
                           "schema.name)", path=where, line=line_of(raw, "adhoc_functions"))
    for name in names:
        if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
            raise ProjectError(f"adhoc_functions: {name!r} is not a function name (lower-case "
                               "name or schema.name)", path=where,
                               line=line_of(raw, "adhoc_functions"))


def _classification(raw: Mapping[str, Any], where: str) -> Classification:
    tables = {}
    for table, spec in raw.items():
        line = line_of(raw, table)
        if not isinstance(table, str) or table.count(".") != 1:
            raise ProjectError(f"classification key {table!r} must be schema.table",
                               path=where, line=line)
        spec = spec or {}
        columns = {}
        for column, tags in (spec.get("columns") or {}).items():
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ProjectError(f"tags of {table}.{column} must be a list of strings",
                                   path=where, line=line_of(spec.get("columns"), column))
            columns[str(column)] = tuple(tags)
        refs = spec.get("subject_ref") or {}
        if not isinstance(refs, dict):
            raise ProjectError(f"subject_ref of {table} must map subject type to column",
                               path=where, line=line_of(spec, "subject_ref"))
        unknown = set(spec) - {"columns", "subject", "subject_ref"}
        if unknown:
            key = sorted(unknown)[0]
            raise ProjectError(unknown_key(table, key, ("subject", "subject_ref", "columns")),
                               path=where, line=line_of(spec, key))
        tables[table] = TableClass(table, columns, spec.get("subject"),
                                   {str(k): str(v) for k, v in refs.items()})
    return Classification(tables)


def _roles(raw: Mapping[str, Any], where: str, catalog: Catalog,
           classification: Classification) -> dict[str, Role]:
    known_tags = classification.all_tags | {"unclassified"}
    roles = {}
    for name, spec in raw.items():
        spec = spec or {}
        for key in spec:
            if key not in ROLE_KEYS:
                raise ProjectError(unknown_key(f"role {name!r}", key, ROLE_KEYS),
                                   path=where, line=line_of(spec, key))
        functions = spec.get("functions") or []
        fields = spec.get("fields") or {}
        for pattern in functions:
            if not catalog.matching(str(pattern)):
                raise ProjectError(
                    f"role {name!r} grants {pattern!r}, which matches no function in queries/",
                    path=where, line=line_of(spec, "functions"))
        for tag, decision in fields.items():
            line = line_of(fields, tag)
            if tag not in known_tags:
                raise ProjectError(
                    f"role {name!r} mentions tag {tag!r}, which no classified column carries",
                    path=where, line=line)
            if decision not in DECISIONS:
                raise ProjectError(
                    f"role {name!r}: {decision!r} is not a decision; use one of "
                    f"{', '.join(sorted(DECISIONS))}", path=where, line=line)
        options = {k: v for k, v in spec.items() if k not in ("functions", "fields")}
        roles[str(name)] = Role(str(name), tuple(str(f) for f in functions),
                                {str(k): str(v) for k, v in fields.items()}, options)
    return roles
