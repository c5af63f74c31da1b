"""The ``identity:`` section of querygate.yaml: OIDC sign-in, SCIM provisioning, elevation.

Every value has a default except the issuer and audience; anything unknown or
ill-typed is a ProjectError naming the line, so a typo never loosens a check.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from querygate.errors import ProjectError
from querygate.project import CONFIG_NAME, Project, resolve_secret

ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                         "ES256", "ES384", "ES512", "EdDSA")
REGISTERED_CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat")
_DURATION = re.compile(r"(\d+)(s|m|h|d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object, *, what: str) -> int:
    """Seconds from ``90s``, ``15m``, ``2h``, ``1d`` or a plain number of seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _DURATION.fullmatch(str(value).strip()) if isinstance(value, str) else None
    if match is None or int(match.group(1)) <= 0:
        raise ValueError(f"{what} {value!r} is not a duration; write e.g. 90s, 15m, 2h or 1d")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class OidcSettings:
    """How bearer JWTs from one issuer are checked (RFC 8725 practices)."""

    issuer: str
    audience: str
    roles_claim: str = "groups"
    role_map: Mapping[str, str] = field(default_factory=dict)
    email_claim: str = "email"
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256", "EdDSA")
    required_claims: tuple[str, ...] = ("iss", "sub", "aud", "exp", "iat")
    leeway_s: int = 5
    jwks_max_age_s: int = 300  # keys older than this are refreshed before use
    max_stale_s: int = 900  # keys not refreshed for this long: every token is refused
    refresh_min_interval_s: int = 10  # at most one JWKS fetch per interval (unknown kid)
    http_timeout_s: int = 5
    auto_provision: bool = True
    client_id: str | None = None  # the public client `querygate login` signs in with
    scopes: str = "openid email profile"


@dataclass(frozen=True)
class ScimSettings:
    token: str
    role_map: Mapping[str, str] = field(default_factory=dict)  # group display name -> role


@dataclass(frozen=True)
class AccessSettings:
    max_duration_s: int = 8 * 3600
    break_glass_duration_s: int = 3600
    request_ttl_s: int = 24 * 3600  # a pending request older than this can no longer be approved


@dataclass(frozen=True)
class IdentitySettings:
    oidc: OidcSettings | None = None
    scim: ScimSettings | None = None
    access: AccessSettings = field(default_factory=AccessSettings)
    admins: frozenset[str] = frozenset()  # roles that may revoke and offboard people (console)


def _lines(mapping: object, key: str) -> int | None:
    lines = getattr(mapping, "lines", None)
    return lines.get(key) if isinstance(lines, dict) else None


class _Reader:
    """Typed reads from one mapping of the identity section, with file and line on error."""

    def __init__(self, raw: object, where: str, project: Project, known: tuple[str, ...]) -> None:
        if not isinstance(raw, Mapping):
            raise ProjectError(f"{where} must be a mapping", path=str(project.root / CONFIG_NAME))
        self.raw, self.where, self.path = raw, where, str(project.root / CONFIG_NAME)
        for key in raw:
            if key not in known:
                self.fail(str(key), f"unknown key {key!r}; known keys: {', '.join(known)}")

    def fail(self, key: str, message: str) -> None:
        raise ProjectError(f"{self.where}.{key}: {message}", path=self.path,
                           line=_lines(self.raw, key))

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.raw.get(key, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            self.fail(key, "must be a non-empty string")
        return str(value) if value is not None else None

    def seconds(self, key: str, default: int, *, zero_ok: bool = False) -> int:
        if key not in self.raw:
            return default
        if zero_ok and self.raw[key] == 0:
            return 0
        try:
            return parse_duration(self.raw[key], what=key)
        except ValueError as exc:
            self.fail(key, str(exc))
        raise AssertionError("unreachable")

    def names(self, key: str, default: tuple[str, ...], allowed: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw.get(key, list(default))
        if not isinstance(value, list) or not value or not all(v in allowed for v in value):
            self.fail(key, f"must be a list drawn from {', '.join(allowed)}")
        return tuple(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, "must be true or false")
        return bool(value)

    def role_map(self, key: str, project: Project) -> dict[str, str]:
        value = self.raw.get(key) or {}
        if not isinstance(value, Mapping):
            self.fail(key, "must map identity-provider group names to querygate roles")
        for group, role in value.items():
            if role not in project.roles:
                self.fail(key, f"group {group!r} maps to {role!r}, which is not a role in "
                          f"querygate.yaml (roles: {', '.join(project.roles)})")
        return {str(g): str(r) for g, r in value.items()}


_OIDC_KEYS = ("issuer", "audience", "roles_claim", "role_map", "email_claim", "algorithms",
              "required_claims", "leeway", "jwks_max_age", "max_stale", "refresh_min_interval",
              "http_timeout", "auto_provision", "client_id", "scopes")


def _oidc(raw: object, project: Project) -> OidcSettings:
    r = _Reader(raw, "identity.oidc", project, _OIDC_KEYS)
    issuer, audience = r.text("issuer"), r.text("audience")
    if issuer is None or audience is None:
        r.fail("issuer" if issuer is None else "audience", "is required")
    assert issuer is not None and audience is not None
    if not secure_url(issuer):
        r.fail("issuer", "must be an https:// URL (plain http only on a loopback address)")
    required = r.names("required_claims", OidcSettings.required_claims, REGISTERED_CLAIMS)
    for claim in ("iss", "sub", "aud", "exp"):
        if claim not in required:
            r.fail("required_claims", f"cannot leave out {claim!r}")
    settings = OidcSettings(
        issuer=issuer, audience=audience,
        roles_claim=r.text("roles_claim", "groups") or "groups",
        role_map=r.role_map("role_map", project),
        email_claim=r.text("email_claim", "email") or "email",
        algorithms=r.names("algorithms", OidcSettings.algorithms, ASYMMETRIC_ALGORITHMS),
        required_claims=required,
        leeway_s=r.seconds("leeway", 5, zero_ok=True),
        jwks_max_age_s=r.seconds("jwks_max_age", 300),
        max_stale_s=r.seconds("max_stale", 900),
        refresh_min_interval_s=r.seconds("refresh_min_interval", 10),
        http_timeout_s=r.seconds("http_timeout", 5),
        auto_provision=r.flag("auto_provision", True),
        client_id=r.text("client_id"),
        scopes=r.text("scopes", "openid email profile") or "openid email profile",
    )
    if settings.leeway_s > 300:
        r.fail("leeway", "must be at most 5m: a large leeway keeps expired tokens alive")
    if settings.max_stale_s < settings.jwks_max_age_s:
        r.fail("max_stale", "must be at least jwks_max_age")
    return settings


def _scim(raw: object, project: Project, oidc: OidcSettings | None) -> ScimSettings:
    r = _Reader(raw, "identity.scim", project, ("token", "role_map"))
    token = resolve_secret(r.raw.get("token"), what="identity.scim.token", path=r.path,
                           line=_lines(r.raw, "token"))
    if not token or len(token) < 24:
        r.fail("token", "must be set to a secret of at least 24 characters; "
               "use $env:NAME or $file:PATH")
    assert token is not None
    role_map = r.role_map("role_map", project) or dict(oidc.role_map if oidc else {})
    return ScimSettings(token=token, role_map=role_map)


def _access(raw: object, project: Project) -> AccessSettings:
    r = _Reader(raw or {}, "identity.access", project,
                ("max_duration", "break_glass_duration", "request_ttl"))
    return AccessSettings(
        max_duration_s=r.seconds("max_duration", AccessSettings.max_duration_s),
        break_glass_duration_s=r.seconds("break_glass_duration",
                                         AccessSettings.break_glass_duration_s),
        request_ttl_s=r.seconds("request_ttl", AccessSettings.request_ttl_s),
    )


def oidc_settings(project: Project) -> OidcSettings | None:
    """Only the ``identity.oidc`` part: what `querygate login` needs, without SCIM's secret."""
    section = project.section("identity")
    return _oidc(section["oidc"], project) if section.get("oidc") else None


def identity_settings(project: Project) -> IdentitySettings:
    """The validated ``identity:`` section (empty: querygate's own tokens only)."""
    section = project.section("identity")
    reader = _Reader(section, "identity", project, ("oidc", "scim", "access", "admins"))
    oidc = _oidc(section["oidc"], project) if section.get("oidc") else None
    scim = _scim(section["scim"], project, oidc) if section.get("scim") else None
    _check_role_options(project)
    admins = section.get("admins") or []
    if not isinstance(admins, list) or any(a not in project.roles for a in admins):
        reader.fail("admins", f"must be a list of roles (roles: {', '.join(project.roles)})")
    return IdentitySettings(oidc, scim, _access(section.get("access"), project),
                            frozenset(admins))


def _check_role_options(project: Project) -> None:
    """``approvers`` must name roles; ``break_glass`` is true or {max_duration, holders}."""
    path = str(project.root / CONFIG_NAME)
    for role in project.roles.values():
        approvers = role.options.get("approvers")
        if approvers is not None and (not isinstance(approvers, list) or any(
                a not in project.roles for a in approvers)):
            raise ProjectError(f"role {role.name!r}: approvers must be a list of roles", path=path)
        glass = role.options.get("break_glass")
        if glass is None or isinstance(glass, bool):
            continue
        if not isinstance(glass, Mapping) or set(glass) - {"max_duration", "holders"}:
            raise ProjectError(f"role {role.name!r}: break_glass must be true or a mapping with "
                               "max_duration and holders", path=path)
        holders = glass.get("holders")
        if holders is not None and (not isinstance(holders, list)
                                    or any(h not in project.roles for h in holders)):
            raise ProjectError(f"role {role.name!r}: break_glass.holders must be a list of roles",
                               path=path)
        if "max_duration" in glass:
            try:
                parse_duration(glass["max_duration"], what="break_glass.max_duration")
            except ValueError as exc:
                raise ProjectError(f"role {role.name!r}: {exc}", path=path) from None


def secure_url(url: str) -> bool:
    """https, or plain http to a loopback address (a local test identity provider)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def role_list(value: Any) -> list[str]:
    """Group names from a token claim: a list of strings, or one string."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
