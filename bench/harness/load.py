"""Load generation: wrk for HTTP (a C process of its own), a client process for PostgreSQL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
request = function()
  local v = math.random(1, {n})
  return wrk.format(nil, "{path}", nil, string.format('{body}', v))
end
"""


@dataclass
class Figures:
    """One run of load: throughput, latency and how many answers were not 2xx."""

    rps: float
    p50_ms: float
    p99_ms: float
    calls: int
    errors: int = 0


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if match is None:
        raise ValueError(f"not a wrk duration: {value!r}")
    number, unit = match.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _found(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.M)
    if match is None:
        raise RuntimeError(f"wrk printed no {pattern!r}:\n{text}")
    return match.group(1)


def wrk(url: str, body: str, token: str, n: int, conns: int, seconds: float,
        folder: Path) -> Figures:
    """POST ``body`` to ``url`` with ``conns`` connections for ``seconds`` (one wrk thread);
    ``%d`` (or ``%x``) in the body becomes a random number in 1..``n`` per request."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    base, path = re.fullmatch(r"(https?://[^/]+)(/.*)", url).groups()  # type: ignore[union-attr]
    script = folder / f"wrk_{conns}.lua"
    script.write_text(LUA.replace("{token}", token).replace("{n}", str(n))
                      .replace("{path}", path).replace("{body}", body.replace("'", "\\'")))
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--latency", "-s",
                          str(script), base], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))  # "1.08s " is padded
    return Figures(float(_found(r"Requests/sec:\s+([\d.]+)", out)), _ms(latency["50"]),
                   _ms(latency["99"]), int(_found(r"(\d+) requests in", out)),
                   int(errors.group(1)) if errors else 0)


def _client(kind: str, args: list[Any], seconds: float) -> Figures:
    done = subprocess.run([sys.executable, "-m", "bench.harness.clients", kind, json.dumps(args)],
                          capture_output=True, text=True, check=True, timeout=seconds + 60)
    r = json.loads(done.stdout)
    return Figures(r["calls"] / r["duration"], r["p50"] * 1000, r["p99"] * 1000, r["calls"])


def pg_client(kw: dict[str, Any], sql: str, conns: int, seconds: float, n: int) -> Figures:
    """asyncpg clients (one process): ``sql`` prepared, $1 = 1..``n`` in turn, one row each."""
    return _client("pg", [kw, sql, conns, seconds, n], seconds)


def http_client(url: str, token: str, conns: int, seconds: float, n: int) -> Figures:
    """httpx clients (one process) posting one-row lookups ``{"customer_id": i}`` to ``url``."""
    return _client("http", [url, token, conns, seconds, n], seconds)
