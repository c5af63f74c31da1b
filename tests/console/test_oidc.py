"""Single sign-on in the console: the authorization code grant with PKCE against the test
identity provider (tests/identity/idp.py), the session then checked on every request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
import yaml
from starlette.routing import Mount

from querygate.api import create_app
from querygate.gateway import Gateway
from tests.console.conftest import BASE
from tests.demo_env import Demo
from tests.identity.idp import IdentityProvider

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider().start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module", autouse=True)
def sso(demo: Demo, idp: IdentityProvider) -> Iterator[None]:
    """The module's demo project signs people in through the identity provider."""
    config = demo.project_dir / "querygate.yaml"
    original = config.read_text(encoding="utf-8")
    raw = yaml.safe_load(original)
    raw["identity"] = {"admins": ["admin"], "oidc": {
        "issuer": idp.issuer, "audience": "querygate", "client_id": "querygate-console",
        "role_map": {"eng-support": "support"}}}
    config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    yield
    config.write_text(original, encoding="utf-8")


async def test_single_sign_on_with_pkce(app_client: httpx.AsyncClient, idp: IdentityProvider,
                                        demo: Demo) -> None:
    login = await app_client.get("/console/login")
    assert 'href="/console/login/oidc"' in login.text
    start = await app_client.get("/console/login/oidc")
    assert start.status_code == 303
    authorize = start.headers["location"]
    query = parse_qs(urlsplit(authorize).query)
    assert authorize.startswith(f"{idp.issuer}/authorize?")
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["redirect_uri"] == [f"{BASE}/console/login/oidc/callback"]
    assert "qg_console_oidc=" in start.headers["set-cookie"]
    async with httpx.AsyncClient() as browser:  # the person signs in at the provider
        back = await browser.get(authorize)
    assert back.status_code == 302
    callback = urlsplit(back.headers["location"])
    assert "code=" in callback.query and "token" not in callback.query
    done = await app_client.get(f"{callback.path}?{callback.query}")
    assert done.status_code == 303 and done.headers["location"] == "/console/functions"
    page = await app_client.get("/console/functions")
    assert page.status_code == 200 and "alice@example.com" in page.text
    assert "get_customer_by_id" in page.text
    with psycopg.connect(demo.admin_url) as conn:
        row = conn.execute("SELECT context->>'method', context->>'client' FROM "
                           "querygate.audit_events WHERE function_name = "
                           "'querygate.console.signin' ORDER BY seq DESC LIMIT 1").fetchone()
    assert row == ("oidc", "console")


async def test_a_callback_without_its_state_is_refused(app_client: httpx.AsyncClient) -> None:
    start = await app_client.get("/console/login/oidc")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    forged = await app_client.get("/console/login/oidc/callback",
                                  params={"code": "stolen", "state": state + "x"})
    assert forged.status_code == 303 and forged.headers["location"] == "/console/login?m=oidc"
    app_client.cookies.clear()  # another browser: the state is not its own
    replayed = await app_client.get("/console/login/oidc/callback",
                                    params={"code": "stolen", "state": state})
    assert replayed.headers["location"] == "/console/login?m=oidc"
    assert (await app_client.get("/console/functions")).status_code == 303


async def test_a_lapsing_sign_in_is_refreshed(gateway: Gateway) -> None:
    app = create_app(gateway, lifespan_close=False)
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/console")
    store = mount.app.state.console.sessions  # type: ignore[union-attr]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        start = await client.get("/console/login/oidc")
        async with httpx.AsyncClient() as browser:
            back = await browser.get(start.headers["location"])
        callback = urlsplit(back.headers["location"])
        assert (await client.get(f"{callback.path}?{callback.query}")).status_code == 303
        session = store.get(client.cookies["qg_console"])
        assert session is not None and session.oidc is not None
        first = session.token
        session.oidc = replace(session.oidc, expires_at=time.time() + 10)  # lapsing in 10 s
        page = await client.get("/console/functions")
    assert page.status_code == 200 and "alice@example.com" in page.text
    assert session.token != first and session.oidc.expires_at > time.time() + 200
