"""The demo project signed into by a local identity provider, SCIM on, elevation declared."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from querygate.api import create_app
from querygate.gateway import Gateway
from querygate.identity import OidcAuthenticator
from querygate.project import load_project
from tests.demo_env import Demo, drop_database, make_demo
from tests.identity.idp import IdentityProvider

SCIM_ENV = "QG_TEST_SCIM_TOKEN"


@dataclass(frozen=True)
class Sso:
    demo: Demo
    idp: IdentityProvider
    scim_token: str

    @property
    def project_dir(self) -> Path:
        return self.demo.project_dir


class Clock:
    """A monotonic clock the tests move forward, for the key cache's bounds."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="package")
def demo(admin_url: str, demo_template: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One demo database for the whole identity package (each test uses its own people)."""
    made, name = make_demo(admin_url, demo_template, tmp_path_factory.mktemp("sso"))
    yield made
    drop_database(admin_url, name)


@pytest.fixture(scope="package")
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider().start()
    yield provider
    provider.stop()


def identity_section(issuer: str) -> dict[str, object]:
    return {
        "oidc": {"issuer": issuer, "audience": "querygate", "roles_claim": "groups",
                 "role_map": {"eng-support": "support", "eng-billing": "billing",
                              "sec-compliance": "compliance"},
                 "client_id": "querygate-cli"},
        "scim": {"token": f"$env:{SCIM_ENV}"},
        "access": {"max_duration": "8h", "break_glass_duration": "30m"},
    }


@pytest.fixture(scope="package")
def sso(demo: Demo, idp: IdentityProvider) -> Iterator[Sso]:
    """The module's demo project with an ``identity:`` section and elevation options."""
    token = secrets.token_urlsafe(32)
    os.environ[SCIM_ENV] = token
    config = demo.project_dir / "querygate.yaml"
    original = config.read_text(encoding="utf-8")
    raw = yaml.safe_load(original)
    raw["identity"] = identity_section(idp.issuer)
    raw["roles"]["billing"]["approvers"] = ["compliance"]
    raw["roles"]["admin"]["approvers"] = ["compliance"]
    raw["roles"]["admin"]["break_glass"] = {"max_duration": "15m"}
    config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    yield Sso(demo, idp, token)
    config.write_text(original, encoding="utf-8")
    os.environ.pop(SCIM_ENV, None)


@pytest.fixture
async def sso_gateway(sso: Sso) -> AsyncIterator[Gateway]:
    gw = await Gateway.open(load_project(sso.project_dir))
    yield gw
    await gw.close()


@pytest.fixture
async def sso_client(sso_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(sso_gateway, lifespan_close=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://querygate.test") as c:
        yield c


def keyset_of(gateway: Gateway):  # type: ignore[no-untyped-def]
    assert isinstance(gateway.authenticator, OidcAuthenticator)
    return gateway.authenticator.verifier.keys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(sso: Sso) -> Iterator[str]:
    """A second gateway: a real `querygate serve` process on the same project and database."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "querygate", "serve", "--port", str(port), "--project",
         str(sso.project_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)  # polling a starting process: nothing to wait on instead
    else:
        proc.kill()
        pytest.fail(f"the server did not start: {proc.communicate(timeout=10)[0]}")
    yield url
    proc.terminate()
    proc.communicate(timeout=10)
