"""The purpose guard: a reason where a role needs one, and a purpose for every subject released.

Where several of the caller's roles grant a function, the most permissive
wins, as for field policies: a requirement applies only when every granting
role has one, at the weakest of their modes, and a subject passes when any of
their checks allows it. Findings go into the audit event's ``context``
(``purpose: miss|error``, ``reason_check: missing|mismatch``; nothing when all is
well), where the detector reads them. An agent acting for a person is checked
with that person's identity.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from querygate import execute
from querygate.errors import PolicyDenied, QuerygateError, Unavailable
from querygate.guards import CallContext, note, small_pool
from querygate.project import Project
from querygate.purpose._config import MODES, Check, Requirement

Subjects = tuple[tuple[str, str], ...]


class PurposeGuard:
    """Requires reasons (before the query) and checks purposes (before any row leaves)."""

    def __init__(self, project: Project, reasons: dict[str, Requirement],
                 purposes: dict[str, Requirement], checks: dict[str, Check]) -> None:
        self.project = project
        self.reasons = reasons
        self.purposes = purposes
        self.checks = checks
        self.pool: AsyncConnectionPool[Any] | None = None

    async def open(self) -> None:
        if self.purposes:  # the checks read production tables: read-only, like functions
            self.pool = await small_pool(self.project.database_url, self.project.settings,
                                         name="querygate-purpose", read_only=True)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    def applicable(self, call: CallContext, table: dict[str, Requirement]) -> list[Requirement]:
        """The requirements that bind this call: none as soon as one granting role has none."""
        function = call.function.name
        found: list[Requirement] = []
        for role in call.identity.roles:
            spec = self.project.roles.get(role)
            if spec is None or spec.grants(function) is None:
                continue
            requirement = table.get(role)
            if requirement is None or requirement.mode == "off" or not requirement.covers(function):
                return []
            found.append(requirement)
        return found

    async def before_run(self, call: CallContext) -> None:
        required = self.applicable(call, self.reasons)
        if not required:
            return
        reason = call.reason
        if reason is not None and any(r.pattern is None or r.pattern.search(reason)
                                      for r in required):
            return
        finding = "missing" if reason is None else "mismatch"
        note(call, "reason_check", finding)
        if _weakest(required) != "enforce":
            return
        shapes = [r.pattern.pattern for r in required if r.pattern is not None]
        wanted = f" matching {' or '.join(shapes)}" if shapes else ""
        roles = ", ".join(r.role for r in required)
        if reason is None:
            message = (f"{call.function.name} needs a reason{wanted} (role {roles}): pass "
                       "--reason, or \"reason\" in the request body, e.g. the ticket you work on")
        else:
            message = f"the reason given does not have the expected form{wanted} (role {roles})"
        raise PolicyDenied(f"requires_reason ({roles})", message)

    async def before_release(self, call: CallContext, subjects: Subjects) -> None:
        required = self.applicable(call, self.purposes)
        if not required:
            return
        checks = [self.checks[r.check] for r in required if r.check]
        relevant = [s for s in subjects if any(c.subject == s[0] for c in checks)]
        if not relevant:
            return
        mode = _weakest(required)
        names = ", ".join(sorted({c.name for c in checks}))
        try:
            allowed = await self._allowed(call, checks, relevant)
        except QuerygateError:
            note(call, "purpose", "error")
            note(call, "purpose_check", names)
            if mode == "enforce":
                raise
            return
        missed = [s for s in relevant if s not in allowed]
        if not missed:
            return  # a match is the normal case; the event stays as it was
        note(call, "purpose", "miss")
        note(call, "purpose_check", names)
        note(call, "purpose_missed", str(len(missed)))
        if any(r.alert_each for r in required):
            note(call, "purpose_alert", "each")
        if mode == "enforce":
            raise PolicyDenied(f"purpose ({names})", _refusal(missed, relevant, checks))

    async def _allowed(self, call: CallContext, checks: list[Check],
                       relevant: list[tuple[str, str]]) -> set[tuple[str, str]]:
        assert self.pool is not None
        allowed: set[tuple[str, str]] = set()
        who = call.identity
        # An agent acting for a person has that person's purposes, not its own.
        user_id = who.context.get("on_behalf_of") or who.user_id
        user_email = who.context.get("on_behalf_of_email") or who.email
        try:
            async with self.pool.connection(timeout=self.project.settings.pool_timeout_s) as conn:
                for check in checks:
                    ids = [i for t, i in relevant if t == check.subject]
                    params = bindings(check, user_id, user_email, ids, call.reason,
                                      call.function.name)
                    async with conn.transaction():
                        cur = await conn.execute(check.sql, params)
                        rows = await cur.fetchall()
                    allowed |= {(check.subject, str(row[0])) for row in rows if row}
        except PoolTimeout:
            raise Unavailable("the purpose check could not run (no free connection); "
                              "try again shortly") from None
        except psycopg.Error as exc:
            raise execute.upstream_error(exc) from None
        return allowed


def bindings(check: Check, user_id: str, user_email: str, subject_ids: list[str],
             reason: str | None, function: str) -> dict[str, object]:
    """The values a check's SQL is run with: always bound, never formatted into it."""
    return {"user_id": user_id, "user_email": user_email, "subject_type": check.subject,
            "subject_ids": subject_ids, "reason": reason, "function": function}


async def prepare_check(conn: psycopg.AsyncConnection[Any], check: Check) -> str | None:
    """Why PostgreSQL could not run ``check`` as the guard runs it, or None.

    The SQL is planned with values of the types the guard binds, in a read-only
    transaction that is rolled back; no row is read.
    """
    params = bindings(check, "usr_check", "check@querygate.invalid", ["0"], "check", "check")
    try:
        async with conn.transaction(force_rollback=True), conn.cursor() as cur:
            await cur.execute("SET TRANSACTION READ ONLY")
            await cur.execute(f"SELECT * FROM ({check.sql}) AS querygate_purpose LIMIT 0", params)
            width = len(cur.description or ())
    except psycopg.Error as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"PostgreSQL cannot prepare its sql (SQLSTATE {exc.sqlstate}): {first}"
    if not width:
        return "its sql returns no column; it must return the subject ids it allows"
    return None


def _weakest(required: list[Requirement]) -> str:
    return min((r.mode for r in required), key=MODES.index)


def _refusal(missed: list[tuple[str, str]], relevant: list[tuple[str, str]],
             checks: list[Check]) -> str:
    """Says how many subjects lack a purpose, never which: their ids could be data."""
    kind = checks[0].subject
    wants = "; or ".join(c.describe for c in checks)
    what = f"this {kind}" if len(relevant) == 1 else \
        f"{len(missed)} of the {len(relevant)} {kind} records this call returned"
    return (f"no purpose for {what}: {wants}; no rows were released. Work from a case that "
            "gives you this purpose, or ask an admin")
