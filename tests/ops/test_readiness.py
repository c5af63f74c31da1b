"""GET /readyz: each part checked for real, named when it is not ready, and ready again after."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from querygate.audit import generate_key
from tests.demo_env import Demo, serving
from tests.gateway.test_fail_closed import project_with

pytestmark = pytest.mark.anyio


async def test_ready_names_every_part(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {
        "database": "ok", "audit": "ok", "signing_key": "not configured"}}
    assert (await client.get("/healthz")).status_code == 200


async def test_a_database_the_gateway_cannot_read_is_not_ready_until_it_can(
        demo: Demo, client: httpx.AsyncClient) -> None:
    with psycopg.connect(demo.admin_url, autocommit=True) as conn:
        conn.execute("REVOKE SELECT ON querygate.users FROM querygate_gateway")
    try:
        down = await client.get("/readyz")
    finally:
        with psycopg.connect(demo.admin_url, autocommit=True) as conn:
            conn.execute("GRANT SELECT ON querygate.users TO querygate_gateway")
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "not ready" and body["not_ready"] == ["database"]
    assert body["checks"]["database"] == "unusable (InsufficientPrivilege)"
    assert body["checks"]["audit"] == "ok"
    assert (await client.get("/readyz")).status_code == 200


async def test_a_signing_key_that_cannot_be_loaded_is_not_ready(demo: Demo, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "checkpoint.pem"
    generate_key(key)
    project = project_with(demo, tmp_path)
    config = project / "querygate.yaml"
    config.write_text(config.read_text() + f"\ncheckpoints:\n  private_key: '{key}'\n  every_s: 0\n")
    good = key.read_bytes()
    async with serving(project) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["signing_key"] == "ok"
        key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
        broken = await client.get("/readyz")
        assert broken.status_code == 503
        assert broken.json()["not_ready"] == ["signing_key"]
        assert broken.json()["checks"]["signing_key"] == f"unusable: {key} is not a PEM private key"
        key.unlink()
        missing = await client.get("/readyz")
        assert missing.status_code == 503
        assert "cannot read the checkpoint key" in missing.json()["checks"]["signing_key"]
        key.write_bytes(good)
        assert (await client.get("/readyz")).status_code == 200
