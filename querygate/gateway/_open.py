"""The in-process API: the gateway inside a Python program, with typed arguments.

::

    import querygate

    async with querygate.open("path/to/project") as gw:
        result = await gw.call("get_customer_by_id", {"customer_id": 42},
                               token=token, reason="TICKET-1234")

Every call still names its caller by token: it is checked against the directory, decided,
masked and audited (``client: python``) exactly as through HTTP.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from querygate.gateway._gateway import Gateway
from querygate.gateway._results import CallResult, Export
from querygate.project import Project, load_project

CLIENT = "python"


class InProcess:
    """A gateway opened by ``querygate.open``: calls, ad-hoc SQL and exports, as a caller."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def call(self, function: str, params: Mapping[str, object] | None = None, *,
                   token: str, reason: str | None = None) -> CallResult:
        """Call a named function with its parameters by name."""
        return await self.gateway.call(token, function, dict(params or {}), reason,
                                       client=CLIENT)

    async def sql(self, text: str, *, token: str, reason: str | None = None) -> CallResult:
        """Ad-hoc SQL, for callers whose roles have ``adhoc: true``."""
        return await self.gateway.sql(token, text, reason, client=CLIENT)

    async def export(self, function: str, params: Mapping[str, object] | None = None, *,
                     token: str, reason: str | None = None) -> Export:
        """A large result, audited before its first row is read; close ``Export.rows_file`` after."""
        return await self.gateway.export(token, function, dict(params or {}), reason,
                                         client=CLIENT)

    async def functions(self, *, token: str) -> list[str]:
        """The names of the functions this caller may call."""
        who = await self.gateway.authenticate(token, function="-", client=CLIENT)
        return sorted(f.name for f in self.gateway.callable_by(who))


@asynccontextmanager
async def open_gateway(project: Project | str | os.PathLike[str]) -> AsyncIterator[InProcess]:
    """Open a project (a loaded ``Project`` or its folder) and close it on leaving the block."""
    loaded = project if isinstance(project, Project) else load_project(Path(project))
    gateway = await Gateway.open(loaded)
    try:
        yield InProcess(gateway)
    finally:
        await gateway.close()
