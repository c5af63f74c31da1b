"""Watched subjects and relationships: what the organisation declares about its people.

::

    detect:
      watch:                            # any look-up without a purpose alerts at once
        subjects: [customer:42, {subject: "customer:7", why: board member}]
        file: watch.csv                 # subject[,why] a line; or JSON: [{"subject", "why"}]
        sql: SELECT 'customer:' || id, 'public figure' FROM customers WHERE vip
        refresh_s: 300                  # serve re-reads the file (when changed) and the query
        without_purpose: alert          # or reason (a call needs one) or refuse (the gateway's)
      relationships:                    # a look-up by the related person alerts at once
        file: relationships.csv         # actor,subject,kind a line (kind: self, family, ...)
        sql: SELECT u.id, 'customer:' || c.id, 'self' FROM ...
        refresh_s: 300

A subject is ``type:id`` as in the audit event's ``subjects``. An actor is the
person's id or email. Someone's ``self`` link (their own customer record) makes
that record a colleague's record for everyone else. ``detect backtest`` reads the
files (it has no database); ``querygate serve`` reads files and queries, and
re-reads them every ``refresh_s`` without a restart.
"""

from __future__ import annotations

import contextlib
import csv
import io
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from querygate.errors import ProjectError
from querygate.project import Problems, gathering, line_of, unknown_key

WATCH_KEYS = ("subjects", "file", "sql", "refresh_s", "without_purpose")
LINK_KEYS = ("file", "sql", "refresh_s")
SELF = "self"
GLASS = ("alert", "reason", "refuse")
"""``watch.without_purpose``: a watched subject released without a purpose match alerts;
or needs a reason as well (else it is refused); or is refused."""


@dataclass(frozen=True)
class Lists:
    """Watched subjects (subject -> why) and links (actor -> subject -> kind); ``owners`` is
    whose own record each ``self``-linked subject is (actor -> their record, inverted)."""

    watched: Mapping[str, str] = field(default_factory=dict)
    links: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    owners: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, watched: Iterable[tuple[str, str]] = (),
           links: Iterable[tuple[str, str, str]] = ()) -> Lists:
        linked: dict[str, dict[str, str]] = {}
        owners: dict[str, set[str]] = {}
        for actor, subject, kind in links:
            subject = sys.intern(subject)
            linked.setdefault(actor, {})[subject] = kind
            if kind == SELF:
                owners.setdefault(subject, set()).add(actor)
        return cls({sys.intern(s): why for s, why in watched}, linked,
                   {s: frozenset(a) for s, a in owners.items()})

    def __bool__(self) -> bool:
        return bool(self.watched or self.links)

    def related(self, actor: str, email: str | None, subject: str) -> str | None:
        """How ``subject`` relates to the person (``self``, ``family``, ``colleague``...)."""
        for who in (actor, email):
            kind = self.links.get(who, {}).get(subject) if who else None
            if kind is not None:
                return kind
        owners = self.owners.get(subject)
        if owners and actor not in owners and email not in owners:
            return "colleague"
        return None


@dataclass(frozen=True)
class Source:
    """Where one list comes from: inline entries, a file, a query; re-read every refresh_s."""

    inline: tuple[tuple[str, str], ...] = ()
    file: Path | None = None
    sql: str | None = None
    refresh_s: float = 300.0
    without_purpose: str = "alert"  # GLASS; the watch list's only


@dataclass(frozen=True)
class WatchSettings:
    watch: Source = Source()
    relationships: Source = Source()

    @property
    def configured(self) -> bool:
        return any((s.inline, s.file, s.sql) != ((), None, None)
                   for s in (self.watch, self.relationships))


def subject_of(value: object, where: str) -> str:
    """``type:id``; a ProjectError that says what to write otherwise."""
    text = str(value).strip() if isinstance(value, str | int) else ""
    kind, _, ident = text.partition(":")
    if not kind or not ident or any(c.isspace() for c in kind):
        raise ProjectError(f"{where}: {value!r} is not a subject; write TYPE:ID as in the audit "
                           "event's subjects, e.g. customer:42")
    return f"{kind}:{ident}"


def _rows(path: Path) -> Iterable[tuple[int, list[str]]]:
    """(line, fields) of a CSV file: blank lines, # comments and a header line skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{path}: cannot read it ({exc.__class__.__name__}); the watch list "
                           "and relationships files are UTF-8 CSV or JSON") from None
    for number, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in fields]
        if not cells or not cells[0] or cells[0].startswith("#"):
            continue
        if number == 1 and cells[0].lower() in ("subject", "actor"):
            continue
        yield number, cells


def _json(path: Path) -> list[Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ProjectError(f"{path}: cannot read it ({exc.__class__.__name__})") from None
    except orjson.JSONDecodeError as exc:
        raise ProjectError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, list):
        raise ProjectError(f"{path}: expected a JSON list of objects")
    return data


def read_watch_file(path: Path) -> list[tuple[str, str]]:
    """Watched subjects from CSV (``subject[,why]`` a line) or JSON (``[{"subject", "why"}]``)."""
    if path.suffix == ".json":
        found = []
        for n, item in enumerate(_json(path), start=1):
            if not isinstance(item, Mapping) or "subject" not in item:
                raise ProjectError(f"{path}: entry {n} needs \"subject\": \"TYPE:ID\"")
            found.append((subject_of(item["subject"], f"{path}: entry {n}"),
                          str(item.get("why") or "watched")))
        return found
    return [(subject_of(cells[0], f"{path}:{n}"), cells[1] if len(cells) > 1 and cells[1]
             else "watched") for n, cells in _rows(path)]


def read_links_file(path: Path) -> list[tuple[str, str, str]]:
    """Relationships from CSV (``actor,subject[,kind]`` a line) or JSON
    (``[{"actor", "subject", "kind"}]``); kind defaults to ``related``."""
    if path.suffix == ".json":
        found = []
        for n, item in enumerate(_json(path), start=1):
            if not isinstance(item, Mapping) or not item.get("actor") or "subject" not in item:
                raise ProjectError(f"{path}: entry {n} needs \"actor\" (an id or email) and "
                                   "\"subject\": \"TYPE:ID\"")
            found.append((str(item["actor"]), subject_of(item["subject"], f"{path}: entry {n}"),
                          str(item.get("kind") or "related")))
        return found
    links = []
    for n, cells in _rows(path):
        if len(cells) < 2:
            raise ProjectError(f"{path}:{n}: expected actor,subject[,kind], e.g. "
                               "alice@example.com,customer:42,self")
        links.append((cells[0], subject_of(cells[1], f"{path}:{n}"),
                      cells[2] if len(cells) > 2 and cells[2] else "related"))
    return links


def _source(raw: object, what: str, keys: tuple[str, ...], root: Path, where: str,
            line: int | None, problems: Problems) -> Source:
    if not isinstance(raw, Mapping):
        raise ProjectError(f"detect.{what} must be a mapping with {', '.join(keys)}", path=where,
                           line=line)
    source = Source()
    for key, value in raw.items():
        at = line_of(raw, key) or line
        with gathering(problems):
            if key not in keys:
                raise ProjectError(unknown_key(f"detect.{what}", key, keys), path=where, line=at)
            source = _set(source, what, key, value, root, where, at)
    return source


def _set(source: Source, what: str, key: str, value: object, root: Path, where: str,
         line: int | None) -> Source:
    if key == "subjects":
        if not isinstance(value, list):
            raise ProjectError(f"detect.{what}.subjects must be a list of TYPE:ID", path=where,
                               line=line)
        found = []
        for item in value:
            subject = item.get("subject") if isinstance(item, Mapping) else item
            why = item.get("why") if isinstance(item, Mapping) else None
            try:
                found.append((subject_of(subject, f"detect.{what}.subjects"), str(why or "watched")))
            except ProjectError as exc:
                raise ProjectError(exc.message, path=where, line=line) from None
        return replace(source, inline=tuple(found))
    if key == "file":
        if not isinstance(value, str) or not value:
            raise ProjectError(f"detect.{what}.file must be a path (relative to the project)",
                               path=where, line=line)
        path = root / value
        if not path.is_file():
            raise ProjectError(f"detect.{what}.file: {path} does not exist", path=where,
                               line=line)
        return replace(source, file=path)
    if key == "sql":
        if not isinstance(value, str) or not value.strip():
            raise ProjectError(f"detect.{what}.sql must be a SELECT", path=where, line=line)
        return replace(source, sql=value)
    if key == "without_purpose":
        if value not in GLASS:
            raise ProjectError(f"detect.{what}.without_purpose must be one of {', '.join(GLASS)} "
                               f"(alert: alert only; reason: a call needs a reason; refuse: "
                               f"refused), not {value!r}", path=where, line=line)
        return replace(source, without_purpose=str(value))
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ProjectError(f"detect.{what}.refresh_s must be a positive number of seconds, "
                           f"not {value!r}", path=where, line=line)
    return replace(source, refresh_s=float(value))


def load_watch(raw: Mapping[str, Any], root: Path, where: str,
               problems: Problems = None) -> WatchSettings:
    """``detect.watch`` and ``detect.relationships``; files are read here, so a bad line shows
    in ``check`` and at start."""
    settings = WatchSettings()
    for name, keys in (("watch", WATCH_KEYS), ("relationships", LINK_KEYS)):
        if raw.get(name) is None:
            continue
        with gathering(problems):
            source = _source(raw[name], name, keys, root, where, line_of(raw, name), problems)
            if source.file is not None:
                (read_watch_file if name == "watch" else read_links_file)(source.file)
            settings = replace(settings, **{name: source})
    return settings


def lists_from_files(settings: WatchSettings, watch_file: Path | None = None,
                     links_file: Path | None = None, *,
                     queried: tuple[list[tuple[str, str]], list[tuple[str, str, str]]] = ([], [])
                     ) -> Lists:
    """The lists from inline entries and files (what ``detect backtest`` can read), plus
    what the queries returned (``queried``, online)."""
    watched = [*settings.watch.inline, *queried[0]]
    for path in (settings.watch.file, watch_file):
        if path is not None:
            watched += read_watch_file(path)
    links = list(queried[1])
    for path in (settings.relationships.file, links_file):
        if path is not None:
            links += read_links_file(path)
    return Lists.of(watched, links)


def watch_rows(rows: Iterable[Sequence[object]], what: str) -> list[tuple[str, str]]:
    """Rows of ``watch.sql`` (subject[, why]); rows that are not a subject are skipped."""
    found = []
    for row in rows:
        with contextlib.suppress(ProjectError):
            why = str(row[1]) if len(row) > 1 and row[1] is not None else "watched"
            found.append((subject_of(row[0], what), why))
    return found


def link_rows(rows: Iterable[Sequence[object]], what: str) -> list[tuple[str, str, str]]:
    """Rows of ``relationships.sql`` (actor, subject[, kind]); others are skipped."""
    found = []
    for row in rows:
        if len(row) < 2 or row[0] is None:
            continue
        with contextlib.suppress(ProjectError):
            kind = str(row[2]) if len(row) > 2 and row[2] is not None else "related"
            found.append((str(row[0]), subject_of(row[1], what), kind))
    return found
