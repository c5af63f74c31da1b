"""How long identity takes per call: a qg_ token vs an OIDC JWT (RS256, ES256, EdDSA).

Runs against a project whose identity.oidc issuer is a reachable provider (the local test
provider of tests/identity/idp.py started in-process here) and its database.

    .venv/bin/python bench/identity_auth.py --project DIR [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path.cwd()))  # the repository root, for tests.identity.idp

from querygate import identity
from querygate.identity import OidcAuthenticator, OidcSettings
from querygate.project import load_project
from tests.identity.idp import IdentityProvider


async def timed(label: str, calls: int, work) -> None:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        await work()
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    print(f"{label:<34} median {statistics.median(samples):7.0f} µs   "
          f"p99 {samples[int(len(samples) * 0.99)]:7.0f} µs")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    project = load_project(args.project)
    idp = IdentityProvider().start()
    settings = OidcSettings(issuer=idp.issuer, audience="querygate",
                            role_map={"eng-support": "support"})
    auth = OidcAuthenticator(settings)
    async with await psycopg.AsyncConnection.connect(project.database_url, autocommit=True) as conn:
        await identity.add_user(conn, "bench@example.com", ["support"]) if not any(
            u.email == "bench@example.com" for u in await identity.list_users(conn)) else None
        token, _ = await identity.issue_token(conn, "bench@example.com")
        await timed("qg_ token (hash lookup)", args.calls, lambda: auth.authenticate(conn, token))
        for key in idp.keys:
            jwt_token = idp.sign(idp.claims(sub="bench-sub", email="bench@example.com"), key=key)
            await auth.authenticate(conn, jwt_token)  # first use: keys fetched, person linked
            await timed(f"JWT {key.alg}: verify only", args.calls,
                        lambda t=jwt_token: auth.verifier.verify(t))
            await timed(f"JWT {key.alg}: verify + directory", args.calls,
                        lambda t=jwt_token: auth.authenticate(conn, t))
    print(f"JWKS fetched {auth.verifier.keys.fetches} time(s) for {args.calls * 6} verifications")
    idp.stop()


asyncio.run(main())
