"""A schema querygate has never seen, two people whose protected values differ but whose masks
agree, and an analyst who may write ad-hoc SQL: the ground for the red-team tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from querygate import identity
from querygate.gateway import Gateway
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for
from tests.demo_env import create_database, drop_database, serving_gateway

# id 7 and id 8 differ in every protected value; each mask shows the same for both.
PEOPLE = [
    (7, "Ines", "518-27-3904", "GB29NWBK60161331926819", "zora.quill@corp.test", "1983-11-27",
     184321),
    (8, "Ines", "623-11-0457", "FR7630006000011234567896819", "zeno.baker@corp.test",
     "1983-02-03", 51200),
]
TRUTH = {"ssn": PEOPLE[0][2], "iban": PEOPLE[0][3], "email": PEOPLE[0][4],
         "born": PEOPLE[0][5], "salary": str(PEOPLE[0][6])}
CANARIES = [p[i] for p in PEOPLE for i in (2, 3, 4)] + ["zora.quill", "zeno.baker", "184321"]

SCHEMA = """
CREATE TABLE staff (id int PRIMARY KEY, name text NOT NULL, ssn text, iban text, email text,
                    born date, salary int, team text NOT NULL DEFAULT 'ops');
CREATE TABLE visits (id serial PRIMARY KEY, staff_id int REFERENCES staff, note text);
CREATE VIEW staff_cards AS SELECT id, name, iban, email FROM staff;
"""

CONFIG = """
database: {{url: "{url}"}}
secret_key: "red-team-secret-key-0123456789-abcdef"
classification:
  public.staff:
    subject: person
    columns:
      ssn: [pii.gov]
      iban: [pii.bank]
      email: [pii.contact]
      born: [pii.birth]
      salary: [pay.salary]
  public.visits:
    subject_ref: {{person: staff_id}}
roles:
  analyst:
    functions: ["*"]
    adhoc: true
    fields:
      pii.gov: mask.full
      pii.bank: mask.last4
      pii.contact: mask.email
      pii.birth: mask.year
      pay.salary: deny
  matcher:
    functions: ["*"]
    adhoc: true
    fields: {{pii.gov: match, pii.bank: mask.full, pii.contact: match}}
  hasher:
    functions: ["*"]
    adhoc: true
    fields: {{pii.gov: mask.hash, pii.bank: allow, pii.contact: allow, pii.birth: allow,
              pay.salary: omit}}
"""

QUERIES = """-- name: staff_ssn
-- One person's SSN, as the caller's rule shows it.
-- param staff_id: int
SELECT id, ssn FROM staff WHERE id = :staff_id;
"""


@dataclass(frozen=True)
class RedTeam:
    admin_url: str
    project: Path
    analyst: str
    hasher: str
    matcher: str


@pytest.fixture(scope="module")
def redteam(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedTeam]:
    name = create_database(admin_url)
    admin = url_for(admin_url, dbname=name)
    with psycopg.connect(admin) as conn:
        conn.execute(SCHEMA)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO staff VALUES (%s, %s, %s, %s, %s, %s, %s)", PEOPLE)
            cur.executemany("INSERT INTO staff (id, name, ssn, iban, email, born, salary) "
                            "VALUES (%s, 'n', %s, %s, %s, '1990-01-01', %s)",
                            [(i, f"{i:03d}-00-0000", f"DE{i:020d}", f"p{i}@x.test", i * 100)
                             for i in range(10, 60)])
        conn.execute("INSERT INTO visits (staff_id, note) SELECT id, 'seen' FROM staff")
        conn.execute("ANALYZE")
    setup_database(admin)
    gateway_url = url_for(admin, user=DEFAULT_GATEWAY_ROLE)
    folder = tmp_path_factory.mktemp("redteam")
    (folder / "queries").mkdir()
    (folder / "queries" / "staff.sql").write_text(QUERIES)
    (folder / "querygate.yaml").write_text(CONFIG.format(url=gateway_url))
    tokens = asyncio.run(_tokens(gateway_url))
    yield RedTeam(admin, folder, tokens["analyst"], tokens["hasher"], tokens["matcher"])
    drop_database(admin_url, name)


async def _tokens(url: str) -> dict[str, str]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        made = {}
        for role in ("analyst", "hasher", "matcher"):
            await identity.add_user(conn, f"{role}@corp.test", [role])
            made[role], _ = await identity.issue_token(conn, f"{role}@corp.test")
        return made


@pytest.fixture
async def served(redteam: RedTeam) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    async with serving_gateway(redteam.project) as pair:
        yield pair
