"""A local OIDC identity provider for the tests: real keys, a real HTTP server on 127.0.0.1.

It serves the discovery document and the JWKS, signs tokens with keys
generated here, rotates keys, can go down (HTTP 503), and implements just
enough of the device and authorization-code grants for ``querygate login``.
Every request is counted per path, so tests can prove what was (not) fetched.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

AUDIENCE = "querygate"


@dataclass
class SigningKey:
    kid: str
    private: Any
    alg: str

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", "alg": self.alg}


def rsa_key(kid: str, alg: str = "RS256", bits: int = 2048) -> SigningKey:
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=bits), alg)


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")


def ed_key(kid: str) -> SigningKey:
    return SigningKey(kid, ed25519.Ed25519PrivateKey.generate(), "EdDSA")


class IdentityProvider:
    """Start with ``start()``; ``issuer`` is its base URL; ``stop()`` ends it."""

    def __init__(self) -> None:
        self.keys = [rsa_key("rsa-1"), ec_key("ec-1"), ed_key("ed-1")]
        self.hits: Counter[str] = Counter()
        self.down = False
        self.device_subject: dict[str, Any] = {}
        self._codes: dict[str, tuple[str, str]] = {}  # code -> (challenge, redirect)
        self._devices: dict[str, int] = {}  # device code -> polls so far
        self._server: http.server.ThreadingHTTPServer | None = None

    # signing -----------------------------------------------------------------------------

    def claims(self, sub: str = "alice-sub", **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {"iss": self.issuer, "aud": AUDIENCE, "sub": sub, "iat": now, "nbf": now,
                "exp": now + 300, "email": f"{sub.removesuffix('-sub')}@example.com",
                "email_verified": True, "groups": ["eng-support"], "jti": secrets.token_hex(8)}
        base.update(extra)
        return {k: v for k, v in base.items() if v is not None}

    def sign(self, claims: dict[str, Any] | None = None, *, key: SigningKey | None = None,
             headers: dict[str, Any] | None = None, alg: str | None = None) -> str:
        key = key or self.keys[0]
        header = {"kid": key.kid, **(headers or {})}
        return jwt.encode(claims or self.claims(), key.private, algorithm=alg or key.alg,
                          headers=header)

    def rotate(self) -> SigningKey:
        """Publish a new RSA key first and retire the oldest RSA key."""
        fresh = rsa_key(f"rsa-{secrets.token_hex(3)}")
        old = next(k for k in self.keys if k.kid.startswith("rsa"))
        self.keys = [fresh, *[k for k in self.keys if k is not old]]
        return fresh

    # serving -----------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> IdentityProvider:
        idp = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                idp.handle(self, "GET")

            def do_POST(self) -> None:
                idp.handle(self, "POST")

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def handle(self, request: http.server.BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        self.hits[parts.path] += 1
        if self.down:
            return _send(request, 503, {"error": "down"})
        length = int(request.headers.get("content-length") or 0)
        form = {k: v[0] for k, v in parse_qs(request.rfile.read(length).decode()).items()}
        routes = {
            "/.well-known/openid-configuration": lambda: (200, self.discovery()),
            "/jwks": lambda: (200, {"keys": [k.public_jwk() for k in self.keys]}),
            "/device": self.device,
            "/token": lambda: self.token(form),
        }
        if parts.path == "/authorize":
            return self.authorize(request, {k: v[0] for k, v in parse_qs(parts.query).items()})
        status, body = routes.get(parts.path, lambda: (404, {"error": "not_found"}))()
        _send(request, status, body)

    def discovery(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks",
                "token_endpoint": f"{self.issuer}/token",
                "device_authorization_endpoint": f"{self.issuer}/device",
                "authorization_endpoint": f"{self.issuer}/authorize"}

    def device(self) -> tuple[int, dict[str, Any]]:
        code = secrets.token_urlsafe(8)
        self._devices[code] = 0
        return 200, {"device_code": code, "user_code": "ABCD-EFGH", "expires_in": 60,
                     "verification_uri": f"{self.issuer}/activate", "interval": 0}

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            code = form.get("device_code", "")
            if code not in self._devices:
                return 400, {"error": "invalid_grant"}
            self._devices[code] += 1
            if self._devices[code] == 1:  # the person has not approved yet
                return 400, {"error": "authorization_pending"}
        elif grant == "authorization_code":
            challenge, redirect = self._codes.pop(form.get("code", ""), ("", ""))
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            if not challenge or digest.rstrip(b"=").decode() != challenge or \
                    redirect != form.get("redirect_uri"):
                return 400, {"error": "invalid_grant"}
        elif grant != "refresh_token" or form.get("refresh_token") != "refresh-1":
            return 400, {"error": "unsupported_grant_type"}
        access = self.sign(self.claims(**self.device_subject))
        return 200, {"access_token": access, "token_type": "Bearer", "expires_in": 300,
                     "refresh_token": "refresh-1"}

    def authorize(self, request: http.server.BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        """The person 'signs in' at once: redirect back with a code bound to the PKCE challenge."""
        code = secrets.token_urlsafe(8)
        self._codes[code] = (query["code_challenge"], query["redirect_uri"])
        request.send_response(302)
        request.send_header("Location", query["redirect_uri"] + "?" + urlencode(
            {"code": code, "state": query["state"]}))
        request.end_headers()


def _send(request: http.server.BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)
