"""Every path by which a role can read a classified column, from a catalog ``Snapshot``.

A path is a ``via``: ``superuser``, ``owner``, ``grant``, ``column grant``, ``public``,
``member of X`` (privileges inherited through a chain of memberships), ``set role X``
(a role the member may become), ``pg_read_all_data``, ``bypassrls``, ``createrole`` (before
PostgreSQL 16, such a role may grant itself pg_read_all_data), ``replication`` (a copy of
the cluster), ``view V owned by X``,
``materialized view V owned by X``, ``security definer F owned by X`` and ``default
privileges``. A role with no path is never reported.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial

from querygate.exposure._catalog import PUBLIC, Column, Relation, Snapshot
from querygate.exposure._revoke import suggestion

READ_ALL = "pg_read_all_data"
_STAR = re.compile(r"\bselect\s+(?:distinct\s+)?(?:\w+\.)?\*|,\s*(?:\w+\.)?\*")
_Through = tuple[str, int, frozenset[int], Callable[[str], str]]
"""A view or SECURITY DEFINER function over a column: via, owner, who may use it, and the
suggested statement for a role."""


@dataclass(frozen=True)
class Exposure:
    """One role, one classified column, one way in."""

    role: str
    column: str
    tags: tuple[str, ...]
    via: str
    login: bool
    detail: str
    revoke: str

    def to_json(self) -> dict[str, object]:
        return {"role": self.role, "column": self.column, "tags": list(self.tags),
                "via": self.via, "login": self.login, "detail": self.detail,
                "revoke": self.revoke}


def _reach(snap: Snapshot, *, inherit: bool) -> dict[int, dict[int, tuple[int, ...]]]:
    """For each role, the roles it reaches through memberships, with the shortest chain."""
    out: dict[int, list[int]] = {}
    for edge in snap.edges:
        if edge.inherit if inherit else edge.set:
            out.setdefault(edge.member, []).append(edge.granted)
    found: dict[int, dict[int, tuple[int, ...]]] = {}
    for start in snap.roles:
        chains: dict[int, tuple[int, ...]] = {}
        queue: deque[tuple[int, tuple[int, ...]]] = deque([(start, ())])
        while queue:
            role, chain = queue.popleft()
            for nxt in out.get(role, ()):
                if nxt != start and nxt not in chains:
                    chains[nxt] = (*chain, nxt)
                    queue.append((nxt, chains[nxt]))
        found[start] = chains
    return found


class Paths:
    """The reachability of one snapshot; ``exposures`` walks every classified column."""

    def __init__(self, snap: Snapshot, excluded: Iterable[str]) -> None:
        self.snap = snap
        self.excluded = set(excluded)
        self.inherits = _reach(snap, inherit=True)
        self.sets = _reach(snap, inherit=False)
        read_all = snap.named(READ_ALL)
        self.read_all = read_all.oid if read_all else -1

    def reported(self) -> list[int]:
        """Roles that may appear in the report: not predefined, not querygate's own."""
        return sorted((r.oid for r in self.snap.roles.values()
                       if not r.name.startswith("pg_") and r.name not in self.excluded),
                      key=lambda oid: self.snap.roles[oid].name)

    def name(self, oid: int) -> str:
        return "PUBLIC" if oid == PUBLIC else self.snap.roles[oid].name

    def chain(self, role: int, chain: tuple[int, ...]) -> str:
        return " → ".join(self.name(r) for r in (role, *chain))

    # -- privileges on one object -------------------------------------------------------------

    def holds(self, role: int, grantees: set[int] | frozenset[int], owner: int, *,
              public: bool = True) -> bool:
        """``role`` has the privilege itself or by inheritance (and, with ``public``, when
        PUBLIC holds it)."""
        if (public and PUBLIC in grantees) or role == owner or role in grantees:
            return True
        return any(x == owner or x in grantees for x in self.inherits[role])

    def reads(self, role: int, col: Column, *, public: bool = True) -> bool:
        """``role`` can read ``col`` as itself: superuser, owner, grants, inheritance (and
        PUBLIC's grants unless ``public`` is false)."""
        if role not in self.snap.roles:
            return False
        if self.snap.roles[role].superuser or self.read_all in self.inherits[role]:
            return True
        return self.holds(role, self._grantees(col), col.owner, public=public)

    def _grantees(self, col: Column) -> set[int]:
        return (self.snap.table_grants.get(col.table, set())
                | self.snap.column_grants.get((col.table, col.attnum), set()))

    # -- the report ---------------------------------------------------------------------------

    def exposures(self) -> list[Exposure]:
        found: dict[tuple[str, str, str], Exposure] = {}
        exposed_by = self._views()
        for col in self.snap.columns:
            for part in (col, *self.snap.parts.get(col, ())):  # partitions hold its rows too
                where = "" if part is col else f"on {part.schema}.{part.relname}, which holds " \
                    f"rows of {col.schema}.{col.relname}: "
                for role, via, detail, revoke in self._column(part, exposed_by.get(part, [])):
                    login = role != PUBLIC and self.snap.roles[role].login
                    item = Exposure(self.name(role), col.qualified, col.tags, via, login,
                                    where + detail, revoke)
                    found.setdefault((item.role, item.column, item.via), item)
        return sorted(found.values(), key=lambda e: (e.role, e.column, e.via))

    def _column(self, col: Column, views: list[_Through]
                ) -> Iterator[tuple[int, str, str, str]]:
        table = self.snap.table_grants.get(col.table, set())
        column = self.snap.column_grants.get((col.table, col.attnum), set())
        if PUBLIC in table or PUBLIC in column:
            kind = "table" if PUBLIC in table else "column"
            yield (PUBLIC, "public", f"SELECT on the {kind} is granted to PUBLIC: every role, "
                   "present and future", suggestion("public", col, "PUBLIC", scope=kind))
        for via, _, grantees, revoke in views:
            if PUBLIC in grantees:
                yield (PUBLIC, via, "every role may use it, and it runs with its owner's "
                       "privileges", revoke("PUBLIC"))
        for role in self.reported():
            yield from self._own(role, col, table, column)
            yield from self._through(role, col, views)
        yield from self._defaults(col)

    def _own(self, role: int, col: Column, table: set[int], column: set[int]
             ) -> Iterator[tuple[int, str, str, str]]:
        info, name = self.snap.roles[role], self.snap.roles[role].name
        if info.superuser:
            yield role, "superuser", "a superuser reads everything", suggestion(
                "superuser", col, name)
        if role == col.owner:
            yield role, "owner", f"owns {col.schema}.{col.relname}", suggestion("owner", col, name)
        if role in table:
            yield role, "grant", f"SELECT on {col.schema}.{col.relname}", suggestion(
                "grant", col, name)
        if role in column:
            yield role, "column grant", f"SELECT ({col.name})", suggestion("column grant", col, name)
        for other, chain in self.inherits[role].items():
            if other == self.read_all:
                yield role, READ_ALL, f"member: {self.chain(role, chain)}", suggestion(
                    "member", col, name, first=self.name(chain[0]))
            elif other == col.owner or other in table or other in column:
                how = "owns the table" if other == col.owner else "holds SELECT"
                yield (role, f"member of {self.name(other)}",
                       f"inherits through {self.chain(role, chain)}, which {how}",
                       suggestion("member", col, name, first=self.name(chain[0])))
        for other, chain in self.sets[role].items():
            target = self.snap.roles[other]
            inherited = other in self.inherits[role]
            if target.superuser or (not inherited and self.reads(other, col, public=False)):
                what = "a superuser" if target.superuser else "a role that reads it"
                yield (role, f"set role {target.name}",
                       f"may SET ROLE {target.name} ({self.chain(role, chain)}), {what}",
                       suggestion("member", col, name, first=self.name(chain[0])))
        if info.createrole and not info.superuser and self.snap.version < 160000:
            yield (role, "createrole", "CREATEROLE before PostgreSQL 16 may grant itself any "
                   "role but a superuser, pg_read_all_data included", suggestion(
                       "createrole", col, name))
        if info.replication and not info.superuser:
            yield (role, "replication", "REPLICATION: may copy the whole cluster "
                   "(pg_basebackup) or stream its changes, past every grant",
                   suggestion("replication", col, name))
        if info.bypassrls and not info.superuser and self.reads(role, col, public=False):
            rls = "row-level security is on" if col.rls else "row-level security is off today"
            yield (role, "bypassrls", f"BYPASSRLS: reads every row past row-level policies "
                   f"({rls} for {col.schema}.{col.relname})", suggestion("bypassrls", col, name))

    def _through(self, role: int, col: Column, views: list[_Through]
                 ) -> Iterator[tuple[int, str, str, str]]:
        info = self.snap.roles[role]
        if info.superuser:
            return  # reads it anyway; reported once as superuser
        for via, owner, grantees, revoke in views:
            if role == owner:
                continue  # its own privileges, reported as such
            if role in grantees or any(x in grantees for x in self.inherits[role]):
                yield role, via, f"the object runs with {self.name(owner)}'s privileges", \
                    revoke(info.name)

    def _defaults(self, col: Column) -> Iterator[tuple[int, str, str, str]]:
        for grant in self.snap.defaults:
            if grant.schema not in (None, col.schema) or grant.grantee == grant.creator:
                continue  # a global entry lists its creator's own privileges too
            if grant.grantee != PUBLIC and self.snap.roles[grant.grantee].name in self.excluded:
                continue
            where = f"in schema {grant.schema}" if grant.schema else "in any schema"
            creator = self.name(grant.creator)
            yield (grant.grantee, "default privileges",
                   f"tables {creator} creates {where} are readable by it: a recreated "
                   f"{col.schema}.{col.relname} would be",
                   suggestion("default privileges", col, self.name(grant.grantee),
                              creator=creator, schema=grant.schema))

    # -- views and SECURITY DEFINER functions -------------------------------------------------

    def _views(self) -> dict[Column, list[_Through]]:
        """Per column: (via, owner, who may use the object, revoke template) for each view or
        SECURITY DEFINER function that reads it with its owner's privileges."""
        found: dict[Column, list[_Through]] = {}
        by_oid = {r.oid: r for r in self.snap.relations}
        exposes: dict[int, set[Column]] = {r.oid: set() for r in self.snap.relations}
        changed = True
        while changed:  # views over views: until nothing new is found
            changed = False
            for rel in self.snap.relations:
                if rel.invoker:
                    continue
                new = {c for c in self.snap.every_column()
                       if self._shows(rel, c) and self.reads(rel.owner, c)}
                for inner, _ in rel.reads:
                    if inner in by_oid and self._may_select(rel.owner, by_oid[inner]):
                        new |= exposes[inner]
                if not new <= exposes[rel.oid]:
                    exposes[rel.oid] |= new
                    changed = True
        for rel in self.snap.relations:
            kind = "materialized view" if rel.kind == "m" else "view"
            via = f"{kind} {rel.schema}.{rel.name} owned by {self.name(rel.owner)}"
            revoke = partial(suggestion, "view", None, schema=rel.schema, name=rel.name)
            for col in exposes[rel.oid]:
                found.setdefault(col, []).append((via, rel.owner, rel.readers, revoke))
        for fn in self.snap.definers:
            via = f"security definer {fn.signature} owned by {self.name(fn.owner)}"
            revoke = partial(suggestion, "function", None, name=fn.signature)
            for col in self.snap.every_column():
                if self._calls_read(fn.body, fn.reads, col) and self.reads(fn.owner, col):
                    found.setdefault(col, []).append((via, fn.owner, fn.executors, revoke))
        return found

    @staticmethod
    def _shows(rel: Relation, col: Column) -> bool:
        """The view returns the column: it reads it in a select list, or returns whole rows
        of its table."""
        if rel.whole_row and col.table in rel.tables:
            return True
        return (col.table, col.attnum) in rel.reads and (rel.shown is None
                                                         or col.name.lower() in rel.shown)

    def _may_select(self, role: int, rel: Relation) -> bool:
        return (self.snap.roles[role].superuser or self.read_all in self.inherits[role]
                or self.holds(role, set(rel.readers), rel.owner))

    @staticmethod
    def _calls_read(body: str, reads: frozenset[tuple[int, int]], col: Column) -> bool:
        """A function body reads ``col`` when pg_depend says so (BEGIN ATOMIC), or when it
        names the table and the column (or ``*``)."""
        if (col.table, col.attnum) in reads:
            return True
        text = body.lower()
        if not re.search(rf"\b{re.escape(col.relname.lower())}\b", text):
            return False
        return bool(re.search(rf"\b{re.escape(col.name.lower())}\b", text) or _STAR.search(text))
