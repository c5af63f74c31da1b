"""Reports about one data subject (GDPR Art. 15) and about one leaving person (offboarding)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from querygate import audit
from querygate.audit import MAX_LIMIT, CheckpointConfig, StoredEvent
from querygate.catalog import Catalog
from querygate.reports._integrity import integrity
from querygate.reports._model import Report, Section, describe_field, period_words

OUTCOME = {"allowed": "data returned", "denied": "refused by policy", "error": "failed"}


def _when(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}"


def _seen(stored: StoredEvent) -> tuple[str, str]:
    """(fields in clear, fields masked or withheld), in words."""
    fields = stored.event.fields
    clear = ", ".join(sorted(c for c, d in fields.items() if d == "allow"))
    other = ", ".join(describe_field(c, d) for c, d in sorted(fields.items()) if d != "allow")
    return clear or "-", other or "-"


def _access_row(stored: StoredEvent) -> tuple[Any, ...]:
    e = stored.event
    clear, masked = _seen(stored)
    who = e.actor_email or e.actor_id or "unknown"
    via = e.context.get("on_behalf_of")
    return (_when(e.occurred_at), who + (f" (agent for {via})" if via else ""),
            ", ".join(e.actor_roles) or "-", e.function_name, e.reason or "-", clear, masked,
            OUTCOME.get(e.decision, e.decision), f"#{stored.seq} {stored.hash.hex()[:12]}")


BUILT_IN = {
    "querygate.audit.subject": "Looked up who accessed this record (the audit trail itself).",
    "querygate.audit.report.subject-access": "Produced a subject access report like this one.",
}


def _describe(name: str, catalog: Catalog) -> str:
    if name in catalog:
        return catalog[name].description
    if name.startswith("querygate."):
        return BUILT_IN.get(name, "A querygate step (audit, access request or identity change).")
    return "(no longer in the catalog)"


def _functions_section(events: list[StoredEvent], catalog: Catalog) -> Section:
    used = Counter(s.event.function_name for s in events)
    rows = [(name, _describe(name, catalog), count) for name, count in sorted(used.items())]
    return Section("What each function does", ("Function", "Description", "Times used"), rows,
                   "Functions are named, reviewed queries; nobody runs free-form SQL.")


def _people_section(events: list[StoredEvent]) -> Section:
    first: dict[str, dt.datetime] = {}
    last: dict[str, dt.datetime] = {}
    count: Counter[str] = Counter()
    for s in events:
        who = s.event.actor_email or s.event.actor_id or "unknown"
        count[who] += 1
        first[who] = min(first.get(who, s.event.occurred_at), s.event.occurred_at)
        last[who] = max(last.get(who, s.event.occurred_at), s.event.occurred_at)
    rows = [(who, n, _when(first[who]), _when(last[who])) for who, n in count.most_common()]
    return Section("People who accessed this data", ("Person", "Accesses", "First", "Last"), rows)


async def subject_access(conn: psycopg.AsyncConnection[Any], subject: tuple[str, str],
                         since: dt.datetime | None, until: dt.datetime | None, *,
                         catalog: Catalog, config: CheckpointConfig | None, generated_by: str,
                         quick: bool = False, archives: audit.Archives | None = None) -> Report:
    """Every access to one subject in a period: who, when, why, and which fields in clear;
    from the live store and, when ``archives`` are given, the archived months too (each file
    verified against the signed checkpoints before it answers)."""
    events = await audit.search_everywhere(
        conn, audit.Query(subject=subject, since=since, until=until, limit=MAX_LIMIT), archives)
    events.reverse()  # oldest first reads like a story
    people = {s.event.actor_email or s.event.actor_id for s in events}
    return Report(
        kind="subject-access", title=f"Subject access report: {subject[0]} {subject[1]}",
        subtitle=f"Every access to this {subject[0]}'s data recorded by querygate, "
                 f"{period_words(since, until)} (GDPR Article 15).",
        since=since, until=until, generated_at=dt.datetime.now(dt.UTC), generated_by=generated_by,
        integrity=await integrity(conn, config, events, quick=quick),
        summary=[("Data subject", f"{subject[0]} {subject[1]}"),
                 ("Accesses", str(len(events))), ("People", str(len(people))),
                 ("Refused attempts", str(sum(s.event.decision == "denied" for s in events)))],
        sections=[
            Section("Accesses, oldest first",
                    ("When (UTC)", "Who", "Roles", "Function", "Purpose / reason",
                     "Fields seen in clear", "Fields masked or withheld", "Outcome", "Receipt"),
                    [_access_row(s) for s in events],
                    "Each row is one request through querygate. 'Receipt' is the event's place "
                    "in the tamper-evident log (sequence number and hash)."),
            _people_section(events), _functions_section(events, catalog)],
        not_available=["Accesses made outside querygate (direct database logins) are not in "
                       "this log; the database roles that can still read the data are listed "
                       "by `querygate check`."])


def _account_section(user: Mapping[str, Any] | None,
                     tokens: Sequence[Mapping[str, Any]]) -> Section:
    rows: list[tuple[Any, ...]] = []
    if user is not None:
        rows += [("Status", user["status"]), ("Roles", ", ".join(user["roles"]) or "-"),
                 ("Created", _when(user["created_at"])), ("Last change", _when(user["updated_at"]))]
    for token in tokens:
        state = f"revoked {_when(token['revoked_at'])}" if token["revoked_at"] else "active"
        rows.append((f"Token {token['id']}", f"issued {_when(token['created_at'])}, {state}"))
    return Section("Account", ("Item", "Value"), rows, empty="No such user in the directory.")


def _subjects_section(events: list[StoredEvent]) -> Section:
    seen: dict[tuple[str, str], list[dt.datetime]] = {}
    for s in events:
        for subject in s.event.subjects:
            seen.setdefault(subject, []).append(s.event.occurred_at)
    rows = [(t, i, len(times), _when(min(times)), _when(max(times)))
            for (t, i), times in sorted(seen.items(), key=lambda kv: -len(kv[1]))]
    return Section("Records accessed", ("Type", "Id", "Times", "First", "Last"), rows,
                   f"{len(rows)} distinct records.")


async def offboarding(conn: psycopg.AsyncConnection[Any], identity_conn: psycopg.AsyncConnection[Any],
                      email: str, days: int, *, config: CheckpointConfig | None,
                      generated_by: str, quick: bool = False) -> Report:
    """Everything one person accessed in their last ``days`` days, for the day they leave."""
    until = dt.datetime.now(dt.UTC)
    since = until - dt.timedelta(days=days)
    events = await audit.search(conn, audit.Query(user=email, since=since, until=until,
                                                  limit=MAX_LIMIT))
    events.reverse()
    user, tokens = await _directory(identity_conn, email)
    rows = [(_when(s.event.occurred_at), s.event.function_name, OUTCOME.get(s.event.decision),
             s.event.reason or "-", len(s.event.subjects),
             ", ".join(f"{t}:{i}" for t, i in s.event.subjects[:5]), f"#{s.seq}") for s in events]
    return Report(
        kind="offboarding", title=f"Offboarding report: {email}",
        subtitle=f"Everything {email} accessed through querygate in the last {days} days "
                 f"({period_words(since, until)}).",
        since=since, until=until, generated_at=until, generated_by=generated_by,
        integrity=await integrity(conn, config, events, quick=quick),
        summary=[("Person", email), ("Status", user["status"] if user else "not in directory"),
                 ("Calls", str(len(events))),
                 ("Distinct records", str(len({x for s in events for x in s.event.subjects})))],
        sections=[_account_section(user, tokens), _subjects_section(events),
                  Section("Calls, oldest first", ("When (UTC)", "Function", "Outcome", "Reason",
                                                  "Records", "First records", "Receipt"), rows)],
        not_available=["Role grants and revocations before the identity audit events began are "
                       "not recorded: the directory keeps only current roles and the creation "
                       "and last-change dates."])


async def _directory(conn: psycopg.AsyncConnection[Any],
                     email: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    cur = await conn.execute("SELECT id, status, roles, created_at, updated_at "
                             "FROM querygate.users WHERE email = %s", (email.lower(),))
    row = await cur.fetchone()
    if row is None:
        return None, []
    user = dict(zip(("id", "status", "roles", "created_at", "updated_at"), row, strict=True))
    cur = await conn.execute("SELECT id, created_at, revoked_at FROM querygate.tokens "
                             "WHERE user_id = %s ORDER BY created_at", (user["id"],))
    tokens = [dict(zip(("id", "created_at", "revoked_at"), r, strict=True))
              for r in await cur.fetchall()]
    return user, tokens
