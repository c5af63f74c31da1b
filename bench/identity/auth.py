"""How long identity takes per call: a qg_ token against an OIDC JWT (RS256, ES256, EdDSA).

    .venv/bin/python -m bench.identity.auth [--calls 2000] [--project DIR]

Starts a local OIDC provider in-process (bench/identity/provider.py) and times, on one
database connection: a qg_ token's look-up (hash, one round trip), each JWT's signature check
alone, and the check plus the directory look-up, as the gateway does per call. The database is
the project's (--project, e.g. a `querygate demo` folder), else the embedded PostgreSQL started
in a temporary folder with querygate's schema.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg

from bench.harness import arguments, postgres
from bench.identity.provider import Provider
from querygate import identity
from querygate.identity import OidcAuthenticator, OidcSettings
from querygate.project import load_project
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for


async def timed(label: str, calls: int, work: Callable[[], Awaitable[object]]) -> None:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        await work()
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    print(f"{label:<34} median {statistics.median(samples):7.0f} µs   "
          f"p99 {samples[int(len(samples) * 0.99)]:7.0f} µs")


async def measure(database_url: str, calls: int) -> None:
    idp = Provider().start()
    auth = OidcAuthenticator(OidcSettings(issuer=idp.issuer, audience="querygate",
                                          role_map={"eng-support": "support"}))
    try:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            if not any(u.email == "bench@example.com" for u in await identity.list_users(conn)):
                await identity.add_user(conn, "bench@example.com", ["support"])
            token, _ = await identity.issue_token(conn, "bench@example.com")
            await timed("qg_ token (hash lookup)", calls, lambda: auth.authenticate(conn, token))
            for key in idp.keys:
                signed = idp.sign(idp.claims("bench-sub", "bench@example.com"), key)
                await auth.authenticate(conn, signed)  # first use: keys fetched, person linked
                await timed(f"JWT {key.alg}: verify only", calls,
                            lambda t=signed: auth.verifier.verify(t))  # type: ignore[misc]
                await timed(f"JWT {key.alg}: verify + directory", calls,
                            lambda t=signed: auth.authenticate(conn, t))  # type: ignore[misc]
        print(f"JWKS fetched {auth.verifier.keys.fetches} time(s) for {calls * 6} verifications")
    finally:
        idp.stop()


def main() -> None:
    parser = arguments(__doc__, __spec__)
    parser.add_argument("--project", type=Path, help="a project folder whose database to use")
    parser.add_argument("--calls", type=int, default=2000, help="calls per measurement")
    args = parser.parse_args()
    if args.project is not None:
        asyncio.run(measure(load_project(args.project).database_url, args.calls))
        return
    with tempfile.TemporaryDirectory(prefix="qg-identity-bench-") as tmp, \
            postgres(Path(tmp)) as server:
        setup_database(server, parts=("identity",), read_schemas=())
        asyncio.run(measure(url_for(server, user=DEFAULT_GATEWAY_ROLE), args.calls))


if __name__ == "__main__":
    main()
