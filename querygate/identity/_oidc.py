"""Bearer JWTs from one OIDC issuer: discovery, a JWKS cache with bounds, and the checks.

Signatures are verified by PyJWT; this module decides which key and which
algorithm may be used (RFC 8725): the key comes only from the issuer's JWKS by
``kid`` (``jku``, ``x5u``, ``jwk`` and ``x5c`` headers are never followed), the
algorithm must be allowed for that key's type, and symmetric keys are never
accepted. An unknown ``kid`` refreshes the keys at most once per interval; keys
that could not be refreshed for longer than ``max_stale`` refuse every token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt.exceptions import InvalidSubjectError

from querygate.errors import NotAuthenticated, Unavailable
from querygate.identity._settings import OidcSettings, secure_url

log = logging.getLogger("querygate.identity")

MAX_TOKEN_CHARS = 16_384
_ALGS_BY_KEY = {
    ("RSA", None): ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    ("EC", "P-256"): ("ES256",),
    ("EC", "P-384"): ("ES384",),
    ("EC", "P-521"): ("ES512",),
    ("OKP", "Ed25519"): ("EdDSA",),
}
_PYJWT_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired; sign in again"),
    (jwt.ImmatureSignatureError, "the token is not valid yet (nbf or iat in the future)"),
    (jwt.InvalidAudienceError, "the token was issued for another audience"),
    (jwt.InvalidIssuerError, "the token was issued by another issuer"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.InvalidIssuedAtError, "the token's iat claim is invalid"),
    (InvalidSubjectError, "the token's sub claim is invalid"),
)


@dataclass(frozen=True)
class VerifyingKey:
    kid: str
    key: Any  # a cryptography public key
    algorithms: frozenset[str]


def _key_from_jwk(jwk: dict[str, Any], allowed: tuple[str, ...]) -> VerifyingKey | None:
    """A verifying key from one JWK, or None when it may not verify tokens."""
    kid, kty = jwk.get("kid"), jwk.get("kty")
    if not isinstance(kid, str) or not kid or jwk.get("use", "sig") != "sig":
        return None
    ops = jwk.get("key_ops")
    if ops is not None and "verify" not in ops:
        return None
    algs = _ALGS_BY_KEY.get((kty, None if kty == "RSA" else jwk.get("crv")))  # type: ignore[arg-type]
    if algs is None:  # "oct" (symmetric) keys and unknown types never verify anything
        return None
    names = {a for a in algs if a in allowed}
    if "alg" in jwk:
        names &= {jwk["alg"]}
    if not names:
        return None
    try:
        parsed = jwt.PyJWK(jwk, algorithm=sorted(names)[0])
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
        return None
    if kty == "RSA" and parsed.key.key_size < 2048:
        return None
    return VerifyingKey(kid, parsed.key, frozenset(names))


class KeySet:
    """The issuer's signing keys: fetched, cached, refreshed within bounds."""

    def __init__(self, settings: OidcSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._keys: dict[str, VerifyingKey] = {}
        self._fetched_at: float | None = None  # last successful refresh
        self._attempted_at: float | None = None  # last refresh tried, successful or not
        self._lock = asyncio.Lock()
        self.fetches = 0  # JWKS documents fetched, for tests and the benchmark

    async def key(self, kid: str) -> VerifyingKey:
        """The key named ``kid``; refreshes when old or unknown, within the rate limit."""
        age = self._age()
        if age is None or age > self.settings.jwks_max_age_s:
            await self._refresh()
            age = self._age()
        if age is None or age > self.settings.max_stale_s:
            raise Unavailable(
                "the identity provider's signing keys could not be fetched "
                + ("yet" if age is None else f"for {int(age)} s")
                + f" (bound: {self.settings.max_stale_s} s), so its tokens are refused; "
                "check that the gateway can reach the issuer")
        if kid not in self._keys:
            await self._refresh()
        found = self._keys.get(kid)
        if found is None:
            raise NotAuthenticated("the token is signed with a key the issuer does not publish")
        return found

    def _age(self) -> float | None:
        return None if self._fetched_at is None else self.clock() - self._fetched_at

    async def _refresh(self) -> None:
        async with self._lock:
            now = self.clock()
            if (self._attempted_at is not None
                    and now - self._attempted_at < self.settings.refresh_min_interval_s):
                return
            self._attempted_at = now
            try:
                self._keys = await self._fetch()
                self._fetched_at = self.clock()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("JWKS refresh from %s failed: %s", self.settings.issuer,
                            type(exc).__name__)

    async def _fetch(self) -> dict[str, VerifyingKey]:
        issuer = self.settings.issuer.rstrip("/")
        async with httpx.AsyncClient(timeout=self.settings.http_timeout_s,
                                     follow_redirects=False) as client:
            discovery = await _get_json(client, f"{issuer}/.well-known/openid-configuration")
            if discovery.get("issuer") != self.settings.issuer:
                raise ValueError("the discovery document names another issuer")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not secure_url(jwks_uri):
                raise ValueError("the discovery document has no usable jwks_uri")
            document = await _get_json(client, jwks_uri)
        self.fetches += 1
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise ValueError("the JWKS has no keys list")
        found = [_key_from_jwk(k, self.settings.algorithms) for k in keys if isinstance(k, dict)]
        return {k.kid: k for k in found if k is not None}


async def _get_json(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await client.get(url, headers={"Accept": "application/json"})
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"{url} did not return a JSON object")
    return body


class OidcVerifier:
    """Checks a bearer JWT against the configured issuer; returns its claims."""

    def __init__(self, settings: OidcSettings, keys: KeySet | None = None) -> None:
        self.settings = settings
        self.keys = keys or KeySet(settings)

    async def verify(self, token: str) -> dict[str, Any]:
        alg, kid = self._header(token)
        key = await self.keys.key(kid)
        if alg not in key.algorithms:
            raise NotAuthenticated(f"algorithm {alg} is not accepted for this key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=[alg], audience=self.settings.audience,
                issuer=self.settings.issuer, leeway=self.settings.leeway_s,
                options={"require": list(self.settings.required_claims), "verify_signature": True,
                         "verify_exp": True, "verify_nbf": True, "verify_iat": True,
                         "verify_aud": True, "verify_iss": True, "verify_sub": True},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise NotAuthenticated(f"the token has no {exc.claim} claim") from None
        except jwt.PyJWTError as exc:
            raise NotAuthenticated(_reason(exc)) from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise NotAuthenticated("the token has no sub claim")
        return claims

    def _header(self, token: str) -> tuple[str, str]:
        """The header's alg and kid, refused before any key is looked up when unusable."""
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise NotAuthenticated("malformed token: expected a compact JWS (three parts)")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise NotAuthenticated("malformed token header") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self.settings.algorithms:
            raise NotAuthenticated(f"algorithm {str(alg)[:20]!r} is not accepted")
        if "crit" in header or header.get("b64") is False:
            raise NotAuthenticated("the token names critical header extensions; none are accepted")
        if not isinstance(kid, str) or not kid or len(kid) > 200:
            raise NotAuthenticated("the token has no usable kid header")
        return alg, kid


def _reason(exc: Exception) -> str:
    for kind, message in _PYJWT_REASONS:
        if isinstance(exc, kind):
            return message
    return "the token is not a valid JWT from the configured issuer"
