"""docs/threat-model.md, "Identity and tokens": every hostile JWT is refused with 401; valid ones work.

Tokens are signed by the local identity provider's real keys (RSA, EC P-256,
Ed25519) and sent to the gateway over its HTTP API, so the whole path is
exercised: header checks, key lookup by kid, PyJWT's verification, the claim
checks, then the directory.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.demo_env import call
from tests.identity.conftest import Sso
from tests.identity.idp import IdentityProvider, rsa_key

pytestmark = pytest.mark.anyio


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return f"{b64(header)}.{b64(claims)}.{signature}"


def forge(header: dict[str, Any], claims: dict[str, Any], key: Any, alg: str = "RS256") -> str:
    """A JWS signed exactly as given, headers PyJWT itself would refuse to write included."""
    signing = f"{b64({'alg': alg, **header})}.{b64(claims)}"
    algorithm = jwt.get_algorithm_by_name(alg)
    return f"{signing}.{b64(algorithm.sign(signing.encode(), key))}"


def hmac_token(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    header = {"alg": "HS256", "kid": kid, "typ": "JWT"}
    signing = f"{b64(header)}.{b64(claims)}".encode()
    import hashlib
    import hmac

    return f"{signing.decode()}.{b64(hmac.new(secret, signing, hashlib.sha256).digest())}"


@pytest.fixture(scope="module")
def attacker() -> Iterator[tuple[str, list[str]]]:
    """An attacker's server publishing its own JWKS; records every request it gets."""
    seen: list[str] = []
    key = rsa_key("attacker")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = json.dumps({"keys": [key.public_jwk()]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks", seen
    server.shutdown()
    server.server_close()


def hostile_tokens(idp: IdentityProvider, jku: str) -> dict[str, str]:
    """Every case of docs/threat-model.md, "Identity and tokens" (and RFC 8725's list), by name."""
    rsa_, ec_ = idp.keys[0], idp.keys[1]
    good = idp.claims()
    now = int(time.time())
    pem = rsa_.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    stranger = rsa_key(rsa_.kid)  # same kid, a key the issuer never published
    attacker = rsa_key("attacker")
    attacker_jwk = attacker.public_jwk()

    def without(claim: str) -> dict[str, Any]:
        return {k: v for k, v in good.items() if k != claim}

    return {
        "alg none, no signature": unsigned({"alg": "none", "kid": rsa_.kid}, good),
        "alg None (case)": unsigned({"alg": "None", "kid": rsa_.kid}, good),
        "alg none with a real signature": unsigned(
            {"alg": "none", "kid": rsa_.kid}, good, idp.sign(good).rsplit(".", 1)[1]),
        "HS256 keyed with the RSA public key (CVE-2022-29217)": hmac_token(good, pem, rsa_.kid),
        "HS256 keyed with the JWK modulus": hmac_token(
            good, base64.urlsafe_b64decode(rsa_.public_jwk()["n"] + "=="), rsa_.kid),
        "HS256 keyed with the EC public key bytes": hmac_token(
            good, ec_.private.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint), ec_.kid),
        "unknown kid": idp.sign(good, key=attacker),
        "kid path traversal": idp.sign(good, headers={"kid": "../../../../etc/passwd"}),
        "kid SQL": idp.sign(good, headers={"kid": "' OR '1'='1"}),
        "kid empty": idp.sign(good, headers={"kid": ""}),
        "kid huge": idp.sign(good, headers={"kid": "k" * 5000}),
        "kid not a string": forge({"kid": 1}, good, rsa_.private),
        "kid an object": forge({"kid": {"$ne": ""}}, good, rsa_.private),
        "kid missing": jwt.encode(good, rsa_.private, algorithm="RS256"),
        "jku to the attacker's JWKS": jwt.encode(
            good, attacker.private, algorithm="RS256", headers={"kid": "attacker", "jku": jku}),
        "x5u to the attacker": jwt.encode(
            good, attacker.private, algorithm="RS256", headers={"kid": "attacker", "x5u": jku}),
        "jwk header with the attacker's key, issuer's kid": jwt.encode(
            good, attacker.private, algorithm="RS256", headers={"kid": rsa_.kid, "jwk": attacker_jwk}),
        "jku header with the issuer's kid": jwt.encode(
            good, attacker.private, algorithm="RS256", headers={"kid": rsa_.kid, "jku": jku}),
        "signed by a key the issuer never published": idp.sign(good, key=stranger),
        "ES256 header on the RSA key's kid": idp.sign(good, key=ec_, headers={"kid": rsa_.kid}),
        "RS256 header on the EC key's kid": idp.sign(good, key=rsa_, headers={"kid": ec_.kid}),
        "PS256 with a key published for RS256 only": idp.sign(good, alg="PS256"),
        "RS512, not allowed": idp.sign(good, alg="RS512"),
        "crit header": forge({"kid": rsa_.kid, "crit": ["exp"], "exp": 1}, good, rsa_.private),
        "unencoded payload (b64 false)": forge({"kid": rsa_.kid, "b64": False, "crit": ["b64"]},
                                               good, rsa_.private),
        "missing iss": idp.sign(without("iss")),
        "wrong iss": idp.sign({**good, "iss": "https://evil.example.com"}),
        "issuer with a trailing slash": idp.sign({**good, "iss": idp.issuer + "/"}),
        "missing aud": idp.sign(without("aud")),
        "wrong aud": idp.sign({**good, "aud": "account"}),
        "aud list without querygate": idp.sign({**good, "aud": ["account", "other"]}),
        "missing exp": idp.sign(without("exp")),
        "just past exp (beyond the 5 s leeway)": idp.sign({**good, "exp": now - 6}),
        "long expired": idp.sign({**good, "exp": now - 86400, "iat": now - 90000}),
        "exp not a number": idp.sign({**good, "exp": "tomorrow"}),
        "missing sub": idp.sign(without("sub")),
        "empty sub": idp.sign({**good, "sub": ""}),
        "sub not a string": idp.sign({**good, "sub": 42}),
        "missing iat": idp.sign(without("iat")),
        "nbf in the future": idp.sign({**good, "nbf": now + 120}),
        "iat in the future": idp.sign({**good, "iat": now + 120}),
        "unmapped groups, unknown person": idp.sign(idp.claims(
            sub="mallory-sub", email_verified=False)),
        "two parts": ".".join(idp.sign(good).split(".")[:2]),
        "four parts": idp.sign(good) + ".x",
        "garbage": "eyJ" + "A" * 60,
        "header not JSON": f"{b64(b'not json')}.{b64(good)}.sig",
    }


async def test_valid_tokens_of_each_key_type_work(sso: Sso, sso_client: httpx.AsyncClient) -> None:
    idp = sso.idp
    for key in idp.keys:
        response = await call(sso_client, idp.sign(key=key), "get_customer_by_id", {"customer_id": 42})
        assert response.status_code == 200, (key.alg, response.text)
        assert response.json()["fields"]["iban"] == "mask.last4"  # eng-support → support
    near = idp.sign({**idp.claims(), "exp": int(time.time()) - 2})  # inside the 5 s leeway
    assert (await call(sso_client, near, "get_customer_by_id", {"customer_id": 42})).status_code == 200
    listed = await sso_client.get("/v1/functions",
                                  headers={"Authorization": f"Bearer {idp.sign()}"})
    assert listed.json()["user"] == "alice@example.com" and listed.json()["roles"] == ["support"]


async def test_every_identity_threat_is_refused_with_401(
        sso: Sso, sso_client: httpx.AsyncClient, attacker: tuple[str, list[str]]) -> None:
    jku, seen = attacker
    wrong = {}
    for name, token in hostile_tokens(sso.idp, jku).items():
        response = await call(sso_client, token, "get_customer_by_id", {"customer_id": 42})
        if response.status_code != 401 or response.json()["error"]["code"] != "not_authenticated":
            wrong[name] = (response.status_code, response.text[:200])
        assert "Ada" not in response.text
    assert wrong == {}
    assert seen == [], "the gateway fetched a URL named in a token header"


async def test_a_refusal_names_the_reason_without_echoing_the_token(
        sso: Sso, sso_client: httpx.AsyncClient) -> None:
    expired = sso.idp.sign({**sso.idp.claims(), "exp": int(time.time()) - 60})
    response = await call(sso_client, expired, "get_customer_by_id", {"customer_id": 42})
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "the token has expired; sign in again"
    assert response.headers["www-authenticate"] == "Bearer"
    assert expired.split(".")[1] not in response.text


async def test_a_qg_token_still_works_beside_sso(sso: Sso, sso_client: httpx.AsyncClient) -> None:
    response = await call(sso_client, sso.demo.token("bob"), "get_customer_by_id", {"customer_id": 42})
    assert response.status_code == 200 and "iban" not in response.json()["fields"]
