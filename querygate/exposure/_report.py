"""``querygate exposure``: every other way into the classified columns, checked against the
exposures the project accepts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from querygate.detect import LogMessage
from querygate.exposure._allow import Accepted
from querygate.exposure._catalog import Role, read_snapshot
from querygate.exposure._paths import Exposure, Paths
from querygate.provision import AUDITOR_ROLE, OWNER_ROLE


@dataclass(frozen=True)
class ExposureReport:
    database: str
    exposures: list[Exposure]
    accepted: dict[int, Accepted]  # index in ``exposures`` → the allow entry that covers it
    roles: list[Role]  # the roles that appear, with how they log in
    excluded: dict[str, str]  # role → why it is not reported
    missing: list[str]  # classified columns the database does not have
    seen: Mapping[str, str] | None = None  # role → last seen in the server logs given, if any

    @property
    def unaccepted(self) -> list[Exposure]:
        return [e for i, e in enumerate(self.exposures) if i not in self.accepted]

    def to_json(self) -> dict[str, Any]:
        items = []
        for i, e in enumerate(self.exposures):
            item = e.to_json()
            item["accepted"] = i in self.accepted
            if i in self.accepted:
                item["accepted_reason"] = self.accepted[i].reason
            items.append(item)
        return {"database": self.database, "exposures": items,
                "roles": [role_json(r, self.seen) for r in self.roles],
                "not_reported": [{"role": k, "why": v} for k, v in self.excluded.items()],
                "missing": self.missing}


def role_json(role: Role, seen: Mapping[str, str] | None) -> dict[str, Any]:
    return {"role": role.name, "login": role.login, "password": role.password,
            "valid_until": role.valid_until.isoformat() if role.valid_until else None,
            "superuser": role.superuser, "bypassrls": role.bypassrls,
            "hba": list(role.hba), "last_connected": login_seen(role, seen)}


def login_seen(role: Role, seen: Mapping[str, str] | None) -> str:
    """What PostgreSQL can say about the role's connections: the open ones, and the last one
    in the server logs given (PostgreSQL itself keeps no last-login time)."""
    parts = list(role.connected)
    if seen is not None:
        parts.append(seen.get(role.name, "not seen in the log"))
    if parts:
        return "; ".join(parts)
    return "not connected now; PostgreSQL keeps no last-login time (pass --log)"


def describe_seen(messages: Mapping[str, LogMessage]) -> dict[str, str]:
    """``last seen …`` per role, from ``last_seen`` over a server log."""
    return {role: f"last seen in the log {_utc(m.at)} in {m.database or '?'} from "
            f"{m.client or 'local socket'}" + (f" ({m.application})" if m.application else "")
            for role, m in messages.items()}


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


ADHOC_ROLE = "querygate_adhoc"  # set up with the masked views that ad-hoc SQL reads


def excluded_roles(gateway_role: str) -> dict[str, str]:
    return {gateway_role: "the gateway's own role: the one door",
            OWNER_ROLE: "querygate's own, by design: NOLOGIN, owns the querygate schema",
            AUDITOR_ROLE: "querygate's own, by design: NOLOGIN, reads the audit log only",
            ADHOC_ROLE: "querygate's own, by design: NOLOGIN, what the gateway's ad-hoc SQL "
                        "runs as; reads only its masked views"}


def find_exposures(conn: psycopg.Connection[Any],
                   classified: Mapping[str, Mapping[str, tuple[str, ...]]], *,
                   gateway_role: str, allow: Sequence[Accepted] = (),
                   seen: Mapping[str, str] | None = None) -> ExposureReport:
    """Read the catalogs behind ``conn`` and report every path to a classified column."""
    snap = read_snapshot(conn, classified)
    excluded = excluded_roles(gateway_role)
    exposures = Paths(snap, excluded).exposures()
    accepted = {i: a for i, e in enumerate(exposures)
                for a in reversed(allow) if a.covers(e.role, e.column)}
    names = {e.role for e in exposures}
    roles = sorted((r for r in snap.roles.values() if r.name in names), key=lambda r: r.name)
    return ExposureReport(snap.database, exposures, accepted, roles, excluded, snap.missing,
                          None if seen is None else dict(seen))
