"""What ``querygate demo`` prints once it serves: tokens and copy-paste calls."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from querygate.demo._run import DEMO_USERS

if TYPE_CHECKING:
    from querygate.pgwire import PostgresConfig


def banner(project_dir: Path, host: str, port: int, tokens: dict[str, str], *,
           postgres: PostgresConfig | None = None) -> list[str]:
    url = f"http://{host}:{port}"
    alice, carol = tokens["alice@example.com"], tokens["carol@example.com"]
    lines = ["", f"console: {url}/console/  (sign in with a token below)",
             "", f"project: {project_dir}", "", "demo users (tokens are new each run):"]
    for email, roles in DEMO_USERS.items():
        lines.append(f"  {email:<20} {', '.join(roles):<11} {tokens[email]}")
    lines += [
        "",
        "try, in another terminal:",
        f"  curl -s -X POST {url}/v1/call/get_customer_by_id \\",
        f"       -H 'Authorization: Bearer {alice}' \\",
        "       -d '{\"params\": {\"customer_id\": 42}, \"reason\": \"TICKET-1042\"}'",
        f"  querygate call search_customers --param email_prefix=canary --url {url} "
        f"--token {carol}",
        f"  querygate audit subject customer:42 --project {shlex.quote(str(project_dir))}",
        "",
        *psql_lines(postgres, tokens),
        "stop with Ctrl+C; the data stays for next time.",
    ]
    return lines


def psql_lines(postgres: PostgresConfig | None, tokens: dict[str, str]) -> list[str]:
    """A ready psql line per demo user, when the PostgreSQL front door is on."""
    if postgres is None:
        return []
    lines = ["psql, as each demo user (then: SELECT * FROM get_customer_by_id(42); or \\df):"]
    for email in DEMO_USERS:
        dsn = (f"host={postgres.host} port={postgres.port} dbname=querygate user={email} "
               f"password={tokens[email]}")
        lines.append(f"  psql {shlex.quote(dsn)}")
    return [*lines, ""]
