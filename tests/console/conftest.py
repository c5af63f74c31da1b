"""The demo project behind the console: an in-process client, and signing in as a demo user."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from querygate.api import create_app
from querygate.gateway import Gateway

BASE = "http://querygate.test"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    """Sign in through the login form; returns the response to the form's POST."""
    page = await client.get("/console/login")
    return await client.post("/console/login", data={"csrf": csrf_of(page.text), "token": token})


@pytest.fixture
async def app_client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh browser-like client (its own cookies) on the API app, console included."""
    transport = httpx.ASGITransport(app=create_app(gateway, lifespan_close=False))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c


@pytest.fixture
async def as_user(gateway: Gateway):  # type: ignore[no-untyped-def]
    """``await as_user(token)``: a client signed in with that token (closed at the end)."""
    clients: list[httpx.AsyncClient] = []
    app = create_app(gateway, lifespan_close=False)

    async def make(token: str) -> httpx.AsyncClient:
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        clients.append(c)
        response = await sign_in(c, token)
        assert response.status_code == 303, response.text
        return c

    yield make
    for c in clients:
        await c.aclose()
