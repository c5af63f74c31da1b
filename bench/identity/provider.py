"""A local OpenID Connect provider for the identity benchmark: discovery and JWKS over HTTP on
127.0.0.1, and tokens signed with an RSA, an EC and an Ed25519 key generated at start."""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
        if self.alg == "RS256":
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif self.alg == "ES256":
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", "alg": self.alg}


class Provider:
    """``start()`` serves it; ``issuer`` is its base URL; ``sign(claims(...), key=)``; ``stop()``."""

    def __init__(self) -> None:
        self.keys = [
            SigningKey("rsa-1", rsa.generate_private_key(public_exponent=65537, key_size=2048),
                       "RS256"),
            SigningKey("ec-1", ec.generate_private_key(ec.SECP256R1()), "ES256"),
            SigningKey("ed-1", ed25519.Ed25519PrivateKey.generate(), "EdDSA")]
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def claims(self, sub: str, email: str) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.issuer, "aud": AUDIENCE, "sub": sub, "iat": now, "nbf": now,
                "exp": now + 300, "email": email, "email_verified": True,
                "groups": ["eng-support"], "jti": secrets.token_hex(8)}

    def sign(self, claims: dict[str, Any], key: SigningKey) -> str:
        return jwt.encode(claims, key.private, algorithm=key.alg, headers={"kid": key.kid})

    def start(self) -> Provider:
        documents: dict[str, Callable[[], dict[str, Any]]] = {"/.well-known/openid-configuration": lambda: {
                         "issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks"},
                     "/jwks": lambda: {"keys": [k.public_jwk() for k in self.keys]}}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = documents.get(self.path)
                data = json.dumps(found() if found else {"error": "not_found"}).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
