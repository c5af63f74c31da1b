"""``querygate login``: device code and browser (PKCE) flows against the local provider."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from querygate import identity
from querygate.cli import main
from querygate.identity._login import ENV_CREDENTIALS
from tests.demo_env import call
from tests.identity.conftest import Sso


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "credentials.json"
    monkeypatch.setenv(ENV_CREDENTIALS, str(path))
    return path


def test_device_flow_caches_a_token_only_this_user_can_read(sso: Sso, credentials: Path) -> None:
    shown: list[str] = []
    waits: list[float] = []
    tokens = identity.device_login(sso.idp.issuer, "querygate-cli", "openid email",
                                   echo=shown.append, sleep=waits.append)
    assert "ABCD-EFGH" in shown[1] and shown[0].startswith(f"To sign in, open {sso.idp.issuer}")
    assert waits == [0.0]  # one authorization_pending, then the token
    identity.save_login(tokens)
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert identity.cached_token(sso.idp.issuer) == tokens.access_token


def test_an_expired_cached_token_is_refreshed(sso: Sso, credentials: Path) -> None:
    tokens = identity.device_login(sso.idp.issuer, "querygate-cli", "openid", echo=lambda _: None,
                                   sleep=lambda _: None)
    identity.save_login(tokens)
    data = json.loads(credentials.read_text())
    data[sso.idp.issuer]["expires_at"] = 0
    credentials.write_text(json.dumps(data))
    fresh = identity.cached_token(sso.idp.issuer)
    assert fresh is not None and fresh != tokens.access_token
    assert json.loads(credentials.read_text())[sso.idp.issuer]["access_token"] == fresh


def test_browser_flow_with_pkce(sso: Sso, credentials: Path) -> None:
    tokens = identity.browser_login(
        sso.idp.issuer, "querygate-cli", "openid email",
        open_browser=lambda url: httpx.get(url, follow_redirects=True, timeout=10).raise_for_status())
    assert tokens.access_token.count(".") == 2 and tokens.refresh_token == "refresh-1"


@pytest.mark.anyio
async def test_the_signed_in_token_calls_the_gateway(sso: Sso, sso_client: httpx.AsyncClient,
                                                     credentials: Path) -> None:
    result = CliRunner().invoke(main, ["login", "--project", str(sso.project_dir), "--print-token"])
    assert result.exit_code == 0, result.output
    assert "enter the code ABCD-EFGH" in result.output and "signed in at" in result.output
    token = result.output.strip().splitlines()[-1]
    assert identity.cached_token() == token
    response = await call(sso_client, token, "get_customer_by_id", {"customer_id": 42})
    assert response.status_code == 200
