"""Concurrent callers that keep calling until told to stop, keeping every answer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import anyio
import httpx


@dataclass
class Load:
    client: httpx.AsyncClient
    token: str
    url: str = ""
    function: str = "get_customer_by_id"
    params: dict[str, object] = field(default_factory=lambda: {"customer_id": 42})
    responses: list[httpx.Response] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)  # transport errors (no answer)
    _stopping: bool = False

    async def _caller(self) -> None:
        while not self._stopping:
            try:
                self.responses.append(await self.client.post(
                    f"{self.url}/v1/call/{self.function}",
                    json={"params": self.params, "reason": "TICKET-9"},
                    headers={"Authorization": f"Bearer {self.token}"}))
            except httpx.TransportError as exc:
                self.failures.append(exc)
                await anyio.sleep(0.05)

    @contextlib.asynccontextmanager
    async def running(self, callers: int = 8) -> AsyncIterator[Load]:
        async with anyio.create_task_group() as group:
            for _ in range(callers):
                group.start_soon(self._caller)
            try:
                yield self
            finally:
                self._stopping = True

    def count(self, status: int, since: int = 0) -> int:
        return sum(1 for r in self.responses[since:] if r.status_code == status)

    async def until(self, done: Callable[[], bool], *, within_s: float = 30) -> None:
        """Wait (bounded) until ``done()``; fail the test past the deadline."""
        with anyio.move_on_after(within_s):
            while not done():
                await anyio.sleep(0.05)
        assert done(), f"not reached in {within_s} s: {self.statuses()}"

    def statuses(self) -> dict[int, int]:
        seen: dict[int, int] = {}
        for response in self.responses:
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
        return seen

    def audit_ids(self) -> list[str]:
        return [r.json()["audit_id"] for r in self.responses if r.status_code == 200]
