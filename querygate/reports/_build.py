"""One report by name, built on the gateway's pools: what the API and the console both serve."""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg_pool import AsyncConnectionPool

from querygate import audit
from querygate.audit import CheckpointConfig
from querygate.errors import BadParameters
from querygate.project import Project
from querygate.reports._model import Report
from querygate.reports._review import access_review, soc2_pack
from querygate.reports._subject import offboarding, subject_access

KINDS = ("subject-access", "offboarding", "access-review", "soc2")


async def build(kind: str, project: Project, audit_pool: AsyncConnectionPool[Any],
                query_pool: AsyncConnectionPool[Any], *, subjects: tuple[tuple[str, str], ...],
                user: str | None, days: int, since: dt.datetime | None,
                until: dt.datetime | None, generated_by: str) -> Report:
    """``kind`` (one of ``KINDS``; anything else is the SOC 2 pack) over the audit store, with
    no statement timeout while it reads, and the store's timeout restored after."""
    config = CheckpointConfig.from_project(project)
    async with audit_pool.connection() as conn, query_pool.connection() as directory:
        await conn.execute("SET statement_timeout = 0")
        try:
            if kind == "subject-access":
                return await subject_access(conn, subjects[0], since, until,
                                            catalog=project.catalog, config=config,
                                            generated_by=generated_by, quick=True,
                                            archives=audit.Archives.for_project(project))
            if kind == "offboarding":
                if not user:
                    raise BadParameters("the offboarding report needs a person's email",
                                        parameter="user")
                return await offboarding(conn, directory, user, days, config=config,
                                         generated_by=generated_by, quick=True)
            if kind == "access-review":
                return await access_review(conn, directory, project, since, until,
                                           config=config, generated_by=generated_by, quick=True)
            return await soc2_pack(conn, directory, project, since, until, config=config,
                                   generated_by=generated_by, quick=True)
        finally:
            await conn.execute(f"SET statement_timeout = {int(project.settings.audit_timeout_ms)}")
