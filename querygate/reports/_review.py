"""Reports over everyone: the access review (granted vs used) and the SOC 2 evidence pack."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import psycopg

from querygate import audit
from querygate.audit import CheckpointConfig
from querygate.project import Project
from querygate.reports._integrity import integrity
from querygate.reports._model import Report, Section, period_words

_USERS = ("SELECT email, kind, status, roles, created_at, updated_at FROM querygate.users "
          "ORDER BY email")
_USAGE = ("SELECT coalesce(actor_email, actor_id), function_name, count(*), max(occurred_at) "
          "FROM querygate.audit_events WHERE decision = 'allowed' AND occurred_at >= %s "
          "AND occurred_at < %s AND function_name NOT LIKE 'querygate.%%' GROUP BY 1, 2")
_STEPS = ("SELECT occurred_at, coalesce(actor_email, actor_id), function_name, decision, "
          "context, seq FROM querygate.audit_events WHERE function_name LIKE %s "
          "AND function_name NOT LIKE %s AND occurred_at >= %s AND occurred_at < %s ORDER BY seq")
_REFUSALS = ("SELECT coalesce(actor_email, actor_id), function_name, error_code, count(*) "
             "FROM querygate.audit_events WHERE decision = 'denied' AND occurred_at >= %s "
             "AND occurred_at < %s GROUP BY 1, 2, 3 ORDER BY 4 DESC")
_POLICIES = ("SELECT e.policy_version, count(*), min(e.occurred_at), max(e.occurred_at), "
             "p.first_seen_at, p.recorded_by, p.source FROM querygate.audit_events e "
             "LEFT JOIN querygate.policy_versions p ON p.version = e.policy_version "
             "WHERE e.occurred_at >= %s AND e.occurred_at < %s AND e.policy_version IS NOT NULL "
             "GROUP BY e.policy_version, p.first_seen_at, p.recorded_by, p.source ORDER BY 3")
_TOKENS = ("SELECT u.email, t.id, t.created_at, t.expires_at, t.revoked_at FROM querygate.tokens t "
           "JOIN querygate.users u ON u.id = t.user_id WHERE (t.created_at >= %s AND t.created_at < %s) "
           "OR (t.revoked_at >= %s AND t.revoked_at < %s) ORDER BY t.created_at")


def _when(moment: dt.datetime | None) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M}" if moment else "-"


def _bounds(since: dt.datetime | None, until: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    return (since or dt.datetime(1970, 1, 1, tzinfo=dt.UTC), until or dt.datetime.now(dt.UTC))


async def _rows(conn: psycopg.AsyncConnection[Any], query: str, args: tuple[Any, ...] = ()
                ) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query.encode(), args)
    return list(await cur.fetchall())


def granted(project: Project, roles: list[str]) -> set[str]:
    """The functions a set of roles grants, expanded against the catalog."""
    known = [project.roles[r] for r in roles if r in project.roles]
    return {name for name in project.catalog if any(role.grants(name) for role in known)}


async def access_review(conn: psycopg.AsyncConnection[Any],
                        identity_conn: psycopg.AsyncConnection[Any], project: Project,
                        since: dt.datetime | None, until: dt.datetime | None, *,
                        config: CheckpointConfig | None, generated_by: str,
                        quick: bool = False) -> Report:
    """Per user: the functions their roles grant against the ones they used in the period."""
    start, end = _bounds(since, until)
    used: dict[str, dict[str, int]] = defaultdict(dict)
    last: dict[str, dt.datetime] = {}
    for who, function, count, latest in await _rows(conn, _USAGE, (start, end)):
        used[who][function] = count
        last[who] = max(last.get(who, latest), latest)
    rows = []
    for email, _kind, status, roles, _created, _updated in await _rows(identity_conn, _USERS):
        grants = granted(project, list(roles))
        mine = used.get(email, {})
        unused = sorted(grants - set(mine))
        rows.append((email, status, ", ".join(roles) or "-", len(grants),
                     ", ".join(f"{f} ({n})" for f, n in sorted(mine.items())) or "none",
                     ", ".join(unused) or "-", _when(last.get(email))))
    return Report(
        kind="access-review", title="Access review",
        subtitle=f"Functions each person's roles grant, against those they used, "
                 f"{period_words(since, until)}. Unused grants are candidates for removal.",
        since=since, until=until, generated_at=dt.datetime.now(dt.UTC), generated_by=generated_by,
        integrity=await integrity(conn, config, [], quick=quick),
        summary=[("People", str(len(rows))),
                 ("With unused grants", str(sum(1 for r in rows if r[5] != "-"))),
                 ("No activity in the period", str(sum(1 for r in rows if r[4] == "none")))],
        sections=[Section("Granted vs used", ("Person", "Status", "Roles", "Functions granted",
                                              "Used (calls)", "Granted but unused",
                                              "Last call (UTC)"), rows)],
        not_available=["Temporary grants (access requests) are reviewed in the SOC 2 pack's "
                       "identity steps, not counted as standing grants here."])


_ALERTS = ("SELECT raised_at, actor_id, rule, severity, summary, status, acknowledged_by, "
           "acknowledged_at, note FROM querygate.alerts WHERE raised_at >= %s AND raised_at < %s "
           "ORDER BY raised_at")


async def _alerts(conn: psycopg.AsyncConnection[Any], start: dt.datetime,
                  end: dt.datetime) -> Section | None:
    """Alerts and their handling, when the detector's table is in this database."""
    cur = await conn.execute("SELECT to_regclass('querygate.alerts') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return None
    rows = [(_when(raised), actor, rule, severity, summary, status,
             f"{by} at {_when(at)}" if by else "-", note or "-")
            for raised, actor, rule, severity, summary, status, by, at, note
            in await _rows(conn, _ALERTS, (start, end))]
    return Section("CC7.2 Alerts raised and their handling",
                   ("Raised", "Person", "Rule", "Severity", "Summary", "Status",
                    "Acknowledged by", "Note"), rows)


_STEP_COLUMNS = ("When", "By", "Step", "Outcome", "Details", "Event")


async def _steps(conn: psycopg.AsyncConnection[Any], like: str, unlike: str, start: dt.datetime,
                 end: dt.datetime) -> list[tuple[Any, ...]]:
    rows = await _rows(conn, _STEPS, (like, unlike, start, end))
    return [(_when(w), b or "-", f, d, ", ".join(f"{k}={v}" for k, v in sorted(c.items())) or "-",
             f"#{seq}") for w, b, f, d, c, seq in rows]


def _policy_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    out = []
    for version, count, first, latest, seen, by, source in rows:
        change = (f"{source.get('author')} (commit {str(source.get('commit'))[:10]})"
                  if source and source.get("author") else (f"loaded by {by}" if by else "-"))
        out.append((version, _when(seen), _when(first), _when(latest), count, change))
    return out


async def soc2_pack(conn: psycopg.AsyncConnection[Any], identity_conn: psycopg.AsyncConnection[Any],
                    project: Project, since: dt.datetime | None, until: dt.datetime | None, *,
                    config: CheckpointConfig | None, generated_by: str,
                    quick: bool = False) -> Report:
    """CC6.1, CC6.2/6.3 and CC7.2 evidence for one period, with the log's verification."""
    start, end = _bounds(since, until)
    users = await _rows(identity_conn, _USERS)
    alerts = await _alerts(conn, start, end)
    policies = Section("Policy versions in force", ("Version", "First seen", "First event",
                                                    "Last event", "Events decided", "Changed by"),
                       _policy_rows(await _rows(conn, _POLICIES, (start, end))))
    checked = await integrity(conn, config, [], quick=quick)
    points = [c for c in (audit.read_folder(config.folder) if config else [])
              if start <= c.time < end]
    sections = [
        Section("CC6.1 People, services and their roles (as of this report)",
                ("Email", "Kind", "Status", "Roles", "Created", "Last change"),
                [(e, k, s, ", ".join(r) or "-", _when(c), _when(u)) for e, k, s, r, c, u in users]),
        Section("CC6.2 Provisioning: people added in the period", ("Email", "Roles", "Created"),
                [(e, ", ".join(r) or "-", _when(c)) for e, _k, _s, r, c, _u in users
                 if start <= c < end]),
        Section("CC6.2/6.3 Tokens issued or revoked in the period",
                ("Email", "Token", "Issued", "Expires", "Revoked"),
                [(e, t, _when(c), _when(x), _when(r)) for e, t, c, x, r in
                 await _rows(identity_conn, _TOKENS, (start, end, start, end))]),
        Section("CC6.3 Removal: people suspended or offboarded", ("Email", "Status", "Changed"),
                [(e, s, _when(u)) for e, _k, s, _r, _c, u in users if s != "active"]),
        Section("CC6.2/6.3 Identity steps recorded in the audit log", _STEP_COLUMNS,
                await _steps(conn, "querygate.%", "querygate.audit.%", start, end),
                "Access requests, approvals, break-glass, offboarding and provisioning changes, "
                "as hash-chained audit events."),
        policies,
        Section("CC7.2 Monitoring: refused calls", ("Person", "Function", "Rule", "Refusals"),
                [(w, f, c or "-", n) for w, f, c, n in await _rows(conn, _REFUSALS, (start, end))]),
        *([alerts] if alerts else []),
        Section("CC7.2 Reads of the audit log and reports", _STEP_COLUMNS,
                await _steps(conn, "querygate.audit.%", "", start, end)),
        Section("Log verification and signed checkpoints", ("Item", "Result"),
                [("Verification", checked.statement), *[("Detail", d) for d in checked.details],
                 ("Checkpoints signed in the period", str(len(points))),
                 ("First / last", f"{_when(points[0].time)} / {_when(points[-1].time)}"
                  if points else "-")]),
    ]
    missing = ["Role grant and revocation history before identity steps were audited: the "
               "directory keeps current roles with creation and last-change dates only."]
    if not policies.rows:
        missing.append("Policy versions: no event in the period carries one (events record it "
                       "once the gateway stamps audit.policy_version on each call).")
    if alerts is None:
        missing.append("Alerts: no alert store (querygate.alerts) in this database yet; run "
                       "`querygate detect backtest` on an export for the period.")
    return Report(
        kind="soc2", title="SOC 2 evidence pack",
        subtitle=f"Logical access (CC6.1), provisioning and removal (CC6.2, CC6.3) and "
                 f"monitoring (CC7.2), {period_words(since, until)}.",
        since=since, until=until, generated_at=dt.datetime.now(dt.UTC), generated_by=generated_by,
        integrity=checked, summary=[("People and services", str(len(users))),
                                    ("Checkpoints in period", str(len(points)))],
        sections=sections, not_available=missing)
