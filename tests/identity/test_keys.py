"""The issuer's keys: fetched once, refreshed on rotation within a rate limit, stale only so long.

The identity provider is a real HTTP server; time is a clock the test moves,
so the bounds (10 s between refreshes, 300 s fresh, 900 s at most stale) are
crossed exactly, without sleeping.
"""

from __future__ import annotations

import secrets

import httpx
import pytest

from querygate.gateway import Gateway
from querygate.identity import KeySet
from tests.demo_env import call
from tests.identity.conftest import Clock, Sso, keyset_of
from tests.identity.idp import rsa_key

pytestmark = pytest.mark.anyio


async def status(client: httpx.AsyncClient, token: str) -> int:
    return (await call(client, token, "get_customer_by_id", {"customer_id": 42})).status_code


async def test_rotation_and_the_refresh_rate_limit(sso: Sso, sso_gateway: Gateway,
                                                   sso_client: httpx.AsyncClient) -> None:
    idp, clock = sso.idp, Clock()
    keys: KeySet = keyset_of(sso_gateway)
    keys.clock = clock
    old = idp.sign()
    assert await status(sso_client, old) == 200
    assert keys.fetches == 1
    published = list(idp.keys)
    fresh = idp.rotate()
    try:
        rotated = idp.sign(key=fresh)
        assert await status(sso_client, rotated) == 401  # within 10 s of the last fetch
        assert keys.fetches == 1
        clock.now += 10
        assert await status(sso_client, rotated) == 200  # unknown kid: one refresh, found
        assert keys.fetches == 2
        assert await status(sso_client, old) == 401  # the retired key no longer verifies
    finally:
        idp.keys = published


async def test_hostile_kids_cannot_make_the_gateway_hammer_the_issuer(
        sso: Sso, sso_gateway: Gateway, sso_client: httpx.AsyncClient) -> None:
    idp, clock = sso.idp, Clock()
    keyset_of(sso_gateway).clock = clock
    assert await status(sso_client, idp.sign()) == 200
    before = idp.hits["/jwks"]
    for _ in range(25):
        forged = idp.sign(key=rsa_key(secrets.token_hex(4)))
        assert await status(sso_client, forged) == 401
    assert idp.hits["/jwks"] == before


async def test_stale_keys_serve_up_to_the_bound_then_every_token_is_refused(
        sso: Sso, sso_gateway: Gateway, sso_client: httpx.AsyncClient) -> None:
    idp, clock = sso.idp, Clock()
    keyset_of(sso_gateway).clock = clock
    assert await status(sso_client, idp.sign()) == 200
    idp.down = True
    try:
        clock.now += 301  # older than jwks_max_age: a refresh is tried, fails, stale keys serve
        assert await status(sso_client, idp.sign()) == 200
        clock.now += 600  # 901 s since the last successful fetch: past max_stale
        refused = await call(sso_client, idp.sign(), "get_customer_by_id", {"customer_id": 42})
        assert refused.status_code == 503
        assert "could not be fetched for 901 s (bound: 900 s)" in refused.json()["error"]["message"]
        assert await status(sso_client, sso.demo.token("alice")) == 200  # own tokens unaffected
    finally:
        idp.down = False
    clock.now += 10
    assert await status(sso_client, idp.sign()) == 200  # reachable again: keys refreshed


async def test_keys_never_fetched_refuse_every_token(sso: Sso, sso_gateway: Gateway,
                                                     sso_client: httpx.AsyncClient) -> None:
    sso.idp.down = True
    try:
        response = await call(sso_client, sso.idp.sign(), "get_customer_by_id", {"customer_id": 42})
    finally:
        sso.idp.down = False
    assert response.status_code == 503
    assert "could not be fetched yet" in response.json()["error"]["message"]
