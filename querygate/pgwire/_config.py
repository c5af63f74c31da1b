"""The ``postgres:`` section of querygate.yaml: where the front door listens, TLS, and limits."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from querygate.errors import ProjectError
from querygate.project import Project, line_of, unknown_key

KEYS = ("listen", "tls", "max_connections", "max_connections_per_user", "idle_timeout_s",
        "auth_timeout_s", "max_message_bytes")


@dataclass(frozen=True)
class PostgresConfig:
    host: str
    port: int
    cert: Path | None = None
    key: Path | None = None
    max_connections: int = 500
    max_connections_per_user: int = 20
    idle_timeout_s: float = 900.0
    auth_timeout_s: float = 10.0
    max_message_bytes: int = 1_048_576

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.cert is None or self.key is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert, self.key)
        return context


LIMITS = {f.name for f in fields(PostgresConfig)} - {"host", "port", "cert", "key"}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def postgres_config(project: Project) -> PostgresConfig | None:
    """The front door's settings, or None when ``postgres:`` is absent (the door is off)."""
    raw = project.raw.get("postgres")
    if raw is None:
        return None
    where = str(project.root / "querygate.yaml")
    line = line_of(project.raw, "postgres")
    if not isinstance(raw, dict):
        raise ProjectError("postgres: must be a mapping with listen: HOST:PORT", path=where,
                           line=line)
    for key in raw:
        if key not in KEYS:
            raise ProjectError(unknown_key("postgres", key, KEYS), path=where,
                               line=line_of(raw, key))
    host, port = _listen(raw.get("listen"), where, line_of(raw, "listen") or line)
    cert, key = _tls(raw.get("tls"), project.root, where, line_of(raw, "tls") or line)
    if cert is None and not is_loopback(host):
        raise ProjectError(f"postgres: listening on {host} needs tls: {{cert: ..., key: ...}}; "
                           "cleartext passwords travel only over loopback", path=where, line=line)
    limits: dict[str, Any] = {}
    for name in LIMITS & set(raw):
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ProjectError(f"postgres.{name} must be a positive number", path=where,
                               line=line_of(raw, name))
        default = getattr(PostgresConfig, name)
        limits[name] = type(default)(value)
    config = PostgresConfig(host, port, cert, key, **limits)
    try:
        config.ssl_context()
    except (OSError, ssl.SSLError) as exc:
        raise ProjectError(f"postgres.tls: cannot load the certificate and key: {exc}",
                           path=where, line=line_of(raw, "tls")) from None
    return config


def _listen(value: object, where: str, line: int | None) -> tuple[str, int]:
    text = str(value or "")
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProjectError(f"postgres.listen must be HOST:PORT (e.g. 127.0.0.1:6432), not "
                           f"{text!r}", path=where, line=line)
    return host, int(port)


def _tls(value: object, root: Path, where: str, line: int | None) -> tuple[Path | None, Path | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict) or set(value) != {"cert", "key"}:
        raise ProjectError("postgres.tls must be {cert: FILE, key: FILE}", path=where, line=line)
    return root / str(value["cert"]), root / str(value["key"])
