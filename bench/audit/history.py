"""Give a demo project months of plausible audit history, through the real append path.

The gateway stamps each event with the moment of the call, so a fresh demo has only today's
events. This appends calls as they would have been recorded over the last MONTHS months
(the plan each role gets, the subjects, a reason), so reports and lookups have a history to
show. For documentation and screenshots; never point it at a production log.

    .venv/bin/python -m bench.audit.history --project ~/.local/share/querygate/demo/project
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from pathlib import Path

from bench.harness.cli import arguments
from querygate import audit
from querygate.demo import DEMO_USERS
from querygate.gateway import Gateway
from querygate.project import load_project

CALLS = [  # (function, parameter, reason prefix)
    ("get_customer_by_id", "customer_id", "TICKET"),
    ("list_customer_orders", "customer_id", "TICKET"),
    ("list_customer_tickets", "customer_id", "TICKET"),
]
REASONS = {"support": "TICKET", "billing": "BILL", "compliance": "DSAR", "admin": "OPS"}


async def seed(project_dir: Path, months: int, subject: int, per_month: int, seed_: int) -> int:
    rng = random.Random(seed_)
    gateway = await Gateway.open(load_project(project_dir))
    version = audit.policy_version(gateway.project)
    count = 0
    try:
        async with gateway.audit_pool.connection() as conn:
            await audit.record_policy_version(conn, gateway.project)
            cur = await conn.execute("SELECT email, id FROM querygate.users")
            ids = dict(await cur.fetchall())
        now = dt.datetime.now(dt.UTC)
        history: list[audit.AuditEvent] = []
        for back in range(months, 0, -1):
            first = (now.replace(day=1) - dt.timedelta(days=31 * back)).replace(day=1, hour=9)
            for _ in range(per_month):
                email, roles = rng.choice(list(DEMO_USERS.items()))
                function, param, _ = rng.choice(CALLS)
                plan = gateway.plan_for(function, tuple(roles))
                if not plan.allowed:
                    continue
                customer = subject if rng.random() < 0.5 else rng.randrange(1, 400)
                when = first + dt.timedelta(days=rng.randrange(27), minutes=rng.randrange(480),
                                            microseconds=rng.randrange(10**6))
                reason = f"{REASONS.get(roles[0], 'TICKET')}-{rng.randrange(1000, 9999)}"
                history.append(audit.AuditEvent(
                    occurred_at=when, function_name=function, decision="allowed",
                    actor_id=ids.get(email), actor_email=email,
                    actor_roles=tuple(roles), parameters={param: customer}, reason=reason,
                    rows_returned=1, fields=dict(plan.decisions),
                    subjects=(("customer", str(customer)),), client_addr="10.0.0.5",
                    duration_us=rng.randrange(900, 40000), policy_version=version))
        for event in sorted(history, key=lambda e: e.occurred_at):  # appended in time order
            await audit.append(gateway.audit_pool, event, timeout_s=5)
            count += 1
    finally:
        await gateway.close()
    return count


def main() -> None:
    parser = arguments(__doc__, __spec__)
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--subject", type=int, default=42, help="a customer to feature")
    parser.add_argument("--per-month", type=int, default=8)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    count = asyncio.run(seed(args.project, args.months, args.subject, args.per_month, args.seed))
    print(f"appended {count} events over the last {args.months} months")


if __name__ == "__main__":
    main()
